"""Migrations against a real PostgreSQL (the session stack's primary, a fresh database)."""

from __future__ import annotations

import trio
import trio_asyncio

from sensorium.storage import apply_migrations, available_migrations, connect
from tests.support import StackHandle, db_fetch, fresh_database


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
