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
import time
from typing import Any

import httpx
import trio

from sensorium.bench._ingest import machine_facts
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
    """30 days of one reading a minute for every device, by COPY in 200k-row batches."""
    start_us = end_us - 30 * _DAY_US
    conn = await connect(url, command_timeout=600)
    rows = 0
    try:
        await conn.execute(
            "SELECT ensure_readings_partitions($1, $2)",
            dt.date(1970, 1, 1) + dt.timedelta(days=start_us // _DAY_US),
            dt.date(1970, 1, 1) + dt.timedelta(days=end_us // _DAY_US),
        )
        per_batch = max(1, 200_000 // (30 * 1440))
        for index in range(0, len(keys), per_batch):
            batch = ReadingBatch(batch_id=secrets_module.randbits(63))
            for key in keys[index : index + per_batch]:
                rng = random.Random(key)
                batch.add_rows(
                    (key, metric_id, ts, round(20 + 5 * rng.random(), 3), None)
                    for ts in range(start_us, end_us, _MINUTE_US)
                )
            await conn.run(write_batch, batch, timeout=600)
            rows += batch.count
            say(f"loaded {rows:,} readings")
    finally:
        await conn.close()
    return rows


async def run_query_bench(*, devices: int, queries: int, say: Any = print) -> dict[str, Any]:
    stack = BenchStack.create()
    say(f"starting a fresh stack in {stack.state_dir}")
    stack.up()
    try:
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
        end_us = int(time.time()) // 3600 * 3600 * 1_000_000  # the last whole hour
        started = time.perf_counter()
        rows = await _load_month(
            stack.primary_url, [key_of[d.id] for d in fleet], metric_id, end_us, say
        )
        load_s = time.perf_counter() - started
        pool = await create_pool(stack.primary_url, min_size=1, max_size=1, command_timeout=600)
        try:
            folded = await compact_rollups(pool, settle_s=0, keys_per_pass=500_000)
        finally:
            await pool.close()
        say(f"folded {folded:,} minute keys; waiting for the replicas")
        replica_port = json.loads(stack.env["SENSORIUM_STACK__REPLICA_PORTS"])[0]
        replica_url = stack.primary_url.replace(f":{stack.ports['primary']}/", f":{replica_port}/")
        replica = await connect(replica_url, command_timeout=600)
        try:
            with trio.fail_after(600):  # the last device's month has reached replica-1
                while (  # noqa: ASYNC110 (polling another server)
                    await replica.fetchval(
                        "SELECT count(*) FROM readings WHERE device_key = $1",
                        key_of[fleet[-1].id],
                    )
                    < 30 * 1440
                ):
                    await trio.sleep(0.5)
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
                checked = False
                source = "?"
                say(f"{queries} API queries and {queries} raw SQL aggregates, interleaved")
                for _ in range(queries):
                    device = rng.choice(fleet)
                    began = time.perf_counter()
                    answer = await client.get(
                        f"/api/v1/devices/{device.id}/telemetry",
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
                    truth = await replica.fetch(_RAW_SQL, key_of[device.id], metric_id, start, end)
                    raw.append(time.perf_counter() - began)
                    if not checked:  # the two agree (checked once; the tests check more)
                        points = answer.json()["points"]
                        assert len(points) == len(truth) == 720, (len(points), len(truth))
                        assert all(
                            abs(p["value"] - float(t["v"])) < 1e-6
                            for p, t in zip(points, truth, strict=True)
                        )
                        checked = True
        finally:
            await replica.close()
    finally:
        stack.down()
    api_p, raw_p = _percentiles(api), _percentiles(raw)
    return {
        "suite": "query",
        "options": {"devices": devices, "queries": queries, "days": 30, "bucket": "1h"},
        "data": {"readings": rows, "load_seconds": load_s, "rows_per_s": rows / load_s},
        "api": {
            **api_p,
            "served_by": served,
            "source": source,
            "samples_ms": [round(x * 1000, 3) for x in api],
        },
        "raw_sql_on_replica": {**raw_p, "samples_ms": [round(x * 1000, 3) for x in raw]},
        "ratios": {
            "raw_p50_over_api_p50": raw_p["p50_ms"] / api_p["p50_ms"],
            "raw_p95_over_api_p95": raw_p["p95_ms"] / api_p["p95_ms"],
        },
        "machine": machine_facts(),
    }
