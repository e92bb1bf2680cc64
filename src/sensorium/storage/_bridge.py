"""The one crossing between trio and asyncpg (an asyncio library).

Everything here runs inside the trio-asyncio loop opened at start-up
(`trio_asyncio.open_loop`); the rest of Sensorium sees plain trio functions. Releases,
commits and rollbacks are shielded from cancellation: a cancelled cleanup would leave
the connection checked out and a transaction open (DEPENDENCIES.md, pitfall 1).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg
import trio
from asyncpg import Record
from trio_asyncio import aio_as_trio

__all__ = ["Connection", "Pool", "connect", "create_pool"]

T = TypeVar("T")
# Every session speaks UTC: timestamps the server formats (JSON built in SQL) read the
# same whoever configured the server.
_SESSION = {"timezone": "UTC"}


class Connection:
    """A trio face on one asyncpg connection."""

    def __init__(self, raw: asyncpg.Connection, *, timeout: float) -> None:
        self.raw = raw
        self.timeout = timeout

    async def execute(self, sql: str, *args: Any, timeout: float | None = None) -> str:
        result: str = await aio_as_trio(self.raw.execute)(
            sql, *args, timeout=timeout or self.timeout
        )
        return result

    async def executemany(
        self, sql: str, args: Iterable[Sequence[Any]], *, timeout: float | None = None
    ) -> None:
        await aio_as_trio(self.raw.executemany)(sql, args, timeout=timeout or self.timeout)

    async def fetch(self, sql: str, *args: Any, timeout: float | None = None) -> list[Record]:
        rows: list[Record] = await aio_as_trio(self.raw.fetch)(
            sql, *args, timeout=timeout or self.timeout
        )
        return rows

    async def fetchrow(self, sql: str, *args: Any, timeout: float | None = None) -> Record | None:
        row: Record | None = await aio_as_trio(self.raw.fetchrow)(
            sql, *args, timeout=timeout or self.timeout
        )
        return row

    async def fetchval(self, sql: str, *args: Any, timeout: float | None = None) -> Any:
        return await aio_as_trio(self.raw.fetchval)(sql, *args, timeout=timeout or self.timeout)

    async def copy_records_to_table(
        self,
        table: str,
        *,
        records: Iterable[Sequence[Any]],
        columns: Sequence[str],
        timeout: float | None = None,
    ) -> str:
        result: str = await aio_as_trio(self.raw.copy_records_to_table)(
            table, records=records, columns=columns, timeout=timeout or self.timeout
        )
        return result

    @asynccontextmanager
    async def transaction(self, *, isolation: str | None = None) -> AsyncIterator[None]:
        """One transaction: committed if the block ends normally, else rolled back.

        ``isolation`` is asyncpg's: ``"read_committed"``, ``"repeatable_read"`` or
        ``"serializable"``.
        """
        tx = self.raw.transaction(isolation=isolation)
        await aio_as_trio(tx.start)()
        try:
            yield
        except BaseException:
            with trio.CancelScope(shield=True):
                if not self.raw.is_closed():
                    await aio_as_trio(tx.rollback)()
            raise
        else:
            with trio.CancelScope(shield=True):
                await aio_as_trio(tx.commit)()

    async def run(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Run an asyncio coroutine function on the raw asyncpg connection, crossing the
        bridge once for several statements (the writer's transaction)."""
        result: T = await aio_as_trio(fn)(self.raw, *args, **kwargs)
        return result

    def is_closed(self) -> bool:
        closed: bool = self.raw.is_closed()
        return closed

    async def close(self) -> None:
        with trio.CancelScope(shield=True):
            await aio_as_trio(self.raw.close)(timeout=self.timeout)


class Pool:
    """A trio face on an asyncpg pool."""

    def __init__(self, raw: asyncpg.Pool, *, url: str, timeout: float) -> None:
        self.raw = raw
        self.url = url
        self.timeout = timeout

    @asynccontextmanager
    async def acquire(self, *, timeout: float | None = None) -> AsyncIterator[Connection]:
        raw = await aio_as_trio(self.raw.acquire)(timeout=timeout or self.timeout)
        try:
            yield Connection(raw, timeout=self.timeout)
        finally:
            with trio.CancelScope(shield=True):
                await aio_as_trio(self.raw.release)(raw)

    async def execute(self, sql: str, *args: Any, timeout: float | None = None) -> str:
        async with self.acquire() as conn:
            return await conn.execute(sql, *args, timeout=timeout)

    async def fetch(self, sql: str, *args: Any, timeout: float | None = None) -> list[Record]:
        async with self.acquire() as conn:
            return await conn.fetch(sql, *args, timeout=timeout)

    async def fetchrow(self, sql: str, *args: Any, timeout: float | None = None) -> Record | None:
        async with self.acquire() as conn:
            return await conn.fetchrow(sql, *args, timeout=timeout)

    async def fetchval(self, sql: str, *args: Any, timeout: float | None = None) -> Any:
        async with self.acquire() as conn:
            return await conn.fetchval(sql, *args, timeout=timeout)

    async def close(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(self.timeout) as scope:
            await aio_as_trio(self.raw.close)()
        if scope.cancelled_caught:
            self.raw.terminate()


async def connect(
    url: str,
    *,
    timeout: float = 5.0,
    command_timeout: float = 30.0,
    application_name: str | None = None,
) -> Connection:
    """One connection outside any pool (probes, migrations, the engine's lock)."""
    server_settings = {
        **_SESSION,
        **({"application_name": application_name} if application_name else {}),
    }
    raw = await aio_as_trio(asyncpg.connect)(
        url, timeout=timeout, command_timeout=command_timeout, server_settings=server_settings
    )
    return Connection(raw, timeout=command_timeout)


async def create_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 8,
    timeout: float = 5.0,
    command_timeout: float = 30.0,
) -> Pool:
    """A pool of connections to one server."""
    raw = await aio_as_trio(asyncpg.create_pool)(
        url,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        command_timeout=command_timeout,
        server_settings=_SESSION,
    )
    return Pool(raw, url=url, timeout=command_timeout)
