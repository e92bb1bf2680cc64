"""Alert transitions recorded with their outbox rows, on a real PostgreSQL: one live
alert per rule and device, one outbox row per channel, stable event ids, and nothing
recorded twice."""

from __future__ import annotations

import datetime as dt

import pytest

from sensorium.storage import (
    AlertTransition,
    connect,
    create_alert_rule,
    ensure_tenant,
    record_alert_transitions,
)
from tests.support import StackHandle, db_fetch, fresh_database, run_trio

CHANNELS = [
    {"type": "email", "to": "ops@example.com"},
    {"type": "sms", "to": "+15550100"},
    {"type": "webhook", "url": "https://hooks.example.com/x", "secret": "s" * 20},
]


@pytest.fixture(scope="module")
def database(stack: StackHandle) -> tuple[str, int]:
    url = fresh_database(stack, "alerts")

    async def prepare() -> int:
        conn = await connect(url)
        try:
            tenant = await ensure_tenant(conn, "alerts")
            rule = await create_alert_rule(
                conn,
                tenant_id=tenant,
                rule={
                    "name": "too warm", "scope": {"tenant": True}, "metric": "temperature",
                    "condition": {"op": ">", "threshold": 5}, "severity": "critical",
                    "channels": CHANNELS,
                },
            )  # fmt: skip
            return rule.id
        finally:
            await conn.close()

    rule_id: int = run_trio(prepare)
    return url, rule_id


def _transition(rule_id: int, kind: str, minute: int, value: float | None) -> AlertTransition:
    return AlertTransition(
        rule_id=rule_id, rule_name="too warm", severity="critical", metric="temperature",
        channels=CHANNELS, device_key=42, device_id="dev-42", kind=kind,  # type: ignore[arg-type]
        at=dt.datetime(2026, 11, 26, 1, minute, tzinfo=dt.UTC), value=value,
    )  # fmt: skip


def _record(url: str, transitions: list[AlertTransition]) -> list[int | None]:
    async def go() -> list[int | None]:
        conn = await connect(url)
        try:
            return await record_alert_transitions(conn, transitions)
        finally:
            await conn.close()

    result: list[int | None] = run_trio(go)
    return result


def test_an_alert_opens_once_resolves_once_and_queues_one_notification_per_channel(
    database: tuple[str, int],
) -> None:
    url, rule = database
    first = _record(url, [_transition(rule, "open", 0, 6.5)])[0]
    assert first is not None
    # Opening again while it is live, or recording the same opening again after a
    # crash: nothing new, nothing queued.
    assert _record(url, [_transition(rule, "open", 1, 7.0)]) == [None]
    outbox = db_fetch(
        url,
        "SELECT event_id, channel, recipient, payload FROM notification_outbox "
        "WHERE alert_id = $1 ORDER BY channel",
        first,
    )
    assert [(r["channel"], r["recipient"]) for r in outbox] == [
        ("email", "ops@example.com"),
        ("sms", "+15550100"),
        ("webhook", "https://hooks.example.com/x"),
    ]
    assert len({r["event_id"] for r in outbox}) == 3
    assert '"state": "open"' in outbox[0]["payload"] and '"value": 6.5' in outbox[0]["payload"]
    assert "secret" not in outbox[2]["payload"]
    resolved, again = _record(
        url, [_transition(rule, "resolved", 5, 2.0), _transition(rule, "resolved", 6, 1.0)]
    )
    assert (resolved, again) == (first, None)
    alert = db_fetch(url, "SELECT state, resolved_at, value FROM alerts WHERE id = $1", first)[0]
    assert alert["state"] == "resolved" and alert["value"] == 6.5
    events = db_fetch(url, "SELECT kind FROM alert_events WHERE alert_id = $1 ORDER BY id", first)
    assert [e["kind"] for e in events] == ["opened", "resolved"]
    assert (
        db_fetch(url, "SELECT count(*) AS n FROM notification_outbox WHERE alert_id = $1", first)[
            0
        ]["n"]
        == 6
    )
    # A new breach after the resolution is a new alert, with notifications of its own.
    second = _record(url, [_transition(rule, "open", 9, 8.0)])[0]
    assert second is not None and second != first
    ids = db_fetch(url, "SELECT count(DISTINCT event_id) AS n FROM notification_outbox")
    assert ids[0]["n"] == 9
