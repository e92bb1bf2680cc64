"""`/api/v1/alert-rules`: create, list, read, change and delete a tenant's alert rules;
`/api/v1/alerts`: list them (filters, paging), acknowledge one, read its history.

A rule (DESIGN.md): ``{"name", "scope": {"device_id"} | {"tag"} | {"tenant": true},
"metric", "condition", "severity", "channels", "renotify_s", "quiet_hours", "enabled"}``;
the condition's three shapes, and quiet hours, are explained in actors/_alert_rules.py. Webhook
secrets are write-only: answers leave them out. Viewers read; admins and operators
also write. Another tenant's rule is a 404, like one that does not exist.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from quart import Blueprint, Response, jsonify, request
from quart_schema import document_querystring, document_request, document_response

from sensorium.actors import NoDataCondition, QuietHours, RateCondition, ThresholdCondition
from sensorium.http._guard import EMAIL, NO_CONTROL, Guard, bad_request, read_body
from sensorium.http._problem import problem
from sensorium.http._schemas import (
    AlertHistory,
    AlertList,
    AlertRuleList,
    AlertRuleView,
    AlertView,
)
from sensorium.http._tokens import Principal
from sensorium.storage import (
    Pool,
    Role,
    acknowledge_alert,
    alert_history,
    create_alert_rule,
    delete_alert_rule,
    get_alert_rule,
    get_device,
    list_alert_rules,
    list_alerts,
    update_alert_rule,
)

__all__ = ["AlertRuleCreate", "AlertRuleUpdate", "alerts_blueprint"]

_WRITERS: tuple[Role, ...] = ("admin", "operator")
_METRIC = r"^[a-z][a-z0-9_]{0,62}$"  # the payload rules' metric names
_ID = re.compile(r"^[1-9][0-9]{0,17}$")  # a rule's or an alert's


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeviceScope(_Strict):
    device_id: str = Field(min_length=1, max_length=200, pattern=NO_CONTROL)


class TagScope(_Strict):
    tag: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")


class TenantScope(_Strict):
    tenant: Literal[True]


class EmailChannel(_Strict):
    type: Literal["email"]
    to: str = Field(min_length=3, max_length=254, pattern=EMAIL)


class SmsChannel(_Strict):
    type: Literal["sms"]
    to: str = Field(pattern=r"^\+[1-9][0-9]{6,14}$", description="E.164, like +15550100")


class WebhookChannel(_Strict):
    type: Literal["webhook"]
    url: str = Field(max_length=2000, pattern=r"^https?://[^\s\x00-\x1f\x7f]+$")
    secret: str = Field(
        min_length=16, max_length=200, pattern=NO_CONTROL, description="signs every delivery"
    )


Channel = EmailChannel | SmsChannel | WebhookChannel
Scope = DeviceScope | TagScope | TenantScope
Condition = ThresholdCondition | RateCondition | NoDataCondition
Severity = Literal["info", "warning", "critical"]


class AlertRuleCreate(_Strict):
    name: str = Field(min_length=1, max_length=200, pattern=NO_CONTROL)
    scope: Scope
    metric: str = Field(pattern=_METRIC)
    condition: Condition
    severity: Severity = "warning"
    channels: list[Channel] = Field(default_factory=list, max_length=20)
    renotify_s: int | None = Field(default=None, ge=60, le=30 * 86_400)
    quiet_hours: QuietHours | None = None
    enabled: bool = True


class AlertRuleUpdate(_Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200, pattern=NO_CONTROL)
    scope: Scope | None = None
    metric: str | None = Field(default=None, pattern=_METRIC)
    condition: Condition | None = None
    severity: Severity | None = None
    channels: list[Channel] | None = Field(default=None, max_length=20)
    renotify_s: int | None = Field(default=None, ge=60, le=30 * 86_400)
    quiet_hours: QuietHours | None = None
    enabled: bool | None = None


def _not_found(rule_id: str) -> Response:
    return problem(404, "Not Found", kind="not-found", detail=f"no alert rule {rule_id!r}")


def _no_alert(alert_id: str) -> Response:
    return problem(404, "Not Found", kind="not-found", detail=f"no alert {alert_id!r}")


class AlertQuery(BaseModel):
    """The query of GET /alerts (documentation; checked by hand)."""

    state: Literal["open", "acknowledged", "resolved"] | None = None
    device_id: str | None = None
    rule_id: int | None = None
    before: int | None = Field(default=None, description="an alert id: the page after it")
    limit: int | None = Field(default=None, ge=1, le=500)


def _id(text: str) -> int | None:
    return int(text) if _ID.match(text) else None


def alerts_blueprint(pool: Pool, guard: Guard) -> Blueprint:
    bp = Blueprint("alerts", __name__, url_prefix="/api/v1")

    async def unknown_device(principal: Principal, scope: Scope | None) -> Response | None:
        if not isinstance(scope, DeviceScope):
            return None
        async with pool.acquire() as conn:
            device = await get_device(
                conn, tenant_id=principal.tenant_id, device_id=scope.device_id
            )
        if device is None:
            return bad_request(f"scope.device_id: no device {scope.device_id!r}")
        return None

    @bp.get("/alert-rules")
    @document_response(AlertRuleList)
    @guard()
    async def list_all(principal: Principal) -> Response:
        async with pool.acquire() as conn:
            rules = await list_alert_rules(conn, tenant_id=principal.tenant_id)
        return jsonify(items=[rule.as_json() for rule in rules])

    @bp.post("/alert-rules")
    @document_response(AlertRuleView, 201)
    @document_request(AlertRuleCreate)
    @guard(roles=_WRITERS)
    async def create(principal: Principal) -> Response:
        body = await read_body(AlertRuleCreate)
        if isinstance(body, Response):
            return body
        if (refused := await unknown_device(principal, body.scope)) is not None:
            return refused
        async with pool.acquire() as conn:
            rule = await create_alert_rule(
                conn, tenant_id=principal.tenant_id, rule=body.model_dump(mode="json")
            )
        response = jsonify(rule.as_json())
        response.status_code = 201
        response.headers["Location"] = f"/api/v1/alert-rules/{rule.id}"
        return response

    @bp.get("/alert-rules/<rule_id>")
    @document_response(AlertRuleView)
    @guard()
    async def read(rule_id: str, principal: Principal) -> Response:
        key = _id(rule_id)
        if key is None:
            return _not_found(rule_id)
        async with pool.acquire() as conn:
            rule = await get_alert_rule(conn, tenant_id=principal.tenant_id, rule_id=key)
        return jsonify(rule.as_json()) if rule is not None else _not_found(rule_id)

    @bp.patch("/alert-rules/<rule_id>")
    @document_response(AlertRuleView)
    @document_request(AlertRuleUpdate)
    @guard(roles=_WRITERS)
    async def update(rule_id: str, principal: Principal) -> Response:
        key = _id(rule_id)
        if key is None:
            return _not_found(rule_id)
        body = await read_body(AlertRuleUpdate)
        if isinstance(body, Response):
            return body
        changes: dict[str, Any] = body.model_dump(mode="json", exclude_unset=True)
        nullable = ("renotify_s", "quiet_hours")
        if any(value is None for name, value in changes.items() if name not in nullable):
            return bad_request("only renotify_s and quiet_hours may be set to null")
        if (refused := await unknown_device(principal, body.scope)) is not None:
            return refused
        async with pool.acquire() as conn:
            rule = await update_alert_rule(
                conn, tenant_id=principal.tenant_id, rule_id=key, changes=changes
            )
        return jsonify(rule.as_json()) if rule is not None else _not_found(rule_id)

    @bp.get("/alerts")
    @document_response(AlertList)
    @document_querystring(AlertQuery)
    @guard()
    async def alerts(principal: Principal) -> Response:
        args = request.args
        state = args.get("state")
        if state is not None and state not in ("open", "acknowledged", "resolved"):
            return bad_request("state: open, acknowledged or resolved")
        rule_id = _id(args["rule_id"]) if "rule_id" in args else None
        before = _id(args["before"]) if "before" in args else None
        try:
            limit = int(args.get("limit", "100"))
        except ValueError:
            limit = 0
        if (
            not 1 <= limit <= 500
            or ("rule_id" in args and rule_id is None)
            or ("before" in args and before is None)
        ):
            return bad_request("limit: 1 to 500; rule_id and before: alert or rule ids")
        async with pool.acquire() as conn:
            items = await list_alerts(
                conn,
                tenant_id=principal.tenant_id,
                state=state,
                device_id=args.get("device_id"),
                rule_id=rule_id,
                before=before,
                limit=limit,
            )
        next_before = items[-1]["id"] if len(items) == limit else None
        return jsonify(items=items, next_before=next_before)

    @bp.post("/alerts/<alert_id>/ack")
    @document_response(AlertView)
    @guard(roles=_WRITERS)
    async def acknowledge(alert_id: str, principal: Principal) -> Response:
        key = _id(alert_id)
        if key is None:
            return _no_alert(alert_id)
        async with pool.acquire() as conn:
            outcome, alert = await acknowledge_alert(
                conn, tenant_id=principal.tenant_id, alert_id=key, user_id=principal.user_id
            )
        if outcome == "missing":
            return _no_alert(alert_id)
        if outcome == "not-open":
            assert alert is not None
            return problem(
                409, "Conflict", kind="conflict",
                detail=f"alert {key} is {alert['state']}: only an open alert is acknowledged",
            )  # fmt: skip
        return jsonify(alert)

    @bp.get("/alerts/<alert_id>/history")
    @document_response(AlertHistory)
    @guard()
    async def history(alert_id: str, principal: Principal) -> Response:
        key = _id(alert_id)
        if key is None:
            return _no_alert(alert_id)
        async with pool.acquire() as conn:
            events = await alert_history(conn, tenant_id=principal.tenant_id, alert_id=key)
        return jsonify(events) if events is not None else _no_alert(alert_id)

    @bp.delete("/alert-rules/<rule_id>")
    @guard(roles=_WRITERS)
    async def delete(rule_id: str, principal: Principal) -> Response:
        key = _id(rule_id)
        if key is None:
            return _not_found(rule_id)
        async with pool.acquire() as conn:
            deleted = await delete_alert_rule(conn, tenant_id=principal.tenant_id, rule_id=key)
        return Response(b"", status=204) if deleted else _not_found(rule_id)

    return bp
