"""Retention: each UTC day's readings partition past the window goes to object storage
as Parquet, one object per tenant (``yyyy/mm/dd/<tenant id>.parquet``) and a manifest
(``yyyy/mm/dd/manifest.json``: rows, value sums and SHA-256 of every object). Every
object is read back and checked against the database's own count and sum before the
partition is touched; then the partition is detached concurrently (ingest goes on),
counted once more (a late reading that landed meanwhile keeps it: it is attached back,
nothing dropped), and only then dropped. `restore_day` loads a day back and checks it
the same way.

A day is streamed, never held in memory: each tenant's readings go from a server-side
cursor into a Parquet file on local disk, row group by row group, which is uploaded in
parts; reading back downloads to a file and checks it batch by batch.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import trio

from sensorium.archive._store import ObjectStore
from sensorium.logs import get_logger
from sensorium.storage import Pool

__all__ = [
    "ArchiveError",
    "ArchiveStatistics",
    "DayResult",
    "archivable_days",
    "archive_day",
    "archive_due_days",
    "keep_archiving",
    "restore_day",
]

log = get_logger(__name__)

_SCHEMA = pa.schema(
    [
        ("device_key", pa.int32()),
        ("device_id", pa.string()),
        ("metric_id", pa.int16()),
        ("metric", pa.string()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("value", pa.float64()),
        ("seq", pa.int64()),
    ]
)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class ArchiveError(Exception):
    """A day was not archived (or restored); its data stays where it was."""


@dataclass(slots=True)
class ArchiveStatistics:
    """What the engine's archive job did since it started (for metrics)."""

    runs: int = 0
    days_archived: int = 0
    days_failed: int = 0
    readings_archived: int = 0
    last_success_unix: float = 0.0  # when a run last ended without a failed day


@dataclass(frozen=True, slots=True)
class DayResult:
    day: dt.date
    readings: int
    objects: int
    manifest_key: str


def _partition(day: dt.date) -> str:
    return f"readings_{day:%Y%m%d}"


def _prefix(day: dt.date) -> str:
    return f"{day:%Y/%m/%d}"


