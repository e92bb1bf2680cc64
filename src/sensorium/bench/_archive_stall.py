"""`sensorium bench archive`: what dropping an archived day costs ingest. On a fresh
stack with an old day of readings (``old_readings``), a fleet publishes at a steady
rate twice: once undisturbed (the baseline), once while that day's partition is
detached concurrently and dropped, as the archive job does after its export. Compared:
publish-to-commit latency (p50, p99, max) and the longest stretch with readings
outstanding and none committed."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

import trio

from sensorium.bench._ingest import IngestBenchOptions, IngestSession, engine_run, machine_facts
from sensorium.bench._provision import wait_for_broker_login
from sensorium.storage import ReadingBatch, connect, write_batch

__all__ = ["ArchiveStallOptions", "run_archive_stall_bench"]

_DAY_US = 86_400_000_000


@dataclass(frozen=True, slots=True)
class ArchiveStallOptions:
    devices: int = 1000
    messages: int = 30  # per device and run, one a second
    rate: float = 2000.0  # messages/s of the whole fleet
    old_readings: int = 2_000_000
    detach_after_s: float = 5.0


def _longest_stall(timeline: list[tuple[float, int, float]]) -> float:
    """Seconds of the longest stretch where readings were outstanding and the committed
    count did not move."""
    longest = 0.0
    since: float | None = None
    last_committed = -1.0
    for when, published, committed in timeline:
        if committed > last_committed or committed >= published:
            since = None
            last_committed = committed
            continue
        since = when if since is None else since
        longest = max(longest, when - since)
    return longest


async def _old_day(url: str, readings: int) -> dt.date:
    """``readings`` readings on a day 200 days ago, in their own partition."""
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=200)
    start_us = int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp() * 1e6)
    conn = await connect(url, command_timeout=600)
    try:
        await conn.execute("SELECT ensure_readings_partitions($1, $1)", day)
        metric = await conn.fetchval(
            "INSERT INTO metrics (name) VALUES ('temperature') "
            "ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id"
        )
        for first in range(0, readings, 200_000):
            batch = ReadingBatch(batch_id=secrets.randbits(63))
            batch.add_rows(
                [
                    (1 + i % 1000, metric, start_us + i * 40_000, float(i % 97), i)
                    for i in range(first, min(first + 200_000, readings))
                ]
            )
            await conn.run(write_batch, batch, timeout=600)
    finally:
        await conn.close()
    return day


async def run_archive_stall_bench(options: ArchiveStallOptions, *, say: Any) -> dict[str, Any]:
    session = IngestSession.start({}, say=say)
    stack = session.stack
    try:
        say(f"writing {options.old_readings:,} readings on an old day")
        day = await _old_day(stack.primary_url, options.old_readings)
        ingest = IngestBenchOptions(
            devices=options.devices, messages=options.messages, metrics=3, rate=options.rate
        )
        runs: dict[str, dict[str, Any]] = {}
        detach_s = 0.0
        for name in ("undisturbed", "while dropping the old day"):
            fleet = await session.provision(options.devices, prefix=name.split()[0])
            await wait_for_broker_login(fleet[-1], host="127.0.0.1", port=stack.ports["mqtt"])
            start_ts = int(time.time() * 1000) - options.messages * 1000
            if name == "undisturbed":
                run = await engine_run(stack, fleet, ingest, start_ts, session.pids)
            else:

                async def drop_old_day() -> None:
                    nonlocal detach_s
                    await trio.sleep(options.detach_after_s)
                    conn = await connect(stack.primary_url, command_timeout=600)
                    try:
                        began = time.perf_counter()
                        partition = f"readings_{day:%Y%m%d}"
                        await conn.execute(
                            f"ALTER TABLE readings DETACH PARTITION {partition} CONCURRENTLY"
                        )
                        await conn.execute(f"DROP TABLE {partition}")
                        detach_s = time.perf_counter() - began
                    finally:
                        await conn.close()

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(drop_old_day)
                    run = await engine_run(stack, fleet, ingest, start_ts, session.pids)
            runs[name] = {
                "latency_s": run["latency_s"],
                "latency_max_s": max(run["latency_samples_s"], default=0.0),
                "longest_stall_s": _longest_stall(run["timeline"]),
                "readings_committed": run["readings_committed"],
                "readings_per_s": run["readings_per_s"],
            }
    finally:
        stack.down()
    base, during = runs["undisturbed"], runs["while dropping the old day"]
    return {
        "suite": "archive",
        "machine": machine_facts(),
        "options": asdict(options),
        "runs": runs,
        "detach_and_drop_s": detach_s,
        "ratios": {
            "p99_during_over_undisturbed": (
                during["latency_s"]["p99"] / base["latency_s"]["p99"]
                if base["latency_s"].get("p99")
                else 0.0
            )
        },
    }
