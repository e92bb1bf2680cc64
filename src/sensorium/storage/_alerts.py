"""Alert transitions and their notifications, recorded in one transaction.

An opening inserts the alert (at most one live alert per rule and device: the unique
index `alerts_one_live_idx` refuses a second, and then nothing is recorded or sent); a
resolution closes the live one (none live: nothing to do). Each recorded transition
writes its audit event and one outbox row per channel of the rule. Every outbox row's
event id is derived from (alert, transition, channel), so recording the same transition
again after a crash cannot queue a second notification, and a receiver sees the same id
on every retry of a delivery.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from sensorium.storage._bridge import Connection

__all__ = ["AlertTransition", "record_alert_transitions", "remind_open_alerts"]

_EVENT_NAMESPACE = uuid.UUID("5e45a1e7-0000-4000-8000-000000000006")


@dataclass(frozen=True, slots=True)
class AlertTransition:
    rule_id: int
    rule_name: str
    severity: str
    metric: str
    channels: list[dict[str, Any]]
    device_key: int
    device_id: str
    kind: Literal["open", "resolved"]
    at: dt.datetime
    value: float | None


def event_id(alert_id: int, kind: str, channel: int) -> uuid.UUID:
    return uuid.uuid5(_EVENT_NAMESPACE, f"{alert_id}:{kind}:{channel}")


def _recipient(channel: dict[str, Any]) -> str:
    return str(channel.get("to") or channel.get("url"))


async def _outbox(
    conn: Connection, alert_id: int, t: AlertTransition, *, occasion: str | None = None
) -> None:
    """One outbox row per channel; ``occasion`` names the notification when it is not
    the transition itself (a reminder), so that its event ids differ."""
    occasion = occasion or t.kind
    payload: dict[str, Any] = {
        "alert_id": alert_id,
        "state": "open" if t.kind == "open" else "resolved",
        "rule": {"id": t.rule_id, "name": t.rule_name, "severity": t.severity},
        "device_id": t.device_id,
        "metric": t.metric,
        "value": t.value,
        "at": t.at.isoformat(),
    }
    for index, channel in enumerate(t.channels):
        await conn.execute(
            """INSERT INTO notification_outbox (event_id, alert_id, channel, recipient,
                                                payload, secret)
               VALUES ($1, $2, $3, $4, $5::jsonb, $6) ON CONFLICT (event_id) DO NOTHING""",
            event_id(alert_id, occasion, index),
            alert_id,
            channel["type"],
            _recipient(channel),
            json.dumps(payload | {"event_id": str(event_id(alert_id, occasion, index))}),
            channel.get("secret"),
        )


async def _record(conn: Connection, t: AlertTransition) -> int | None:
    if t.kind == "open":
        alert_id: int | None = await conn.fetchval(
            """INSERT INTO alerts (rule_id, device_key, state, opened_at, value)
               VALUES ($1, $2, 'open', $3, $4)
               ON CONFLICT (rule_id, device_key) WHERE state <> 'resolved' DO NOTHING
               RETURNING id""",
            t.rule_id,
            t.device_key,
            t.at,
            t.value,
        )
    else:
        alert_id = await conn.fetchval(
            """UPDATE alerts SET state = 'resolved', resolved_at = $3
               WHERE rule_id = $1 AND device_key = $2 AND state <> 'resolved'
               RETURNING id""",
            t.rule_id,
            t.device_key,
            t.at,
        )
    if alert_id is None:
        return None  # already open, or nothing to resolve
    await conn.execute(
        """INSERT INTO alert_events (alert_id, at, kind, actor, detail)
           VALUES ($1, $2, $3, 'engine', $4::jsonb)""",
        alert_id,
        t.at,
        "opened" if t.kind == "open" else "resolved",
        json.dumps({"value": t.value}),
    )
    await _outbox(conn, alert_id, t)
    return alert_id


async def record_alert_transitions(
    conn: Connection, transitions: list[AlertTransition]
) -> list[int | None]:
    """Record ``transitions`` in order, in one transaction; for each, the alert it
    opened or resolved, or None when it changed nothing."""
    async with conn.transaction():
        return [await _record(conn, t) for t in transitions]


async def remind_open_alerts(
    conn: Connection, template: AlertTransition, *, every_s: float
) -> list[int]:
    """Notify again about the rule's alerts that are still open (not acknowledged: a
    person is on those) and were last notified ``every_s`` ago or more. ``template``
    carries the rule (its device and value fields are taken from each alert). Returns
    the alerts reminded of."""
    reminded = []
    async with conn.transaction():
        rows = await conn.fetch(
            """SELECT a.id, a.device_key, d.id AS device_id, a.value,
                      (SELECT count(*) FROM alert_events e
                       WHERE e.alert_id = a.id AND e.kind = 'reminded') AS reminders
               FROM alerts a JOIN devices d ON d.key = a.device_key
               WHERE a.rule_id = $1 AND a.state = 'open'
                 AND (SELECT max(created_at) FROM notification_outbox o WHERE o.alert_id = a.id)
                     <= now() - make_interval(secs => $2)
               FOR UPDATE OF a""",
            template.rule_id,
            every_s,
        )
        for row in rows:
            t = dataclasses.replace(
                template,
                device_key=row["device_key"],
                device_id=row["device_id"],
                kind="open",
                value=row["value"],
            )
            number = row["reminders"] + 1
            await conn.execute(
                """INSERT INTO alert_events (alert_id, kind, actor, detail)
                   VALUES ($1, 'reminded', 'engine', $2::jsonb)""",
                row["id"],
                json.dumps({"reminder": number}),
            )
            await _outbox(conn, row["id"], t, occasion=f"reminder-{number}")
            reminded.append(row["id"])
    return reminded
