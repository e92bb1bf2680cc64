"""Notifier actors: one per channel, delivering what the outbox holds.

Each pass takes the due notifications of its channel and delivers them, a few at a
time. A delivery ends one of three ways: sent; to be tried again (a network error, a
5xx, 408 or 429), after the receiver's Retry-After or an exponential backoff with
jitter; or failed for good (another 4xx, or the last attempt), visible in the outbox
with its error. A notification is marked only after its delivery ended, so a crash in
between sends it again, with the same event id (receivers de-duplicate by it); a
notification once handed to its sender is never put into a digest afterwards.

Email and SMS are sent to people, so they have a per-recipient rate (`RecipientRate`):
at most ``max_messages`` to one recipient in any ``window_s``; and what is due for one
recipient at once goes out as one digest. When 1,000 devices cross a threshold
together, a recipient gets a digest, then (if more keeps coming) at most the rate's
worth of further digests, each carrying everything that waited. Webhooks are read by
machines and get every notification as it is.

A delivery under way when the engine stops is finished (up to its timeout) before the
notifier stops, so a graceful restart sends nothing twice.

Webhooks are JSON POSTs carrying ``X-Sensorium-Event-Id`` and ``X-Sensorium-Signature:
t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`` (DESIGN.md).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import hmac
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import httpx
import trio

from sensorium.engine import Doorbell
from sensorium.logs import get_logger
from sensorium.storage import (
    Notification,
    Pool,
    bundle_due,
    due_notifications,
    mark_failed,
    mark_sent,
    mark_started,
    postpone_recipient,
    recent_messages,
    retry_later,
)

__all__ = [
    "Delivery",
    "Notifier",
    "NotifierOptions",
    "Outcome",
    "RecipientRate",
    "WebhookSender",
    "outcome_of_status",
    "sign_webhook",
]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Literal["sent", "retry", "failed"]
    error: str = ""
    retry_after_s: float | None = None  # what the receiver asked for, if it did


Delivery = Callable[[Notification], Awaitable[Outcome]]


@dataclass(frozen=True, slots=True)
class RecipientRate:
    max_messages: int = 10  # to one recipient in any window
    window_s: float = 600.0
    digest_max_items: int = 500  # notifications one digest carries at most


@dataclass(frozen=True, slots=True)
class NotifierOptions:
    # 14 attempts, 1 s doubling to 300 s apart (0.5x-1.5x jitter): about 17 to 50
    # minutes of an outage before a notification is given up.
    max_attempts: int = 14
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 300.0
    timeout_s: float = 10.0
    concurrency: int = 8
    poll_s: float = 0.5
    batch: int = 100
    recipient_rate: RecipientRate | None = None  # None: every notification as it is


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def outcome_of_status(status: int, retry_after: str | None = None) -> Outcome:
    if 200 <= status < 300:
        return Outcome("sent")
    error = f"HTTP {status}"
    if status in (408, 429) or status >= 500:
        return Outcome("retry", error, _retry_after(retry_after))
    return Outcome("failed", error)


def sign_webhook(secret: str, body: bytes, at: int) -> str:
    digest = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


class WebhookSender:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def __call__(self, notification: Notification) -> Outcome:
        body = notification.payload.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "sensorium-webhook",
            "X-Sensorium-Event-Id": str(notification.event_id),
            "X-Sensorium-Signature": sign_webhook(
                notification.secret or "", body, int(time.time())
            ),
        }
        try:
            response = await self._client.post(
                notification.recipient, content=body, headers=headers
            )
        except httpx.HTTPError as exc:
            return Outcome("retry", f"{type(exc).__name__}: {exc}")
        return outcome_of_status(response.status_code, response.headers.get("Retry-After"))


class Notifier:
    """Delivers one channel's notifications; ``run`` until cancelled."""

    def __init__(
        self,
        pool: Pool,
        channel: str,
        deliver: Delivery,
        options: NotifierOptions,
        *,
        rng: random.Random | None = None,
        bell: Doorbell | None = None,
    ) -> None:
        self.channel = channel
        self._bell = bell or Doorbell()  # rung when the alert actor queued notifications
        self._pool = pool
        self._deliver = deliver
        self._options = options
        self._rng = rng or random.Random()
        self._limiter = trio.CapacityLimiter(options.concurrency)
        self.sent = 0
        self.failed = 0
        self.retried = 0
        self.digests = 0

    async def run(self) -> None:
        """Pass after pass: at once when the alert actor rings, else every ``poll_s``
        (retries come due, quiet hours end, the rate allows again)."""
        while True:
            rung = self._bell.current()
            try:
                await self.pass_once()
            except Exception as exc:  # the primary away: the next pass tries again
                log.warning("notifier pass failed", channel=self.channel, error=str(exc))
            await Doorbell.wait(rung, timeout_s=self._options.poll_s)

    async def pass_once(self) -> int:
        """Deliver what is due now; returns how many deliveries ended this pass."""
        due = await due_notifications(self._pool, self.channel, limit=self._options.batch)
        if self._options.recipient_rate is not None:
            due = await self._within_rates(due, self._options.recipient_rate)
        await mark_started(self._pool, due)
        async with trio.open_nursery() as nursery:
            for notification in due:
                nursery.start_soon(self._one, notification)
        return len(due)

    async def _within_rates(
        self, due: list[Notification], rate: RecipientRate
    ) -> list[Notification]:
        """What may go now: per recipient, first what was tried before (each keeps its
        event id), then one message for everything fresh (a digest of several), as far
        as the recipient's rate allows; the rest waits for the rate to allow it."""
        # Fewer than a batch: every due row was read, so one fresh row of a recipient
        # is all there is for it (no digest to make, no transaction to pay).
        complete = len(due) < self._options.batch
        by_recipient: dict[str, list[Notification]] = {}
        for notification in due:
            by_recipient.setdefault(notification.recipient, []).append(notification)
        recent = await recent_messages(
            self._pool, self.channel, list(by_recipient), window_s=rate.window_s
        )
        now = dt.datetime.now(dt.UTC)
        going: list[Notification] = []
        for recipient, waiting in by_recipient.items():
            sent, oldest = recent.get(recipient, (0, now))
            budget = rate.max_messages - sent
            again = [n for n in waiting if not n.fresh]
            going += again[: max(budget, 0)]
            budget -= len(again)
            fresh = [n for n in waiting if n.fresh]
            if budget > 0 and fresh:
                if len(fresh) == 1 and complete:
                    message: Notification | None = fresh[0]  # alone: as it is
                else:
                    message = await bundle_due(
                        self._pool, self.channel, recipient, max_items=rate.digest_max_items
                    )
                if message is not None:
                    self.digests += message.is_digest
                    going.append(message)
                    budget -= 1
            if budget <= 0:
                # Due again when the oldest message of the window leaves it.
                until = oldest + dt.timedelta(seconds=rate.window_s)
                await postpone_recipient(self._pool, self.channel, recipient, until=until)
        return going

    def backoff_s(self, attempts: int) -> float:
        """Exponential with full jitter around it: 0.5x to 1.5x, capped."""
        base = min(self._options.backoff_cap_s, self._options.backoff_base_s * 2.0**attempts)
        jitter: float = self._rng.uniform(0.5, 1.5)
        return base * jitter

    async def _one(self, notification: Notification) -> None:
        async with self._limiter:
            # Shielded: a stop waits for this delivery and its mark (bounded by the
            # timeouts) instead of leaving it sent but unmarked, to be sent again.
            with trio.CancelScope(shield=True):
                await self._deliver_and_mark(notification)

    async def _deliver_and_mark(self, notification: Notification) -> None:
        with trio.move_on_after(self._options.timeout_s) as scope:
            outcome = await self._deliver(notification)
        if scope.cancelled_caught:
            outcome = Outcome("retry", f"no answer in {self._options.timeout_s} s")
        if outcome.kind == "sent":
            self.sent += 1
            await mark_sent(self._pool, notification)
        elif outcome.kind == "failed" or notification.attempts + 1 >= self._options.max_attempts:
            self.failed += 1
            log.warning(
                "notification failed",
                channel=self.channel,
                event_id=str(notification.event_id),
                attempts=notification.attempts + 1,
                error=outcome.error,
            )
            await mark_failed(self._pool, notification, error=outcome.error)
        else:
            self.retried += 1
            delay = outcome.retry_after_s
            if delay is None:
                delay = self.backoff_s(notification.attempts)
            await retry_later(self._pool, notification, delay_s=delay, error=outcome.error)
