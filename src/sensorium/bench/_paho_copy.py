"""The paho + batched COPY baseline of the ingest bench: the same devices publish the
same frames while `_paho_script` (a process of its own) subscribes and stores them."""

from __future__ import annotations

import json
import subprocess
import sys

import trio

from sensorium.bench._loadgen import DeviceCredentials, LoadResult, run_mqtt_load
from sensorium.storage import connect

__all__ = ["run_paho_copy"]


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
        [sys.executable, "-m", "sensorium.bench._paho_script"],
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
