"""Local stand-ins for SendGrid's v3 mail-send and Twilio's Messages API: real HTTP
servers speaking their wire protocol (paths, auth, bodies, status codes), answering the
statuses queued for them first, keeping what they accepted."""

from __future__ import annotations

import base64
import contextlib
import json
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from tests.support import serve_http

SENDGRID_KEY = "SG.test-key"
TWILIO_SID, TWILIO_TOKEN = "AC" + "0" * 32, "twilio-token"


@dataclass
class Standin:
    url: str = ""
    failures: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0
    failing_until: float = 0.0  # time.monotonic(): an outage, every call a 500 until then


@contextlib.contextmanager
def running_saas() -> Iterator[Standin]:
    state = Standin()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            state.calls += 1
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            auth = self.headers.get("Authorization", "")
            if time.monotonic() < state.failing_until:
                self._answer(500, {"message": "stand-in outage"}, {})
            elif state.failures:
                status, headers = state.failures.pop(0)
                self._answer(status, {"errors": [{"message": "stand-in failure"}]}, headers)
            elif self.path == "/v3/mail/send":
                if auth != f"Bearer {SENDGRID_KEY}":
                    self._answer(401, {"errors": [{"message": "bad key"}]}, {})
                    return
                body = json.loads(raw)
                state.accepted.append({"kind": "email", "received_at": time.time(), **body})
                self._answer(202, {}, {})
            elif self.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json":
                expected = base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
                if auth != f"Basic {expected}":
                    self._answer(401, {"code": 20003, "message": "Authenticate"}, {})
                    return
                form = {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
                if not form.get("To", "").startswith("+"):
                    self._answer(400, {"code": 21211, "message": "Invalid 'To'"}, {})
                    return
                state.accepted.append({"kind": "sms", "received_at": time.time(), **form})
                self._answer(
                    201,
                    {"sid": "SM" + "1" * 32, "status": "queued", "to": form["To"],
                     "from": form.get("From"), "body": form.get("Body")},
                    {},
                )  # fmt: skip
            else:
                self._answer(404, {"message": "no such endpoint"}, {})

        def log_message(self, *args: Any) -> None:
            pass

    with serve_http(Handler) as url:
        state.url = url
        yield state


@pytest.fixture
def saas() -> Iterator[Standin]:
    with running_saas() as state:
        yield state
