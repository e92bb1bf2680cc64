"""A month of minute data for many devices, written by binary COPY straight into the
tables the writer and the compactor would have filled, for `bench query --full`.

One reading a minute per device means each minute's rollup is that one reading, already
folded; the hour and day rollups are then aggregated in SQL from the minute rows, as
the compactor would have added them. The rows are made with numpy as whole arrays in
PostgreSQL's binary COPY layout: the writer's own path (rollup deltas, then folding)
loads about 47k readings/s here, which for 2,000 devices (86.4M readings) would take
over half an hour; the default `bench query` (200 devices) still loads through it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import numpy as np

from sensorium.storage import connect

__all__ = ["load_month_by_copy"]

_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_TRAILER = b"\xff\xff"
_PG_EPOCH_US = 946_684_800_000_000
_MINUTE_US = 60_000_000
_DAY_US = 86_400_000_000

# Each field is (length, value); a NULL is length -1 with no value.
_READING = np.dtype(
    [
        ("fields", ">i2"),
        ("ts_len", ">i4"), ("ts", ">i8"),
        ("value_len", ">i4"), ("value", ">f8"),
        ("device_len", ">i4"), ("device", ">i4"),
        ("metric_len", ">i4"), ("metric", ">i2"),
        ("seq_len", ">i4"),
    ]
)  # fmt: skip
_READING_COLUMNS = ("ts", "value", "device_key", "metric_id", "seq")
_MINUTE = np.dtype(
    [
        ("fields", ">i2"),
        ("device_len", ">i4"), ("device", ">i4"),
        ("metric_len", ">i4"), ("metric", ">i2"),
        ("bucket_len", ">i4"), ("bucket", ">i8"),
        ("count_len", ">i4"), ("count", ">i4"),
        ("sum_len", ">i4"), ("sum", ">f8"),
        ("min_len", ">i4"), ("min", ">f8"),
        ("max_len", ">i4"), ("max", ">f8"),
        ("last_ts_len", ">i4"), ("last_ts", ">i8"),
        ("last_value_len", ">i4"), ("last_value", ">f8"),
        ("merged_len", ">i4"), ("merged", "u1"),
    ]
)  # fmt: skip
_MINUTE_COLUMNS = (
    "device_key", "metric_id", "bucket", "count", "sum", "min", "max", "last_ts",
    "last_value", "merged",
)  # fmt: skip

_TIER_FROM = """
INSERT INTO rollup_{tier}
SELECT device_key, metric_id, date_bin(interval '{width}', bucket, timestamptz 'epoch'),
       sum(count), sum(sum), min(min), max(max), max(last_ts),
       (array_agg(last_value ORDER BY last_ts DESC))[1]
FROM {source} WHERE bucket >= $1 AND bucket < $1 + interval '1 day' GROUP BY 1, 2, 3
"""


def day_values(keys: list[int], day: int) -> Any:
    """A day of minute values, minute by minute and within a minute device by device
    (the order the engine writes them in): the same numbers on every build."""
    per_device = np.stack(
        [np.random.default_rng([key, day]).random(1440) for key in keys], axis=1
    )  # shape (minutes, devices)
    return np.round(20 + 5 * per_device, 3).ravel()


def _fill(array: Any, lengths: dict[str, int]) -> None:
    for name, length in lengths.items():
        array[name] = length


def _encode(
    keys: list[int], metric_id: int, day_start_us: int, day: int
) -> tuple[bytearray, bytearray]:
    """One UTC day of readings of ``keys`` and their folded minute rollups, as binary
    COPY data."""
    total = len(keys) * 1440
    minutes = day_start_us - _PG_EPOCH_US + np.arange(1440, dtype=np.int64) * _MINUTE_US
    stamps = np.repeat(minutes, len(keys))
    devices = np.tile(np.array(keys, dtype=np.int32), 1440)
    values = day_values(keys, day)
    readings = np.empty(total, dtype=_READING)
    _fill(readings, {"fields": 5, "ts_len": 8, "value_len": 8, "device_len": 4,
                     "metric_len": 2, "seq_len": -1})  # fmt: skip
    readings["ts"], readings["value"] = stamps, values
    readings["device"], readings["metric"] = devices, metric_id
    rollups = np.empty(total, dtype=_MINUTE)
    _fill(rollups, {"fields": 10, "device_len": 4, "metric_len": 2, "bucket_len": 8,
                    "count_len": 4, "sum_len": 8, "min_len": 8, "max_len": 8,
                    "last_ts_len": 8, "last_value_len": 8, "merged_len": 1})  # fmt: skip
    rollups["device"], rollups["metric"] = devices, metric_id
    rollups["bucket"], rollups["last_ts"] = stamps, stamps
    rollups["count"], rollups["merged"] = 1, 1
    for name in ("sum", "min", "max", "last_value"):
        rollups[name] = values
    # bytearrays: asyncpg would take bytes for a file name
    return (
        bytearray(_HEADER) + readings.tobytes() + _TRAILER,
        bytearray(_HEADER) + rollups.tobytes() + _TRAILER,
    )


async def _write_day(
    raw: asyncpg.Connection, day_start_us: int, readings: bytearray, rollups: bytearray
) -> None:
    day = dt.datetime.fromtimestamp(day_start_us / 1e6, dt.UTC)
    async with raw.transaction():
        await raw.copy_to_table(
            "readings", source=readings, columns=_READING_COLUMNS, format="binary"
        )
        await raw.copy_to_table(
            "rollup_1m", source=rollups, columns=_MINUTE_COLUMNS, format="binary"
        )
        for tier, width, source in (("1h", "1 hour", "rollup_1m"), ("1d", "1 day", "rollup_1h")):
            await raw.execute(_TIER_FROM.format(tier=tier, width=width, source=source), day)


async def load_month_by_copy(
    url: str, keys: list[int], metric_id: int, end_us: int, say: Any, *, days: int = 30
) -> int:
    """``days`` of one reading a minute for every device in ``keys``, ending at
    ``end_us`` (a whole UTC day), in one transaction per day."""
    start_us = end_us - days * _DAY_US
    conn = await connect(url, command_timeout=3600)
    rows = 0
    try:
        await conn.execute(
            "SELECT ensure_readings_partitions($1, $2)",
            dt.date(1970, 1, 1) + dt.timedelta(days=start_us // _DAY_US),
            dt.date(1970, 1, 1) + dt.timedelta(days=end_us // _DAY_US),
        )
        for day_start_us in range(start_us, end_us, _DAY_US):
            readings, rollups = _encode(keys, metric_id, day_start_us, day_start_us // _DAY_US)
            await conn.run(_write_day, day_start_us, readings, rollups)
            rows += len(keys) * 1440
            say(f"copied {rows:,} readings and their rollups")
        last = dt.datetime.fromtimestamp((end_us - _MINUTE_US) / 1e6, dt.UTC)
        await conn.execute(
            """INSERT INTO device_ingest (device_key, hwm_ts, last_seen, readings)
               SELECT unnest($1::integer[]), $2, $2, $3""",
            keys,
            last,
            days * 1440,
        )
        await conn.execute("ANALYZE readings, rollup_1m, rollup_1h, rollup_1d")
    finally:
        await conn.close()
    return rows
