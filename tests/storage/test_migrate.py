"""Migrations against a real PostgreSQL (the session stack's primary, a fresh database)."""

from __future__ import annotations

import trio
import trio_asyncio

from sensorium.storage import (
    apply_migrations,
    available_migrations,
    compact_rollups,
    connect,
    create_pool,
    load_high_water_marks,
)
from tests.support import StackHandle, db_fetch, fresh_database, run_trio


def test_concurrent_migrations_apply_each_file_exactly_once(stack: StackHandle) -> None:
    url = fresh_database(stack, "migrate", migrated=False)
    applied: list[list[int]] = []

    async def migrate_once() -> None:
        conn = await connect(url)
        try:
            applied.append([m.version for m in await apply_migrations(conn)])
        finally:
            await conn.close()

    async def main() -> None:
        async with trio_asyncio.open_loop(), trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(migrate_once)

    trio.run(main)
    everything = [m.version for m in available_migrations()]
    assert sorted(applied) == [[], [], everything]
    rows = db_fetch(url, "SELECT version FROM schema_migrations ORDER BY version")
    assert [r["version"] for r in rows] == everything


def test_deltas_written_before_0013_keep_their_rollups_and_marks(stack: StackHandle) -> None:
    """A database upgraded with minute deltas not folded yet (rows of the old
    rollup_1m_delta table): after 0013 every merged minute, high-water mark and last-seen
    time reads as before, and the compactor folds the moved rows."""
    url = fresh_database(stack, "upgrade", migrated=False)

    async def as_of_0012() -> None:
        conn = await connect(url)
        try:
            await conn.execute(
                """CREATE TABLE schema_migrations (
                       version integer PRIMARY KEY, name text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            for migration in available_migrations():
                if migration.version < 13:
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        migration.version,
                        migration.name,
                    )
        finally:
            await conn.close()

    run_trio(as_of_0012)
    db_fetch(
        url,
        """INSERT INTO device_ingest (device_key, hwm_ts, last_seen, readings) VALUES
               (1, '2026-01-01 10:02:30+00', '2026-01-01 10:02:31+00', 7),
               (2, '2026-01-01 10:05:00+00', '2026-01-01 10:05:02+00', 3)""",
    )
    db_fetch(
        url,
        """INSERT INTO rollup_1m_delta (device_key, metric_id, bucket, count, sum, min, max,
                                        last_ts, last_value) VALUES
               (1, 1, '2026-01-01 10:01+00', 2, 3.0, 1.0, 2.0, '2026-01-01 10:01:50+00', 2.0),
               (1, 1, '2026-01-01 10:01+00', 1, 5.0, 5.0, 5.0, '2026-01-01 10:01:55+00', 5.0),
               (1, 2, '2026-01-01 10:02+00', 4, 8.0, 1.5, 2.5, '2026-01-01 10:02:30+00', 1.5),
               (2, 1, '2026-01-01 10:05+00', 3, -3.0, -2.0, 0.0, '2026-01-01 10:05:00+00', 0.0)""",
    )
    merged = "SELECT * FROM rollup_1m_merged ORDER BY device_key, metric_id, bucket"
    before = [dict(r) for r in db_fetch(url, merged)]

    async def upgrade() -> list[int]:
        conn = await connect(url)
        try:
            return [m.version for m in await apply_migrations(conn)]
        finally:
            await conn.close()

    assert 13 in run_trio(upgrade)
    assert [dict(r) for r in db_fetch(url, merged)] == before
    seen = db_fetch(url, "SELECT device_last_seen(1) AS a, device_last_seen(2) AS b")[0]
    assert (seen["a"].isoformat(), seen["b"].isoformat()) == (
        "2026-01-01T10:02:31+00:00",
        "2026-01-01T10:05:02+00:00",
    )

    async def fold_and_marks() -> tuple[int, dict[int, int]]:
        pool = await create_pool(url, min_size=1, max_size=1)
        try:
            folded = await compact_rollups(pool, settle_s=0, rows_per_pass=10)
            return folded, await load_high_water_marks(pool)
        finally:
            await pool.close()

    folded, marks = run_trio(fold_and_marks)
    assert folded == 2  # one moved row per device
    assert [dict(r) for r in db_fetch(url, merged)] == before
    assert db_fetch(url, "SELECT count(*) AS n FROM device_deltas")[0]["n"] == 0
    ingest = db_fetch(url, "SELECT * FROM device_ingest ORDER BY device_key")
    assert [(r["device_key"], r["readings"], r["last_seen"].isoformat()) for r in ingest] == [
        (1, 7, "2026-01-01T10:02:31+00:00"),
        (2, 3, "2026-01-01T10:05:02+00:00"),
    ]
    assert marks == {1: 1_767_261_750_000_000, 2: 1_767_261_900_000_000}
