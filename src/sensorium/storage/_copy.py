"""The writer's transaction: the readings, and one `device_deltas` row per device (its
minute-rollup deltas and high-water mark), by binary COPY, with dead letters and the
batch id, committed together. Appends only: no row another batch could lock.

A batch takes rows as they come (a list extend per request: the device actors' requests
are a few rows each) and encodes them once, when it is sealed, column by column with
numpy: the readings straight into PostgreSQL's binary COPY layout; the minute rollups
and the per-device high-water marks by one sort and segment reductions, then packed
into each device's row of arrays. No datetime objects, no per-row Python: that is what
lets one Python process keep up with what the server takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from operator import itemgetter
from typing import Any

import asyncpg
import numpy as np
import numpy.typing as npt

__all__ = [
    "DeadLetterRow",
    "ReadingBatch",
    "batch_committed",
    "write_batch",
]

_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_TRAILER = b"\xff\xff"
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in µs since 1970-01-01
_MINUTE_US = 60_000_000
_DAY_US = 86_400_000_000


def _layout(*fields: tuple[str, str, int | None]) -> tuple[np.dtype[np.void], dict[str, int]]:
    """A binary COPY row as a packed big-endian record: the field count, then per field
    its length and value. Returns the dtype and the constant (count, length) cells."""
    names: list[tuple[str, str]] = [("n", ">i2")]
    constants = {"n": len(fields)}
    for name, kind, length in fields:
        if length is not None:
            names.append((f"{name}_len", ">i4"))
            constants[f"{name}_len"] = length
        if kind:
            names.append((name, kind))
    return np.dtype(names), constants


def _records(
    layout: np.dtype[np.void], constants: dict[str, int], columns: dict[str, npt.NDArray[Any]]
) -> npt.NDArray[np.void]:
    """Rows of ``layout``, their constant cells and ``columns`` filled in."""
    size = len(next(iter(columns.values())))
    records = np.empty(size, dtype=layout)
    for name, value in constants.items():
        records[name] = value
    for name, column in columns.items():
        records[name] = column
    return records


def _encode(
    layout: np.dtype[np.void], constants: dict[str, int], columns: dict[str, npt.NDArray[Any]]
) -> bytes:
    return _records(layout, constants, columns).tobytes()


_COLUMNS = ("ts", "value", "device_key", "metric_id", "seq")
# ts, value, device_key, metric_id, seq: with a seq, and with a NULL one (length -1)
_READING, _READING_CONST = _layout(
    ("ts", ">i8", 8), ("value", ">f8", 8), ("device_key", ">i4", 4), ("metric_id", ">i2", 2),
    ("seq", ">i8", 8),
)  # fmt: skip
_READING_NULL_SEQ, _READING_NULL_SEQ_CONST = _layout(
    ("ts", ">i8", 8), ("value", ">f8", 8), ("device_key", ">i4", 4), ("metric_id", ">i2", 2),
    ("seq", "", -1),
)  # fmt: skip
# A device's row of device_deltas (migration 0013): scalars, then one array per rollup
# column with an element per (metric, minute) the batch touched. written_at is the
# server's (its default, the transaction time).
_DELTA_SCALARS = (("device_key", ">i4", 4), ("hwm_ts", ">i8", 8), ("readings", ">i4", 4))
# name, element type OID (pg_type), element layout
_DELTA_ARRAYS = (
    ("metric_id", 21, ">i2"),  # int2
    ("bucket", 1184, ">i8"),  # timestamptz
    ("count", 23, ">i4"),  # int4
    ("sum", 701, ">f8"),  # float8
    ("min", 701, ">f8"),
    ("max", 701, ">f8"),
    ("last_ts", 1184, ">i8"),
    ("last_value", 701, ">f8"),
)
_DELTA_COLUMNS = tuple(name for name, _, _ in _DELTA_SCALARS + _DELTA_ARRAYS)


@lru_cache(maxsize=256)
def _delta_row(elements: int) -> tuple[np.dtype[np.void], dict[str, int]]:
    """The binary COPY layout of a device_deltas row with ``elements`` array elements
    (rows are grouped by that count, so each group is one fixed-size record array):
    the scalars as `_layout` lays them out; per array, its field length, the array
    header (one dimension, no NULLs, the element type, ``elements`` long, from 1), then
    (length, value) per element. Returns the dtype and the constant cells."""
    scalars, constants = _layout(*_DELTA_SCALARS)
    fields: list[Any] = list(scalars.descr)
    constants["n"] = len(_DELTA_COLUMNS)  # the arrays are fields too
    header = ("len", "ndim", "flags", "oid", "dim", "lbound")
    for name, oid, kind in _DELTA_ARRAYS:
        size = np.dtype(kind).itemsize
        cells = (20 + elements * (4 + size), 1, 0, oid, elements, 1)
        for part, value in zip(header, cells, strict=True):
            fields.append((f"{name}_{part}", ">i4"))
            constants[f"{name}_{part}"] = value
        fields.append((name, [("len", ">i4"), ("value", kind)], (elements,)))
    return np.dtype(fields), constants


def _encode_delta_rows(
    scalars: dict[str, npt.NDArray[Any]],
    elements: dict[str, npt.NDArray[Any]],
    first: npt.NDArray[np.intp],
    sizes: npt.NDArray[np.intp],
) -> bytes:
    """Device rows as binary COPY data: ``scalars`` hold one value per device,
    ``elements`` one per (device, metric, minute), device by device; a device's elements
    start at ``first`` and number ``sizes``."""
    parts = []
    for size in np.unique(sizes).tolist():
        devices = np.flatnonzero(sizes == size)
        at = first[devices][:, None] + np.arange(size)
        records = _records(
            *_delta_row(size), {name: column[devices] for name, column in scalars.items()}
        )
        for name, _, kind in _DELTA_ARRAYS:
            cells = records[name]
            cells["len"] = np.dtype(kind).itemsize
            cells["value"] = elements[name][at]
        parts.append(records.tobytes())
    return b"".join(parts)


Int64s = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    source: str
    tenant_id: int | None
    device_id: str | None
    topic: str | None
    reason: str
    detail: str
    payload: bytes
    payload_size: int


@dataclass(frozen=True, slots=True)
class _Sealed:
    readings: bytearray  # the readings as binary COPY data
    deltas: bytearray  # one device_deltas row per device, as binary COPY data
    days: set[int]  # UTC days (µs // day) touched


@dataclass(slots=True)
class ReadingBatch:
    """Readings for COPY, with what goes beside them in the transaction."""

    batch_id: int
    started: float = 0.0  # when the writer began filling it (trio clock)
    count: int = 0
    # (device_key, metric_id, ts_us, value, seq), in arrival order
    rows: list[tuple[int, int, int, float, int | None]] = field(default_factory=list)
    dead_letters: list[DeadLetterRow] = field(default_factory=list)
    # What the transaction sends, made by `seal` once no row is added any more.
    sealed: _Sealed | None = None

    def add_rows(self, rows: Sequence[tuple[int, int, int, float, int | None]]) -> None:
        """Take rows ``(device_key, metric_id, ts_us, value, seq)``; they are encoded when
        the batch is sealed."""
        assert self.sealed is None, "rows added to a sealed batch"
        self.rows.extend(rows)
        self.count += len(rows)

    @property
    def days(self) -> set[int]:
        """The UTC days (µs // day) the readings fall on; sealing computes them."""
        return self.seal().days

    def seal(self) -> _Sealed:
        """Encode everything the transaction sends. The writer seals a batch while the
        previous one commits, so that this Python work does not leave the server idle
        inside a transaction."""
        if self.sealed is None:
            self.sealed = _seal(self.rows)
            self.rows = []  # encoded: let the tuples go
        return self.sealed

    @property
    def data(self) -> bytearray:
        """The readings as binary COPY data."""
        return self.seal().readings


_ROW_TYPES = np.dtype(
    [("key", np.int64), ("metric", np.int64), ("ts", np.int64), ("value", np.float64),
     ("seq", np.int64)]
)  # fmt: skip


def _columns_of(
    rows: list[tuple[int, int, int, float, int | None]],
) -> tuple[Int64s, Int64s, Int64s, Floats, Int64s, npt.NDArray[np.bool_] | None]:
    """The rows as columns, and which rows have no seq (None: every row has one)."""
    size = len(rows)
    try:
        table = np.fromiter(rows, dtype=_ROW_TYPES, count=size)
        return table["key"], table["metric"], table["ts"], table["value"], table["seq"], None
    except TypeError:  # some seq is None (a payload without one)
        pass
    seqs = [row[4] for row in rows]
    null_seq = np.fromiter((seq is None for seq in seqs), dtype=bool, count=size)
    return (
        np.fromiter(map(itemgetter(0), rows), dtype=np.int64, count=size),
        np.fromiter(map(itemgetter(1), rows), dtype=np.int64, count=size),
        np.fromiter(map(itemgetter(2), rows), dtype=np.int64, count=size),
        np.fromiter(map(itemgetter(3), rows), dtype=np.float64, count=size),
        np.fromiter((0 if seq is None else seq for seq in seqs), dtype=np.int64, count=size),
        null_seq,
    )


def _seal(rows: list[tuple[int, int, int, float, int | None]]) -> _Sealed:
    if not rows:
        empty = bytearray(_HEADER + _TRAILER)
        return _Sealed(empty, bytearray(empty), set())
    keys, metrics, stamps, values, seqs, null_seq = _columns_of(rows)
    readings = bytearray(_HEADER)
    reading = {"ts": stamps - _PG_EPOCH_US, "value": values, "device_key": keys,
               "metric_id": metrics}  # fmt: skip
    if null_seq is None:
        readings += _encode(_READING, _READING_CONST, reading | {"seq": seqs})
    else:
        with_seq = ~null_seq
        readings += _encode(
            _READING, _READING_CONST,
            {name: column[with_seq] for name, column in (reading | {"seq": seqs}).items()},
        )  # fmt: skip
        readings += _encode(
            _READING_NULL_SEQ, _READING_NULL_SEQ_CONST,
            {name: column[null_seq] for name, column in reading.items()},
        )  # fmt: skip
    readings += _TRAILER

    # One stable sort by (device, metric, minute, time): every rollup group and every
    # device is then a run, and within a run the last row is the latest reading (of
    # equal times, the last to arrive, as the rows came in).
    minutes = stamps - stamps % _MINUTE_US
    order = np.lexsort((stamps, minutes, metrics, keys))
    keys, metrics, minutes = keys[order], metrics[order], minutes[order]
    stamps, values = stamps[order], values[order]
    size = len(order)
    new_device = np.empty(size, dtype=bool)
    new_device[0] = True
    np.not_equal(keys[1:], keys[:-1], out=new_device[1:])
    new_group = new_device.copy()
    new_group[1:] |= (metrics[1:] != metrics[:-1]) | (minutes[1:] != minutes[:-1])
    starts = np.flatnonzero(new_group)
    ends = np.append(starts[1:], size) - 1
    device_starts = np.flatnonzero(new_device)
    # Each device's first group, and how many groups (array elements) it has.
    first_group = np.flatnonzero(new_device[starts])
    deltas = bytearray(_HEADER)
    deltas += _encode_delta_rows(
        {"device_key": keys[device_starts],
         "hwm_ts": np.maximum.reduceat(stamps, device_starts) - _PG_EPOCH_US,
         "readings": np.diff(np.append(device_starts, size))},
        {"metric_id": metrics[starts], "bucket": minutes[starts] - _PG_EPOCH_US,
         "count": np.diff(np.append(starts, size)), "sum": np.add.reduceat(values, starts),
         "min": np.minimum.reduceat(values, starts), "max": np.maximum.reduceat(values, starts),
         "last_ts": stamps[ends] - _PG_EPOCH_US, "last_value": values[ends]},
        first_group,
        np.diff(np.append(first_group, len(starts))),
    )  # fmt: skip
    deltas += _TRAILER
    return _Sealed(
        readings=readings,
        deltas=deltas,
        days={int(day) for day in np.unique(stamps // _DAY_US)},
    )


_INSERT_DEAD = """
INSERT INTO dead_letters (source, tenant_id, device_id, topic, reason, detail, payload,
                          payload_size)
SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::bytea[], $8::int4[])
"""


def _columns(rows: Sequence[Sequence[object]], width: int) -> list[list[object]]:
    return [[row[i] for row in rows] for i in range(width)]


async def write_batch(conn: asyncpg.Connection, batch: ReadingBatch, *, timeout: float) -> None:
    """Write ``batch`` in one transaction (an asyncio coroutine: cross the bridge once).

    Every statement appends: two batches in flight never wait for each other's locks.
    (Until migration 0013 each batch upserted its devices' rows of device_ingest; a
    device in both batches made the second wait for the first one's COMMIT.)"""
    sealed = batch.seal()
    async with conn.transaction():
        if batch.count:
            # A bytearray goes to the server as it is. (A file-like source would be read
            # in 512 KiB chunks through a thread-pool hop each, and plain bytes would be
            # taken for a file name.)
            await conn.copy_to_table(
                "readings",
                source=sealed.readings,
                columns=_COLUMNS,
                format="binary",
                timeout=timeout,
            )
            await conn.copy_to_table(
                "device_deltas",
                source=sealed.deltas,
                columns=_DELTA_COLUMNS,
                format="binary",
                timeout=timeout,
            )
        if batch.dead_letters:
            rows = [
                (
                    d.source,
                    d.tenant_id,
                    d.device_id,
                    d.topic,
                    d.reason,
                    d.detail,
                    d.payload,
                    d.payload_size,
                )
                for d in batch.dead_letters
            ]
            await conn.execute(_INSERT_DEAD, *_columns(rows, 8), timeout=timeout)
        await conn.execute(
            "INSERT INTO ingest_batches (id, readings) VALUES ($1, $2)",
            batch.batch_id,
            batch.count,
            timeout=timeout,
        )


async def batch_committed(conn: asyncpg.Connection, batch_id: int, *, timeout: float) -> bool:
    """Whether a batch whose COMMIT we lost sight of did land."""
    found = await conn.fetchval(
        "SELECT 1 FROM ingest_batches WHERE id = $1", batch_id, timeout=timeout
    )
    return found is not None
