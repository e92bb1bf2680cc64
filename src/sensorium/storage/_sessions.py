"""Refresh tokens: issued at login, rotated on every use, revocable by family.

A refresh token is a 256-bit random string; only its SHA-256 is stored (migration
0005). Using one marks it used and issues its successor in the same family. Presenting
a used token again is reuse: somebody kept a copy, so the whole family is revoked and
both holders must log in again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sensorium.storage._accounts import User
from sensorium.storage._bridge import Connection
from sensorium.storage._credentials import hash_token, new_secret

__all__ = [
    "LoginRecord",
    "RefreshRefused",
    "find_login",
    "issue_refresh_token",
    "revoke_refresh_family",
    "rotate_refresh_token",
]


class RefreshRefused(Exception):
    """Unknown, expired, revoked or reused; ``reused`` when a used token came back."""

    def __init__(self, reason: str, *, reused: bool = False) -> None:
        super().__init__(reason)
        self.reused = reused


@dataclass(frozen=True, slots=True)
class LoginRecord:
    user: User
    password_hash: str
    disabled: bool


async def find_login(conn: Connection, email: str) -> LoginRecord | None:
    row = await conn.fetchrow(
        """SELECT id, tenant_id, email, role, password_hash, disabled FROM users
           WHERE lower(email) = lower($1)""",
        email,
    )
    if row is None:
        return None
    user = User(id=row["id"], tenant_id=row["tenant_id"], email=row["email"], role=row["role"])
    return LoginRecord(user, row["password_hash"], row["disabled"])


async def issue_refresh_token(
    conn: Connection, user_id: int, *, ttl_s: int, family: uuid.UUID | None = None
) -> str:
    token = new_secret()
    await conn.execute(
        """INSERT INTO refresh_tokens (token_hash, family, user_id, expires_at)
           VALUES ($1, $2, $3, now() + make_interval(secs => $4))""",
        hash_token(token),
        family or uuid.uuid4(),
        user_id,
        float(ttl_s),
    )
    return token


async def rotate_refresh_token(conn: Connection, token: str, *, ttl_s: int) -> tuple[User, str]:
    """The user the token belongs to and its successor; raises `RefreshRefused`."""
    refusal: RefreshRefused | None = None
    successor = ""
    async with conn.transaction():
        row = await conn.fetchrow(
            """SELECT r.id, r.family, r.used_at, r.revoked_at, r.expires_at < now() AS expired,
                      u.id AS user_id, u.tenant_id, u.email, u.role, u.disabled
               FROM refresh_tokens r JOIN users u ON u.id = r.user_id
               WHERE r.token_hash = $1 FOR UPDATE OF r""",
            hash_token(token),
        )
        if row is None:
            refusal = RefreshRefused("unknown refresh token")
        elif row["revoked_at"] is not None:
            refusal = RefreshRefused("refresh token revoked")
        elif row["used_at"] is not None:
            # Committed before the refusal is raised: the revocation must stick.
            await conn.execute(
                """UPDATE refresh_tokens SET revoked_at = now()
                   WHERE family = $1 AND revoked_at IS NULL""",
                row["family"],
            )
            refusal = RefreshRefused(
                "refresh token reused: every session of it revoked", reused=True
            )
        elif row["expired"]:
            refusal = RefreshRefused("refresh token expired")
        elif row["disabled"]:
            refusal = RefreshRefused("user disabled")
        else:
            await conn.execute("UPDATE refresh_tokens SET used_at = now() WHERE id = $1", row["id"])
            successor = await issue_refresh_token(
                conn, row["user_id"], ttl_s=ttl_s, family=row["family"]
            )
    if refusal is not None:
        raise refusal
    assert row is not None
    user = User(id=row["user_id"], tenant_id=row["tenant_id"], email=row["email"], role=row["role"])
    return user, successor


async def revoke_refresh_family(conn: Connection, token: str) -> bool:
    """Logout: the token's whole family stops working. False if the token is unknown."""
    status = await conn.execute(
        """UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, now())
           WHERE family = (SELECT family FROM refresh_tokens WHERE token_hash = $1)""",
        hash_token(token),
    )
    return status != "UPDATE 0"
