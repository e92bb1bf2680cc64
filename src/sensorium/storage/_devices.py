"""The device registry: creation (with its one-time token), reading, renaming,
retagging, token rotation, deletion, and the broker credentials that follow them.

Every call that takes a ``tenant_id`` sees only that tenant's devices: a device of
another tenant is reported as missing, never as forbidden.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from asyncpg import Record

from sensorium.storage._accounts import ensure_tenant
from sensorium.storage._bridge import Connection
from sensorium.storage._credentials import (
    hash_token,
    mosquitto_password_hash,
    new_device_id,
    new_secret,
)

__all__ = [
    "BrokerCredential",
    "DevicePage",
    "DeviceRecord",
    "NewDevice",
    "broker_credentials",
    "create_device",
    "create_devices",
    "delete_device",
    "get_device",
    "list_devices",
    "rotate_device_token",
    "update_device",
]


@dataclass(frozen=True, slots=True)
class NewDevice:
    """A device as just created: the only time its token is known."""

    id: str
    name: str
    tenant_id: int
    token: str
    tags: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "tenant_id": self.tenant_id,
            "token": self.token,
            "tags": list(self.tags),
        }


@dataclass(frozen=True, slots=True)
class BrokerCredential:
    username: str
    password_hash: str


async def create_device(
    conn: Connection, *, name: str, tenant: str | int, tags: list[str] | None = None
) -> NewDevice:
    """Register a device; its token is returned here and never stored in clear."""
    tenant_id = tenant if isinstance(tenant, int) else await ensure_tenant(conn, tenant)
    token = new_secret()
    device_id = new_device_id()
    await conn.execute(
        """INSERT INTO devices (id, tenant_id, name, tags, token_hash, mqtt_password_hash)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        device_id,
        tenant_id,
        name,
        tags or [],
        hash_token(token),
        mosquitto_password_hash(token),
    )
    return NewDevice(id=device_id, name=name, tenant_id=tenant_id, token=token, tags=tags or [])


async def broker_credentials(conn: Connection) -> tuple[int, list[BrokerCredential]]:
    """The credentials version and every device's broker login, read consistently."""
    async with conn.transaction(isolation="repeatable_read"):
        version: int = await conn.fetchval("SELECT version FROM broker_credentials")
        rows = await conn.fetch("SELECT id, mqtt_password_hash FROM devices ORDER BY key")
    return version, [BrokerCredential(r["id"], r["mqtt_password_hash"]) for r in rows]


async def create_devices(
    conn: Connection, *, names: list[str], tenant: str | int, tags: list[str] | None = None
) -> list[NewDevice]:
    """Register many devices in one statement (the simulator provisions thousands)."""
    tenant_id = tenant if isinstance(tenant, int) else await ensure_tenant(conn, tenant)
    tokens = [new_secret() for _ in names]
    ids = [new_device_id() for _ in names]
    await conn.execute(
        """INSERT INTO devices (id, tenant_id, name, tags, token_hash, mqtt_password_hash)
           SELECT i, $2, n, $3, t, m
           FROM unnest($1::text[], $4::text[], $5::bytea[], $6::text[]) AS u(i, n, t, m)""",
        ids,
        tenant_id,
        tags or [],
        names,
        [hash_token(token) for token in tokens],
        [mosquitto_password_hash(token) for token in tokens],
    )
    return [
        NewDevice(id=i, name=n, tenant_id=tenant_id, token=t, tags=tags or [])
        for i, n, t in zip(ids, names, tokens, strict=True)
    ]


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    key: int
    id: str
    name: str
    tenant_id: int
    tags: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime
    last_seen: dt.datetime | None

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "tenant_id": self.tenant_id,
            "tags": list(self.tags),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
        }


@dataclass(frozen=True, slots=True)
class DevicePage:
    items: list[DeviceRecord]
    next_after: int | None  # the key to continue after, or None at the end


_SELECT = """
SELECT d.key, d.id, d.name, d.tenant_id, d.tags, d.created_at, d.updated_at, i.last_seen
FROM devices d CROSS JOIN LATERAL (SELECT device_last_seen(d.key) AS last_seen) i
"""


def _record(row: Record) -> DeviceRecord:
    return DeviceRecord(
        key=row["key"],
        id=row["id"],
        name=row["name"],
        tenant_id=row["tenant_id"],
        tags=list(row["tags"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_seen=row["last_seen"],
    )


async def list_devices(
    conn: Connection,
    *,
    tenant_id: int,
    tag: str | None = None,
    name_prefix: str | None = None,
    seen_since: dt.datetime | None = None,
    after: int = 0,
    limit: int = 100,
) -> DevicePage:
    """A page of the tenant's devices in creation order (keyset paging on the key)."""
    rows = await conn.fetch(
        _SELECT
        + """WHERE d.tenant_id = $1 AND d.key > $2
               AND ($3::text IS NULL OR d.tags @> ARRAY[$3::text])
               AND ($4::text IS NULL OR starts_with(lower(d.name), lower($4::text)))
               AND ($5::timestamptz IS NULL OR i.last_seen >= $5)
             ORDER BY d.key LIMIT $6""",
        tenant_id,
        after,
        tag,
        name_prefix,
        seen_since,
        limit + 1,
    )
    items = [_record(r) for r in rows[:limit]]
    return DevicePage(items, items[-1].key if len(rows) > limit else None)


async def get_device(conn: Connection, *, tenant_id: int, device_id: str) -> DeviceRecord | None:
    row = await conn.fetchrow(
        _SELECT + "WHERE d.tenant_id = $1 AND d.id = $2", tenant_id, device_id
    )
    return _record(row) if row is not None else None


async def update_device(
    conn: Connection,
    *,
    tenant_id: int,
    device_id: str,
    name: str | None = None,
    tags: list[str] | None = None,
) -> DeviceRecord | None:
    status = await conn.execute(
        """UPDATE devices SET name = coalesce($3, name), tags = coalesce($4, tags),
                              updated_at = now()
           WHERE tenant_id = $1 AND id = $2""",
        tenant_id,
        device_id,
        name,
        tags,
    )
    if status == "UPDATE 0":
        return None
    return await get_device(conn, tenant_id=tenant_id, device_id=device_id)


async def delete_device(conn: Connection, *, tenant_id: int, device_id: str) -> bool:
    """The device stops existing: its token and broker login stop working (the broker
    learns within seconds). Its readings stay until retention archives them."""
    status = await conn.execute(
        "DELETE FROM devices WHERE tenant_id = $1 AND id = $2", tenant_id, device_id
    )
    return status != "DELETE 0"


async def rotate_device_token(conn: Connection, *, tenant_id: int, device_id: str) -> str | None:
    """A new token for the device (returned once); the old one stops working."""
    token = new_secret()
    status = await conn.execute(
        """UPDATE devices SET token_hash = $3, mqtt_password_hash = $4, updated_at = now()
           WHERE tenant_id = $1 AND id = $2""",
        tenant_id,
        device_id,
        hash_token(token),
        mosquitto_password_hash(token),
    )
    return token if status != "UPDATE 0" else None
