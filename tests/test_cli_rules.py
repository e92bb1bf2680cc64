"""`sensorium rule create|list|update|delete`: alert rules from the command line, checked
by the HTTP API's own models, stored where the API (and the engine) read them."""

from __future__ import annotations

import json

import httpx

from tests.support import StackHandle

ADMIN = {"email": "admin@example.com", "password": "correct horse battery staple"}


def test_a_rule_is_created_listed_changed_and_deleted_from_the_command_line(
    stack: StackHandle,
) -> None:
    device = stack.create_device("cli-freezer")
    rule = {
        "name": "freezer too warm (cli)", "scope": {"device_id": device["id"]},
        "metric": "temperature", "condition": {"op": ">", "threshold": -15, "clear": -17},
        "severity": "critical", "channels": [{"type": "email", "to": "ops@example.com"}],
        "quiet_hours": {"start": "22:00", "end": "06:00", "timezone": "Europe/Paris"},
    }  # fmt: skip
    created = json.loads(stack.cli("rule", "create", json.dumps(rule), "--json").stdout)
    assert created["name"] == rule["name"] and created["enabled"]
    assert created["quiet_hours"]["timezone"] == "Europe/Paris"
    # The API sees the very rule.
    token = httpx.post(f"{stack.http_url}/api/v1/auth/login", json=ADMIN).json()["access_token"]
    seen = httpx.get(
        f"{stack.http_url}/api/v1/alert-rules/{created['id']}",
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert seen == created
    listed = [json.loads(line) for line in stack.cli("rule", "list", "--json").stdout.splitlines()]
    assert created["id"] in [r["id"] for r in listed]
    text = stack.cli("rule", "list").stdout
    assert f"rule {created['id']} 'freezer too warm (cli)' (critical, enabled)" in text
    changed = stack.cli("rule", "update", str(created["id"]), '{"enabled": false}').stdout
    assert "(critical, disabled)" in changed
    assert stack.cli("rule", "delete", str(created["id"])).stdout.strip() == (
        f"deleted rule {created['id']}"
    )
    again = stack.cli("rule", "delete", str(created["id"]), check=False)
    assert again.returncode == 2 and f"no alert rule {created['id']}" in again.stderr


def test_bad_rules_stop_the_command_naming_the_field(stack: StackHandle) -> None:
    for body, expected in (
        ('{"name": "x", "scope": {"tenant": true}, "metric": "t", '
         '"condition": {"op": ">", "threshold": 5, "clear": 9}}', "condition"),
        ('{"name": "x", "scope": {"device_id": "no-such-device"}, "metric": "t", '
         '"condition": {"no_data_s": 60}}', "scope.device_id: no device"),
        ("not json", "invalid rule"),
        ('{"name": "a\\u0000b"}', "NUL"),
    ):  # fmt: skip
        result = stack.cli("rule", "create", body, check=False)
        assert result.returncode == 2, (body, result.stdout)
        assert expected in result.stderr, (expected, result.stderr)
    unknown = stack.cli("rule", "list", "--tenant", "nobody-here", check=False)
    assert unknown.returncode == 2 and "no tenant named 'nobody-here'" in unknown.stderr
