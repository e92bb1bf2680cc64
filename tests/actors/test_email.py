"""Email over SMTP against a real SMTP server (aiosmtpd, with STARTTLS on a certificate
made here and a login): delivered with the event id; a refused login or an unreachable
server is tried again; a refused recipient fails for good."""

from __future__ import annotations

import json
import socket
import uuid

import trio

from sensorium.actors._email import SmtpOptions, SmtpSender
from sensorium.actors._notifier import Outcome
from sensorium.storage import Notification
from tests.smtp_standin import PASSWORD, USER, SmtpStandin


def _notification(to: str) -> Notification:
    event = uuid.uuid4()
    payload = {
        "alert_id": 7, "state": "open", "event_id": str(event),
        "rule": {"id": 3, "name": "freezer too warm", "severity": "critical"},
        "device_id": "dev-abc", "metric": "temperature", "value": -11.5,
        "at": "2026-11-26T01:00:00+00:00",
    }  # fmt: skip
    return Notification(
        id=1, event_id=event, channel="email", recipient=to, payload=json.dumps(payload),
        secret=None, attempts=0,
    )  # fmt: skip


def _send(options: SmtpOptions, notification: Notification) -> Outcome:
    outcome: Outcome = trio.run(SmtpSender(options), notification)
    return outcome


def test_an_email_goes_out_over_starttls_with_a_login(
    smtp_server: SmtpStandin,
) -> None:
    inbox, port, ca = smtp_server.inbox, smtp_server.port, smtp_server.ca_file
    options = SmtpOptions(host="localhost", port=port, username=USER, password=PASSWORD,
                          sender="alerts@sensorium.test", ca_file=ca)  # fmt: skip
    notification = _notification("ops@example.com")
    assert _send(options, notification) == Outcome("sent")
    [message] = inbox.messages
    assert message["To"] == "ops@example.com" and message["From"] == "alerts@sensorium.test"
    assert message["Subject"] == "[critical] freezer too warm: ALERT on dev-abc"
    assert message["X-Sensorium-Event-Id"] == str(notification.event_id)
    assert "Value: -11.5" in message.get_payload()


def test_a_refused_login_and_an_unreachable_server_are_tried_again(
    smtp_server: SmtpStandin,
) -> None:
    inbox, port, ca = smtp_server.inbox, smtp_server.port, smtp_server.ca_file
    wrong = SmtpOptions(host="localhost", port=port, username=USER, password="wrong", ca_file=ca)
    assert _send(wrong, _notification("ops@example.com")).kind == "retry"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    away = SmtpOptions(host="127.0.0.1", port=closed, starttls=False, timeout_s=2)
    assert _send(away, _notification("ops@example.com")).kind == "retry"
    untrusted = SmtpOptions(host="localhost", port=port, username=USER, password=PASSWORD)
    assert _send(untrusted, _notification("ops@example.com")).kind == "retry"  # cert unknown
    assert inbox.messages == []


def test_a_refused_recipient_fails_for_good(smtp_server: SmtpStandin) -> None:
    inbox, port, ca = smtp_server.inbox, smtp_server.port, smtp_server.ca_file
    options = SmtpOptions(host="localhost", port=port, username=USER, password=PASSWORD,
                          ca_file=ca)  # fmt: skip
    outcome = _send(options, _notification("nobody@example.com"))
    assert outcome.kind == "failed" and "nobody@example.com" in outcome.error
    assert inbox.messages == []
