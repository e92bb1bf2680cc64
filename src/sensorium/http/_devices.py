"""`/api/v1/devices`: create (the token is shown once), list with filters and paging,
read, rename and retag, delete, rotate the token; `/api/v1/dead-letters`.

Everything is scoped to the caller's tenant: another tenant's device is a 404 on every
route, exactly like a device that does not exist. Viewers read; admins and operators
also write. Device management reads the primary (a dashboard sees its own change at
once); analytics read the replicas.
"""

from __future__ import annotations

import base64
import datetime as dt
import re

from pydantic import BaseModel, Field, field_validator
from quart import Blueprint, Response, jsonify, request
from quart_schema import document_querystring, document_request, document_response

from sensorium.http._guard import NO_CONTROL, Guard, bad_request, read_body
from sensorium.http._problem import problem
from sensorium.http._schemas import (
    DeadLetterPage,
    DevicePage,
    DeviceToken,
    DeviceView,
    NewDeviceView,
)
from sensorium.http._tokens import Principal
from sensorium.storage import (
    Pool,
    Role,
    create_device,
    delete_device,
    get_device,
    list_devices,
    rotate_device_token,
    update_device,
)

__all__ = ["DeviceCreate", "DeviceUpdate", "devices_blueprint"]

_TAG = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_WRITERS: tuple[Role, ...] = ("admin", "operator")
MAX_PAGE = 500


def _check_tags(tags: list[str] | None) -> list[str] | None:
    if tags is None:
        return None
    for tag in tags:
        if not _TAG.match(tag):
            raise ValueError(f"tag {tag!r} must match {_TAG.pattern}")
    if len(tags) > 32:
        raise ValueError("at most 32 tags")
    return sorted(set(tags))


class DeviceCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200, pattern=NO_CONTROL)
    tags: list[str] = Field(default_factory=list)

    _tags = field_validator("tags")(_check_tags)


class DeviceUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200, pattern=NO_CONTROL)
    tags: list[str] | None = None

    _tags = field_validator("tags")(_check_tags)


class DeviceQuery(BaseModel):
    """The query of GET /devices (documentation; checked by hand)."""

    tag: str | None = None
    name: str | None = Field(default=None, description="a prefix of the name")
    seen_since: str | None = Field(default=None, description="RFC 3339")
    limit: int | None = Field(default=None, ge=1, le=MAX_PAGE)
    cursor: str | None = None


def _not_found(device_id: str) -> Response:
    return problem(404, "Not Found", kind="not-found", detail=f"no device {device_id!r}")


def _cursor(key: int | None) -> str | None:
    return base64.urlsafe_b64encode(str(key).encode()).decode() if key is not None else None


def _after(cursor: str | None) -> int | None:
    if not cursor:
        return 0
    try:
        return int(base64.urlsafe_b64decode(cursor.encode()).decode())
    except ValueError:
        return None


