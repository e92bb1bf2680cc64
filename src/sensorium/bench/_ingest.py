"""`sensorium bench ingest`: end-to-end MQTT ingest, publish to committed row, beside
baselines run on the same rows in the same run.

- engine: simulated devices publish QoS 1 messages to the embedded Mosquitto; the
  engine reads, validates, de-duplicates, COPYs and commits them, then acknowledges.
  Throughput is readings committed / (last commit - first publish). Latency is read
  off the two progress curves (messages sent, readings committed, sampled every 50 ms):
  the k-th reading's latency is when the commit curve reaches k minus when the send
  curve did, which is exact for a FIFO pipeline and an estimate otherwise.
- baselines on the same rows: `psql \\copy` of a CSV (this machine's COPY ceiling),
  asyncpg `copy_records_to_table`, and one autocommitted INSERT per row (naive), each
  into a table shaped like `readings` (same columns, same index).
- writer alone: the engine's writer fed the same rows, against copy_records_to_table.
- CPU seconds per component: engine, PostgreSQL (primary and replicas), broker, load
  generator; a load generator near a full core is reported as saturated.
"""

from __future__ import annotations

import bisect
import datetime as dt
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from sensorium import __version__
from sensorium.bench._baselines import sql_baselines, writer_rounds
from sensorium.bench._broker_only import run_broker_only
from sensorium.bench._cpu import tree_cpu_seconds
from sensorium.bench._loadgen import (
    METRICS,
    DeviceCredentials,
    LoadResult,
    reading_value,
    run_http_load,
    run_mqtt_load,
)
from sensorium.bench._paho_copy import run_paho_copy
from sensorium.bench._provision import provision_devices, wait_for_broker_login
from sensorium.bench._stack import BenchStack
from sensorium.storage import connect

__all__ = [
    "IngestBenchOptions",
    "IngestSession",
    "Progress",
    "engine_run",
    "machine_facts",
    "run_ingest_bench",
]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class IngestBenchOptions:
    devices: int = 2000
    metrics: int = 3
    messages: int = 20  # per device
    rate: float | None = None  # messages/s for the fleet; None = as fast as possible
    naive_rows: int = 3000
    transport: str = "mqtt"  # or "http": POST /api/v1/telemetry, answered after commit
    http_batch: int = 10  # messages per HTTP request
    http_concurrency: int = 64
    engine_env: dict[str, str] = field(default_factory=dict)
    # The SQL baselines and the writer's rounds (the scaling suite leaves them out and
    # keeps broker-only and paho + COPY, which depend on the fleet).
    sql_baselines: bool = True


# Called while the engine runs with (readings committed, readings expected).
Progress = Callable[[float, float], None]


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _metric(client: httpx.AsyncClient, url: str, name: str) -> float:
    text = (await client.get(url + "/metrics")).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def _rows(
    fleet_keys: list[int], metric_ids: list[int], options: IngestBenchOptions, start_ts_ms: int
) -> list[tuple[int, int, int, float, int]]:
    """The very rows the engine stores for this run: (device_key, metric_id, ts_us, value, seq)."""
    rows = []
    for d, key in enumerate(fleet_keys):
        for i in range(options.messages):
            ts_us = (start_ts_ms + i * 1000) * 1000
            for m in range(options.metrics):
                rows.append((key, metric_ids[m], ts_us, reading_value(d, i, m), i))
    return rows


