"""The suites `sensorium bench SUITE` runs, by name, with a progress bar while the
engine ingests (rich, on the console given)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
import trio_asyncio
from rich.console import Console
from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as ProgressBar

from sensorium.bench._actors_memory import measure_actor_memory
from sensorium.bench._alerts import AlertBenchOptions, run_alerts_bench
from sensorium.bench._archive_stall import ArchiveStallOptions, run_archive_stall_bench
from sensorium.bench._ingest import IngestBenchOptions, run_ingest_bench
from sensorium.bench._query import run_query_bench
from sensorium.bench._scale import FULL_SCALE, ScaleOptions, run_scale_bench
from sensorium.bench._writer_suite import run_writer_bench

__all__ = ["SUITES", "SuiteOptions", "run_suite"]

SUITES = ("ingest", "writer", "actors", "scale", "query", "alerts", "archive")
DEFAULT_ACTORS = (10_000, 100_000)
FULL_ACTORS = (10_000, 100_000, 1_000_000)


@dataclass(frozen=True, slots=True)
class SuiteOptions:
    ingest: IngestBenchOptions
    actors: tuple[int, ...] | None = None  # None: the suite's default sizes
    full: bool = False
    scale: ScaleOptions | None = None  # None: the default (or `full`) curves
    query_devices: int | None = None  # None: 200, or 2,000 with `full`
    queries: int = 100
    probes: int = 100  # alerts: probe devices, two alert emails each
    probe_seconds: float = 40.0  # alerts: how long the half-rate phase lasts
    # writer: interleaved rounds; the machines are shared, a median of 3 still moves
    # by 20% from run to run
    rounds: int = 5
    # `full`: where the query suite keeps its loaded stack, to reuse it next time
    data_dir: Path = Path(".sensorium/bench-data")


async def _with_asyncio(fn: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    async with trio_asyncio.open_loop():
        return await fn()


async def _actor_sizes(sizes: tuple[int, ...], say: Any) -> list[dict[str, Any]]:
    results = []
    for count in sizes:
        say(f"device actor memory: {count} actors")
        results.append(await measure_actor_memory(count))
    return results


def run_suite(suite: str, options: SuiteOptions, console: Console) -> dict[str, Any]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f} / {task.total:,.0f} readings committed"),
        TimeElapsedColumn(),
    )
    with ProgressBar(*columns, console=console, transient=True) as bar:
        task = bar.add_task("engine", total=1, visible=False)
        say = bar.console.print

        def progress(done: float, total: float) -> None:
            bar.update(task, completed=done, total=total, visible=True)

        if suite == "ingest":
            report = trio.run(
                _with_asyncio,
                lambda: run_ingest_bench(options.ingest, say=say, progress=progress),
            )
            sizes = options.actors or DEFAULT_ACTORS[:1]
            report["actors"] = trio.run(_actor_sizes, sizes[:1], say)[0]
            return report
        if suite == "writer":
            ingest = options.ingest
            return trio.run(
                _with_asyncio,
                lambda: run_writer_bench(
                    devices=ingest.devices,
                    messages=ingest.messages,
                    metrics=ingest.metrics,
                    rounds=options.rounds,
                    say=say,
                ),
            )
        if suite == "actors":
            sizes = options.actors or (FULL_ACTORS if options.full else DEFAULT_ACTORS)
            runs = trio.run(_actor_sizes, sizes, say)
            return {"suite": "actors", "actors": runs[0], "sizes": runs}
        if suite == "query":
            devices = options.query_devices or (2000 if options.full else 200)
            return trio.run(
                _with_asyncio,
                lambda: run_query_bench(
                    devices=devices,
                    queries=options.queries,
                    keep_in=options.data_dir if options.full else None,
                    say=say,
                ),
            )
        if suite == "alerts":
            ingest = options.ingest
            alerts = AlertBenchOptions(
                devices=ingest.devices,
                messages=ingest.messages,
                metrics=ingest.metrics,
                probes=options.probes,
                probe_seconds=options.probe_seconds,
            )
            return trio.run(_with_asyncio, lambda: run_alerts_bench(alerts, say=say))
        if suite == "archive":
            stall = ArchiveStallOptions(
                devices=options.ingest.devices,
                messages=options.ingest.messages,
                rate=options.ingest.rate or 2000.0,
            )
            return trio.run(_with_asyncio, lambda: run_archive_stall_bench(stall, say=say))
        if suite == "scale":
            scale = options.scale or (FULL_SCALE if options.full else ScaleOptions())
            return trio.run(
                _with_asyncio, lambda: run_scale_bench(scale, say=say, progress=progress)
            )
    raise ValueError(f"unknown bench suite {suite!r}: {', '.join(SUITES)}")
