"""Analytics, read from the replicas: a device's series, its latest values, and the
fleet's top devices.

`GET /api/v1/devices/{id}/telemetry?metric=&from=&to=&bucket=&agg=`: `from`/`to` are
RFC 3339 or epoch ms, half-open `[from, to)`; `bucket` like `30s`, `5m`, `1h`, `1d`,
aligned to UTC (the epoch); agg avg|min|max|sum|count|last. The range is read from the
day, hour and minute rollups wherever their buckets fit the answer's, and from raw rows
at the edges (storage/_series.py); the answer's `source` says which were read, coarsest
first, like `rollup_1h+rollup_1m+raw`. Without `bucket`, the raw readings themselves.

Every answer carries `X-Sensorium-Served-By` (replica-1, replica-2 or primary) and
`X-Sensorium-Staleness-Ms` (how far behind the primary that server may be).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field
from quart import Blueprint, Response, jsonify, request
from quart_schema import document_querystring, document_response

from sensorium.http._guard import Guard, bad_request
from sensorium.http._problem import problem
from sensorium.http._schemas import FleetSummary, LatestValues, Series
from sensorium.http._tokens import Principal
from sensorium.storage import (
    Connection,
    Piece,
    ReadPools,
    ReadTarget,
    fleet_sql,
    plan_pieces,
    series_sql,
)

__all__ = ["MAX_POINTS", "MAX_RANGE", "analytics_blueprint"]

T = TypeVar("T")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_BUCKET = re.compile(r"^([1-9][0-9]{0,6})(s|m|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_AGGS = ("avg", "min", "max", "sum", "count", "last")
MAX_POINTS = 10_000
MAX_RANGE = dt.timedelta(days=400)


class TelemetryQuery(BaseModel):
    """The query of GET /devices/{id}/telemetry (documentation; checked by hand)."""

    metric: str | None = None
    from_: str | None = Field(default=None, alias="from", description="RFC 3339 or epoch ms")
    to: str | None = Field(default=None, description="RFC 3339 or epoch ms (exclusive)")
    bucket: str | None = Field(default=None, description="like 30s, 5m, 1h, 1d")
    agg: Literal["avg", "min", "max", "sum", "count", "last"] | None = None


class FleetQuery(BaseModel):
    """The query of GET /fleet/summary (documentation; checked by hand)."""

    metric: str | None = None
    from_: str | None = Field(default=None, alias="from", description="RFC 3339 or epoch ms")
    to: str | None = Field(default=None, description="RFC 3339 or epoch ms (exclusive)")
    agg: Literal["avg", "min", "max", "sum", "count"] | None = None
    top: int | None = Field(default=None, ge=1, le=1000)


class _BadQuery(ValueError):
    pass


def _time(name: str, text: str | None, default: dt.datetime) -> dt.datetime:
    if text is None or text == "":
        return default
    try:
        if text.lstrip("-").isdigit():
            return _EPOCH + dt.timedelta(milliseconds=int(text))
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        raise _BadQuery(f"{name}: RFC 3339 or epoch milliseconds, not {text!r}") from None
    if value.tzinfo is None:
        raise _BadQuery(f"{name}: give a time zone (RFC 3339)")
    return value


def _range(args: Any) -> tuple[dt.datetime, dt.datetime]:
    now = dt.datetime.now(dt.UTC)
    end = _time("to", args.get("to"), now)
    start = _time("from", args.get("from"), end - dt.timedelta(hours=1))
    if start >= end:
        raise _BadQuery("from must be before to")
    if end - start > MAX_RANGE:
        raise _BadQuery(f"the range may span at most {MAX_RANGE.days} days")
    return start, end


def _bucket_s(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    match = _BUCKET.match(text)
    if match is None:
        raise _BadQuery("bucket: a whole number and a unit s, m, h or d, like 30s, 5m, 1h, 1d")
    return int(match[1]) * _UNIT_S[match[2]]


def _agg(text: str | None) -> str:
    agg = text or "avg"
    if agg not in _AGGS:
        raise _BadQuery(f"agg: one of {', '.join(_AGGS)}")
    return agg


def _sources(pieces: list[Piece]) -> str:
    names = {piece.source for piece in pieces}
    order = ("rollup_1d", "rollup_1h", "rollup_1m", "raw")
    return "+".join(name for name in order if name in names)


def _served(response: Response, target: ReadTarget) -> Response:
    response.headers["X-Sensorium-Served-By"] = target.name
    response.headers["X-Sensorium-Staleness-Ms"] = str(math.ceil(target.staleness_s * 1000))
    return response


def _not_found(what: str) -> Response:
    return problem(404, "Not Found", kind="not-found", detail=what)


async def _on_replica(
    reads: ReadPools, query: Callable[[Connection], Awaitable[T]]
) -> tuple[T, ReadTarget]:
    """Run ``query`` on a replica; on failure mark it and try the next (at last the
    primary)."""
    for _ in range(len(reads.replicas) + 1):
        target = reads.choose()
        try:
            async with target.pool.acquire() as conn:
                return await query(conn), target
        except Exception:
            if target.name == "primary":
                raise
            reads.mark_failed(target)
    target = reads.choose()
    async with target.pool.acquire() as conn:
        return await query(conn), target


async def _device_key(conn: Connection, tenant_id: int, device_id: str) -> int | None:
    key: int | None = await conn.fetchval(
        "SELECT key FROM devices WHERE tenant_id = $1 AND id = $2", tenant_id, device_id
    )
    return key


async def _metric_id(conn: Connection, name: str) -> int | None:
    found: int | None = await conn.fetchval("SELECT id FROM metrics WHERE name = $1", name)
    return found


def _value(agg: str, value: Any) -> float | int | None:
    if value is None:
        return None
    return int(value) if agg == "count" else float(value)


def analytics_blueprint(reads: ReadPools, guard: Guard) -> Blueprint:
    bp = Blueprint("analytics", __name__, url_prefix="/api/v1")

    @bp.get("/devices/<device_id>/telemetry")
    @document_response(Series)
    @document_querystring(TelemetryQuery)
    @guard()
    async def telemetry(device_id: str, principal: Principal) -> Response:
        args = request.args
        metric = args.get("metric")
        if not metric:
            return bad_request("metric: required")
        try:
            start, end = _range(args)
            bucket_s = _bucket_s(args.get("bucket"))
            agg = _agg(args.get("agg"))
        except _BadQuery as exc:
            return bad_request(str(exc))
        span_s = (end - start).total_seconds()
        if bucket_s is not None and span_s / bucket_s > MAX_POINTS:
            return bad_request(
                f"{math.ceil(span_s / bucket_s)} buckets asked for; at most {MAX_POINTS} "
                "points per answer: widen the bucket or narrow the range"
            )
        pieces = plan_pieces(start, end, bucket_s)

        async def raw_readings(conn: Connection) -> list[tuple[Any, Any]] | str | None:
            key = await _device_key(conn, principal.tenant_id, device_id)
            if key is None:
                return f"no device {device_id!r}"
            rows = await conn.fetch(
                """SELECT ts, value FROM readings
                   WHERE device_key = $1 AND metric_id = (SELECT id FROM metrics WHERE name = $2)
                     AND ts >= $3 AND ts < $4
                   ORDER BY ts LIMIT $5""",
                key,
                metric,
                start,
                end,
                MAX_POINTS + 1,
            )
            if len(rows) > MAX_POINTS:
                return None
            return [(r["ts"], r["value"]) for r in rows]

        async def buckets(conn: Connection) -> str | None:
            sql, bounds = series_sql(pieces, agg)
            row = await conn.fetchrow(
                sql, principal.tenant_id, device_id, metric, float(bucket_s or 0), *bounds
            )
            return row["points"] if row is not None and row["found"] else None

        head = {
            "device_id": device_id,
            "metric": metric,
            "agg": agg if bucket_s is not None else None,
            "bucket": args.get("bucket") or None,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "source": _sources(pieces) if bucket_s is not None else "raw",
        }
        if bucket_s is not None:
            points, target = await _on_replica(reads, buckets)
            if points is None:
                return _served(_not_found(f"no device {device_id!r}"), target)
            # The server wrote the points as JSON: splice them in as they are.
            body = json.dumps(head)[:-1] + ', "points": ' + points + "}"
            return _served(Response(body, content_type="application/json"), target)
        readings, target = await _on_replica(reads, raw_readings)
        if isinstance(readings, str):
            return _served(_not_found(readings), target)
        if readings is None:
            return _served(
                bad_request(
                    f"more than {MAX_POINTS} readings in the range: give a bucket "
                    "or narrow the range"
                ),
                target,
            )
        points_list = [{"ts": ts.isoformat(), "value": float(v)} for ts, v in readings]
        return _served(jsonify(**head, points=points_list), target)

    @bp.get("/devices/<device_id>/latest")
    @document_response(LatestValues)
    @guard()
    async def latest(device_id: str, principal: Principal) -> Response:
        async def query(conn: Connection) -> dict[str, Any] | None:
            key = await _device_key(conn, principal.tenant_id, device_id)
            if key is None:
                return None
            rows = await conn.fetch(
                """SELECT DISTINCT ON (r.metric_id) m.name, r.last_ts, r.last_value
                   FROM (SELECT metric_id, bucket, last_ts, last_value FROM rollup_1m
                         WHERE device_key = $1
                         UNION ALL
                         SELECT metric_id, bucket, last_ts, last_value FROM rollup_1m_delta
                         WHERE device_key = $1) r
                   JOIN metrics m ON m.id = r.metric_id
                   ORDER BY r.metric_id, r.bucket DESC, r.last_ts DESC""",
                key,
            )
            seen = await conn.fetchval("SELECT device_last_seen($1)", key)
            return {
                "device_id": device_id,
                "last_seen": seen.isoformat() if seen else None,
                "metrics": {
                    r["name"]: {"ts": r["last_ts"].isoformat(), "value": r["last_value"]}
                    for r in rows
                },
            }

        result, target = await _on_replica(reads, query)
        if result is None:
            return _served(_not_found(f"no device {device_id!r}"), target)
        return _served(jsonify(result), target)

    @bp.get("/fleet/summary")
    @document_response(FleetSummary)
    @document_querystring(FleetQuery)
    @guard()
    async def fleet_summary(principal: Principal) -> Response:
        args = request.args
        metric = args.get("metric")
        if not metric:
            return bad_request("metric: required")
        try:
            start, end = _range(args)
            agg = _agg(args.get("agg") or "max")
            top = int(args.get("top", "10"))
        except (_BadQuery, ValueError) as exc:
            return bad_request(str(exc))
        if agg == "last" or not 1 <= top <= 1000:
            return bad_request("agg: avg, min, max, sum or count; top: between 1 and 1000")
        pieces = plan_pieces(start, end, None)

        async def query(conn: Connection) -> list[tuple[str, Any]]:
            metric_id = await _metric_id(conn, metric)
            if metric_id is None:
                return []
            sql, bounds = fleet_sql(pieces, agg)
            rows = await conn.fetch(sql, principal.tenant_id, metric_id, top, *bounds)
            return [(r["id"], r["v"]) for r in rows]

        rows, target = await _on_replica(reads, query)
        response = jsonify(
            metric=metric,
            agg=agg,
            **{"from": start.isoformat(), "to": end.isoformat()},
            source=_sources(pieces),
            devices=[{"device_id": d, "value": _value(agg, v)} for d, v in rows],
        )
        return _served(response, target)

    return bp