def devices_blueprint(pool: Pool, guard: Guard) -> Blueprint:
    bp = Blueprint("devices", __name__, url_prefix="/api/v1")

    @bp.get("/devices")
    @document_response(DevicePage)
    @document_querystring(DeviceQuery)
    @guard()
    async def list_all(principal: Principal) -> Response:
        args = request.args
        after = _after(args.get("cursor"))
        if after is None:
            return bad_request("cursor: not one this API gave out")
        try:
            limit = int(args.get("limit", "100"))
            seen_since = (
                dt.datetime.fromisoformat(args["seen_since"]) if "seen_since" in args else None
            )
        except ValueError as exc:
            return bad_request(f"limit or seen_since: {exc}")
        if not 1 <= limit <= MAX_PAGE:
            return bad_request(f"limit: between 1 and {MAX_PAGE}")
        if seen_since is not None and seen_since.tzinfo is None:
            return bad_request("seen_since: give a time zone (RFC 3339)")
        async with pool.acquire() as conn:
            page = await list_devices(
                conn,
                tenant_id=principal.tenant_id,
                tag=args.get("tag"),
                name_prefix=args.get("name"),
                seen_since=seen_since,
                after=after,
                limit=limit,
            )
        return jsonify(
            items=[d.as_json() for d in page.items], next_cursor=_cursor(page.next_after)
        )

    @bp.post("/devices")
    @document_response(NewDeviceView, 201)
    @document_request(DeviceCreate)
    @guard(roles=_WRITERS)
    async def create(principal: Principal) -> Response:
        body = await read_body(DeviceCreate)
        if isinstance(body, Response):
            return body
        async with pool.acquire() as conn:
            device = await create_device(
                conn, name=body.name, tenant=principal.tenant_id, tags=body.tags
            )
        response = jsonify(device.as_json())
        response.status_code = 201
        response.headers["Location"] = f"/api/v1/devices/{device.id}"
        response.headers["Cache-Control"] = "no-store"
        return response

    @bp.get("/devices/<device_id>")
    @document_response(DeviceView)
    @guard()
    async def read(device_id: str, principal: Principal) -> Response:
        async with pool.acquire() as conn:
            device = await get_device(conn, tenant_id=principal.tenant_id, device_id=device_id)
        return jsonify(device.as_json()) if device is not None else _not_found(device_id)

    @bp.patch("/devices/<device_id>")
    @document_response(DeviceView)
    @document_request(DeviceUpdate)
    @guard(roles=_WRITERS)
    async def update(device_id: str, principal: Principal) -> Response:
        body = await read_body(DeviceUpdate)
        if isinstance(body, Response):
            return body
        async with pool.acquire() as conn:
            device = await update_device(
                conn,
                tenant_id=principal.tenant_id,
                device_id=device_id,
                name=body.name,
                tags=body.tags,
            )
        return jsonify(device.as_json()) if device is not None else _not_found(device_id)

    @bp.delete("/devices/<device_id>")
    @guard(roles=_WRITERS)
    async def delete(device_id: str, principal: Principal) -> Response:
        async with pool.acquire() as conn:
            deleted = await delete_device(conn, tenant_id=principal.tenant_id, device_id=device_id)
        return Response(b"", status=204) if deleted else _not_found(device_id)

    @bp.post("/devices/<device_id>/token")
    @document_response(DeviceToken)
    @guard(roles=_WRITERS)
    async def rotate(device_id: str, principal: Principal) -> Response:
        async with pool.acquire() as conn:
            token = await rotate_device_token(
                conn, tenant_id=principal.tenant_id, device_id=device_id
            )
        if token is None:
            return _not_found(device_id)
        response = jsonify(id=device_id, token=token)
        response.headers["Cache-Control"] = "no-store"
        return response

    @bp.get("/dead-letters")
    @document_response(DeadLetterPage)
    @guard()
    async def dead_letters(principal: Principal) -> Response:
        try:
            limit = int(request.args.get("limit", "100"))
            before = int(request.args.get("before", str(2**62)))
        except ValueError as exc:
            return bad_request(f"limit or before: {exc}")
        if not 1 <= limit <= MAX_PAGE:
            return bad_request(f"limit: between 1 and {MAX_PAGE}")
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT id, received_at, source, device_id, topic, reason, detail,
                          payload_size, encode(substring(payload for 256), 'escape') AS preview
                   FROM dead_letters WHERE tenant_id = $1 AND id < $2
                   ORDER BY id DESC LIMIT $3""",
                principal.tenant_id,
                before,
                limit,
            )
        items = [
            {
                "id": r["id"],
                "received_at": r["received_at"].isoformat(),
                "source": r["source"],
                "device_id": r["device_id"],
                "topic": r["topic"],
                "reason": r["reason"],
                "detail": r["detail"],
                "payload_size": r["payload_size"],
                "payload_preview": r["preview"],
            }
            for r in rows
        ]
        next_before = items[-1]["id"] if len(items) == limit else None
        return jsonify(items=items, next_before=next_before)

    return bp
