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
import os
import platform
import tempfile
import time
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
from sensorium.bench._provision import provision_devices, wait_for_broker_login
from sensorium.bench._stack import BenchStack
from sensorium.storage import connect

__all__ = ["IngestBenchOptions", "run_ingest_bench"]


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


async def _engine_run(
    stack: BenchStack,
    fleet: list[DeviceCredentials],
    options: IngestBenchOptions,
    start_ts_ms: int,
    pids: dict[str, int | None],
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

        async def sample() -> None:
            while not done.is_set():
                sent_curve.append((time.perf_counter(), result.sent))
                written = (
                    await _metric(client, stack.http_url, "sensorium_readings_written_total") - base
                )
                commit_curve.append((time.perf_counter(), written))
                if written >= expected:
                    done.set()
                    return
                await trio.sleep(0.05)

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
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
    }


def _latencies(
    sent: list[tuple[float, int]], committed: list[tuple[float, float]], metrics: int
) -> dict[str, float]:
    """Publish-to-commit latency from the two progress curves (see the module doc)."""
    if not sent or not committed:
        return {}
    sent_counts = [count for _, count in sent]
    latencies = []
    for when, readings in committed[1:]:
        k = int(readings // metrics)
        if k <= 0:
            continue
        index = bisect.bisect_left(sent_counts, k)
        if index < len(sent):
            latencies.append(max(0.0, when - sent[index][0]))
    return {
        "p50": _percentile(latencies, 0.5),
        "p95": _percentile(latencies, 0.95),
        "p99": _percentile(latencies, 0.99),
        "samples": float(len(latencies)),
    }


async def run_ingest_bench(options: IngestBenchOptions, *, say: Any = print) -> dict[str, Any]:
    stack = BenchStack.create(options.engine_env)
    say(f"starting a fresh stack in {stack.state_dir}")
    stack.up()
    try:
        status = stack.status()
        pids = {c["name"]: c["pid"] for c in status["components"]}
        component_pids = {
            "engine": pids.get("engine"),
            "postgresql_primary": pids.get("primary"),
            "postgresql_replicas": None,
            "broker": pids.get("mqtt"),
        }
        replica_pids = [pids.get("replica-1"), pids.get("replica-2")]
        say(f"provisioning {options.devices} devices")
        fleet = await provision_devices(stack.primary_url, options.devices, prefix="bench")
        if options.transport == "mqtt":
            await wait_for_broker_login(fleet[-1], host="127.0.0.1", port=stack.ports["mqtt"])
        start_ts_ms = int(time.time() * 1000) - options.messages * 1000 - 60_000
        say(
            f"publishing {options.devices * options.messages} messages "
            f"({options.devices * options.messages * options.metrics} readings)"
        )
        pids_for_cpu = {k: v for k, v in component_pids.items() if k != "postgresql_replicas"}
        replica_before = sum(tree_cpu_seconds(p) for p in replica_pids)
        engine = await _engine_run(stack, fleet, options, start_ts_ms, pids_for_cpu)
        engine["cpu_seconds"]["postgresql_replicas"] = (
            sum(tree_cpu_seconds(p) for p in replica_pids) - replica_before
        )
        conn = await connect(stack.primary_url)
        try:
            stored = await conn.fetchval(
                "SELECT count(*) FROM readings r JOIN devices d ON d.key = r.device_key "
                "WHERE d.id = ANY($1)",
                [d.id for d in fleet],
            )
            keys = [
                r["key"]
                for r in await conn.fetch(
                    "SELECT key FROM devices WHERE id = ANY($1) ORDER BY key", [d.id for d in fleet]
                )
            ]
            id_rows = await conn.fetch("SELECT id, name FROM metrics")
        finally:
            await conn.close()
        engine["readings_stored"] = stored
        baselines_extra: dict[str, dict[str, float]] = {}
        if options.transport == "mqtt":
            say("broker-only baseline: the same devices and frames, a bare subscriber")
            secrets = stack.secrets()
            broker_only = await run_broker_only(
                fleet,
                port=stack.ports["mqtt"],
                engine_user=secrets["mqtt_engine_user"],
                engine_password=secrets["mqtt_engine_password"],
                messages=options.messages,
                metrics=options.metrics,
            )
            baselines_extra = {
                "broker_only": {
                    "rows": broker_only["messages"] * options.metrics,
                    "seconds": broker_only["seconds"],
                    "rows_per_s": broker_only["readings_per_s"],
                    "messages_per_s": broker_only["messages_per_s"],
                }
            }
        by_name = {r["name"]: r["id"] for r in id_rows}
        metric_ids = [by_name[METRICS[m]] for m in range(options.metrics)]
        rows = _rows(keys, metric_ids, options, start_ts_ms)
        say("baselines on the same rows")
        with tempfile.TemporaryDirectory() as workdir:
            os.chmod(workdir, 0o755)
            baselines = await sql_baselines(stack.primary_url, rows, options.naive_rows, workdir)
        say("the writer alone against asyncpg copy_records_to_table, 3 rounds")
        writer, copies = await writer_rounds(stack.primary_url, rows)
        baselines.update(copies)
    finally:
        stack.down()
    rate = engine["readings_per_s"]
    return {
        "suite": "ingest",
        "options": {
            "devices": options.devices,
            "metrics": options.metrics,
            "messages_per_device": options.messages,
            "rate": options.rate or "max",
            "qos": 1 if options.transport == "mqtt" else None,
            "transport": options.transport,
            "http_batch": options.http_batch if options.transport == "http" else None,
        },
        "engine": engine,
        "baselines": {**baselines, **baselines_extra},
        "writer_alone": writer,
        "ratios": {
            "engine_vs_psql_copy": rate / baselines["psql_copy"]["rows_per_s"],
            "engine_vs_asyncpg_copy": rate / baselines["asyncpg_copy"]["rows_per_s"],
            "engine_vs_naive_insert": rate / baselines["naive_insert"]["rows_per_s"],
            **(
                {"engine_vs_broker_only": rate / baselines_extra["broker_only"]["rows_per_s"]}
                if baselines_extra
                else {}
            ),
            "writer_vs_asyncpg_copy_batched": (
                writer["rows_per_s"] / baselines["asyncpg_copy_batched"]["rows_per_s"]
            ),
            "writer_vs_asyncpg_copy": (
                writer["rows_per_s"] / baselines["asyncpg_copy"]["rows_per_s"]
            ),
        },
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "sensorium": __version__,
            "platform": platform.platform(),
        },
    }
