"""A local webhook receiver for tests: a real HTTP server that answers with the statuses
queued for it (then 200) and keeps every request it got."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from tests.support import serve_http


@dataclass
class Receiver:
    """Answers with the statuses queued (then 200), after ``delay_s``, keeping every
    request it got and the event ids it answered 2xx (a sender that stops waiting in
    between may not know that it was delivered)."""

    url: str = ""
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[tuple[float, dict[str, str], bytes]] = field(default_factory=list)
    delay_s: float = 0.0
    answered: list[str] = field(default_factory=list)


@contextlib.contextmanager
def running_receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append((time.time(), dict(self.headers.items()), body))
            status, headers = state.answers.pop(0) if state.answers else (200, {})
            time.sleep(state.delay_s)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
            if 200 <= status < 300:
                state.answered.append(self.headers.get("X-Sensorium-Event-Id", ""))

        def log_message(self, *args: Any) -> None:
            pass

    with serve_http(Handler) as url:
        state.url = url + "/hook"
        yield state


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as state:
        yield state


def signature_ok(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Checks `X-Sensorium-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`."""
    parts = dict(part.split("=", 1) for part in headers["X-Sensorium-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(parts["v1"], expected.hexdigest())
