"""`/api/v1/tenants` and `/api/v1/users`.

A tenant's admins manage its users. New tenants are made by the admins of the
platform's own tenant (`default`, the one `sensorium up` creates its admin in), each
with its first admin; everyone else sees only their own tenant.
"""

from __future__ import annotations

import asyncpg
import trio
from pydantic import BaseModel, Field
from quart import Blueprint, Response, jsonify
from quart_schema import document_request, document_response

from sensorium.http._guard import EMAIL, Guard, read_body
from sensorium.http._problem import problem
from sensorium.http._schemas import TenantCreated, TenantList, UserCreated, UserList
from sensorium.http._tokens import Principal
from sensorium.storage import Pool, Role, hash_password

__all__ = ["PLATFORM_TENANT", "TenantCreate", "UserCreate", "accounts_blueprint"]

PLATFORM_TENANT = "default"
ADMINS: tuple[Role, ...] = ("admin",)


class UserCreate(BaseModel):
    email: str = Field(min_length=3, max_length=254, pattern=EMAIL)
    password: str = Field(min_length=12, max_length=1024)
    role: Role = "viewer"


class TenantCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    admin_email: str = Field(min_length=3, max_length=254, pattern=EMAIL)
    admin_password: str = Field(min_length=12, max_length=1024)


def _conflict(detail: str) -> Response:
    return problem(409, "Conflict", kind="conflict", detail=detail)


def accounts_blueprint(pool: Pool, guard: Guard) -> Blueprint:
    bp = Blueprint("accounts", __name__, url_prefix="/api/v1")
    hashing = trio.CapacityLimiter(1)  # argon2 hashes cost CPU: one at a time

    async def _tenant_name(tenant_id: int) -> str:
        name: str = await pool.fetchval("SELECT name FROM tenants WHERE id = $1", tenant_id)
        return name

    @bp.get("/tenants")
    @document_response(TenantList)
    @guard()
    async def tenants(principal: Principal) -> Response:
        if principal.role == "admin" and await _tenant_name(principal.tenant_id) == PLATFORM_TENANT:
            rows = await pool.fetch("SELECT id, name, created_at FROM tenants ORDER BY id")
        else:
            rows = await pool.fetch(
                "SELECT id, name, created_at FROM tenants WHERE id = $1", principal.tenant_id
            )
        return jsonify(
            items=[
                {"id": r["id"], "name": r["name"], "created_at": r["created_at"].isoformat()}
                for r in rows
            ]
        )

    @bp.post("/tenants")
    @document_response(TenantCreated, 201)
    @document_request(TenantCreate)
    @guard(roles=ADMINS)
    async def create_tenant(principal: Principal) -> Response:
        if await _tenant_name(principal.tenant_id) != PLATFORM_TENANT:
            return problem(
                403,
                "Forbidden",
                kind="forbidden",
                detail=f"only admins of the {PLATFORM_TENANT!r} tenant create tenants",
            )
        body = await read_body(TenantCreate)
        if isinstance(body, Response):
            return body
        password_hash = await trio.to_thread.run_sync(
            hash_password, body.admin_password, limiter=hashing
        )
        try:
            async with pool.acquire() as conn, conn.transaction():
                tenant_id = await conn.fetchval(
                    "INSERT INTO tenants (name) VALUES ($1) RETURNING id", body.name
                )
                user_id = await conn.fetchval(
                    """INSERT INTO users (tenant_id, email, password_hash, role)
                       VALUES ($1, $2, $3, 'admin') RETURNING id""",
                    tenant_id,
                    body.admin_email,
                    password_hash,
                )
        except asyncpg.UniqueViolationError as exc:
            return _conflict(f"the tenant name or the email is taken ({exc.constraint_name})")
        response = jsonify(
            id=tenant_id,
            name=body.name,
            admin={"id": user_id, "email": body.admin_email, "role": "admin"},
        )
        response.status_code = 201
        return response

    @bp.get("/users")
    @document_response(UserList)
    @guard(roles=ADMINS)
    async def users(principal: Principal) -> Response:
        rows = await pool.fetch(
            """SELECT id, email, role, disabled, created_at FROM users
               WHERE tenant_id = $1 ORDER BY id""",
            principal.tenant_id,
        )
        return jsonify(
            items=[
                {
                    "id": r["id"],
                    "email": r["email"],
                    "role": r["role"],
                    "disabled": r["disabled"],
                    "created_at": r["created_at"].isoformat(),
                }
                for r in rows
            ]
        )

    @bp.post("/users")
    @document_response(UserCreated, 201)
    @document_request(UserCreate)
    @guard(roles=ADMINS)
    async def create(principal: Principal) -> Response:
        body = await read_body(UserCreate)
        if isinstance(body, Response):
            return body
        password_hash = await trio.to_thread.run_sync(hash_password, body.password, limiter=hashing)
        try:
            user_id = await pool.fetchval(
                """INSERT INTO users (tenant_id, email, password_hash, role)
                   VALUES ($1, $2, $3, $4) RETURNING id""",
                principal.tenant_id,
                body.email,
                password_hash,
                body.role,
            )
        except asyncpg.UniqueViolationError:
            return _conflict(f"a user with the email {body.email!r} exists")
        response = jsonify(
            id=user_id, email=body.email, role=body.role, tenant_id=principal.tenant_id
        )
        response.status_code = 201
        return response

    return bp
