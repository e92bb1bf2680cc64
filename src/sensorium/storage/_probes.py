"""Health probes of PostgreSQL servers: is it up, is it a replica, how far behind."""

from __future__ import annotations

from dataclasses import dataclass

import trio

from sensorium.storage._bridge import connect

__all__ = ["ReplicationState", "ServerHealth", "probe_server", "replication_states"]


@dataclass(frozen=True, slots=True)
class ServerHealth:
    reachable: bool
    in_recovery: bool = False
    error: str = ""


@dataclass(frozen=True, slots=True)
class ReplicationState:
    """One replication slot as the primary sees it."""

    slot: str
    state: str  # 'streaming', 'catchup', ... or 'disconnected'
    replay_lag_s: float
    replay_lag_bytes: int


async def probe_server(url: str, *, timeout: float = 2.0) -> ServerHealth:
    """Connect, ask whether the server is in recovery, disconnect."""
    with trio.move_on_after(timeout * 2):
        try:
            conn = await connect(url, timeout=timeout, command_timeout=timeout)
        except (OSError, Exception) as exc:  # refused, auth, starting up...
            return ServerHealth(reachable=False, error=f"{type(exc).__name__}: {exc}")
        try:
            in_recovery: bool = await conn.fetchval("SELECT pg_is_in_recovery()")
            return ServerHealth(reachable=True, in_recovery=in_recovery)
        except Exception as exc:
            return ServerHealth(reachable=False, error=f"{type(exc).__name__}: {exc}")
        finally:
            await conn.close()
    return ServerHealth(reachable=False, error=f"no answer within {timeout * 2:.0f} s")


async def replication_states(primary_url: str, *, timeout: float = 2.0) -> list[ReplicationState]:
    """Every physical replication slot on the primary with its standby's lag.

    ``replay_lag`` is NULL when a standby has replayed everything and nothing new was
    written since; that is a lag of zero, not an unknown one.
    """
    conn = await connect(primary_url, timeout=timeout, command_timeout=timeout)
    try:
        rows = await conn.fetch(
            """SELECT s.slot_name,
                      coalesce(r.state, 'disconnected') AS state,
                      coalesce(extract(epoch FROM r.replay_lag), 0)::float8 AS lag_s,
                      coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn), 0)::int8
                          AS lag_bytes
               FROM pg_replication_slots s
               LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
               WHERE s.slot_type = 'physical'
               ORDER BY s.slot_name"""
        )
    finally:
        await conn.close()
    return [ReplicationState(r["slot_name"], r["state"], r["lag_s"], r["lag_bytes"]) for r in rows]
