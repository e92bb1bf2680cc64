"""The "afternoon script" baseline: what a user would write without Sensorium.

paho-mqtt's network loop in its thread hands messages to a queue; the main thread
takes them in batches, decodes the JSON and writes each batch with asyncpg's
`copy_records_to_table` (one transaction per batch). paho acknowledges each message as
it arrives, before anything is stored: simpler than the engine, and not loss-free
through a crash. It runs as a process of its own, as such a script would, so that its
CPU is counted apart:

    python -m sensorium.bench._paho_copy < job.json

reads the job as JSON on stdin, prints ``ready`` once subscribed, then one JSON line
with its results once it has stored ``expected`` readings.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import queue
import subprocess
import sys
import threading
import time
from typing import Any

import asyncpg
import paho.mqtt.client as mqtt
import trio
from paho.mqtt.enums import CallbackAPIVersion

from sensorium.bench._loadgen import DeviceCredentials, LoadResult, run_mqtt_load
from sensorium.storage import connect

__all__ = ["BATCH_MESSAGES", "main", "run_paho_copy"]

BATCH_MESSAGES = 2000
_COLUMNS = ("ts", "value", "device_key", "metric_id", "seq")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _subscribe(job: dict[str, Any], inbox: queue.SimpleQueue[tuple[str, bytes]]) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id="bench-paho-copy", clean_session=True
    )
    client.username_pw_set(job["username"], job["password"])
    subscribed = threading.Event()
    client.on_message = lambda _client, _userdata, message: inbox.put(
        (message.topic, bytes(message.payload))
    )
    client.on_subscribe = lambda *_args: subscribed.set()
    client.connect(job["host"], job["port"])
    client.subscribe(job["topic"], qos=1)
    client.loop_start()
    if not subscribed.wait(30):
        raise TimeoutError("no SUBACK from the broker within 30 s")
    return client


def _records(
    messages: list[tuple[str, bytes]], keys: dict[str, int], metric_ids: dict[str, int]
) -> list[tuple[object, ...]]:
    records: list[tuple[object, ...]] = []
    for topic, payload in messages:
        device_key = keys[topic.split("/")[1]]
        body = json.loads(payload)
        ts = _EPOCH + dt.timedelta(milliseconds=body["ts"])
        for name, value in body["metrics"].items():
            records.append((ts, value, device_key, metric_ids[name], body.get("seq")))
    return records


async def _store(job: dict[str, Any], inbox: queue.SimpleQueue[tuple[str, bytes]]) -> int:
    conn = await asyncpg.connect(job["url"])
    stored = 0
    try:
        while stored < job["expected"]:
            batch: list[tuple[str, bytes]] = []
            quiet_since = time.monotonic()
            while len(batch) < BATCH_MESSAGES:
                try:
                    batch.append(inbox.get_nowait())
                except queue.Empty:
                    if batch:
                        break
                    if time.monotonic() - quiet_since > job["quiet_timeout_s"]:
                        return stored  # messages stopped coming: report what arrived
                    await asyncio.sleep(0.005)
            records = _records(batch, job["device_keys"], job["metric_ids"])
            await conn.copy_records_to_table(job["table"], records=records, columns=_COLUMNS)
            stored += len(records)
    finally:
        await conn.close()
    return stored


def main() -> None:
    job = json.loads(sys.stdin.read())
    inbox: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
    client = _subscribe(job, inbox)
    print("ready", flush=True)
    stored = asyncio.run(_store(job, inbox))
    done = time.perf_counter()  # CLOCK_MONOTONIC: comparable with the bench's clock
    client.loop_stop()
    client.disconnect()
    cpu = os.times()
    print(
        json.dumps({"stored": stored, "done": done, "cpu_seconds": cpu.user + cpu.system}),
        flush=True,
    )


async def run_paho_copy(
    fleet: list[DeviceCredentials],
    *,
    url: str,
    port: int,
    engine_user: str,
    engine_password: str,
    device_keys: dict[str, int],
    metric_ids: dict[str, int],
    messages: int,
    metrics: int,
) -> dict[str, float]:
    """The same devices publish the same frames (to ``devices/<id>/paho``) while the
    script stores them in a table shaped like `readings`; readings/s from the first
    publish to the script's last commit."""
    expected = len(fleet) * messages * metrics
    conn = await connect(url)
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_paho")
        await conn.execute("CREATE TABLE bench_paho (LIKE readings INCLUDING ALL)")
    finally:
        await conn.close()
    job = {
        "url": url,
        "host": "127.0.0.1",
        "port": port,
        "username": engine_user,
        "password": engine_password,
        "topic": "devices/+/paho",
        "table": "bench_paho",
        "expected": expected,
        "quiet_timeout_s": 30.0,
        "device_keys": device_keys,
        "metric_ids": metric_ids,
    }
    result = LoadResult(devices=len(fleet), messages=0, readings=0, value_sum=0.0, seconds=0)
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "sensorium.bench._paho_copy"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    lines = _Lines(process.stdout)
    try:
        await process.stdin.send_all(json.dumps(job).encode())
        await process.stdin.aclose()
        with trio.fail_after(60):
            if await lines.next() != "ready":
                raise RuntimeError("the paho + COPY script did not subscribe")
        await run_mqtt_load(
            fleet, port=port, messages=messages, metrics=metrics, result=result, topic_leaf="paho"
        )
        with trio.fail_after(600):
            report = json.loads(await lines.next())
        await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()
    conn = await connect(url)
    try:
        stored = await conn.fetchval("SELECT count(*) FROM bench_paho")
        await conn.execute("DROP TABLE bench_paho")
    finally:
        await conn.close()
    seconds = report["done"] - (result.first_send or report["done"])
    return {
        "rows": float(stored),
        "seconds": seconds,
        "rows_per_s": stored / seconds if seconds else 0.0,
        "cpu_seconds": report["cpu_seconds"],
    }


class _Lines:
    """Lines from a child's stdout."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def next(self) -> str:
        while b"\n" not in self._buffer:
            chunk = await self._stream.receive_some(65536)
            if not chunk:
                raise EOFError("the paho + COPY script ended without an answer")
            self._buffer += chunk
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        return line.decode().strip()


if __name__ == "__main__":
    main()
