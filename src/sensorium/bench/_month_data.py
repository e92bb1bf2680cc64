"""A month of minute data for many devices, written by binary COPY straight into the
tables the writer and the compactor would have filled, for `bench query --full`.

One reading a minute per device means each minute's rollup is that one reading, already
folded; the hour and day rollups are aggregated from the same arrays, as the compactor
would have added them. The rows are made with numpy as whole arrays in
PostgreSQL's binary COPY layout: the writer's own path (rollup deltas, then folding)
loads about 47k readings/s here, which for 2,000 devices (86.4M readings) would take
over half an hour; the default `bench query` (200 devices) still loads through it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import numpy as np

from sensorium.storage import Connection, connect

__all__ = ["day_values", "ensure_partitions", "load_month_by_copy"]

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

_TIER = np.dtype(
    [
        ("fields", ">i2"),
        ("device_len", ">i4"), ("device", ">i4"),
        ("metric_len", ">i4"), ("metric", ">i2"),
        ("bucket_len", ">i4"), ("bucket", ">i8"),
        ("count_len", ">i4"), ("count", ">i8"),
        ("sum_len", ">i4"), ("sum", ">f8"),
        ("min_len", ">i4"), ("min", ">f8"),
        ("max_len", ">i4"), ("max", ">f8"),
        ("last_ts_len", ">i4"), ("last_ts", ">i8"),
        ("last_value_len", ">i4"), ("last_value", ">f8"),
    ]
)  # fmt: skip
_TIER_COLUMNS = _MINUTE_COLUMNS[:-1]


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


def _tier(keys: list[int], metric_id: int, day_start_us: int, values: Any, width: int) -> bytearray:
    """The rollups of ``width`` minutes (60: hours, 1440: the day) of one day's values
    (minute-major), as the compactor would have added them, as binary COPY data."""
    per_bucket = values.reshape(1440 // width, width, len(keys))
    starts = (
        day_start_us - _PG_EPOCH_US + np.arange(1440 // width, dtype=np.int64) * width * _MINUTE_US
    )
    rows = np.empty(per_bucket.shape[0] * len(keys), dtype=_TIER)
    _fill(rows, {"fields": 9, "device_len": 4, "metric_len": 2, "bucket_len": 8,
                 "count_len": 8, "sum_len": 8, "min_len": 8, "max_len": 8,
                 "last_ts_len": 8, "last_value_len": 8})  # fmt: skip
    rows["device"] = np.tile(np.array(keys, dtype=np.int32), per_bucket.shape[0])
    rows["metric"], rows["count"] = metric_id, width
    rows["bucket"] = np.repeat(starts, len(keys))
    rows["last_ts"] = rows["bucket"] + (width - 1) * _MINUTE_US
    rows["sum"] = per_bucket.sum(axis=1).ravel()
    rows["min"] = per_bucket.min(axis=1).ravel()
    rows["max"] = per_bucket.max(axis=1).ravel()
    rows["last_value"] = per_bucket[:, -1, :].ravel()
    return bytearray(_HEADER) + rows.tobytes() + _TRAILER


def _encode(keys: list[int], metric_id: int, day_start_us: int, day: int) -> dict[str, bytearray]:
    """One UTC day of readings of ``keys`` with their folded minute rollups and their
    hour and day rollups, as binary COPY data for each table."""
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
    return {
        "readings": bytearray(_HEADER) + readings.tobytes() + _TRAILER,
        "rollup_1m": bytearray(_HEADER) + rollups.tobytes() + _TRAILER,
        "rollup_1h": _tier(keys, metric_id, day_start_us, values, 60),
        "rollup_1d": _tier(keys, metric_id, day_start_us, values, 1440),
    }


async def _write_day(raw: asyncpg.Connection, tables: dict[str, bytearray]) -> None:
    columns = {"readings": _READING_COLUMNS, "rollup_1m": _MINUTE_COLUMNS}
    async with raw.transaction():
        for table, data in tables.items():
            await raw.copy_to_table(
                table, source=data, columns=columns.get(table, _TIER_COLUMNS), format="binary"
            )


async def ensure_partitions(conn: Connection, start_us: int, end_us: int) -> None:
    """The daily partitions of ``readings`` from ``start_us`` to ``end_us``."""
    await conn.execute(
        "SELECT ensure_readings_partitions($1, $2)",
        dt.date(1970, 1, 1) + dt.timedelta(days=start_us // _DAY_US),
        dt.date(1970, 1, 1) + dt.timedelta(days=end_us // _DAY_US),
    )


async def load_month_by_copy(
    url: str, keys: list[int], metric_id: int, end_us: int, say: Any, *, days: int = 30
) -> int:
    """``days`` of one reading a minute for every device in ``keys``, ending at
    ``end_us`` (a whole UTC day), in one transaction per day."""
    start_us = end_us - days * _DAY_US
    conn = await connect(url, command_timeout=3600)
    rows = 0
    try:
        await ensure_partitions(conn, start_us, end_us)
        for day_start_us in range(start_us, end_us, _DAY_US):
            tables = _encode(keys, metric_id, day_start_us, day_start_us // _DAY_US)
            await conn.run(_write_day, tables)
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
    finally:
        await conn.close()
    return rows