def _same_sum(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


async def archivable_days(pool: Pool, *, retention_days: int, today: dt.date) -> list[dt.date]:
    """Days with a readings partition that ended before the retention window."""
    rows = await pool.fetch(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'readings'::regclass ORDER BY c.relname"""
    )
    first_kept = today - dt.timedelta(days=retention_days)
    days = [dt.datetime.strptime(r["relname"][9:], "%Y%m%d").date() for r in rows]
    return [day for day in days if day < first_kept]


_CHUNK = 100_000  # rows per Parquet row group (and per COPY when restoring)
_TENANT_ROWS = """
SELECT r.device_key, d.id AS device_id, r.metric_id, m.name AS metric, r.ts, r.value, r.seq
FROM {partition} r LEFT JOIN devices d ON d.key = r.device_key
LEFT JOIN metrics m ON m.id = r.metric_id
WHERE coalesce(d.tenant_id, 0) = $1
"""
# Per tenant: readings and their sum, from the database itself (the export is checked
# against these, not against its own counting).
_TENANT_TOTALS = """
SELECT coalesce(d.tenant_id, 0) AS tenant_id, sum(x.n)::int8 AS n, sum(x.total) AS total
FROM (SELECT device_key, count(*) AS n, sum(value) AS total FROM {partition}
      GROUP BY device_key) x
LEFT JOIN devices d ON d.key = x.device_key
GROUP BY 1 ORDER BY 1
"""


def _table(rows: list[Any]) -> pa.Table:
    columns = list(zip(*[tuple(r) for r in rows], strict=True))
    return pa.table(
        {
            "device_key": pa.array(columns[0], pa.int32()),
            "device_id": pa.array(columns[1], pa.string()),
            "metric_id": pa.array(columns[2], pa.int16()),
            "metric": pa.array(columns[3], pa.string()),
            "ts": pa.array(columns[4], pa.timestamp("us", tz="UTC")),
            "value": pa.array(columns[5], pa.float64()),
            "seq": pa.array(columns[6], pa.int64()),
        },
        schema=_SCHEMA,
    )


async def _stream_to_parquet(conn: Any, sql: str, tenant_id: int, path: str) -> None:
    """(asyncio, on the raw connection) One tenant's readings into a Parquet file."""
    writer = pq.ParquetWriter(path, _SCHEMA, compression="zstd")
    try:
        async with conn.transaction():
            chunk: list[Any] = []
            async for record in conn.cursor(sql, tenant_id, prefetch=10_000):
                chunk.append(record)
                if len(chunk) >= _CHUNK:
                    writer.write_table(_table(chunk))
                    chunk = []
            if chunk:
                writer.write_table(_table(chunk))
    finally:
        writer.close()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _count_and_sum(path: Path) -> tuple[int, float]:
    count = 0
    partials = []
    for batch in pq.ParquetFile(path).iter_batches(batch_size=_CHUNK, columns=["value"]):
        count += batch.num_rows
        partials.append(math.fsum(batch.column(0).to_pylist()))
    return count, math.fsum(partials)


def _checked(path: Path, item: dict[str, Any]) -> None:
    """The file read back is the one written, and holds what the database held."""
    if _sha256(path) != item["sha256"]:
        raise ArchiveError(
            f"{item['key']}: the object read back differs from what was written (SHA-256)"
        )
    count, total = _count_and_sum(path)
    if count != item["rows"] or not _same_sum(total, item["value_sum"]):
        raise ArchiveError(f"{item['key']}: read back holds other readings")


async def _fetch(store: ObjectStore, key: str) -> bytes:
    try:
        return await store.get(key)
    except Exception as exc:  # the store's own checksum caught it, or it is away
        raise ArchiveError(f"{key} could not be read back: {exc}") from exc


async def _fetch_file(store: ObjectStore, key: str, path: Path) -> None:
    try:
        await store.get_file(key, path)
    except Exception as exc:
        raise ArchiveError(f"{key} could not be read back: {exc}") from exc


async def archive_day(pool: Pool, store: ObjectStore, day: dt.date) -> DayResult:
    """Export, verify, detach, drop one day; raises ArchiveError (nothing dropped) when
    any step does not check out."""
    partition = _partition(day)
    if await pool.fetchval("SELECT restored_at IS NULL FROM archived_days WHERE day = $1", day):
        # Late readings made a new partition for a day already in the store: archiving
        # them alone would replace the day's objects. Restore first (the day is then
        # whole in the database), then archive again.
        raise ArchiveError(
            f"{day} is archived already and has new readings: restore it first "
            f"(sensorium archive restore {day}), then archive it again"
        )
    totals = await pool.fetch(_TENANT_TOTALS.format(partition=partition), timeout=3600)
    readings = sum(row["n"] for row in totals)
    manifest: dict[str, Any] = {"day": day.isoformat(), "partition": partition,
                                "readings": readings, "objects": []}  # fmt: skip
    await store.ensure_bucket()
    with tempfile.TemporaryDirectory(prefix="sensorium-archive-") as folder:
        for row in totals:
            tenant_id = row["tenant_id"]
            path = Path(folder) / f"{tenant_id}.parquet"
            async with pool.acquire() as conn:
                await conn.run(
                    _stream_to_parquet,
                    _TENANT_ROWS.format(partition=partition),
                    tenant_id,
                    str(path),
                )
            item = {"key": f"{_prefix(day)}/{tenant_id}.parquet", "tenant_id": tenant_id,
                    "rows": row["n"], "value_sum": float(row["total"] or 0.0),
                    "sha256": await trio.to_thread.run_sync(_sha256, path)}  # fmt: skip
            # The file holds what the database said, before it leaves.
            count, total = await trio.to_thread.run_sync(_count_and_sum, path)
            if count != item["rows"] or not _same_sum(total, item["value_sum"]):
                raise ArchiveError(f"{day}: tenant {tenant_id}'s export is not what was read")
            await store.put_file(item["key"], path)
            manifest["objects"].append(item)
            path.unlink()
        manifest_key = f"{_prefix(day)}/manifest.json"
        await store.put(manifest_key, json.dumps(manifest, indent=2).encode())
        # Read everything back: the manifest, then each object against it.
        stored = json.loads(await _fetch(store, manifest_key))
        if stored != manifest:
            raise ArchiveError(f"{day}: the manifest read back differs from what was written")
        for item in manifest["objects"]:
            path = Path(folder) / "read-back.parquet"
            await _fetch_file(store, item["key"], path)
            await trio.to_thread.run_sync(_checked, path, item)
            path.unlink()
    # Only now touch the partition: out of `readings` without blocking ingest, then
    # counted once more; a late reading that landed after the export keeps it.
    held = f"archived_{partition}"
    await pool.execute(f"ALTER TABLE readings DETACH PARTITION {partition} CONCURRENTLY")
    await pool.execute(f"ALTER TABLE {partition} RENAME TO {held}")
    check = await pool.fetchrow(f"SELECT count(*) AS n, sum(value) AS total FROM {held}")
    assert check is not None
    exported_sum = math.fsum(item["value_sum"] for item in manifest["objects"])
    if check["n"] != readings or not _same_sum(check["total"] or 0.0, exported_sum):
        await _put_back(pool, held, day)
        raise ArchiveError(f"{day}: readings arrived during the export; the day stays")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"DROP TABLE {held}")
        await conn.execute(
            """INSERT INTO archived_days (day, readings, manifest_key) VALUES ($1, $2, $3)
               ON CONFLICT (day) DO UPDATE SET readings = archived_days.readings
                   + excluded.readings, archived_at = now()""",
            day,
            readings,
            manifest_key,
        )
    log.info("day archived", day=day.isoformat(), readings=readings, objects=len(totals))
    return DayResult(day, readings, len(totals), manifest_key)


async def _put_back(pool: Pool, held: str, day: dt.date) -> None:
    """Return a detached day to `readings`: attached again, or (when a late reading made
    a new partition for the day meanwhile) its rows copied into it."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    try:
        end = start + dt.timedelta(days=1)
        await pool.execute(
            f"ALTER TABLE readings ATTACH PARTITION {held} "
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
        await pool.execute(f"ALTER TABLE {held} RENAME TO {_partition(day)}")
    except Exception:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(f"INSERT INTO readings SELECT * FROM {held}")
            await conn.execute(f"DROP TABLE {held}")


async def restore_day(pool: Pool, store: ObjectStore, day: dt.date) -> int:
    """Load an archived day back into `readings`, checked against its manifest."""
    manifest = json.loads(await _fetch(store, f"{_prefix(day)}/manifest.json"))
    restored = 0
    with tempfile.TemporaryDirectory(prefix="sensorium-restore-") as folder:
        async with pool.acquire() as conn:
            await conn.execute("SELECT ensure_readings_partitions($1, $1)", day)
            async with conn.transaction():
                for item in manifest["objects"]:
                    path = Path(folder) / "object.parquet"
                    await _fetch_file(store, item["key"], path)
                    await trio.to_thread.run_sync(_checked, path, item)
                    columns = ["ts", "value", "device_key", "metric_id", "seq"]
                    for batch in pq.ParquetFile(path).iter_batches(
                        batch_size=_CHUNK, columns=columns
                    ):
                        records = list(
                            zip(*(batch.column(i).to_pylist() for i in range(5)), strict=True)
                        )
                        await conn.copy_records_to_table(
                            "readings", records=records, columns=columns
                        )
                        restored += len(records)
                    path.unlink()
                await conn.execute(
                    "UPDATE archived_days SET restored_at = now() WHERE day = $1", day
                )
    log.info("day restored", day=day.isoformat(), readings=restored)
    return restored


async def archive_due_days(
    pool: Pool,
    store: ObjectStore,
    *,
    retention_days: int,
    statistics: ArchiveStatistics | None = None,
) -> list[DayResult]:
    """Archive every day past the window, oldest first; a day that fails stays (and
    is logged), the next is tried."""
    stats = statistics or ArchiveStatistics()
    today = dt.datetime.now(dt.UTC).date()
    done = []
    failed = 0
    for day in await archivable_days(pool, retention_days=retention_days, today=today):
        try:
            result = await archive_day(pool, store, day)
        except Exception as exc:
            failed += 1
            log.error("day not archived; it stays", day=day.isoformat(), error=str(exc))
            continue
        done.append(result)
        stats.days_archived += 1
        stats.readings_archived += result.readings
    stats.runs += 1
    stats.days_failed += failed
    if not failed:
        stats.last_success_unix = dt.datetime.now(dt.UTC).timestamp()
    return done


async def keep_archiving(
    pool: Pool,
    store: ObjectStore,
    *,
    retention_days: int,
    interval_s: float,
    statistics: ArchiveStatistics,
) -> None:
    """The scheduled job of the engine; runs until cancelled."""
    while True:
        try:
            await archive_due_days(
                pool, store, retention_days=retention_days, statistics=statistics
            )
        except Exception as exc:  # the primary away: the next run tries again
            log.warning("archive run failed", error=str(exc))
        await trio.sleep(interval_s)
