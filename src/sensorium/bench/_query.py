"""`sensorium bench query`: analytics latency on a month of minute data.

A fresh stack is loaded with 30 days of one reading a minute for every device (the
readings and their minute rollups written by the writer's own COPY code, then folded
as housekeeping folds them), and the replicas catch up. Then, through the HTTP API
with a real access token: a 30-day, 1-hour-bucket average for one device at a time,
``queries`` times, each device chosen at random; beside it, in the same run, the same
aggregate computed from the raw rows in SQL on a replica (the baseline the rollups
must beat).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import secrets as secrets_module
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import trio

from sensorium.bench._ingest import machine_facts
from sensorium.bench._month_data import day_values, ensure_partitions, load_month_by_copy
from sensorium.bench._provision import provision_devices
from sensorium.bench._stack import BenchStack
from sensorium.storage import (
    ReadingBatch,
    compact_rollups,
    connect,
    create_pool,
    create_user,
    write_batch,
)

__all__ = ["run_query_bench"]

# Latency is measured, not the per-user rate limit (50 requests/s by default).
_ENV = {"SENSORIUM_AUTH__REQUESTS_PER_USER_PER_S": "1000000"}
_MINUTE_US = 60_000_000
_DAY_US = 86_400_000_000
_RAW_SQL = """
SELECT date_bin(interval '1 hour', ts, timestamptz 'epoch') AS b, avg(value) AS v
FROM readings WHERE device_key = $1 AND metric_id = $2 AND ts >= $3 AND ts < $4
GROUP BY 1 ORDER BY 1
"""


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50_ms": at(0.5) * 1000, "p95_ms": at(0.95) * 1000, "samples": float(len(ordered))}


async def _load_month(url: str, keys: list[int], metric_id: int, end_us: int, say: Any) -> int:
    """30 days of one reading a minute for every device, ending at ``end_us`` (a UTC
    midnight), through the writer's own COPY in batches of up to 200k rows."""
    start_us = end_us - 30 * _DAY_US
    conn = await connect(url, command_timeout=600)
    rows = 0
    try:
        await ensure_partitions(conn, start_us, end_us)
        # Minute by minute, every device in each minute: the order the engine writes.
        minutes_per_batch = max(1, 200_000 // len(keys))
        for day_start_us in range(start_us, end_us, _DAY_US):
            values = day_values(keys, day_start_us // _DAY_US).tolist()
            for first in range(0, 1440, minutes_per_batch):
                batch = ReadingBatch(batch_id=secrets_module.randbits(63))
                for minute in range(first, min(first + minutes_per_batch, 1440)):
                    ts = day_start_us + minute * _MINUTE_US
                    at = minute * len(keys)
                    batch.add_rows(
                        [(key, metric_id, ts, values[at + i], None) for i, key in enumerate(keys)]
                    )
                await conn.run(write_batch, batch, timeout=600)
                rows += batch.count
            say(f"loaded {rows:,} readings")
    finally:
        await conn.close()
    return rows


@dataclass
class _Dataset:
    """What a loaded stack holds; kept as dataset.json beside a kept stack."""

    devices: dict[str, int]  # device id -> key
    metric_id: int
    end_us: int
    readings: int
    password: str  # of the bench's viewer account
    loader: str  # "writer" (the writer's COPY and the compactor) or "copy" (bulk)
    load_seconds: float
    ports: list[int]


async def _load(stack: BenchStack, devices: int, *, bulk: bool, say: Any) -> _Dataset:
    fleet = await provision_devices(stack.primary_url, devices, prefix="query")
    conn = await connect(stack.primary_url)
    try:
        key_of = {
            r["id"]: r["key"]
            for r in await conn.fetch(
                "SELECT id, key FROM devices WHERE id = ANY($1)", [d.id for d in fleet]
            )
        }
        metric_id = await conn.fetchval(
            "INSERT INTO metrics (name) VALUES ('temperature') "
            "ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id"
        )
        password = secrets_module.token_urlsafe(12)
        await create_user(
            conn, email="bench@query.local", password=password, role="viewer",
            tenant="simulator",
        )  # fmt: skip
    finally:
        await conn.close()
    end_us = int(time.time()) // 86_400 * _DAY_US  # the last UTC midnight
    keys = [key_of[d.id] for d in fleet]
    started = time.perf_counter()
    if bulk:
        rows = await load_month_by_copy(stack.primary_url, keys, metric_id, end_us, say)
    else:
        rows = await _load_month(stack.primary_url, keys, metric_id, end_us, say)
        pool = await create_pool(stack.primary_url, min_size=1, max_size=1, command_timeout=600)
        try:
            folded = await compact_rollups(pool, settle_s=0, rows_per_pass=100_000)
        finally:
            await pool.close()
        say(f"folded {folded:,} device rows of minute deltas")
    return _Dataset(
        devices={d.id: key_of[d.id] for d in fleet},
        metric_id=metric_id,
        end_us=end_us,
        readings=rows,
        password=password,
        loader="copy" if bulk else "writer",
        load_seconds=time.perf_counter() - started,
        ports=stack.port_list,
    )


def _kept_stack(folder: Path, say: Any) -> tuple[BenchStack, _Dataset | None]:
    """The stack kept in ``folder`` with its dataset, or a new one there (a folder left
    half-built by an interrupted run is purged first)."""
    marker = folder / "dataset.json"
    if marker.exists():
        dataset = _Dataset(**json.loads(marker.read_text()))
        say(f"reusing the dataset kept in {folder} ({dataset.readings:,} readings)")
        return BenchStack.create(_ENV, state_dir=folder, port_list=dataset.ports), dataset
    if folder.exists():
        BenchStack.create(state_dir=folder).down(purge=True)
        shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    say(f"building a dataset to keep in {folder}")
    return BenchStack.create(_ENV, state_dir=folder), None


async def _settle(url: str, say: Any) -> None:
    """As after any bulk load: vacuum (statistics, and the visibility map that lets
    reads of the rollups be index-only scans) and a checkpoint, so that the timed
    queries do not share the disks with autovacuum and checkpoints of the load."""
    conn = await connect(url, command_timeout=3600)
    try:
        await conn.execute(
            "VACUUM (ANALYZE) readings, rollup_1m, device_deltas, rollup_1h, rollup_1d"
        )
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    say("vacuumed and checkpointed")


async def _replicas_caught_up(stack: BenchStack, say: Any) -> None:
    """Both replicas have replayed everything the primary wrote so far: timing queries
    while a replica still replays a bulk load would time its disk, not the query."""
    primary = await connect(stack.primary_url)
    try:
        target = await primary.fetchval("SELECT pg_current_wal_lsn()::text")
    finally:
        await primary.close()
    for port in json.loads(stack.env["SENSORIUM_STACK__REPLICA_PORTS"]):
        replica = await connect(_on_port(stack, port))
        try:
            with trio.fail_after(3600):
                while not await replica.fetchval(  # noqa: ASYNC110 (polling another server)
                    "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn", target
                ):
                    await trio.sleep(1)
        finally:
            await replica.close()
    say(f"both replicas have replayed the primary's WAL up to {target}")


def _on_port(stack: BenchStack, port: int) -> str:
    return stack.primary_url.replace(f":{stack.ports['primary']}/", f":{port}/")


async def run_query_bench(
    *,
    devices: int,
    queries: int,
    keep_in: Path | None = None,
    warmup: int = 20,
    say: Any = print,
) -> dict[str, Any]:
    """With ``keep_in``, the loaded stack is kept in a folder under it (loaded in bulk
    by COPY) and reused by the next run of the same size. The first ``warmup`` queries
    of each path are timed apart: the stack has just started, its caches are cold."""
    if keep_in is None:
        stack, dataset = BenchStack.create(_ENV), None
        say(f"starting a fresh stack in {stack.state_dir}")
    else:
        stack, dataset = _kept_stack(keep_in / f"query-{devices}", say)
    reused = dataset is not None
    stack.up()
    try:
        if dataset is None:
            dataset = await _load(stack, devices, bulk=keep_in is not None, say=say)
            await _settle(stack.primary_url, say)
            if keep_in is not None:
                (stack.state_dir / "dataset.json").write_text(json.dumps(asdict(dataset)))
        say("waiting for the replicas")
        await _replicas_caught_up(stack, say)
        replica_port = json.loads(stack.env["SENSORIUM_STACK__REPLICA_PORTS"])[0]
        replica = await connect(_on_port(stack, replica_port), command_timeout=600)
        try:
            end_us, metric_id, password = dataset.end_us, dataset.metric_id, dataset.password
            fleet = sorted(dataset.devices)
            key_of = dataset.devices
            start = dt.datetime.fromtimestamp(end_us / 1e6 - 30 * 86400, dt.UTC)
            end = dt.datetime.fromtimestamp(end_us / 1e6, dt.UTC)
            async with httpx.AsyncClient(base_url=stack.http_url, timeout=60) as client:
                login = await client.post(
                    "/api/v1/auth/login",
                    json={"email": "bench@query.local", "password": password},
                )
                headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
                rng = random.Random(1)
                api: list[float] = []
                raw: list[float] = []
                served: dict[str, int] = {}
                agreed = 0
                source = "?"
                say(
                    f"{warmup} + {queries} API queries and as many raw SQL aggregates, "
                    "interleaved (the first ones warm the caches and are reported apart)"
                )
                for _ in range(warmup + queries):
                    device = rng.choice(fleet)
                    began = time.perf_counter()
                    answer = await client.get(
                        f"/api/v1/devices/{device}/telemetry",
                        headers=headers,
                        params={
                            "metric": "temperature",
                            "from": start.isoformat(),
                            "to": end.isoformat(),
                            "bucket": "1h",
                            "agg": "avg",
                        },
                    )
                    api.append(time.perf_counter() - began)
                    if answer.status_code != 200:
                        raise RuntimeError(f"the API answered {answer.status_code}: {answer.text}")
                    source = answer.json()["source"]
                    by = answer.headers.get("X-Sensorium-Served-By", "?")
                    served[by] = served.get(by, 0) + 1
                    began = time.perf_counter()
                    truth = await replica.fetch(_RAW_SQL, key_of[device], metric_id, start, end)
                    raw.append(time.perf_counter() - began)
                    points = answer.json()["points"]  # every answer agrees with the raw rows
                    if (
                        len(points) != 720
                        or len(truth) != 720
                        or any(
                            abs(p["value"] - float(t["v"])) > 1e-6
                            for p, t in zip(points, truth, strict=True)
                        )
                    ):
                        raise RuntimeError(f"the API and the raw rows disagree for {device}")
                    agreed += 1
        finally:
            await replica.close()
    finally:
        stack.down(purge=keep_in is None)
    api_cold, api = api[:warmup], api[warmup:]
    raw_cold, raw = raw[:warmup], raw[warmup:]
    api_p, raw_p = _percentiles(api), _percentiles(raw)
    return {
        "suite": "query",
        "options": {
            "devices": devices,
            "queries": queries,
            "warmup": warmup,
            "days": 30,
            "bucket": "1h",
        },
        "data": {
            "readings": dataset.readings,
            "loaded_by": dataset.loader,
            "load_seconds": dataset.load_seconds,
            "rows_per_s": dataset.readings / dataset.load_seconds,
            "reused": reused,
            "kept_in": str(stack.state_dir) if keep_in is not None else None,
        },
        "api": {
            **api_p,
            "served_by": served,
            "answers_equal_to_raw": agreed,
            "source": source,
            "samples_ms": [round(x * 1000, 3) for x in api],
        },
        # The first queries after the stack starts, each path's caches still cold.
        "cold": {
            "api": _percentiles(api_cold) if api_cold else None,
            "raw_sql_on_replica": _percentiles(raw_cold) if raw_cold else None,
        },
        "raw_sql_on_replica": {**raw_p, "samples_ms": [round(x * 1000, 3) for x in raw]},
        "ratios": {
            "raw_p50_over_api_p50": raw_p["p50_ms"] / api_p["p50_ms"],
            "raw_p95_over_api_p95": raw_p["p95_ms"] / api_p["p95_ms"],
        },
        "machine": machine_facts(),
    }
