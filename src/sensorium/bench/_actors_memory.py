"""Memory of device actors, live and passivated, measured with tracemalloc in-process.

Each actor gets one real message (three readings) through a real `ActorRegistry` and
device behaviour; the writer is replaced by a sink that settles at once, because the
question is what an actor itself costs."""

from __future__ import annotations

import gc
import time
import tracemalloc
from typing import Any

import trio
import trio.lowlevel

from sensorium.actors import (
    DeviceContext,
    Envelope,
    Receipt,
    Telemetry,
    WriteRequest,
    device_behavior,
)
from sensorium.engine import ActorRegistry

__all__ = ["measure_actor_memory"]


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
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    spawn_started = time.perf_counter()
    async with ActorRegistry.open(
        device_behavior(context),
        mailbox_size=64,
        idle_timeout_s=idle_timeout_s,
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
        live_count = registry.statistics().live
        while registry.statistics().live:  # noqa: ASYNC110 (waiting for passivation)
            await trio.sleep(0.1)
        gc.collect()
        passivated = tracemalloc.get_traced_memory()[0] - base
        stats = registry.statistics()
    tracemalloc.stop()
    return {
        "actors": count,
        "spawn_seconds": spawn_s,
        "live_bytes_per_actor": live / max(live_count, 1),
        "passivated_bytes_per_actor": passivated / max(stats.passivated, 1),
        "passivated": stats.passivated,
    }
