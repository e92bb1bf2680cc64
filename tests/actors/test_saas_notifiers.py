"""Email through SendGrid's SDK and SMS through Twilio's, pointed at local stand-ins
speaking their APIs: delivered with the right content; 429 and 5xx tried again
(Retry-After kept), a refused number or key fails for good."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any

import trio

from sensorium.actors import Notifier, NotifierOptions, RecipientRate
from sensorium.actors._email import SendgridSender, email_message
from sensorium.actors._notifier import Outcome
from sensorium.actors._sms import TwilioSender
from sensorium.storage import (
    AlertTransition,
    Connection,
    Notification,
    connect,
    create_alert_rule,
    create_pool,
    due_notifications,
    ensure_tenant,
    mark_started,
    record_alert_transitions,
)
from tests.saas_standins import SENDGRID_KEY, TWILIO_SID, TWILIO_TOKEN, Standin
from tests.support import StackHandle, db_fetch, fresh_database, run_trio


def _notification(channel: str, to: str) -> Notification:
    payload = {
        "alert_id": 9, "state": "open", "event_id": "e", "device_id": "dev-9",
        "rule": {"id": 2, "name": "meter spike", "severity": "warning"},
        "metric": "power", "value": 17.25, "at": "2026-11-26T01:00:00+00:00",
    }  # fmt: skip
    return Notification(
        id=1, event_id=uuid.uuid4(), channel=channel, recipient=to,
        payload=json.dumps(payload), secret=None, attempts=0,
    )  # fmt: skip


async def _power_rule(conn: Connection, tenant: str, channels: list[dict[str, str]]) -> Any:
    """A tenant-wide rule (power > 1, critical) notifying ``channels``."""
    return await create_alert_rule(
        conn, tenant_id=await ensure_tenant(conn, tenant),
        rule={"name": "r", "scope": {"tenant": True}, "metric": "power",
              "condition": {"op": ">", "threshold": 1}, "severity": "critical",
              "channels": channels},
    )  # fmt: skip


def _opening(rule_id: int, channels: list[dict[str, str]], key: int) -> AlertTransition:
    """Device ``dev-<key>`` opens an alert of the rule, now, with the value ``key``."""
    return AlertTransition(
        rule_id=rule_id, rule_name="r", severity="critical", metric="power",
        channels=channels, device_key=key, device_id=f"dev-{key}", kind="open",
        at=dt.datetime.now(dt.UTC), value=float(key),
    )  # fmt: skip


def _sendgrid(saas: Standin, key: str = SENDGRID_KEY) -> SendgridSender:
    return SendgridSender(key, sender="alerts@sensorium.test", base_url=saas.url)


def _twilio(saas: Standin) -> TwilioSender:
    return TwilioSender(TWILIO_SID, TWILIO_TOKEN, sender="+15550199", base_url=saas.url)


def test_sendgrid_delivers_the_email(saas: Standin) -> None:
    notification = _notification("email", "ops@example.com")
    assert trio.run(_sendgrid(saas), notification) == Outcome("sent")
    [mail] = saas.accepted
    assert mail["personalizations"][0]["to"] == [{"email": "ops@example.com"}]
    assert mail["from"]["email"] == "alerts@sensorium.test"
    assert mail["subject"] == "[warning] meter spike: ALERT on dev-9"
    assert "Value: 17.25" in mail["content"][0]["value"]
    assert mail["headers"]["X-Sensorium-Event-Id"] == str(notification.event_id)


def test_sendgrid_retries_429_and_5xx_and_fails_on_a_bad_key(saas: Standin) -> None:
    saas.failures = [(429, {"Retry-After": "7"}), (503, {})]
    sender = _sendgrid(saas)
    first = trio.run(sender, _notification("email", "ops@example.com"))
    assert (first.kind, first.retry_after_s) == ("retry", 7.0)
    assert trio.run(sender, _notification("email", "ops@example.com")).kind == "retry"
    assert trio.run(_sendgrid(saas, "SG.wrong"), _notification("email", "a@b.c")).kind == "failed"
    assert saas.accepted == []


def test_twilio_sends_the_sms(saas: Standin) -> None:
    assert trio.run(_twilio(saas), _notification("sms", "+15550100")) == Outcome("sent")
    [sms] = saas.accepted
    assert (sms["To"], sms["From"]) == ("+15550100", "+15550199")
    assert sms["Body"] == "ALERT [warning] meter spike: dev-9 17.25"


def test_twilio_retries_an_outage_and_fails_on_a_refused_number(saas: Standin) -> None:
    saas.failures = [(500, {}), (429, {})]
    sender = _twilio(saas)
    assert trio.run(sender, _notification("sms", "+15550100")).kind == "retry"
    assert trio.run(sender, _notification("sms", "+15550100")).kind == "retry"
    assert trio.run(sender, _notification("sms", "5550100")).kind == "failed"
    assert saas.accepted == []


def test_a_30_second_twilio_outage_delays_every_sms_and_loses_or_doubles_none(
    stack: StackHandle, saas: Standin
) -> None:
    """The issue's outage: the stand-in answers 500 for 30 s, then recovers. Every SMS
    queued before and during the outage arrives once, after it."""
    url = fresh_database(stack, "sms_outage")
    sms = [{"type": "sms", "to": "+15550100"}, {"type": "sms", "to": "+15550111"}]

    async def go() -> float:
        conn = await connect(url)
        try:
            rule = await _power_rule(conn, "outage", sms)
            await record_alert_transitions(
                conn,
                [_opening(rule.id, sms, key) for key in range(1, 6)],
            )
        finally:
            await conn.close()
        recovered_at = trio.current_time() + 30
        saas.failing_until = time.monotonic() + 30
        pool = await create_pool(url, min_size=1, max_size=2)
        try:
            notifier = Notifier(
                pool, "sms", _twilio(saas),
                # Fewer, shorter waits than the defaults (14 attempts, up to 300 s
                # apart), still more than 30 s of them in all.
                NotifierOptions(max_attempts=12, backoff_base_s=1, backoff_cap_s=8, poll_s=0.1),
            )  # fmt: skip
            with trio.fail_after(120):
                while await pool.fetchval(
                    "SELECT count(*) FROM notification_outbox WHERE status = 'pending'"
                ):
                    await notifier.pass_once()
                    await trio.sleep(0.1)
        finally:
            await pool.close()
        return trio.current_time() - recovered_at

    after_recovery_s = run_trio(go)
    assert after_recovery_s >= 0  # nothing could be sent during the outage
    statuses = db_fetch(url, "SELECT status, count(*) AS n FROM notification_outbox GROUP BY 1")
    assert {r["status"]: r["n"] for r in statuses} == {"sent": 10}
    delivered = sorted((m["To"], m["Body"]) for m in saas.accepted)
    assert len(delivered) == len(set(delivered)) == 10  # each once
    assert saas.calls > 10  # and the outage was really met


def test_a_storm_gives_each_recipient_digests_within_its_rate(
    stack: StackHandle, saas: Standin
) -> None:
    """80 alerts open for two people in three waves; the rate is 2 messages per minute
    per recipient: each gets one digest per wave until the rate is spent, and what
    comes after waits (postponed to when the first message leaves the window)."""
    url = fresh_database(stack, "sms_storm")
    sms = [{"type": "sms", "to": "+15550100"}, {"type": "sms", "to": "+15550111"}]
    rate = RecipientRate(max_messages=2, window_s=60)

    async def go() -> list[int]:
        conn = await connect(url)
        pool = await create_pool(url, min_size=1, max_size=4)
        try:
            rule = await _power_rule(conn, "storm", sms)
            notifier = Notifier(pool, "sms", _twilio(saas), NotifierOptions(recipient_rate=rate))
            delivered = []
            for wave in (range(1, 41), range(41, 71), range(71, 81)):
                await record_alert_transitions(
                    conn,
                    [_opening(rule.id, sms, key) for key in wave],
                )
                delivered.append(await notifier.pass_once())
            return delivered
        finally:
            await pool.close()
            await conn.close()

    # Wave 1 and 2: one digest per recipient each; wave 3: the rate is spent.
    assert run_trio(go) == [2, 2, 0]
    bodies = sorted((m["To"], m["Body"]) for m in saas.accepted)
    assert [to for to, _ in bodies] == ["+15550100"] * 2 + ["+15550111"] * 2
    assert bodies[0][1].startswith("30 alerts: 30 open/flapping, 0 resolved. dev-41, dev-42")
    assert bodies[1][1].startswith("40 alerts: 40 open/flapping, 0 resolved. dev-1, dev-10")
    assert all(len(body) <= 300 for _, body in bodies)
    rows = db_fetch(
        url,
        """SELECT is_digest, status, count(*) AS n,
                  bool_and(next_attempt_at > now() + interval '50 seconds') AS waiting
           FROM notification_outbox GROUP BY 1, 2 ORDER BY 1, 2""",
    )
    assert [(r["is_digest"], r["status"], r["n"]) for r in rows] == [
        (False, "digested", 140),  # waves 1 and 2, both recipients
        (False, "pending", 20),  # wave 3
        (True, "sent", 4),
    ]
    assert rows[1]["waiting"]  # until the first digest leaves the minute
    # Every alert of waves 1 and 2 went out in exactly one digest per recipient.
    carried = db_fetch(
        url,
        """SELECT count(*) AS n, count(DISTINCT (o.alert_id, o.recipient)) AS distinct_n
           FROM notification_outbox o JOIN notification_outbox g ON g.id = o.digest_id
           WHERE g.status = 'sent'""",
    )[0]
    assert carried["n"] == carried["distinct_n"] == 140


def test_a_digest_email_lists_every_notification_it_carries() -> None:
    items = [
        {"alert_id": n, "state": state, "event_id": f"e{n}", "device_id": f"dev-{n}",
         "rule": {"id": 2, "name": "freezer", "severity": severity},
         "metric": "temperature", "value": -2.5 + n, "at": "2026-11-26T01:00:00+00:00"}
        for n, state, severity in [(1, "open", "warning"), (2, "resolved", "critical"),
                                   (3, "flapping", "info")]
    ]  # fmt: skip
    digest = Notification(
        id=5, event_id=uuid.uuid4(), channel="email", recipient="ops@example.com",
        payload=json.dumps({"digest": True, "event_id": "d", "count": 3, "items": items}),
        secret=None, attempts=0, is_digest=True,
    )  # fmt: skip
    message = email_message(digest, "alerts@sensorium.test")
    assert message["Subject"] == "[critical] 3 alert notifications: 1 flapping, 1 open, 1 resolved"
    body = message.get_content()
    assert "ALERT [warning] freezer: dev-1 temperature=-1.5" in body
    assert "resolved [critical] freezer: dev-2 temperature=-0.5" in body
    assert "FLAPPING [info] freezer: dev-3" in body
    assert message["X-Sensorium-Event-Id"] == str(digest.event_id)


def test_a_notification_cut_short_by_a_crash_goes_again_alone_never_in_a_digest(
    stack: StackHandle, saas: Standin
) -> None:
    """An engine handed one SMS to Twilio and died before marking it: the next engine
    sends that one again as it was (its own event id: the receiver may have it), and
    only the others, never handed over, as a digest."""
    url = fresh_database(stack, "sms_cut_short")
    sms = [{"type": "sms", "to": "+15550142"}]

    async def go() -> int:
        conn = await connect(url)
        pool = await create_pool(url, min_size=1, max_size=4)
        try:
            rule = await _power_rule(conn, "cut", sms)
            await record_alert_transitions(
                conn, [_opening(rule.id, sms, key) for key in range(1, 4)]
            )
            [first] = await due_notifications(pool, "sms", limit=1)
            await mark_started(pool, [first])  # ... and the engine died here
            notifier = Notifier(
                pool, "sms", _twilio(saas), NotifierOptions(recipient_rate=RecipientRate())
            )
            return await notifier.pass_once()
        finally:
            await pool.close()
            await conn.close()

    assert run_trio(go) == 2
    bodies = sorted(m["Body"] for m in saas.accepted)
    assert bodies == [
        "2 alerts: 2 open/flapping, 0 resolved. dev-2, dev-3",
        "ALERT [critical] r: dev-1 1.0",
    ]
