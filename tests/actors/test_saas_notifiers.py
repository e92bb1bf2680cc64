"""Email through SendGrid's SDK and SMS through Twilio's, pointed at local stand-ins
speaking their APIs: delivered with the right content; 429 and 5xx tried again
(Retry-After kept), a refused number or key fails for good."""

from __future__ import annotations

import json
import uuid

import trio

from sensorium.actors._email import SendgridSender
from sensorium.actors._notifier import Outcome
from sensorium.actors._sms import TwilioSender
from sensorium.storage import Notification
from tests.saas_standins import SENDGRID_KEY, TWILIO_SID, TWILIO_TOKEN, Standin


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
