"""`POST /api/v1/devices/{id}/exports?metric=&from=&to=&format=csv|parquet`: one device's
raw readings of one metric over a range, written to the object store as CSV or Parquet,
answered with a presigned URL to fetch it (valid an hour). Read from a replica, like
analytics; archived days are not included (restore them first)."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from quart import Blueprint, Response, jsonify, request

from sensorium.archive import ObjectStore
from sensorium.http._analytics import (
    _BadQuery,
    _device_key,
    _metric_id,
    _not_found,
    _on_replica,
    _range,
    _served,
)
from sensorium.http._guard import Guard, bad_request
from sensorium.http._problem import problem
from sensorium.http._tokens import Principal
from sensorium.storage import Connection, ReadPools

__all__ = ["MAX_EXPORT_ROWS", "exports_blueprint"]

MAX_EXPORT_ROWS = 1_000_000  # held in memory while written
_URL_EXPIRES_S = 3600


def _csv(rows: list[Any]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["ts", "value", "seq"])
    for row in rows:
        writer.writerow([row["ts"].isoformat(), repr(row["value"]), row["seq"]])
    return out.getvalue().encode()


def _parquet(rows: list[Any]) -> bytes:
    table = pa.table(
        {
            "ts": pa.array([r["ts"] for r in rows], pa.timestamp("us", tz="UTC")),
            "value": pa.array([r["value"] for r in rows], pa.float64()),
            "seq": pa.array([r["seq"] for r in rows], pa.int64()),
        }
    )
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()


def exports_blueprint(reads: ReadPools, guard: Guard, store: ObjectStore | None) -> Blueprint:
    bp = Blueprint("exports", __name__, url_prefix="/api/v1")

    @bp.post("/devices/<device_id>/exports")
    @guard()
    async def export(device_id: str, principal: Principal) -> Response:
        if store is None:
            return problem(
                503, "Service Unavailable", kind="exports-unavailable",
                detail="exports need object storage (the archive.* settings)",
            )  # fmt: skip
        args = request.args
        kind = args.get("format", "csv")
        if kind not in ("csv", "parquet"):
            return bad_request("format: csv or parquet")
        metric = args.get("metric")
        if not metric:
            return bad_request("metric: required")
        try:
            start, end = _range(args)
        except _BadQuery as exc:
            return bad_request(str(exc))

        async def query(conn: Connection) -> list[Any] | str:
            key = await _device_key(conn, principal.tenant_id, device_id)
            if key is None:
                return "device"
            metric_id = await _metric_id(conn, metric)
            if metric_id is None:
                return []
            return await conn.fetch(
                """SELECT ts, value, seq FROM readings
                   WHERE device_key = $1 AND metric_id = $2 AND ts >= $3 AND ts < $4
                   ORDER BY ts LIMIT $5""",
                key,
                metric_id,
                start,
                end,
                MAX_EXPORT_ROWS + 1,
            )

        rows, target = await _on_replica(reads, query)
        if rows == "device":
            return _not_found(f"no device {device_id!r}")
        assert isinstance(rows, list)
        if len(rows) > MAX_EXPORT_ROWS:
            return bad_request(f"more than {MAX_EXPORT_ROWS} readings: narrow the range")
        data = _csv(rows) if kind == "csv" else _parquet(rows)
        key = (
            f"exports/{principal.tenant_id}/{device_id}/{metric}-"
            f"{start:%Y%m%dT%H%M%S}-{end:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}.{kind}"
        )
        await store.ensure_bucket()
        await store.put(key, data)
        url = await store.presigned_get(key, expires_s=_URL_EXPIRES_S)
        response = jsonify(
            url=url, key=key, format=kind, readings=len(rows), expires_in=_URL_EXPIRES_S
        )
        response.status_code = 201
        return _served(response, target)

    return bp
