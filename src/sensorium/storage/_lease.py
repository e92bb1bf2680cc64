"""The engine lease: one engine writes to a database at a time.

A session-level advisory lock held on a dedicated connection for the engine's whole
life. A second engine is refused with who holds it; if the connection is lost, the lock
is gone too, and the engine must stop writing (`wait_lost` returns).
"""

from __future__ import annotations

import os
import socket

import trio

from sensorium.errors import AlreadyRunning
from sensorium.storage._bridge import Connection, connect

__all__ = ["EngineLease", "acquire_engine_lease"]

ENGINE_LOCK_KEY = 0x5E45_0002


class EngineLease:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def wait_lost(self, *, interval_s: float = 2.0) -> None:
        """Return once the lease's connection is gone (and with it the lock)."""
        while True:
            await trio.sleep(interval_s)
            try:
                with trio.fail_after(interval_s * 2):
                    await self._conn.fetchval("SELECT 1")
            except (OSError, trio.TooSlowError, Exception):
                return

    async def release(self) -> None:
        if not self._conn.is_closed():
            await self._conn.close()


async def acquire_engine_lease(url: str, *, timeout: float = 5.0) -> EngineLease:
    name = f"sensorium-engine pid={os.getpid()} host={socket.gethostname()}"
    conn = await connect(url, timeout=timeout, command_timeout=timeout, application_name=name)
    got: bool = await conn.fetchval("SELECT pg_try_advisory_lock($1)", ENGINE_LOCK_KEY)
    if not got:
        holder = await conn.fetchval(
            """SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)
               WHERE l.locktype = 'advisory' AND l.granted
                 AND ((l.classid::bigint << 32) | l.objid::bigint) = $1""",
            ENGINE_LOCK_KEY,
        )
        await conn.close()
        raise AlreadyRunning(
            "another engine already writes to this database"
            + (f" ({holder})" if holder else "")
            + "; only one engine per database is supported for now"
        )
    return EngineLease(conn)
