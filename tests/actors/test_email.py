"""Email over SMTP against a real SMTP server (aiosmtpd, with STARTTLS on a certificate
made here and a login): delivered with the event id; a refused login or an unreachable
server is tried again; a refused recipient fails for good."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import uuid
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
import trio
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sensorium.actors._email import SmtpOptions, SmtpSender
from sensorium.actors._notifier import Outcome
from sensorium.storage import Notification

USER, PASSWORD = "sensorium", "smtp-password"


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = folder / "smtp.pem", folder / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted"


def _authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(), PASSWORD.encode(),
    )  # fmt: skip
    return AuthResult(success=ok)


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[tuple[_Inbox, int, Path]]:
    import ssl

    cert_file, key_file = _certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    inbox = _Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # A plain asyncio loop of its own (trio-asyncio's policy would hand out its own).
    loop = asyncio.SelectorEventLoop()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, loop=loop, tls_context=context,
        require_starttls=True,
        authenticator=_authenticate, auth_required=True, server_hostname="localhost",
    )  # fmt: skip
    controller.start()
    try:
        yield inbox, port, cert_file
    finally:
        controller.stop()
        loop.close()


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
    smtp_server: tuple[_Inbox, int, Path],
) -> None:
    inbox, port, ca = smtp_server
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
    smtp_server: tuple[_Inbox, int, Path],
) -> None:
    inbox, port, ca = smtp_server
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


def test_a_refused_recipient_fails_for_good(smtp_server: tuple[_Inbox, int, Path]) -> None:
    inbox, port, ca = smtp_server
    options = SmtpOptions(host="localhost", port=port, username=USER, password=PASSWORD,
                          ca_file=ca)  # fmt: skip
    outcome = _send(options, _notification("nobody@example.com"))
    assert outcome.kind == "failed" and "nobody@example.com" in outcome.error
    assert inbox.messages == []
