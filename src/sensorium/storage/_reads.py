"""Where analytics read: the replicas, round-robin, while they are up and fresh enough;
the primary when none is.

A checker task asks every replica, once a second, how far its replay is behind the
primary: zero when it has replayed everything the primary has written, else the age of
the last transaction it replayed. A replica that fails to answer, or lags past
``max_lag_s``, is skipped until a later check finds it well again.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import trio

from sensorium.logs import get_logger
from sensorium.storage._bridge import Pool

__all__ = ["ReadPools", "ReadTarget"]

log = get_logger(__name__)


@dataclass(slots=True)
class ReadTarget:
    name: str  # "replica-1", "replica-2", or "primary"
    pool: Pool
    healthy: bool = False
    staleness_s: float = 0.0


@dataclass
class ReadPools:
    primary: Pool
    replicas: list[ReadTarget]
    max_lag_s: float = 5.0
    check_interval_s: float = 1.0
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    @classmethod
    def of(cls, primary: Pool, replicas: dict[str, Pool], *, max_lag_s: float) -> ReadPools:
        return cls(primary, [ReadTarget(name, pool) for name, pool in replicas.items()], max_lag_s)

    def choose(self) -> ReadTarget:
        """A fresh replica, in turn; the primary when none is."""
        fresh = [r for r in self.replicas if r.healthy and r.staleness_s <= self.max_lag_s]
        if not fresh:
            return ReadTarget("primary", self.primary, healthy=True)
        return fresh[next(self._turn) % len(fresh)]

    def mark_failed(self, target: ReadTarget) -> None:
        """A query on ``target`` failed: skip it until the next check says otherwise."""
        target.healthy = False

    async def check_once(self) -> None:
        async with trio.open_nursery() as nursery:
            for replica in self.replicas:
                nursery.start_soon(self._check, replica)

    async def _check(self, replica: ReadTarget) -> None:
        try:
            with trio.fail_after(max(self.check_interval_s, 1.0)):
                primary_lsn = await self.primary.fetchval("SELECT pg_current_wal_lsn()")
                row = await replica.pool.fetchrow(
                    """SELECT pg_is_in_recovery() AS standby,
                              pg_last_wal_replay_lsn() >= $1::pg_lsn AS caught_up,
                              coalesce(extract(epoch FROM now()
                                  - pg_last_xact_replay_timestamp()), 0) AS behind_s""",
                    primary_lsn,
                )
        except Exception as exc:
            if replica.healthy:
                log.warning("replica unavailable for reads", replica=replica.name, error=str(exc))
            replica.healthy = False
            return
        assert row is not None
        replica.staleness_s = 0.0 if row["caught_up"] else float(row["behind_s"])
        was = replica.healthy
        replica.healthy = bool(row["standby"])
        if replica.healthy and not was:
            log.info("replica available for reads", replica=replica.name)

    async def keep_checking(self) -> None:
        while True:
            await self.check_once()
            await trio.sleep(self.check_interval_s)
