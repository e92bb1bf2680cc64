"""Tenants and users."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sensorium.storage._bridge import Connection
from sensorium.storage._credentials import hash_password

__all__ = ["ROLES", "Role", "User", "create_user", "ensure_tenant", "find_user_by_email"]

Role = Literal["admin", "operator", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "operator", "viewer")


@dataclass(frozen=True, slots=True)
class User:
    id: int
    tenant_id: int
    email: str
    role: Role


async def ensure_tenant(conn: Connection, name: str) -> int:
    """The id of the tenant called ``name``, created if it does not exist yet."""
    tenant_id: int = await conn.fetchval(
        """WITH created AS (
               INSERT INTO tenants (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id)
           SELECT id FROM created UNION ALL SELECT id FROM tenants WHERE name = $1 LIMIT 1""",
        name,
    )
    return tenant_id


async def create_user(
    conn: Connection, *, email: str, password: str, role: Role, tenant: str
) -> User:
    """A new user; raises asyncpg's UniqueViolationError if the email is taken."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    tenant_id = await ensure_tenant(conn, tenant)
    row = await conn.fetchrow(
        """INSERT INTO users (tenant_id, email, password_hash, role)
           VALUES ($1, $2, $3, $4) RETURNING id""",
        tenant_id,
        email,
        hash_password(password),
        role,
    )
    assert row is not None
    return User(id=row["id"], tenant_id=tenant_id, email=email, role=role)


async def find_user_by_email(conn: Connection, email: str) -> User | None:
    row = await conn.fetchrow(
        "SELECT id, tenant_id, email, role FROM users WHERE lower(email) = lower($1)", email
    )
    if row is None:
        return None
    return User(id=row["id"], tenant_id=row["tenant_id"], email=row["email"], role=row["role"])
