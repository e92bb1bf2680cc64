"""The webhook notifier against a real receiver (a local HTTP server checking the
signature) and a real outbox: delivered once and signed; through an outage and a 429
with Retry-After, every attempt with the same event id, sent in the end; failed for good
on a 4xx or after the last attempt, with the error kept."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from typing import Any

import httpx
import pytest
import trio

from sensorium.actors import Notifier, NotifierOptions, WebhookSender
from sensorium.storage import (
    AlertTransition,
    connect,
    create_pool,
    ensure_tenant,
    record_alert_transitions,
)
from tests.support import StackHandle, db_fetch, fresh_database, run_trio
from tests.webhook_receiver import Receiver, signature_ok

SECRET = "a-webhook-secret-of-some-length"
_device_keys = itertools.count(1)


@pytest.fixture(scope="module")
def database(stack: StackHandle) -> str:
    url = fresh_database(stack, "notify")

    async def migrate() -> None:
        conn = await connect(url)
        try:
            tenant = await ensure_tenant(conn, "notify")
            await conn.execute(
                """INSERT INTO alert_rules (id, tenant_id, name, scope, metric, condition,
                                            severity)
                   OVERRIDING SYSTEM VALUE
                   VALUES (1, $1, 'r', '{"tenant": true}', 'temperature',
                           '{"op": ">", "threshold": 1}', 'warning')""",
                tenant,
            )
        finally:
            await conn.close()

    run_trio(migrate)
    return url


def _queue_webhook(url: str, receiver: Receiver) -> str:
    """Record an alert opening with one webhook channel; its outbox event id."""
    transition = AlertTransition(
        rule_id=1, rule_name="r", severity="warning", metric="temperature",
        channels=[{"type": "webhook", "url": receiver.url, "secret": SECRET}],
        device_key=next(_device_keys), device_id="dev-x", kind="open",
        at=dt.datetime.now(dt.UTC), value=3.5,
    )  # fmt: skip

    async def record() -> int | None:
        conn = await connect(url)
        try:
            return (await record_alert_transitions(conn, [transition]))[0]
        finally:
            await conn.close()

    alert_id = run_trio(record)
    rows = db_fetch(url, "SELECT event_id FROM notification_outbox WHERE alert_id = $1", alert_id)
    return str(rows[0]["event_id"])


def _deliver_until_settled(url: str, event_id: str, options: NotifierOptions) -> dict[str, Any]:
    async def go() -> None:
        pool = await create_pool(url, min_size=1, max_size=2)
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                notifier = Notifier(pool, "webhook", WebhookSender(client), options)
                with trio.fail_after(30):
                    while (
                        await pool.fetchval(
                            "SELECT status FROM notification_outbox WHERE event_id = $1::uuid",
                            event_id,
                        )
                        == "pending"
                    ):
                        await notifier.pass_once()
                        await trio.sleep(0.02)
        finally:
            await pool.close()

    run_trio(go)
    row = db_fetch(
        url,
        "SELECT status, attempts, last_error FROM notification_outbox WHERE event_id = $1::uuid",
        event_id,
    )[0]
    return dict(row)


def _signature_ok(headers: dict[str, str], body: bytes) -> bool:
    return signature_ok(SECRET, headers, body)


FAST = NotifierOptions(backoff_base_s=0.05, backoff_cap_s=0.2, poll_s=0.02)


def test_a_webhook_is_delivered_once_signed_with_its_event_id(
    database: str, receiver: Receiver
) -> None:
    event_id = _queue_webhook(database, receiver)
    row = _deliver_until_settled(database, event_id, FAST)
    assert (row["status"], row["attempts"]) == ("sent", 1)
    assert len(receiver.requests) == 1
    _, headers, body = receiver.requests[0]
    assert headers["X-Sensorium-Event-Id"] == event_id
    assert _signature_ok(headers, body)
    payload = json.loads(body)
    assert (payload["state"], payload["value"], payload["event_id"]) == ("open", 3.5, event_id)
    assert not _signature_ok(
        {"X-Sensorium-Signature": headers["X-Sensorium-Signature"]}, body + b" "
    )


def test_an_outage_and_a_429_delay_the_webhook_but_it_arrives_with_one_event_id(
    database: str, receiver: Receiver
) -> None:
    receiver.answers = [(500, {}), (503, {}), (429, {"Retry-After": "1"})]
    event_id = _queue_webhook(database, receiver)
    row = _deliver_until_settled(database, event_id, FAST)
    assert (row["status"], row["attempts"], row["last_error"]) == ("sent", 4, None)
    assert [h["X-Sensorium-Event-Id"] for _, h, _ in receiver.requests] == [event_id] * 4
    assert all(_signature_ok(h, b) for _, h, b in receiver.requests)
    # The receiver asked for a second after its 429, and got it (backoff alone: < 0.3 s).
    assert receiver.requests[3][0] - receiver.requests[2][0] >= 0.95


def test_a_4xx_fails_at_once_and_the_last_attempt_fails_for_good(
    database: str, receiver: Receiver
) -> None:
    receiver.answers = [(410, {})]
    gone = _queue_webhook(database, receiver)
    assert _deliver_until_settled(database, gone, FAST) == {
        "status": "failed", "attempts": 1, "last_error": "HTTP 410",
    }  # fmt: skip
    receiver.requests.clear()
    receiver.answers = [(500, {})] * 10
    down = _queue_webhook(database, receiver)
    options = NotifierOptions(max_attempts=3, backoff_base_s=0.02, backoff_cap_s=0.05, poll_s=0.02)
    assert _deliver_until_settled(database, down, options) == {
        "status": "failed", "attempts": 3, "last_error": "HTTP 500",
    }  # fmt: skip
    assert len(receiver.requests) == 3


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    notifier = Notifier(None, "webhook", None, NotifierOptions(backoff_base_s=1, backoff_cap_s=30))  # type: ignore[arg-type]
    for attempts, base in ((0, 1), (1, 2), (3, 8), (5, 30), (12, 30)):
        delays = [notifier.backoff_s(attempts) for _ in range(200)]
        assert all(0.5 * base <= d <= 1.5 * base for d in delays), (attempts, min(delays))
        assert max(delays) - min(delays) > 0.5 * base  # jittered, not one value
