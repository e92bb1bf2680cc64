"""The notification outbox, from the notifiers' side: what is due, and what became of
each delivery (sent; to be tried again at a given time; failed for good).

One engine runs at a time (the engine lease), so a due row is read without a lock: no
other notifier can take it meanwhile.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sensorium.storage._bridge import Pool

__all__ = ["Notification", "due_notifications", "mark_failed", "mark_sent", "retry_later"]


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    event_id: uuid.UUID
    channel: str
    recipient: str
    payload: str  # JSON text, sent as it is
    secret: str | None
    attempts: int


async def due_notifications(pool: Pool, channel: str, *, limit: int) -> list[Notification]:
    rows = await pool.fetch(
        """SELECT id, event_id, channel, recipient, payload::text AS payload, secret, attempts
           FROM notification_outbox
           WHERE channel = $1 AND status = 'pending' AND next_attempt_at <= now()
           ORDER BY next_attempt_at, id LIMIT $2""",
        channel,
        limit,
    )
    return [Notification(**dict(row)) for row in rows]


async def mark_sent(pool: Pool, notification: Notification) -> None:
    await pool.execute(
        """UPDATE notification_outbox SET status = 'sent', sent_at = now(),
                  attempts = attempts + 1, last_error = NULL
           WHERE id = $1""",
        notification.id,
    )


async def retry_later(
    pool: Pool, notification: Notification, *, delay_s: float, error: str
) -> None:
    await pool.execute(
        """UPDATE notification_outbox SET attempts = attempts + 1, last_error = $2,
                  next_attempt_at = now() + make_interval(secs => $3)
           WHERE id = $1""",
        notification.id,
        error[:2000],
        delay_s,
    )


async def mark_failed(pool: Pool, notification: Notification, *, error: str) -> None:
    await pool.execute(
        """UPDATE notification_outbox SET status = 'failed', attempts = attempts + 1,
                  last_error = $2
           WHERE id = $1""",
        notification.id,
        error[:2000],
    )