async def engine_run(
    stack: BenchStack,
    fleet: list[DeviceCredentials],
    options: IngestBenchOptions,
    start_ts_ms: int,
    pids: dict[str, int | None],
    progress: Progress | None = None,
) -> dict[str, Any]:
    expected = len(fleet) * options.messages * options.metrics
    async with httpx.AsyncClient(timeout=10) as client:
        base = await _metric(client, stack.http_url, "sensorium_readings_written_total")
        cpu_before = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
        own_before = sum(os.times()[:2])
        sent_curve: list[tuple[float, int]] = []
        commit_curve: list[tuple[float, float]] = []
        result = LoadResult(devices=len(fleet), messages=0, readings=0, value_sum=0.0, seconds=0)
        done = trio.Event()

        async def sample_sent() -> None:
            # Often: the latency estimate is only as fine as this curve.
            while not done.is_set():
                sent_curve.append((time.perf_counter(), result.sent))
                await trio.sleep(0.01)

        async def sample() -> None:
            while not done.is_set():
                written = (
                    await _metric(client, stack.http_url, "sensorium_readings_written_total") - base
                )
                commit_curve.append((time.perf_counter(), written))
                if progress is not None:
                    progress(written, expected)
                if written >= expected:
                    done.set()
                    return
                await trio.sleep(0.05)

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sample_sent)
            nursery.start_soon(sample)
            if options.transport == "http":
                await run_http_load(
                    fleet,
                    base_url=stack.http_url,
                    messages=options.messages,
                    metrics=options.metrics,
                    batch=options.http_batch,
                    concurrency=options.http_concurrency,
                    start_ts_ms=start_ts_ms,
                    result=result,
                )
            else:
                await run_mqtt_load(
                    fleet,
                    port=stack.ports["mqtt"],
                    messages=options.messages,
                    metrics=options.metrics,
                    rate=options.rate,
                    start_ts_ms=start_ts_ms,
                    result=result,
                )
            with trio.move_on_after(600):
                await done.wait()
            nursery.cancel_scope.cancel()
        finished = commit_curve[-1][0] if commit_curve else time.perf_counter()
        cpu_after = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
        own_after = sum(os.times()[:2])
    committed = commit_curve[-1][1] if commit_curve else 0
    # From the first message published (devices connecting is not ingest) to the commit
    # that completed the run.
    seconds = finished - (result.first_send or started)
    cpu = {name: cpu_after[name] - cpu_before[name] for name in pids}
    cpu["load_generator"] = own_after - own_before
    return {
        "readings_expected": expected,
        "readings_committed": committed,
        "messages": result.messages,
        "seconds": seconds,
        "readings_per_s": committed / seconds if seconds else 0.0,
        "messages_per_s": committed / options.metrics / seconds if seconds else 0.0,
        "cpu_seconds": cpu,
        "load_generator_cores": cpu["load_generator"] / seconds if seconds else 0.0,
        "cpu_window_seconds": finished - started,
        "latency_s": _latencies(sent_curve, commit_curve, options.metrics),
        "latency_samples_s": _latency_samples(sent_curve, commit_curve, options.metrics),
        "source_addresses": result.source_addresses,
        # (seconds since the first publish, readings published, readings committed)
        "timeline": _timeline(sent_curve, commit_curve, options.metrics, result.first_send),
    }


