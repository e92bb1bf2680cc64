"""`sensorium bench writer`: the engine's writer alone, fed generated rows, beside
asyncpg's raw COPY of the same rows (one transaction, and the writer's commit size),
in interleaved rounds (`--rounds`, five by default) on a fresh stack, each timed run
starting on a vacuumed database with both replicas caught up."""

from __future__ import annotations

import time
from typing import Any

from sensorium.bench._baselines import WRITER_BATCH_ROWS, writer_rounds
from sensorium.bench._loadgen import reading_value
from sensorium.bench._stack import BenchStack

__all__ = ["run_writer_bench"]


def _generated_rows(
    devices: int, messages: int, metrics: int
) -> list[tuple[int, int, int, float, int]]:
    """Rows shaped like the ingest bench's: one message a second per device, starting
    5 s before a minute begins. Pinned, because the minute boundaries decide how many
    rollup rows the writer writes: started at a wall-clock second, 10 messages fell in
    one minute or (about one run in seven) straddled two, and the rollup work doubled.
    This way every device's first messages end a minute (the costlier case, every run)."""
    start_ms = ((int(time.time()) - messages - 3600) // 60 * 60 - 5) * 1000
    return [
        (
            device + 1,
            metric + 1,
            (start_ms + message * 1000) * 1000,
            reading_value(device, message, metric),
            message,
        )
        for device in range(devices)
        for message in range(messages)
        for metric in range(metrics)
    ]


async def run_writer_bench(
    *, devices: int, messages: int, metrics: int, rounds: int = 3, say: Any = print
) -> dict[str, Any]:
    stack = BenchStack.create()
    say(f"starting a fresh stack in {stack.state_dir}")
    stack.up()
    try:
        rows = _generated_rows(devices, messages, metrics)
        say(f"{len(rows)} rows, {rounds} interleaved rounds")
        writer_median, baselines = await writer_rounds(stack.primary_url, rows, rounds=rounds)
    finally:
        stack.down()
    return {
        "suite": "writer",
        "options": {
            "devices": devices,
            "messages_per_device": messages,
            "metrics": metrics,
            "rounds": rounds,
            "batch_rows": WRITER_BATCH_ROWS,
        },
        "baselines": baselines,
        "writer_alone": writer_median,
        # Each round's writer against the COPY run just before it: the same minute of
        # a noisy machine. Their spread shows how far one figure can be trusted.
        "per_round_vs_asyncpg_copy": [
            writer / copy
            for writer, copy in zip(
                writer_median["runs"], baselines["asyncpg_copy"]["runs"], strict=True
            )
        ],
        "ratios": {
            "writer_vs_asyncpg_copy": (
                writer_median["rows_per_s"] / baselines["asyncpg_copy"]["rows_per_s"]
            ),
            "writer_vs_asyncpg_copy_batched": (
                writer_median["rows_per_s"] / baselines["asyncpg_copy_batched"]["rows_per_s"]
            ),
        },
    }
