"""Which tables answer an aggregate over a time range, and the SQL that asks them.

A range is cut into pieces, each read from the coarsest source whose buckets lie
wholly inside the range and inside one answer bucket: day rollups for the whole UTC
days in it (when the answer's buckets are whole days), hour rollups for the whole hours
left at either end, minute rollups for the whole minutes left, raw readings for the
seconds at the edges. A 30-day, 1-hour-bucket query for a range ending now reads 720
hour rows, up to 59 minute rows and a minute of raw readings, instead of 43,200 rows.

Every source yields partial aggregates (count, sum, min, max, last_ts, last_value);
one GROUP BY combines them. `rollup_1m` and the hour and day tiers hold only what the
compactor has folded (migrations 0006, 0012): each rollup piece adds the minute deltas
not folded yet (`rollup_1m_delta`), so the answer is exact at every moment.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

__all__ = ["AGGREGATES", "Piece", "fleet_sql", "plan_pieces", "series_sql"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# Partial aggregates combined: the result of each agg over the union of the pieces.
AGGREGATES = {
    "avg": "sum(sum) / sum(count)::float8",
    "min": "min(min)",
    "max": "max(max)",
    "sum": "sum(sum)",
    "count": "sum(count)",
    "last": "(array_agg(last_value ORDER BY last_ts DESC))[1]",
}

_COLUMNS = "device_key AS k, bucket AS t, count, sum, min, max, last_ts, last_value"
_RAW_COLUMNS = (
    "device_key AS k, ts AS t, 1 AS count, value AS sum, value AS min, value AS max, "
    "ts AS last_ts, value AS last_value"
)


@dataclass(frozen=True, slots=True)
class _Tier:
    table: str
    width_s: int


_TIERS = (_Tier("rollup_1d", 86_400), _Tier("rollup_1h", 3_600), _Tier("rollup_1m", 60))


@dataclass(frozen=True, slots=True)
class Piece:
    source: str  # rollup_1d, rollup_1h, rollup_1m or raw
    start: dt.datetime
    end: dt.datetime


def _us(moment: dt.datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _at(us: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=us)


def plan_pieces(
    start: dt.datetime,
    end: dt.datetime,
    bucket_s: int | None,
    *,
    _tiers: tuple[_Tier, ...] = _TIERS,
) -> list[Piece]:
    """Cut [start, end) into pieces in time order. ``bucket_s`` is the width of the
    answer's epoch-aligned buckets (None: one answer for the whole range); a tier is
    used only when its width divides it, so no tier bucket straddles two answers."""
    if start >= end:
        return []
    for index, tier in enumerate(_tiers):
        if bucket_s is not None and bucket_s % tier.width_s:
            continue
        width_us = tier.width_s * 1_000_000
        first = -(-_us(start) // width_us) * width_us
        last = _us(end) // width_us * width_us
        if first < last:
            finer = _tiers[index + 1 :]
            return [
                *plan_pieces(start, _at(first), bucket_s, _tiers=finer),
                Piece(tier.table, _at(first), _at(last)),
                *plan_pieces(_at(last), end, bucket_s, _tiers=finer),
            ]
    return [Piece("raw", start, end)]


def _union(pieces: list[Piece], where: str, first_param: int) -> tuple[str, list[dt.datetime]]:
    """The pieces as one UNION ALL of partial aggregates; ``where`` picks the devices
    and the metric; bounds are parameters from ``first_param``."""
    selects = []
    bounds: list[dt.datetime] = []
    for piece in pieces:
        lo, hi = f"${first_param + len(bounds)}", f"${first_param + len(bounds) + 1}"
        bounds += [piece.start, piece.end]
        if piece.source == "raw":
            selects.append(
                f"SELECT {_RAW_COLUMNS} FROM readings WHERE {where} AND ts >= {lo} AND ts < {hi}"
            )
            continue
        selects.append(
            f"SELECT {_COLUMNS} FROM {piece.source} "
            f"WHERE {where} AND bucket >= {lo} AND bucket < {hi}"
        )
        # What the compactor has not folded yet: not in rollup_1m, nor in the tiers.
        selects.append(
            f"SELECT {_COLUMNS} FROM rollup_1m_delta "
            f"WHERE {where} AND bucket >= {lo} AND bucket < {hi}"
        )
    return "\n        UNION ALL ".join(selects), bounds


def series_sql(pieces: list[Piece], agg: str) -> tuple[str, list[dt.datetime]]:
    """One device's buckets, in one round trip: parameters $1 tenant id, $2 device id,
    $3 metric name, $4 bucket width in seconds, then the returned bounds. One row:
    ``found`` (is there such a device in the tenant) and ``points``, the JSON text of
    ``[{"ts", "value"}]`` in time order (made by the server: a month of hourly points
    costs Python's JSON encoder more than the query)."""
    union, bounds = _union(
        pieces,
        "device_key = (SELECT key FROM devices WHERE tenant_id = $1 AND id = $2) "
        "AND metric_id = (SELECT id FROM metrics WHERE name = $3)",
        5,
    )
    sql = f"""
SELECT EXISTS (SELECT FROM devices WHERE tenant_id = $1 AND id = $2) AS found,
       coalesce(json_agg(json_build_object('ts', b, 'value', v) ORDER BY b), '[]') AS points
FROM (
    SELECT date_bin(make_interval(secs => $4), t, timestamptz 'epoch') AS b,
           {AGGREGATES[agg]} AS v
    FROM (
        {union}
    ) p
    GROUP BY 1
) s"""
    return sql, bounds


def fleet_sql(pieces: list[Piece], agg: str) -> tuple[str, list[dt.datetime]]:
    """A tenant's top devices over the whole range: parameters $1 tenant id, $2 metric
    id, $3 how many, then the returned bounds. Rows (id, v), highest first."""
    union, bounds = _union(
        pieces,
        "device_key IN (SELECT key FROM devices WHERE tenant_id = $1) AND metric_id = $2",
        4,
    )
    sql = f"""
SELECT d.id, s.v FROM (
    SELECT k, {AGGREGATES[agg]} AS v FROM (
        {union}
    ) p GROUP BY k
) s JOIN devices d ON d.key = s.k
ORDER BY s.v DESC NULLS LAST, d.id LIMIT $3"""
    return sql, bounds
