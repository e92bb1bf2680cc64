"""Memory of device actors, live and passivated, measured in-process: with tracemalloc
(bytes Python allocated) up to `TRACEMALLOC_LIMIT` actors, and always as the growth of
the process's resident set (what the operating system sees; it also counts memory
freed but not given back). tracemalloc's own bookkeeping would double the memory of a
million actors, so past the limit only the resident set is measured.

Each actor gets one real message (three readings) through a real `ActorRegistry` and
device behaviour; the writer is replaced by a sink that settles at once, because the
question is what an actor itself costs."""

from __future__ import annotations

import gc
import os
import time
import tracemalloc
from typing import Any

import trio
import trio.lowlevel
import trio.testing

from sensorium.actors import (
    DeviceContext,
    Envelope,
    Receipt,
    Telemetry,
    WriteRequest,
    device_behavior,
)
from sensorium.engine import ActorRegistry

__all__ = ["TRACEMALLOC_LIMIT", "measure_actor_memory"]

TRACEMALLOC_LIMIT = 200_000
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


async def measure_actor_memory(count: int, *, idle_timeout_s: float = 1.0) -> dict[str, Any]:
    async def submit(request: WriteRequest) -> None:
        for receipt in request.receipts:
            receipt.settle()

    async def metric_ids(names: set[str]) -> dict[str, int]:
        return {name: index for index, name in enumerate(sorted(names))}

    async def stored_keys(key: int, ts: list[int]) -> set[tuple[int, int, int | None]]:
        return set()

    context = DeviceContext(
        submit=submit, metric_ids=metric_ids, stored_keys=stored_keys, initial_hwm=lambda key: -1
    )
    now_us = int(time.time() * 1_000_000)
    traced = count <= TRACEMALLOC_LIMIT
    gc.collect()
    if traced:
        tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    rss_base = _resident_bytes()
    spawn_started = time.perf_counter()
    async with ActorRegistry.open(
        device_behavior(context),
        mailbox_size=64,
        # None passivates while the others are still spawning (a million take minutes).
        idle_timeout_s=86_400,
        on_undeliverable=lambda *a: None,
    ) as registry:
        for key in range(count):
            item = Telemetry(
                now_us, 1, [("temperature", 21.5), ("humidity", 40.0), ("pressure", 1013.0)]
            )
            await registry.send(key, Envelope(key, 1, f"dev-{key}", "mqtt", [item], Receipt()))
        await trio.lowlevel.checkpoint()
        while registry.statistics().delivered < count:  # noqa: ASYNC110 (polling statistics)
            await trio.sleep(0.01)
        spawn_s = time.perf_counter() - spawn_started
        gc.collect()
        live = tracemalloc.get_traced_memory()[0] - base
        live_rss = _resident_bytes() - rss_base
        live_count = registry.statistics().live
        registry.idle_timeout_s = idle_timeout_s
        while registry.statistics().live:  # noqa: ASYNC110 (waiting for passivation)
            await trio.sleep(0.1)
        # Passivated actors' tasks end at their next receive: let them all run out.
        await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        gc.collect()
        passivated = tracemalloc.get_traced_memory()[0] - base
        passivated_rss = _resident_bytes() - rss_base
        stats = registry.statistics()
    tracemalloc.stop()
    if not traced:  # the resident set is the only measure
        live, passivated = live_rss, passivated_rss
    return {
        "actors": count,
        "method": "tracemalloc" if traced else "resident set",
        "spawn_seconds": spawn_s,
        "live_bytes_per_actor": live / max(live_count, 1),
        "passivated_bytes_per_actor": passivated / max(stats.passivated, 1),
        "passivated": stats.passivated,
        "live_rss_bytes_per_actor": live_rss / max(live_count, 1),
        # The resident set seldom shrinks when memory is freed: an upper bound.
        "passivated_rss_bytes_per_actor": passivated_rss / max(stats.passivated, 1),
    }