def _timeline(
    sent: list[tuple[float, int]],
    committed: list[tuple[float, float]],
    metrics: int,
    origin: float | None,
) -> list[tuple[float, int, float]]:
    if not sent or origin is None:
        return []
    sent_times = [when for when, _ in sent]
    step = max(1, len(committed) // 2000)  # at most ~2,000 points in the JSON
    timeline = []
    for when, count in committed[::step]:
        index = bisect.bisect_right(sent_times, when) - 1
        published = sent[index][1] * metrics if index >= 0 else 0
        timeline.append((round(when - origin, 3), published, count))
    return timeline


def _latency_samples(
    sent: list[tuple[float, int]], committed: list[tuple[float, float]], metrics: int
) -> list[float]:
    """Publish-to-commit latency from the two progress curves (see the module doc), one
    sample per point of the commit curve."""
    sent_counts = [count for _, count in sent]
    latencies = []
    for when, readings in committed[1:]:
        k = int(readings // metrics)
        if k <= 0:
            continue
        index = bisect.bisect_left(sent_counts, k)
        if index < len(sent):
            latencies.append(round(max(0.0, when - sent[index][0]), 4))
    return latencies


def _latencies(
    sent: list[tuple[float, int]], committed: list[tuple[float, float]], metrics: int
) -> dict[str, float]:
    if not sent or not committed:
        return {}
    latencies = _latency_samples(sent, committed, metrics)
    return {
        "p50": _percentile(latencies, 0.5),
        "p95": _percentile(latencies, 0.95),
        "p99": _percentile(latencies, 0.99),
        "samples": float(len(latencies)),
    }


@dataclass
class IngestSession:
    """One fresh stack for one or more ingest runs (the scaling suite runs several)."""

    stack: BenchStack
    pids: dict[str, int | None]
    replica_pids: list[int | None]
    say: Any

    @classmethod
    def start(cls, engine_env: dict[str, str], *, say: Any) -> IngestSession:
        stack = BenchStack.create(engine_env)
        say(f"starting a fresh stack in {stack.state_dir}")
        stack.up()
        try:
            pids = {c["name"]: c["pid"] for c in stack.status()["components"]}
        except BaseException:
            stack.down()
            raise
        return cls(
            stack,
            {
                "engine": pids.get("engine"),
                "postgresql_primary": pids.get("primary"),
                "broker": pids.get("mqtt"),
            },
            [pids.get("replica-1"), pids.get("replica-2")],
            say,
        )

    async def provision(self, devices: int, *, prefix: str = "bench") -> list[DeviceCredentials]:
        self.say(f"provisioning {devices} devices")
        return await provision_devices(self.stack.primary_url, devices, prefix=prefix)

    async def measure(
        self,
        fleet: list[DeviceCredentials],
        options: IngestBenchOptions,
        *,
        start_ts_ms: int,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """One engine run of ``fleet`` (each device ``options.messages`` messages from
        ``start_ts_ms``, one a second) and its baselines on the same fleet and rows."""
        stack, say = self.stack, self.say
        if options.transport == "mqtt":
            await wait_for_broker_login(fleet[-1], host="127.0.0.1", port=stack.ports["mqtt"])
        say(
            f"publishing {len(fleet) * options.messages} messages "
            f"({len(fleet) * options.messages * options.metrics} readings)"
        )
        replica_before = sum(tree_cpu_seconds(p) for p in self.replica_pids)
        engine = await engine_run(stack, fleet, options, start_ts_ms, self.pids, progress)
        engine["cpu_seconds"]["postgresql_replicas"] = (
            sum(tree_cpu_seconds(p) for p in self.replica_pids) - replica_before
        )
        conn = await connect(stack.primary_url)
        try:
            ids = [d.id for d in fleet]
            engine["readings_stored"] = await conn.fetchval(
                "SELECT count(*) FROM readings r JOIN devices d ON d.key = r.device_key "
                "WHERE d.id = ANY($1) AND r.ts >= $2",
                ids,
                _EPOCH + dt.timedelta(milliseconds=start_ts_ms),
            )
            key_of = {
                r["id"]: r["key"]
                for r in await conn.fetch("SELECT id, key FROM devices WHERE id = ANY($1)", ids)
            }
            by_name = {r["name"]: r["id"] for r in await conn.fetch("SELECT id, name FROM metrics")}
        finally:
            await conn.close()
        baselines: dict[str, dict[str, Any]] = {}
        if options.transport == "mqtt":
            secrets = stack.secrets()
            say("broker-only baseline: the same devices and frames, a bare subscriber")
            broker_only = await run_broker_only(
                fleet,
                port=stack.ports["mqtt"],
                engine_user=secrets["mqtt_engine_user"],
                engine_password=secrets["mqtt_engine_password"],
                messages=options.messages,
                metrics=options.metrics,
            )
            baselines["broker_only"] = {
                "rows": broker_only["messages"] * options.metrics,
                "seconds": broker_only["seconds"],
                "rows_per_s": broker_only["readings_per_s"],
                "messages_per_s": broker_only["messages_per_s"],
            }
            say("paho + COPY baseline: the same devices and frames, an afternoon's script")
            baselines["paho_copy"] = await run_paho_copy(
                fleet,
                url=stack.primary_url,
                port=stack.ports["mqtt"],
                engine_user=secrets["mqtt_engine_user"],
                engine_password=secrets["mqtt_engine_password"],
                device_keys=key_of,
                metric_ids=by_name,
                messages=options.messages,
                metrics=options.metrics,
            )
        writer: dict[str, Any] | None = None
        if options.sql_baselines:
            keys = [key_of[d.id] for d in fleet]  # in fleet order: the load's device index
            metric_ids = [by_name[METRICS[m]] for m in range(options.metrics)]
            rows = _rows(keys, metric_ids, options, start_ts_ms)
            say("baselines on the same rows")
            with tempfile.TemporaryDirectory() as workdir:
                os.chmod(workdir, 0o755)
                baselines.update(
                    await sql_baselines(stack.primary_url, rows, options.naive_rows, workdir)
                )
            say("the writer alone against asyncpg copy_records_to_table, 3 rounds")
            writer, copies = await writer_rounds(stack.primary_url, rows)
            baselines.update(copies)
        rate = engine["readings_per_s"]
        ratios = {
            f"engine_vs_{name}": rate / figures["rows_per_s"] for name, figures in baselines.items()
        }
        if writer is not None:
            for name in ("asyncpg_copy", "asyncpg_copy_batched"):
                ratios[f"writer_vs_{name}"] = writer["rows_per_s"] / baselines[name]["rows_per_s"]
        return {
            "options": {
                "devices": len(fleet),
                "metrics": options.metrics,
                "messages_per_device": options.messages,
                "rate": options.rate or "max",
                "qos": 1 if options.transport == "mqtt" else None,
                "transport": options.transport,
                "http_batch": options.http_batch if options.transport == "http" else None,
            },
            "engine": engine,
            "baselines": baselines,
            **({"writer_alone": writer} if writer is not None else {}),
            "ratios": ratios,
        }

    def stop(self) -> None:
        self.stack.down()


def machine_facts() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "sensorium": __version__,
        "platform": platform.platform(),
        "postgresql": _version_of(["postgres", "--version"]),
        "mosquitto": _version_of(["mosquitto", "-h"]),
    }


def _version_of(command: list[str]) -> str | None:
    try:
        found = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return None
    lines = (found.stdout or found.stderr).splitlines()
    return lines[0].strip() if lines else None


async def run_ingest_bench(
    options: IngestBenchOptions, *, say: Any = print, progress: Progress | None = None
) -> dict[str, Any]:
    session = IngestSession.start(options.engine_env, say=say)
    try:
        fleet = await session.provision(options.devices)
        start_ts_ms = int(time.time() * 1000) - options.messages * 1000 - 60_000
        point = await session.measure(fleet, options, start_ts_ms=start_ts_ms, progress=progress)
    finally:
        session.stop()
    return {"suite": "ingest", **point, "machine": machine_facts()}
