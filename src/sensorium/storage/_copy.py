"""The writer's transaction: readings and minute-rollup deltas by binary COPY,
high-water marks, dead letters and the batch id, committed together.

Rows are encoded straight into PostgreSQL's binary COPY format with one `struct.pack`
each (no datetime objects, no per-value codec calls), which is what lets one Python
process keep up with what the server can take.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import asyncpg

__all__ = [
    "DeadLetterRow",
    "ReadingBatch",
    "batch_committed",
    "write_batch",
]

_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_TRAILER = b"\xff\xff"
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in µs since 1970-01-01
# (field count) then, per field, (length, value): ts, value, device_key, metric_id, seq
_ROW_WITH_SEQ = struct.Struct(">hiqidiiihiq")
_ROW_NO_SEQ = struct.Struct(">hiqidiiihi")
_COLUMNS = ("ts", "value", "device_key", "metric_id", "seq")
# A minute-rollup delta: device_key, metric_id, bucket, count, sum, min, max, last_ts,
# last_value
_ROLLUP_ROW = struct.Struct(">hiiihiqiiidididiqid")
_ROLLUP_COLUMNS = (
    "device_key",
    "metric_id",
    "bucket",
    "count",
    "sum",
    "min",
    "max",
    "last_ts",
    "last_value",
)
_MINUTE_US = 60_000_000


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
    rollups: bytearray
    device_keys: list[int]
    device_hwms: list[int]
    device_counts: list[int]


@dataclass(slots=True)
class ReadingBatch:
    """Readings encoded for COPY, with what goes beside them in the transaction."""

    batch_id: int
    started: float = 0.0  # when the writer began filling it (trio clock)
    data: bytearray = field(default_factory=lambda: bytearray(_HEADER))
    count: int = 0
    # device_key -> [hwm_ts_us, readings]
    devices: dict[int, list[int]] = field(default_factory=dict)
    # (device_key, metric_id, minute_us) -> [count, sum, min, max, last_ts_us, last_value]
    rollups: dict[tuple[int, int, int], list[float]] = field(default_factory=dict)
    days: set[int] = field(default_factory=set)  # UTC days (µs // day) touched
    dead_letters: list[DeadLetterRow] = field(default_factory=list)
    # What the transaction sends, made by `seal` once no row is added any more.
    sealed: _Sealed | None = None

    def seal(self) -> _Sealed:
        """Encode what goes beside the readings (rollup deltas, high-water marks) and
        close the COPY data. The writer seals a batch while the previous one commits,
        so that this Python work does not leave the server idle inside a transaction."""
        if self.sealed is None:
            keys = sorted(self.devices)  # upserts touch index and heap pages in order
            self.data += _TRAILER
            self.sealed = _Sealed(
                rollups=rollup_deltas(self),
                device_keys=keys,
                device_hwms=[self.devices[k][0] for k in keys],
                device_counts=[self.devices[k][1] for k in keys],
            )
        return self.sealed

    def add_rows(self, rows: Iterable[tuple[int, int, int, float, int | None]]) -> None:
        """Encode rows ``(device_key, metric_id, ts_us, value, seq)`` and fold them into
        the high-water marks and minute rollups. The hot loop of the writer: names are
        bound locally, and a run of rows of one device (a device actor's request, a
        message's metrics) shares one high-water-mark update and one day lookup."""
        assert self.sealed is None, "rows added to a sealed batch"
        data = self.data
        rollups = self.rollups
        pack_seq = _ROW_WITH_SEQ.pack
        pack_no_seq = _ROW_NO_SEQ.pack
        run_key = -1  # the device of the current run of rows
        run_hwm = 0
        run_count = 0
        last_ts = None
        for device_key, metric_id, ts_us, value, seq in rows:
            if seq is None:
                data += pack_no_seq(
                    5, 8, ts_us - _PG_EPOCH_US, 8, value, 4, device_key, 2, metric_id, -1
                )
            else:
                data += pack_seq(
                    5, 8, ts_us - _PG_EPOCH_US, 8, value, 4, device_key, 2, metric_id, 8, seq
                )
            if device_key != run_key:
                if run_count:
                    self._note_device(run_key, run_hwm, run_count)
                run_key, run_hwm, run_count = device_key, ts_us, 0
            elif ts_us > run_hwm:
                run_hwm = ts_us
            run_count += 1
            key = (device_key, metric_id, ts_us - ts_us % _MINUTE_US)
            rollup = rollups.get(key)
            if rollup is None:
                rollups[key] = [1, value, value, value, ts_us, value]
            else:
                rollup[0] += 1
                rollup[1] += value
                if value < rollup[2]:
                    rollup[2] = value
                if value > rollup[3]:
                    rollup[3] = value
                if ts_us >= rollup[4]:
                    rollup[4] = ts_us
                    rollup[5] = value
            if ts_us != last_ts:
                last_ts = ts_us
                self.days.add(ts_us // 86_400_000_000)
        if run_count:
            self._note_device(run_key, run_hwm, run_count)

    def _note_device(self, device_key: int, hwm_ts_us: int, readings: int) -> None:
        self.count += readings
        device = self.devices.get(device_key)
        if device is None:
            self.devices[device_key] = [hwm_ts_us, readings]
        else:
            if hwm_ts_us > device[0]:
                device[0] = hwm_ts_us
            device[1] += readings


_UPSERT_INGEST = """
INSERT INTO device_ingest AS d (device_key, hwm_ts, last_seen, readings)
SELECT k, timestamptz 'epoch' + h * interval '1 microsecond', now(), n
FROM unnest($1::int4[], $2::int8[], $3::int8[]) AS u(k, h, n)
ON CONFLICT (device_key) DO UPDATE SET
    hwm_ts = greatest(d.hwm_ts, excluded.hwm_ts),
    last_seen = excluded.last_seen,
    readings = d.readings + excluded.readings
"""

_INSERT_DEAD = """
INSERT INTO dead_letters (source, tenant_id, device_id, topic, reason, detail, payload,
                          payload_size)
SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::bytea[], $8::int4[])
"""


def rollup_deltas(batch: ReadingBatch) -> bytearray:
    """The batch's minute rollups as binary COPY data: one delta row per (device,
    metric, minute) it touched."""
    data = bytearray(_HEADER)
    pack = _ROLLUP_ROW.pack
    for (device_key, metric_id, minute_us), (
        count,
        total,
        low,
        high,
        last_ts,
        last,
    ) in batch.rollups.items():
        data += pack(
            9,
            4,
            device_key,
            2,
            metric_id,
            8,
            minute_us - _PG_EPOCH_US,
            4,
            int(count),
            8,
            total,
            8,
            low,
            8,
            high,
            8,
            int(last_ts) - _PG_EPOCH_US,
            8,
            last,
        )
    data += _TRAILER
    return data


def _columns(rows: Sequence[Sequence[object]], width: int) -> list[list[object]]:
    return [[row[i] for row in rows] for i in range(width)]


async def write_batch(conn: asyncpg.Connection, batch: ReadingBatch, *, timeout: float) -> None:
    """Write ``batch`` in one transaction (an asyncio coroutine: cross the bridge once)."""
    sealed = batch.seal()
    async with conn.transaction():
        if batch.count:
            # A bytearray goes to the server as it is. (A file-like source would be read
            # in 512 KiB chunks through a thread-pool hop each, and plain bytes would be
            # taken for a file name.)
            await conn.copy_to_table(
                "readings", source=batch.data, columns=_COLUMNS, format="binary", timeout=timeout
            )
            await conn.execute(
                _UPSERT_INGEST,
                sealed.device_keys,
                sealed.device_hwms,
                sealed.device_counts,
                timeout=timeout,
            )
            await conn.copy_to_table(
                "rollup_1m",
                source=sealed.rollups,
                columns=_ROLLUP_COLUMNS,
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
