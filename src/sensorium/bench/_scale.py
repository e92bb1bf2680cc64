"""`sensorium bench scale`: scaling curves on one fresh stack.

- throughput against devices (1k and 10k; `--full` adds 100k), 3 metrics a message;
- throughput against metrics per message (1, 3 and 10, at 1k devices);
- memory against resident device actors (10k and 100k; `--full` adds 1M).

Each throughput point is an end-to-end engine run beside the two baselines that depend
on the fleet, run on the same devices and frames: broker only (a bare subscriber) and
the paho + COPY script. Every point publishes about the same number of messages, and
each point's readings are later in time than the previous point's, so no device ever
sees a reading older than its high-water mark.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sensorium.bench._actors_memory import measure_actor_memory
from sensorium.bench._ingest import IngestBenchOptions, IngestSession, Progress, machine_facts

__all__ = ["FULL_SCALE", "ScaleOptions", "run_scale_bench"]


@dataclass(frozen=True, slots=True)
class ScaleOptions:
    devices: tuple[int, ...] = (1_000, 10_000)
    metrics: tuple[int, ...] = (1, 3, 10)
    metrics_devices: int = 1_000
    messages_per_point: int = 100_000
    actors: tuple[int, ...] = (10_000, 100_000)


FULL_SCALE = ScaleOptions(devices=(1_000, 10_000, 100_000), actors=(10_000, 100_000, 1_000_000))


def _curve_point(x: int, point: dict[str, Any]) -> dict[str, Any]:
    engine, baselines = point["engine"], point["baselines"]
    messages = engine["messages"] or 1
    return {
        "x": x,
        "devices": point["options"]["devices"],
        "metrics": point["options"]["metrics"],
        "messages_per_device": point["options"]["messages_per_device"],
        "engine_readings_per_s": engine["readings_per_s"],
        "broker_only_readings_per_s": baselines["broker_only"]["rows_per_s"],
        "paho_copy_readings_per_s": baselines["paho_copy"]["rows_per_s"],
        "engine_vs_broker_only": point["ratios"]["engine_vs_broker_only"],
        "engine_vs_paho_copy": point["ratios"]["engine_vs_paho_copy"],
        "engine_cpu_us_per_message": engine["cpu_seconds"]["engine"] / messages * 1e6,
        "load_generator_cores": engine["load_generator_cores"],
        "source_addresses": engine["source_addresses"],
        "exact": engine["readings_stored"] == engine["readings_expected"],
    }


async def run_scale_bench(
    options: ScaleOptions, *, say: Any = print, progress: Progress | None = None
) -> dict[str, Any]:
    runs: list[tuple[int, int]] = [(devices, 3) for devices in options.devices]
    runs += [(options.metrics_devices, m) for m in options.metrics if m != 3]
    if (options.metrics_devices, 3) not in runs and 3 in options.metrics:
        runs.append((options.metrics_devices, 3))
    window_ms = max(
        max(2, options.messages_per_point // devices) * 1000 + 60_000 for devices, _ in runs
    )
    points: list[dict[str, Any]] = []
    session = IngestSession.start({}, say=say)
    try:
        fleet = await session.provision(max(devices for devices, _ in runs))
        start_ts_ms = int(time.time() * 1000) - (len(runs) + 1) * window_ms
        for index, (devices, metrics) in enumerate(runs):
            messages = max(2, options.messages_per_point // devices)
            say(f"point {index + 1}/{len(runs)}: {devices} devices, {metrics} metrics")
            point = await session.measure(
                fleet[:devices],
                IngestBenchOptions(
                    devices=devices, messages=messages, metrics=metrics, sql_baselines=False
                ),
                start_ts_ms=start_ts_ms + index * window_ms,
                progress=progress,
            )
            point["engine"].pop("timeline", None)  # the curves need the totals only
            point["engine"].pop("latency_samples_s", None)
            points.append(point)
    finally:
        session.stop()
    memory = []
    for count in options.actors:
        say(f"device actor memory: {count} actors")
        memory.append(await measure_actor_memory(count))
    by_shape = {(p["options"]["devices"], p["options"]["metrics"]): p for p in points}
    return {
        "suite": "scale",
        "options": {
            "devices": list(options.devices),
            "metrics": list(options.metrics),
            "metrics_devices": options.metrics_devices,
            "messages_per_point": options.messages_per_point,
            "actors": list(options.actors),
        },
        "points": points,
        "curves": {
            "devices": [_curve_point(d, by_shape[(d, 3)]) for d in options.devices],
            "metrics": [
                _curve_point(m, by_shape[(options.metrics_devices, m)]) for m in options.metrics
            ],
            "actors": memory,
        },
        "machine": machine_facts(),
    }
