"""`/api/v1/alert-rules` end to end: a tenant's rules are created, listed, read, changed
and deleted; bad rules are a 400 naming the field; viewers read only; another tenant's
rule is a 404; webhook secrets never come back."""

from __future__ import annotations

from typing import Any

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import StackHandle, new_user_token

ADMIN = ("admin@example.com", "correct horse battery staple")


def _token(stack: StackHandle, email: str, password: str) -> str:
    response = httpx.post(
        f"{stack.http_url}/api/v1/auth/login", json={"email": email, "password": password}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _api(stack: StackHandle, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(
        method,
        f"{stack.http_url}/api/v1{path}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        **kwargs,
    )


def _rule(device_id: str, **changes: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "name": "freezer too warm",
        "scope": {"device_id": device_id},
        "metric": "temperature",
        "condition": {"op": ">", "threshold": -15, "clear": -17, "for_s": 60},
        "severity": "critical",
        "channels": [
            {"type": "email", "to": "ops@example.com"},
            {"type": "sms", "to": "+15550100"},
            {"type": "webhook", "url": "https://hooks.example.com/x", "secret": "s" * 24},
        ],
        "renotify_s": 3600,
        "quiet_hours": {"start": "22:00", "end": "06:30", "timezone": "Europe/Berlin"},
    }
    rule.update(changes)
    return rule


def test_a_rule_is_created_listed_read_changed_and_deleted(stack: StackHandle) -> None:
    admin = _token(stack, *ADMIN)
    device = _api(stack, "POST", "/devices", admin, json={"name": "freezer"}).json()
    created = _api(stack, "POST", "/alert-rules", admin, json=_rule(device["id"]))
    assert created.status_code == 201, created.text
    rule = created.json()
    assert created.headers["Location"] == f"/api/v1/alert-rules/{rule['id']}"
    assert rule["condition"] == {
        "op": ">", "threshold": -15.0, "high": None, "clear": -17.0, "for_s": 60.0,
        "clear_for_s": 0.0,
    }  # fmt: skip
    assert rule["enabled"] and rule["severity"] == "critical"
    assert rule["channels"][2] == {"type": "webhook", "url": "https://hooks.example.com/x"}
    assert rule["quiet_hours"] == {"start": "22:00:00", "end": "06:30:00",
                                   "timezone": "Europe/Berlin"}  # fmt: skip
    path = f"/alert-rules/{rule['id']}"
    assert rule["id"] in [
        r["id"] for r in _api(stack, "GET", "/alert-rules", admin).json()["items"]
    ]
    assert _api(stack, "GET", path, admin).json() == rule
    changed = _api(
        stack, "PATCH", path, admin,
        json={"enabled": False, "condition": {"no_data_s": 600}, "renotify_s": None,
              "quiet_hours": None},
    )  # fmt: skip
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["enabled"], body["condition"], body["renotify_s"], body["quiet_hours"]) == (
        False, {"no_data_s": 600.0}, None, None,
    )  # fmt: skip
    assert body["name"] == rule["name"] and body["updated_at"] > rule["updated_at"]
    assert _api(stack, "DELETE", path, admin).status_code == 204
    assert _api(stack, "GET", path, admin).status_code == 404
    assert _api(stack, "DELETE", path, admin).status_code == 404


def test_bad_rules_are_400_naming_the_field(stack: StackHandle) -> None:
    admin = _token(stack, *ADMIN)
    device = _api(stack, "POST", "/devices", admin, json={"name": "meter"}).json()
    for changes, field in (
        ({"condition": {"op": ">", "threshold": 5, "clear": 9}}, "condition"),
        ({"condition": {"op": "outside", "threshold": 5}}, "condition"),
        ({"condition": {"rate_per_s": 0, "window_s": 60}}, "condition"),
        ({"scope": {"device_id": "no-such-device"}}, "scope.device_id"),
        ({"scope": {"tenant": False}}, "scope"),
        ({"metric": "Temperature!"}, "metric"),
        ({"severity": "apocalyptic"}, "severity"),
        ({"channels": [{"type": "sms", "to": "5550100"}]}, "channels"),
        ({"channels": [{"type": "webhook", "url": "ftp://x", "secret": "s" * 20}]}, "channels"),
        ({"channels": [{"type": "webhook", "url": "https://x", "secret": "short"}]}, "channels"),
        ({"renotify_s": 5}, "renotify_s"),
        (
            {"quiet_hours": {"start": "22:00", "end": "07:00", "timezone": "Mars/Base"}},
            "quiet_hours.timezone",
        ),
        ({"quiet_hours": {"start": "07:00", "end": "07:00"}}, "quiet_hours"),
        ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "quiet_hours.start"),
        ({"colour": "red"}, "colour"),
    ):
        answer = _api(stack, "POST", "/alert-rules", admin, json=_rule(device["id"], **changes))
        assert answer.status_code == 400, (changes, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert field in answer.text, (field, answer.text)
    created = _api(stack, "POST", "/alert-rules", admin, json=_rule(device["id"])).json()
    nulled = _api(stack, "PATCH", f"/alert-rules/{created['id']}", admin, json={"name": None})
    assert nulled.status_code == 400


def test_viewers_read_only_and_tenants_see_only_their_rules(stack: StackHandle) -> None:
    admin = _token(stack, *ADMIN)
    device = _api(stack, "POST", "/devices", admin, json={"name": "door"}).json()
    rule = _api(stack, "POST", "/alert-rules", admin, json=_rule(device["id"])).json()
    path = f"/alert-rules/{rule['id']}"
    viewer = new_user_token(stack, "viewer", "default")
    assert _api(stack, "GET", path, viewer).status_code == 200
    assert _api(stack, "POST", "/alert-rules", viewer, json=_rule(device["id"])).status_code == 403
    assert _api(stack, "PATCH", path, viewer, json={"enabled": False}).status_code == 403
    assert _api(stack, "DELETE", path, viewer).status_code == 403
    stranger = new_user_token(stack, "admin", "elsewhere")
    for method, kwargs in (("GET", {}), ("PATCH", {"json": {"enabled": False}}), ("DELETE", {})):
        assert _api(stack, method, path, stranger, **kwargs).status_code == 404, method
    assert rule["id"] not in [
        r["id"] for r in _api(stack, "GET", "/alert-rules", stranger).json()["items"]
    ]
    # A rule in the stranger's tenant may not name our device either.
    refused = _api(stack, "POST", "/alert-rules", stranger, json=_rule(device["id"]))
    assert refused.status_code == 400
    assert _api(stack, "GET", "/alert-rules/0", admin).status_code == 404
    assert _api(stack, "GET", "/alert-rules/x1", admin).status_code == 404


@settings(max_examples=60, deadline=None)
@given(condition=st.dictionaries(
    st.sampled_from(["op", "threshold", "high", "clear", "for_s", "clear_for_s", "rate_per_s",
                     "window_s", "no_data_s"]),
    st.one_of(st.sampled_from([">", "<", "outside", "=", None, True]),
              st.floats(allow_nan=False, allow_infinity=False, width=32), st.integers(-10, 10)),
))  # fmt: skip
def test_any_condition_is_stored_or_refused_never_a_5xx(
    stack: StackHandle, condition: dict[str, Any]
) -> None:
    admin = _token(stack, *ADMIN)
    rule = _rule("x", scope={"tenant": True}, condition=condition, channels=[])
    answer = _api(stack, "POST", "/alert-rules", admin, json=rule)
    assert answer.status_code in (201, 400), answer.text
    if answer.status_code == 201:
        _api(stack, "DELETE", f"/alert-rules/{answer.json()['id']}", admin)


def test_a_nul_anywhere_in_a_body_is_a_400_naming_where(stack: StackHandle) -> None:
    """PostgreSQL cannot store U+0000 (schemathesis found one in a webhook secret)."""
    admin = _token(stack, *ADMIN)
    rule = _rule("x", scope={"tenant": True})
    rule["channels"][2]["secret"] = "s" * 20 + "\x00"
    answer = _api(stack, "POST", "/alert-rules", admin, json=rule)
    assert answer.status_code == 400, answer.text
    assert "body.channels[2].secret: NUL character" in answer.text
    device = _api(stack, "POST", "/devices", admin, json={"name": "a\x00b"})
    assert device.status_code == 400 and "body.name" in device.text
