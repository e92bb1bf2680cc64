"""The shapes of the API's answers, for /openapi.json.

Documentation only: handlers build their JSON directly (the telemetry points even come
from the server as JSON text), and the schemathesis test checks every answer it gets
against these models, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AlertHistory",
    "AlertList",
    "AlertRuleList",
    "AlertRuleView",
    "AlertView",
    "DeadLetterPage",
    "DevicePage",
    "DeviceToken",
    "DeviceView",
    "FleetSummary",
    "IngestReceipt",
    "LatestValues",
    "NewDeviceView",
    "Series",
    "TenantCreated",
    "TenantList",
    "TokenPair",
    "UserCreated",
    "UserList",
]

_TIME = "RFC 3339"


class _Answer(BaseModel):
    # Answers may grow fields; clients ignore what they do not know.
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class TokenPair(_Answer):
    access_token: str = Field(description="JWT, sent as `Authorization: Bearer ...`")
    refresh_token: str = Field(description="single use: POST /auth/refresh rotates it")
    token_type: str = "Bearer"
    expires_in: int = Field(description="seconds the access token is valid")


class NewDeviceView(_Answer):
    id: str
    name: str
    tenant_id: int
    tags: list[str]
    token: str = Field(description="shown once: only its hash is kept")


class DeviceView(_Answer):
    id: str
    name: str
    tenant_id: int
    tags: list[str]
    created_at: str = Field(description=_TIME)
    updated_at: str = Field(description=_TIME)
    last_seen: str | None = Field(description=f"{_TIME}; null before the first reading")


class DevicePage(_Answer):
    items: list[DeviceView]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class DeviceToken(_Answer):
    id: str
    token: str = Field(description="the new token, shown once; the old one stops working")


class DeadLetter(_Answer):
    id: int
    received_at: str = Field(description=_TIME)
    source: str = Field(description="mqtt or http")
    device_id: str | None
    topic: str | None
    reason: str
    detail: str
    payload_size: int
    payload_preview: str | None = Field(description="the first 256 bytes, escaped")


class DeadLetterPage(_Answer):
    items: list[DeadLetter]
    next_before: int | None = Field(description="pass as `before` for the next page")


class TenantView(_Answer):
    id: int
    name: str
    created_at: str = Field(description=_TIME)


class TenantList(_Answer):
    items: list[TenantView]


class _Admin(_Answer):
    id: int
    email: str
    role: str


class TenantCreated(_Answer):
    id: int
    name: str
    admin: _Admin


class UserView(_Answer):
    id: int
    email: str
    role: str
    disabled: bool
    created_at: str = Field(description=_TIME)


class UserList(_Answer):
    items: list[UserView]


class UserCreated(_Answer):
    id: int
    email: str
    role: str
    tenant_id: int


class Point(_Answer):
    ts: str = Field(description=f"{_TIME}: the bucket's start, or the reading's time")
    value: float | None


class Series(_Answer):
    device_id: str
    metric: str
    agg: str | None
    bucket: str | None
    from_: str = Field(alias="from", description=_TIME)
    to: str = Field(description=_TIME)
    source: str = Field(description="what was read, coarsest first: e.g. rollup_1h+rollup_1m+raw")
    points: list[Point]


class _Latest(_Answer):
    ts: str = Field(description=_TIME)
    value: float


class LatestValues(_Answer):
    device_id: str
    last_seen: str | None = Field(description=_TIME)
    metrics: dict[str, _Latest]


class _Ranked(_Answer):
    device_id: str
    value: float | None


class FleetSummary(_Answer):
    metric: str
    agg: str
    from_: str = Field(alias="from", description=_TIME)
    to: str = Field(description=_TIME)
    source: str
    devices: list[_Ranked]


class _Rejection(_Answer):
    index: int
    reason: str
    detail: str


class IngestReceipt(_Answer):
    accepted: int
    duplicates: int
    rejected: list[_Rejection]


class AlertRuleView(_Answer):
    id: int
    name: str
    scope: dict[str, Any] = Field(description='{"device_id"}, {"tag"} or {"tenant": true}')
    metric: str
    condition: dict[str, Any] = Field(description="threshold, rate of change or no data")
    severity: str
    channels: list[dict[str, Any]] = Field(description="webhook secrets are left out")
    renotify_s: int | None
    quiet_hours: dict[str, Any] | None = Field(description='{"start", "end", "timezone"}')
    enabled: bool
    created_at: str = Field(description=_TIME)
    updated_at: str = Field(description=_TIME)


class AlertRuleList(_Answer):
    items: list[AlertRuleView]


class AlertView(_Answer):
    id: int
    rule: dict[str, Any] = Field(description='{"id", "name", "severity"}')
    metric: str
    device_id: str | None
    state: str = Field(description="open, acknowledged or resolved")
    value: float | None
    opened_at: str = Field(description=_TIME)
    acknowledged_at: str | None
    acknowledged_by: int | None = Field(description="the user's id")
    resolved_at: str | None
    flapping: bool = Field(description="opened while flapping: changes not notified")


class AlertList(_Answer):
    items: list[AlertView]
    next_before: int | None = Field(description="pass as `before` for the next page")


class _AlertEvent(_Answer):
    at: str = Field(description=_TIME)
    kind: str = Field(description="opened, acknowledged, resolved, reminded, flapping or settled")
    actor: str | None = Field(description="engine, or user:<id>")
    detail: dict[str, Any]


class _NotificationView(_Answer):
    event_id: str
    channel: str = Field(description="email, sms or webhook")
    recipient: str
    status: str = Field(description="pending, sent or failed (a digest's, if in one)")
    digest_event_id: str | None = Field(description="the digest that carried it, if one did")
    attempts: int
    last_error: str | None
    created_at: str = Field(description=_TIME)
    sent_at: str | None


class AlertHistory(_Answer):
    items: list[_AlertEvent]
    notifications: list[_NotificationView]
