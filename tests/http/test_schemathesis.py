"""schemathesis against our own /openapi.json: generated requests to every documented
operation, with a valid access token, never get a 5xx.

(schemathesis' pytest plugin does not run under pytest 9 here, so each operation's
strategy is driven with hypothesis directly.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

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
            base_url=base_url, headers=headers, checks=[not_a_server_error], timeout=30
        )
        statuses.setdefault(operation.label, set()).add(response.status_code)

    return check


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[StackHandle]:
    """A stack of its own: generated requests make tenants, users and devices, and
    hundreds of failed logins from 127.0.0.1 (allowed here, where the default would
    throttle the address for the other tests)."""
    handle = StackHandle.create(
        extra_env={
            "SENSORIUM_AUTH__LOGIN_ATTEMPTS_PER_ADDRESS": "100000",
            "SENSORIUM_AUTH__REQUESTS_PER_USER_PER_S": "10000",
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
