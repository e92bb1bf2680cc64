"""Alerts end to end on the real stack: readings sent over HTTPS cross a rule's
threshold, the device actor's rule opens an alert, the alert actor records it with its
outbox row, and the webhook notifier delivers one signed webhook to a local receiver;
readings back below the clear threshold resolve it with one more."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import httpx

from tests.support import StackHandle, db_fetch, new_user_token, wait_for
from tests.webhook_receiver import Receiver, signature_ok

ADMIN = {"email": "admin@example.com", "password": "correct horse battery staple"}
SECRET = "an-end-to-end-webhook-secret"


def _post(stack: StackHandle, token: str, path: str, body: Any) -> httpx.Response:
    return httpx.post(
        f"{stack.http_url}/api/v1{path}",
        headers={"Authorization": f"Bearer {token}"},
        json=body,
        timeout=30,
    )


def test_a_threshold_crossing_sends_one_webhook_and_its_return_resolves_it(
    stack: StackHandle, receiver: Receiver
) -> None:
    admin = httpx.post(f"{stack.http_url}/api/v1/auth/login", json=ADMIN).json()["access_token"]
    device = _post(stack, admin, "/devices", {"name": "cold-room"}).json()
    rule = _post(
        stack,
        admin,
        "/alert-rules",
        {
            "name": "cold room too warm",
            "scope": {"device_id": device["id"]},
            "metric": "temperature",
            "condition": {"op": ">", "threshold": 8, "clear": 5},
            "severity": "critical",
            "channels": [{"type": "webhook", "url": receiver.url, "secret": SECRET}],
        },
    ).json()
    now_ms = int(time.time() * 1000)
    sent = iter(range(10_000))

    def send(value: float) -> None:
        answer = _post(
            stack, device["token"], "/telemetry",
            {"ts": now_ms + next(sent), "metrics": {"temperature": value}},
        )  # fmt: skip
        assert answer.status_code == 200, answer.text

    def alert_state() -> str | None:
        rows = db_fetch(stack.db_url(), "SELECT state FROM alerts WHERE rule_id = $1", rule["id"])
        return rows[0]["state"] if rows else None

    send(4.0)
    # The engine picks the new rule up within a second or two: keep the readings
    # breaching until it has (the rule opens once, however many breach).
    wait_for(lambda: send(9.5) is None and alert_state() == "open", timeout=30)
    send(7.0)  # between clear and threshold: still open (hysteresis)
    wait_for(lambda: len(receiver.requests) >= 1, timeout=30)
    send(4.5)  # below clear: resolved
    wait_for(lambda: alert_state() == "resolved", timeout=30)
    wait_for(lambda: len(receiver.requests) >= 2, timeout=30)
    time.sleep(1.5)  # a further notifier pass sends nothing more
    assert len(receiver.requests) == 2
    bodies = [json.loads(body) for _, _, body in receiver.requests]
    assert [b["state"] for b in bodies] == ["open", "resolved"]
    assert bodies[0]["value"] == 9.5 and bodies[1]["value"] == 4.5
    assert all(b["device_id"] == device["id"] and b["rule"]["id"] == rule["id"] for b in bodies)
    ids = [h["X-Sensorium-Event-Id"] for _, h, _ in receiver.requests]
    assert len(set(ids)) == 2 and ids == [b["event_id"] for b in bodies]
    assert all(signature_ok(SECRET, h, body) for _, h, body in receiver.requests)
    outbox = db_fetch(
        stack.db_url(),
        "SELECT o.status FROM notification_outbox o JOIN alerts a ON a.id = o.alert_id "
        "WHERE a.rule_id = $1",
        rule["id"],
    )
    assert [r["status"] for r in outbox] == ["sent", "sent"]


def test_a_device_gone_quiet_opens_a_no_data_alert_and_its_next_reading_resolves_it(
    stack: StackHandle, receiver: Receiver
) -> None:
    admin = httpx.post(f"{stack.http_url}/api/v1/auth/login", json=ADMIN).json()["access_token"]
    device = _post(stack, admin, "/devices", {"name": "quiet-meter"}).json()

    def send() -> None:
        answer = _post(
            stack, device["token"], "/telemetry",
            {"ts": int(time.time() * 1000), "metrics": {"power": 1.5}},
        )  # fmt: skip
        assert answer.status_code == 200, answer.text

    send()
    rule = _post(
        stack,
        admin,
        "/alert-rules",
        {
            "name": "meter went quiet",
            "scope": {"device_id": device["id"]},
            "metric": "power",
            "condition": {"no_data_s": 2},
            "channels": [{"type": "webhook", "url": receiver.url, "secret": SECRET}],
        },
    ).json()
    wait_for(lambda: len(receiver.requests) >= 1, timeout=40)  # quiet for 2 s: opened
    send()
    wait_for(lambda: len(receiver.requests) >= 2, timeout=40)  # spoke again: resolved
    bodies = [json.loads(body) for _, _, body in receiver.requests[:2]]
    assert [(b["state"], b["value"], b["rule"]["id"]) for b in bodies] == [
        ("open", None, rule["id"]),
        ("resolved", None, rule["id"]),
    ]
    states = db_fetch(
        stack.db_url(), "SELECT state FROM alerts WHERE rule_id = $1 ORDER BY id", rule["id"]
    )
    assert states[0]["state"] == "resolved"
    httpx.delete(
        f"{stack.http_url}/api/v1/alert-rules/{rule['id']}",
        headers={"Authorization": f"Bearer {admin}"},
    )


def test_alerts_are_listed_acknowledged_once_and_keep_their_history(
    stack: StackHandle, receiver: Receiver
) -> None:
    admin = httpx.post(f"{stack.http_url}/api/v1/auth/login", json=ADMIN).json()["access_token"]
    auth = {"Authorization": f"Bearer {admin}"}
    device = _post(stack, admin, "/devices", {"name": "boiler"}).json()
    rule = _post(
        stack, admin, "/alert-rules",
        {"name": "boiler hot", "scope": {"device_id": device["id"]}, "metric": "temperature",
         "condition": {"op": ">=", "threshold": 90}, "channels": []},
    ).json()  # fmt: skip
    now_ms = int(time.time() * 1000)
    sent = iter(range(10_000))

    def send(value: float) -> None:
        body = {"ts": now_ms + next(sent), "metrics": {"temperature": value}}
        assert _post(stack, device["token"], "/telemetry", body).status_code == 200

    def listed(**params: Any) -> list[dict[str, Any]]:
        answer = httpx.get(f"{stack.http_url}/api/v1/alerts", headers=auth, params=params)
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        return items

    wait_for(
        lambda: send(95.0) is None and bool(listed(state="open", device_id=device["id"])),
        timeout=30,
    )
    [alert] = listed(device_id=device["id"])
    assert (alert["rule"]["id"], alert["state"], alert["value"]) == (rule["id"], "open", 95.0)
    assert listed(state="resolved", device_id=device["id"]) == []
    ack = f"{stack.http_url}/api/v1/alerts/{alert['id']}/ack"
    viewer = new_user_token(stack, "viewer", "default")
    assert httpx.post(ack, headers={"Authorization": f"Bearer {viewer}"}).status_code == 403
    stranger = {"Authorization": f"Bearer {new_user_token(stack, 'admin', 'faraway')}"}
    assert httpx.post(ack, headers=stranger).status_code == 404
    history_url = f"{stack.http_url}/api/v1/alerts/{alert['id']}/history"
    assert httpx.get(history_url, headers=stranger).status_code == 404
    done = httpx.post(ack, headers=auth)
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "acknowledged" and done.json()["acknowledged_by"] == 1
    assert httpx.post(ack, headers=auth).status_code == 409  # only an open alert
    send(20.0)  # back to normal: the acknowledged alert resolves
    wait_for(lambda: listed(device_id=device["id"])[0]["state"] == "resolved", timeout=30)
    events = httpx.get(history_url, headers=auth).json()["items"]
    assert [(e["kind"], e["actor"]) for e in events] == [
        ("opened", "engine"), ("acknowledged", "user:1"), ("resolved", "engine"),
    ]  # fmt: skip
    bad = httpx.get(f"{stack.http_url}/api/v1/alerts", headers=auth, params={"state": "x"})
    assert bad.status_code == 400


def test_durations_in_real_time_a_breach_must_hold_and_so_must_the_clear(
    stack: StackHandle, receiver: Receiver
) -> None:
    """Readings sent every 0.5 s of real time, stamped with it: the breach must hold 2 s
    before the alert opens, the clear 1.5 s before it resolves; a short dip starts the
    wait again."""
    admin = httpx.post(f"{stack.http_url}/api/v1/auth/login", json=ADMIN).json()["access_token"]
    device = _post(stack, admin, "/devices", {"name": "slow-freezer"}).json()
    rule = _post(stack, admin, "/alert-rules", {
        "name": "freezer warm for a while", "scope": {"device_id": device["id"]},
        "metric": "temperature",
        "condition": {"op": ">", "threshold": -15, "for_s": 2, "clear_for_s": 1.5},
        "channels": [{"type": "webhook", "url": receiver.url, "secret": SECRET}],
    }).json()  # fmt: skip
    time.sleep(2.5)  # the engine's rule book picks the rule up

    sent: list[tuple[int, float]] = []  # (ts in ms, value) of each reading

    def send_for(seconds: float, value: float) -> None:
        end = time.time() + seconds
        while time.time() < end:
            ts_ms = int(time.time() * 1000)
            answer = _post(
                stack, device["token"], "/telemetry",
                {"ts": ts_ms, "metrics": {"temperature": value}},
            )  # fmt: skip
            assert answer.status_code == 200, answer.text
            sent.append((ts_ms, value))
            time.sleep(0.5)

    def states() -> list[str]:
        return [json.loads(body)["state"] for _, _, body in receiver.requests]

    send_for(1.2, -10.0)  # breach, but not 2 s of it
    send_for(0.6, -20.0)  # a dip: the wait starts again
    send_for(1.6, -10.0)  # 1.6 s of breach: still nothing
    time.sleep(1.0)
    assert states() == []
    send_for(1.5, -10.0)  # now more than 2 s of it
    wait_for(lambda: states() == ["open"], timeout=30)
    send_for(1.0, -20.0)  # cleared for 1 s: not yet
    time.sleep(1.0)
    assert states() == ["open"]
    send_for(1.5, -20.0)  # past 1.5 s
    wait_for(lambda: states() == ["open", "resolved"], timeout=30)
    opened, resolved = (json.loads(body) for _, _, body in receiver.requests)
    assert opened["rule"]["id"] == rule["id"] and resolved["rule"]["id"] == rule["id"]

    def first_held(value: float, hold_ms: int, after: int = 0) -> int:
        """The time of the first reading ``hold_ms`` into an unbroken run of ``value``."""
        start = None
        for ts_ms, v in sent[after:]:
            if v != value:
                start = None
                continue
            start = ts_ms if start is None else start
            if ts_ms - start >= hold_ms:
                return ts_ms
        raise AssertionError(f"no run of {value} held {hold_ms} ms")

    def at_ms(body: dict[str, Any]) -> int:
        return round(dt.datetime.fromisoformat(body["at"]).timestamp() * 1000)

    assert at_ms(opened) == first_held(-10.0, 2000)
    assert (opened["value"], resolved["value"]) == (-10.0, -20.0)
    after_open = next(i for i, (ts_ms, _) in enumerate(sent) if ts_ms == at_ms(opened))
    assert at_ms(resolved) == first_held(-20.0, 1500, after_open)
