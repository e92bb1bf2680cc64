"""Email notifications: through SendGrid when its API key is set, else over SMTP
(STARTTLS and login when configured).

smtplib blocks: each delivery runs in a worker thread, a few at a time (a
CapacityLimiter), as DESIGN.md's idioms say for blocking clients. A 4xx reply or a
connection problem is tried again later, and so is a refused login (the configuration
is wrong, not the message); another 5xx reply (a refused address, say) fails the
notification for good.
"""

from __future__ import annotations

import json
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import trio
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Header, Mail

from sensorium.actors._notifier import Outcome, outcome_of_status
from sensorium.storage import Notification

__all__ = ["SendgridSender", "SmtpOptions", "SmtpSender", "email_message"]


@dataclass(frozen=True, slots=True)
class SmtpOptions:
    host: str
    port: int = 587
    username: str | None = None
    password: str | None = None
    starttls: bool = True
    sender: str = "sensorium@localhost"
    ca_file: Path | None = None
    timeout_s: float = 10.0


_SEVERITIES = ("info", "warning", "critical")
_STATES = {"open": "ALERT", "resolved": "resolved", "flapping": "FLAPPING"}


def _line(item: dict[str, Any]) -> str:
    rule = item["rule"]
    value = "no data" if item["value"] is None else item["value"]
    return (
        f"{_STATES.get(item['state'], item['state'])} [{rule['severity']}] {rule['name']}: "
        f"{item['device_id']} {item['metric']}={value} at {item['at']} (alert {item['alert_id']})"
    )


def _subject_and_body(payload: dict[str, Any]) -> tuple[str, str]:
    if payload.get("digest"):
        items: list[dict[str, Any]] = payload["items"]
        states: dict[str, int] = {}
        for item in items:
            states[item["state"]] = states.get(item["state"], 0) + 1
        worst = max((item["rule"]["severity"] for item in items), key=_SEVERITIES.index)
        counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
        subject = f"[{worst}] {payload['count']} alert notifications: {counts}"
        body = (
            f"{payload['count']} alert notifications were due for you at once "
            f"(a digest, within your message rate):\n\n"
            + "\n".join(_line(item) for item in items)
            + "\n"
        )
        return subject, body
    rule = payload["rule"]
    state = payload["state"]
    value = "no data" if payload["value"] is None else payload["value"]
    shown = _STATES.get(state, state)
    subject = f"[{rule['severity']}] {rule['name']}: {shown} on {payload['device_id']}"
    extra = (
        "\nIt keeps opening and resolving: further changes are not notified until it has "
        "kept one state for a while; then you hear how it ended.\n"
        if state == "flapping"
        else ""
    )
    body = (
        f"{rule['name']} ({rule['severity']}) is {state}.\n\n"
        f"Device: {payload['device_id']}\nMetric: {payload['metric']}\n"
        f"Value: {value}\nAt: {payload['at']}\nAlert: {payload['alert_id']}\n{extra}"
    )
    return subject, body


def email_message(notification: Notification, sender: str) -> EmailMessage:
    """The email of a notification (or of a digest of several): who and what in the
    subject, the facts in the body, the event id in a header and in the Message-ID
    (mail systems drop repeats of one)."""
    subject, body = _subject_and_body(json.loads(notification.payload))
    message = EmailMessage()
    message["From"] = sender
    message["To"] = notification.recipient
    message["Subject"] = subject
    message["Message-ID"] = f"<{notification.event_id}@sensorium>"
    message["X-Sensorium-Event-Id"] = str(notification.event_id)
    message.set_content(body)
    return message


class SmtpSender:
    def __init__(self, options: SmtpOptions, *, concurrency: int = 4) -> None:
        self._options = options
        self._limiter = trio.CapacityLimiter(concurrency)
        self._tls = ssl.create_default_context(
            cafile=str(options.ca_file) if options.ca_file else None
        )

    def _send(self, message: EmailMessage) -> None:
        options = self._options
        with smtplib.SMTP(options.host, options.port, timeout=options.timeout_s) as smtp:
            smtp.ehlo()
            if options.starttls:
                smtp.starttls(context=self._tls)
                smtp.ehlo()
            if options.username:
                smtp.login(options.username, options.password or "")
            smtp.send_message(message)

    async def __call__(self, notification: Notification) -> Outcome:
        message = email_message(notification, self._options.sender)
        try:
            await trio.to_thread.run_sync(self._send, message, limiter=self._limiter)
        except smtplib.SMTPAuthenticationError as exc:
            # Our credentials, not the message: wait for them to be fixed, lose nothing.
            return Outcome("retry", f"SMTP login refused {exc.smtp_code}: {exc.smtp_error!r}")
        except smtplib.SMTPResponseException as exc:
            error = f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"
            return Outcome("failed" if exc.smtp_code >= 500 else "retry", error)
        except smtplib.SMTPRecipientsRefused as exc:
            return Outcome("failed", f"recipient refused: {exc.recipients}")
        except (OSError, smtplib.SMTPException) as exc:
            return Outcome("retry", f"{type(exc).__name__}: {exc}")
        return Outcome("sent")


class SendgridSender:
    """Email through SendGrid's v3 mail-send API with its SDK (blocking: worker threads
    under a CapacityLimiter); ``base_url`` points it elsewhere (a stand-in in tests)."""

    def __init__(self, api_key: str, *, sender: str, base_url: str, concurrency: int = 4) -> None:
        self._client = SendGridAPIClient(api_key=api_key, host=base_url)
        self._sender = sender
        self._limiter = trio.CapacityLimiter(concurrency)

    def _send(self, notification: Notification) -> None:
        message = email_message(notification, self._sender)
        mail = Mail(
            from_email=self._sender,
            to_emails=notification.recipient,
            subject=str(message["Subject"]),
            plain_text_content=message.get_content(),
        )
        mail.add_header(Header("X-Sensorium-Event-Id", str(notification.event_id)))
        self._client.send(mail)

    async def __call__(self, notification: Notification) -> Outcome:
        try:
            await trio.to_thread.run_sync(self._send, notification, limiter=self._limiter)
        except HTTPError as exc:
            headers = exc.headers or {}
            return outcome_of_status(int(exc.status_code), headers.get("Retry-After"))
        except OSError as exc:
            return Outcome("retry", f"{type(exc).__name__}: {exc}")
        return Outcome("sent")
