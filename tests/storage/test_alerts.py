"""Alert transitions recorded with their outbox rows, on a real PostgreSQL: one live
alert per rule and device, one outbox row per channel, stable event ids, and nothing
recorded twice."""

from __future__ import annotations

import datetime as dt

import pytest

from sensorium.storage import (
    AlertPolicy,
    AlertTransition,
    connect,
    create_alert_rule,
    create_device,
    ensure_tenant,
    record_alert_transitions,
    remind_open_alerts,
    settle_flapping_alerts,
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


def _device(url: str, name: str) -> tuple[int, str]:
    """A device of the tenant: its key and id."""

    async def go() -> tuple[int, str]:
        conn = await connect(url)
        try:
            made = await create_device(conn, name=name, tenant="alerts")
            key: int = await conn.fetchval("SELECT key FROM devices WHERE id = $1", made.id)
            return key, made.id
        finally:
            await conn.close()

    made: tuple[int, str] = run_trio(go)
    return made


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


def test_open_alerts_are_reminded_of_and_acknowledged_ones_are_not(
    database: tuple[str, int],
) -> None:
    url, rule = database
    key, device_id = _device(url, "r1")
    opened = AlertTransition(
        rule_id=rule, rule_name="too warm", severity="critical", metric="temperature",
        channels=CHANNELS, device_key=key, device_id=device_id, kind="open",
        at=dt.datetime.now(dt.UTC), value=9.0,
    )  # fmt: skip

    async def go(every_s: float) -> list[int]:
        conn = await connect(url)
        try:
            if every_s < 0:
                await record_alert_transitions(conn, [opened])
                return []
            return await remind_open_alerts(conn, opened, every_s=every_s)
        finally:
            await conn.close()

    run_trio(go, -1.0)
    alert = db_fetch(url, "SELECT id FROM alerts WHERE device_key = $1", key)[0]["id"]
    assert run_trio(go, 3600.0) == []  # notified just now
    assert run_trio(go, 0.0) == [alert]  # due: reminded
    assert run_trio(go, 0.0) == [alert]  # and again: each reminder its own event ids
    outbox = db_fetch(url, "SELECT event_id FROM notification_outbox WHERE alert_id = $1", alert)
    assert len(outbox) == len({r["event_id"] for r in outbox}) == 9  # 3 channels x 3
    kinds = db_fetch(url, "SELECT kind FROM alert_events WHERE alert_id = $1 ORDER BY id", alert)
    assert [k["kind"] for k in kinds] == ["opened", "reminded", "reminded"]
    db_fetch(url, "UPDATE alerts SET state = 'acknowledged' WHERE id = $1", alert)
    assert run_trio(go, 0.0) == []  # someone is on it


def _flap(rule_id: int, key: int, kind: str, second: int) -> AlertTransition:
    return AlertTransition(
        rule_id=rule_id, rule_name="too warm", severity="critical", metric="temperature",
        channels=CHANNELS[:1], device_key=key, device_id=f"dev-{key}", kind=kind,  # type: ignore[arg-type]
        at=dt.datetime(2026, 11, 26, 2, 0, tzinfo=dt.UTC) + dt.timedelta(seconds=second),
        value=float(second),
    )  # fmt: skip


def test_a_flapping_alert_is_announced_once_then_silent_until_it_settles(
    database: tuple[str, int],
) -> None:
    url, rule = database
    key, _ = _device(url, "flappy")
    policy = AlertPolicy(flap_opens=3, flap_window_s=300)
    bounces = [
        _flap(rule, key, "open" if i % 2 == 0 else "resolved", 10 * i) for i in range(10)
    ]  # opens at 0, 20, 40, 60, 80 s; resolutions between

    async def record(transitions: list[AlertTransition]) -> list[int | None]:
        conn = await connect(url)
        try:
            return await record_alert_transitions(conn, transitions, policy)
        finally:
            await conn.close()

    alerts = run_trio(record, bounces)
    assert all(alert is not None for alert in alerts)
    states = db_fetch(
        url,
        """SELECT o.payload->>'state' AS state FROM notification_outbox o
           JOIN alerts a ON a.id = o.alert_id WHERE a.device_key = $1 ORDER BY o.id""",
        key,
    )
    # Two openings and their resolutions as usual; the third opening within 300 s is
    # the flapping notice; the bounces after it (opens 4 and 5) say nothing.
    assert [s["state"] for s in states] == ["open", "resolved", "open", "resolved", "flapping"]
    flagged = db_fetch(url, "SELECT id FROM alerts WHERE device_key = $1 AND flapping", key)
    assert [f["id"] for f in flagged] == [alerts[8]]  # only the newest carries the mark
    kinds = db_fetch(
        url,
        """SELECT e.kind FROM alert_events e JOIN alerts a ON a.id = e.alert_id
           WHERE a.device_key = $1 ORDER BY e.id""",
        key,
    )
    assert [k["kind"] for k in kinds].count("opened") == 5  # the audit trail has them all

    async def settle(window_s: float) -> list[int]:
        conn = await connect(url)
        try:
            return await settle_flapping_alerts(conn, {rule: bounces[0]}, window_s=window_s)
        finally:
            await conn.close()

    # The last bounce left it resolved (at 02:01:30, long ago by the wall clock):
    # settling tells the recipient how it ended, once.
    assert run_trio(settle, 1e9) == []  # not settled for that long yet
    assert run_trio(settle, 60.0) == [alerts[9]]
    assert run_trio(settle, 60.0) == []
    last = db_fetch(
        url,
        """SELECT o.payload->>'state' AS state, o.event_id FROM notification_outbox o
           JOIN alerts a ON a.id = o.alert_id WHERE a.device_key = $1 ORDER BY o.id DESC
           LIMIT 1""",
        key,
    )[0]
    assert last["state"] == "resolved"


def test_quiet_hours_hold_email_and_sms_but_not_webhooks(database: tuple[str, int]) -> None:
    url, rule = database
    until = dt.datetime(2030, 1, 1, 6, 0, tzinfo=dt.UTC)
    held = AlertTransition(
        rule_id=rule, rule_name="too warm", severity="critical", metric="temperature",
        channels=CHANNELS, device_key=7002, device_id="dev-7002", kind="open",
        at=dt.datetime.now(dt.UTC), value=9.0, held_until=until,
    )  # fmt: skip
    alert = _record(url, [held])[0]
    rows = db_fetch(
        url,
        "SELECT channel, next_attempt_at FROM notification_outbox WHERE alert_id = $1 "
        "ORDER BY channel",
        alert,
    )
    assert [(r["channel"], r["next_attempt_at"] == until) for r in rows] == [
        ("email", True),
        ("sms", True),
        ("webhook", False),
    ]
    assert rows[2]["next_attempt_at"] <= dt.datetime.now(dt.UTC)
