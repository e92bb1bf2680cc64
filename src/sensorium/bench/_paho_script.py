"""The "afternoon script" baseline: what a user would write without Sensorium.

paho-mqtt's network loop in its thread hands messages to a queue; the main thread
takes them in batches, decodes the JSON and writes each batch with asyncpg's
`copy_records_to_table` (one transaction per batch). paho acknowledges each message as
it arrives, before anything is stored: simpler than the engine, and not loss-free
through a crash. It runs as a process of its own, as such a script would (the bench
drives it from `_paho_copy`), so that its CPU is counted apart:

    python -m sensorium.bench._paho_script < job.json

reads the job as JSON on stdin, prints ``ready`` once subscribed, then one JSON line
with its results once it has stored ``expected`` readings (or heard nothing for
``quiet_timeout_s``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import queue
import sys
import threading
import time
from typing import Any

import asyncpg
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

__all__ = ["BATCH_MESSAGES", "main"]

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


if __name__ == "__main__":
    main()
