"""In-memory catalogs the hot path reads without a query: metric ids and devices.

Metric names map to compact ids once, for good (ids are never reused), so the cache
never goes stale. Devices are cached by public id and by token hash, with a query on a
miss, and a reload whenever broker credentials change (a device created, deleted or
given a new token).
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from sensorium.storage._bridge import Pool

__all__ = ["DeviceDirectory", "DeviceEntry", "MetricCatalog", "load_high_water_marks"]


class MetricCatalog:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._ids: dict[str, int] = {}
        self._names: dict[int, str] = {}
        self._lock = trio.Lock()

    async def load(self) -> None:
        for row in await self._pool.fetch("SELECT id, name FROM metrics"):
            self._ids[row["name"]] = row["id"]
            self._names[row["id"]] = row["name"]

    def id_nowait(self, name: str) -> int | None:
        return self._ids.get(name)

    def name_of(self, metric_id: int) -> str | None:
        return self._names.get(metric_id)

    async def ids(self, names: set[str]) -> dict[str, int]:
        """Ids for ``names``, registering the new ones (idempotently, in autocommit)."""
        missing = [n for n in names if n not in self._ids]
        if missing:
            async with self._lock:
                missing = [n for n in names if n not in self._ids]
                if missing:
                    rows = await self._pool.fetch(
                        """WITH new AS (
                               INSERT INTO metrics (name) SELECT unnest($1::text[])
                               ON CONFLICT (name) DO NOTHING RETURNING id, name)
                           SELECT id, name FROM new
                           UNION ALL SELECT id, name FROM metrics WHERE name = ANY($1::text[])""",
                        missing,
                    )
                    for row in rows:
                        self._ids[row["name"]] = row["id"]
                        self._names[row["id"]] = row["name"]
        return {n: self._ids[n] for n in names}


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    key: int
    id: str
    tenant_id: int


class DeviceDirectory:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._by_id: dict[str, DeviceEntry] = {}
        self._by_token: dict[bytes, DeviceEntry] = {}
        self._version: int | None = None

    async def load(self) -> None:
        """Read every device (replacing what was cached: deleted devices go too)."""
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            self._version = await conn.fetchval("SELECT version FROM broker_credentials")
            rows = await conn.fetch("SELECT key, id, tenant_id, token_hash FROM devices")
        by_id: dict[str, DeviceEntry] = {}
        by_token: dict[bytes, DeviceEntry] = {}
        for row in rows:
            entry = DeviceEntry(row["key"], row["id"], row["tenant_id"])
            by_id[entry.id] = entry
            by_token[bytes(row["token_hash"])] = entry
        self._by_id, self._by_token = by_id, by_token

    async def keep_fresh(self, *, interval_s: float = 1.0) -> None:
        """Reload all devices whenever their credentials change (a device created,
        deleted or given a new token), so the hot path finds new devices in memory
        instead of querying once per device."""
        while True:
            await trio.sleep(interval_s)
            try:
                version = await self._pool.fetchval("SELECT version FROM broker_credentials")
                if version != self._version:
                    await self.load()
            except Exception:  # the primary restarting: try again next round
                continue

    def get_nowait(self, device_id: str) -> DeviceEntry | None:
        return self._by_id.get(device_id)

    async def get(self, device_id: str) -> DeviceEntry | None:
        """By public id; a miss (a device newer than the last reload) asks the database."""
        return self._by_id.get(device_id) or await self._fetch_one("id", device_id)

    async def by_token_hash(self, token_hash: bytes) -> DeviceEntry | None:
        """By the SHA-256 of a device token, the same way."""
        return self._by_token.get(token_hash) or await self._fetch_one("token_hash", token_hash)

    async def _fetch_one(self, column: str, value: object) -> DeviceEntry | None:
        row = await self._pool.fetchrow(
            f"SELECT key, id, tenant_id, token_hash FROM devices WHERE {column} = $1", value
        )
        if row is None:
            return None
        entry = DeviceEntry(row["key"], row["id"], row["tenant_id"])
        self._by_id[entry.id] = entry
        self._by_token[bytes(row["token_hash"])] = entry
        return entry


async def load_high_water_marks(pool: Pool) -> dict[int, int]:
    """Every device's committed high-water mark, in µs since the epoch: the folded one
    or a later batch's, not folded yet."""
    rows = await pool.fetch(
        """SELECT device_key, (extract(epoch FROM max(hwm_ts)) * 1000000)::int8 AS hwm_us
           FROM (SELECT device_key, hwm_ts FROM device_ingest
                 UNION ALL
                 SELECT device_key, hwm_ts FROM device_deltas) m
           GROUP BY device_key"""
    )
    return {row["device_key"]: row["hwm_us"] for row in rows}
