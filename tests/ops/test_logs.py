"""JSON log lines carry the request id (the caller's X-Request-Id, or a new one, sent
back in the answer), and the device and tenant where a device made the request."""

from __future__ import annotations

import json

import httpx

from tests.support import StackHandle, wait_for


def test_a_refused_request_logs_one_json_line_with_request_device_and_tenant(
    stack: StackHandle,
) -> None:
    device = stack.create_device("log-probe")
    answer = httpx.post(
        f"{stack.http_url}/api/v1/telemetry",
        headers={"Authorization": f"Bearer {device['token']}", "X-Request-Id": "trace-log-0001",
                 "Content-Type": "application/json"},
        content=b'{"ts": 1, "metrics": ',
        timeout=30,
    )  # fmt: skip
    assert answer.status_code == 400 and answer.headers["X-Request-Id"] == "trace-log-0001"
    fresh = httpx.get(f"{stack.http_url}/healthz", headers={"X-Request-Id": "bad id!"})
    assert len(fresh.headers["X-Request-Id"]) == 32  # not a sane id: a new one
    log_file = stack.state_dir / "logs" / "sensorium.log"

    def line() -> dict[str, object] | None:
        for text in log_file.read_text(errors="replace").splitlines():
            if "trace-log-0001" in text:
                found: dict[str, object] = json.loads(text)
                return found
        return None

    entry = wait_for(line, timeout=10)
    assert entry["event"] == "request refused" and entry["status"] == 400
    assert entry["request_id"] == "trace-log-0001" and entry["device_id"] == device["id"]
    assert entry["route"] == "/api/v1/telemetry" and entry["level"] == "info"
    assert entry["tenant_id"] == device["tenant_id"] and "time" in entry
