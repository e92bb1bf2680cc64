"""The device registry: creation (with its one-time token) and broker credentials."""

from __future__ import annotations

from dataclasses import dataclass, field

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
    "NewDevice",
    "broker_credentials",
    "create_device",
    "create_devices",
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
