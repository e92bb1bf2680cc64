"""schemathesis against our own /openapi.json: generated requests to every documented
operation, with a valid access token, never get a 5xx, and every answer whose status
the schema documents matches the documented shape.

(schemathesis' pytest plugin does not run under pytest 9 here, so each operation's
strategy is driven with hypothesis directly.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from tests.s3_standin import running_moto, s3_env
from tests.support import StackHandle

ADMIN = {"email": "admin@example.com", "password": "correct horse battery staple"}


def _checker(
    operation: Any, base_url: str, headers: dict[str, str], statuses: dict[str, set[int]]
) -> Any:
    @settings(
        max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        response = case.call_and_validate(
            base_url=base_url,
            headers=headers,
            checks=[not_a_server_error, response_schema_conformance],
            timeout=30,
        )
        statuses.setdefault(operation.label, set()).add(response.status_code)

    return check


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[StackHandle]:
    """A stack of its own: generated requests make tenants, users and devices, and
    hundreds of failed logins from 127.0.0.1 (allowed here, where the default would
    throttle the address for the other tests)."""
    with running_moto() as s3:  # exports write to object storage
        handle = StackHandle.create(
            extra_env={
                "SENSORIUM_AUTH__LOGIN_ATTEMPTS_PER_ADDRESS": "100000",
                "SENSORIUM_AUTH__REQUESTS_PER_USER_PER_S": "10000",
                **s3_env(s3, "fuzzed-exports"),
            }
        )
        try:
            handle.up()
            yield handle
        finally:
            handle.down("--purge")


def test_no_operation_answers_5xx(fuzzed: StackHandle) -> None:
    stack = fuzzed
    schema = schemathesis.openapi.from_url(f"{stack.http_url}/openapi.json")
    token = httpx.post(f"{stack.http_url}/api/v1/auth/login", json=ADMIN).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    statuses: dict[str, set[int]] = {}
    for operation in operations:
        _checker(operation, stack.http_url, headers, statuses)()
    # Something was sent to every operation, and every answer was below 500.
    assert set(statuses) == {operation.label for operation in operations}
    assert all(code < 500 for codes in statuses.values() for code in codes), statuses


def test_real_answers_match_their_documented_shapes(fuzzed: StackHandle) -> None:
    """Generated requests mostly meet 4xx; here every documented success answer is
    produced for real, with non-empty lists, and validated against /openapi.json."""
    stack = fuzzed
    schema = schemathesis.openapi.from_url(f"{stack.http_url}/openapi.json")
    client = httpx.Client(base_url=stack.http_url, timeout=30)
    validated: list[str] = []

    def call(method: str, path: str, template: str | None = None, **kwargs: Any) -> Any:
        response = client.request(method, path, **kwargs)
        assert response.status_code < 300, (method, path, response.text)
        operation = schema[template or path][method.upper()]
        operation.validate_response(response)  # raises on a shape the schema does not allow
        validated.append(f"{method} {template or path}")
        return response.json() if response.content else None

    login = call("post", "/api/v1/auth/login", json=ADMIN)
    auth = {"Authorization": f"Bearer {login['access_token']}"}
    call("post", "/api/v1/auth/refresh", json={"refresh_token": login["refresh_token"]})
    device = call("post", "/api/v1/devices", headers=auth, json={"name": "shape", "tags": ["a"]})
    one = "/api/v1/devices/{device_id}"
    path = f"/api/v1/devices/{device['id']}"
    device_auth = {"Authorization": f"Bearer {device['token']}"}
    now_ms = int(time.time() * 1000)
    receipt = call(
        "post",
        "/api/v1/telemetry",
        headers=device_auth,
        json=[
            {"ts": now_ms, "seq": 1, "metrics": {"temperature": 21.5}},
            {"ts": now_ms, "seq": 2, "metrics": {"bad name": 1}},
        ],
    )
    assert receipt["accepted"] == 1 and len(receipt["rejected"]) == 1, receipt
    listed = call("get", "/api/v1/devices", headers=auth)
    assert listed["items"]
    call("get", path, one, headers=auth)
    call("patch", path, one, headers=auth, json={"tags": ["b"]})
    call("get", f"{path}/latest", one + "/latest", headers=auth)
    for params in ({"metric": "temperature"}, {"metric": "temperature", "bucket": "1m"}):
        series = call("get", f"{path}/telemetry", one + "/telemetry", headers=auth, params=params)
        assert series["points"], params
    ranked = call("get", "/api/v1/fleet/summary", headers=auth, params={"metric": "temperature"})
    assert ranked["devices"]
    letters = call("get", "/api/v1/dead-letters", headers=auth)
    assert letters["items"]
    call("post", f"{path}/token", one + "/token", headers=auth)
    call("get", "/api/v1/users", headers=auth)
    rule = {
        "name": "too warm",
        "scope": {"device_id": device["id"]},
        "metric": "temperature",
        "condition": {"op": ">", "threshold": 30, "clear": 28},
        "channels": [{"type": "webhook", "url": "https://example.com/h", "secret": "s" * 20}],
    }
    created = call("post", "/api/v1/alert-rules", headers=auth, json=rule)
    rules, one_rule = "/api/v1/alert-rules", "/api/v1/alert-rules/{rule_id}"
    call("get", rules, headers=auth)
    call("get", f"{rules}/{created['id']}", one_rule, headers=auth)
    call("patch", f"{rules}/{created['id']}", one_rule, headers=auth, json={"enabled": False})
    call("get", "/api/v1/alerts", headers=auth)
    password = "long enough password"
    user = {"email": "shape@example.com", "password": password, "role": "viewer"}
    call("post", "/api/v1/users", headers=auth, json=user)
    call("get", "/api/v1/tenants", headers=auth)
    tenant = {"name": "shapes", "admin_email": "a@shapes.example", "admin_password": password}
    call("post", "/api/v1/tenants", headers=auth, json=tenant)
    client.close()
    assert len(validated) == 22
