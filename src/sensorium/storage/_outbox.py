"""The notification outbox, from the notifiers' side: what is due, and what became of
each delivery (sent; to be tried again at a given time; failed for good).

One engine runs at a time (the engine lease), so a due row is read without a lock: no
other notifier can take it meanwhile.

Digests: `bundle_due` turns what is due for one recipient, never tried yet, into one
message: a digest row of its own (``is_digest``), with the rows it carries marked
'digested' in the same transaction. Its event id is derived from theirs, and it is
delivered like any row (retried with that id), so a crash after bundling sends the same
digest again, not a new one.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass

from sensorium.storage._bridge import Pool

__all__ = [
    "Notification",
    "bundle_due",
    "due_notifications",
    "mark_failed",
    "mark_sent",
    "mark_started",
    "postpone_recipient",
    "recent_messages",
    "retry_later",
]

_DIGEST_NAMESPACE = uuid.UUID("5e45a1e7-0000-4000-8000-00000000d16e")
_COLUMNS = (
    "id, event_id, channel, recipient, payload::text AS payload, secret, attempts, "
    "is_digest, started_at IS NOT NULL AS started"
)


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    event_id: uuid.UUID
    channel: str
    recipient: str
    payload: str  # JSON text, sent as it is
    secret: str | None
    attempts: int
    is_digest: bool = False
    started: bool = False  # handed to its sender before (perhaps by an engine now dead)

    @property
    def fresh(self) -> bool:
        """Never handed to a sender and not a digest: may still go into one."""
        return not self.started and not self.is_digest


async def due_notifications(pool: Pool, channel: str, *, limit: int) -> list[Notification]:
    rows = await pool.fetch(
        f"""SELECT {_COLUMNS} FROM notification_outbox
           WHERE channel = $1 AND status = 'pending' AND next_attempt_at <= now()
           ORDER BY next_attempt_at, id LIMIT $2""",
        channel,
        limit,
    )
    return [Notification(**dict(row)) for row in rows]


async def mark_started(pool: Pool, notifications: list[Notification]) -> None:
    """Note that these are handed to their sender now, before they are. Committed
    without waiting for the disk: it must outlive the engine (kill -9), which an
    asynchronous commit does; a crash of PostgreSQL itself may lose it, and then a
    delivery cut short might be repeated inside a digest."""
    fresh = [n.id for n in notifications if not n.started]
    if not fresh:
        return
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL synchronous_commit = off")
        await conn.execute(
            "UPDATE notification_outbox SET started_at = now() WHERE id = ANY($1::int8[])",
            fresh,
        )


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


async def recent_messages(
    pool: Pool, channel: str, recipients: list[str], *, window_s: float
) -> dict[str, tuple[int, dt.datetime]]:
    """Per recipient: the messages sent in the last ``window_s`` and the oldest one's
    time (when it leaves the window, a message may go again)."""
    rows = await pool.fetch(
        """SELECT recipient, count(*) AS n, min(sent_at) AS oldest FROM notification_outbox
           WHERE channel = $1 AND recipient = ANY($2::text[]) AND status = 'sent'
             AND sent_at > now() - make_interval(secs => $3)
           GROUP BY recipient""",
        channel,
        recipients,
        window_s,
    )
    return {row["recipient"]: (row["n"], row["oldest"]) for row in rows}


async def bundle_due(
    pool: Pool, channel: str, recipient: str, *, max_items: int
) -> Notification | None:
    """One message for what is due for ``recipient`` and never tried: the row itself
    when there is one, else a digest of up to ``max_items`` rows (oldest first)."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            f"""SELECT {_COLUMNS} FROM notification_outbox
                WHERE channel = $1 AND recipient = $2 AND status = 'pending'
                  AND started_at IS NULL AND NOT is_digest AND next_attempt_at <= now()
                ORDER BY id LIMIT $3 FOR UPDATE""",
            channel,
            recipient,
            max_items,
        )
        if len(rows) <= 1:
            return Notification(**dict(rows[0])) if rows else None
        members = [Notification(**dict(row)) for row in rows]
        digest_id = uuid.uuid5(
            _DIGEST_NAMESPACE, ",".join(str(member.event_id) for member in members)
        )
        payload = {
            "digest": True,
            "event_id": str(digest_id),
            "count": len(members),
            "items": [json.loads(member.payload) for member in members],
        }
        row = await conn.fetchrow(
            f"""INSERT INTO notification_outbox (event_id, channel, recipient, payload,
                                                 is_digest)
                VALUES ($1, $2, $3, $4::jsonb, true) RETURNING {_COLUMNS}""",
            digest_id,
            channel,
            recipient,
            json.dumps(payload),
        )
        assert row is not None
        await conn.execute(
            """UPDATE notification_outbox SET status = 'digested', digest_id = $1
               WHERE id = ANY($2::int8[])""",
            row["id"],
            [member.id for member in members],
        )
        return Notification(**dict(row))


async def postpone_recipient(
    pool: Pool, channel: str, recipient: str, *, until: dt.datetime
) -> None:
    """What is due for ``recipient`` waits until ``until`` (its rate is spent)."""
    await pool.execute(
        """UPDATE notification_outbox SET next_attempt_at = $3
           WHERE channel = $1 AND recipient = $2 AND status = 'pending'
             AND next_attempt_at < $3""",
        channel,
        recipient,
        until,
    )
