"""Alert transitions and their notifications, recorded in one transaction.

An opening inserts the alert (at most one live alert per rule and device: the unique
index `alerts_one_live_idx` refuses a second, and then nothing is recorded or sent); a
resolution closes the live one (none live: nothing to do). Each recorded transition
writes its audit event and one outbox row per channel of the rule. Every outbox row's
event id is derived from (alert, transition, channel), so recording the same transition
again after a crash cannot queue a second notification, and a receiver sees the same id
on every retry of a delivery.

Flapping: an opening that finds its (rule, device) opened ``flap_opens`` times (itself
included) within ``flap_window_s`` is recorded, marked ``flapping``, and notified once,
as "flapping"; the openings and resolutions after it, while the flapping goes on, are
recorded (audit events) but not notified. Once the newest flapping alert has kept its
state for the window, `settle_flapping_alerts` notifies that state and ends it. So a
recipient hears "flapping" and then how it ended, not every bounce.

Quiet hours: email and SMS rows of a transition made inside its rule's quiet hours are
due when they end (``held_until``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from sensorium.storage._bridge import Connection

__all__ = [
    "AlertPolicy",
    "AlertTransition",
    "record_alert_transitions",
    "remind_open_alerts",
    "settle_flapping_alerts",
]

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
    held_until: dt.datetime | None = None  # quiet hours: email and SMS wait until then


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    flap_opens: int = 5  # openings within the window that make a (rule, device) flap; 0: off
    flap_window_s: float = 600.0


_HELD_CHANNELS = ("email", "sms")  # people sleep; webhooks are read by machines


def event_id(alert_id: int, kind: str, channel: int) -> uuid.UUID:
    return uuid.uuid5(_EVENT_NAMESPACE, f"{alert_id}:{kind}:{channel}")


def _recipient(channel: dict[str, Any]) -> str:
    return str(channel.get("to") or channel.get("url"))


async def _outbox(
    conn: Connection,
    alert_id: int,
    t: AlertTransition,
    *,
    occasion: str | None = None,
    state: str | None = None,
) -> None:
    """One outbox row per channel; ``occasion`` names the notification when it is not
    the transition itself (a reminder, a flapping notice), so that its event ids
    differ; ``state`` is what the notification says (default: the transition's)."""
    occasion = occasion or t.kind
    payload: dict[str, Any] = {
        "alert_id": alert_id,
        "state": state or ("open" if t.kind == "open" else "resolved"),
        "rule": {"id": t.rule_id, "name": t.rule_name, "severity": t.severity},
        "device_id": t.device_id,
        "metric": t.metric,
        "value": t.value,
        "at": t.at.isoformat(),
    }
    for index, channel in enumerate(t.channels):
        await conn.execute(
            """INSERT INTO notification_outbox (event_id, alert_id, channel, recipient,
                                                payload, secret, next_attempt_at)
               VALUES ($1, $2, $3, $4, $5::jsonb, $6, coalesce($7, now()))
               ON CONFLICT (event_id) DO NOTHING""",
            event_id(alert_id, occasion, index),
            alert_id,
            channel["type"],
            _recipient(channel),
            json.dumps(payload | {"event_id": str(event_id(alert_id, occasion, index))}),
            channel.get("secret"),
            t.held_until if channel["type"] in _HELD_CHANNELS else None,
        )


async def _event(conn: Connection, alert_id: int, at: dt.datetime | None, kind: str,
                 detail: dict[str, Any]) -> None:  # fmt: skip
    await conn.execute(
        """INSERT INTO alert_events (alert_id, at, kind, actor, detail)
           VALUES ($1, coalesce($2, now()), $3, 'engine', $4::jsonb)""",
        alert_id,
        at,
        kind,
        json.dumps(detail),
    )


async def _open(conn: Connection, t: AlertTransition, policy: AlertPolicy) -> int | None:
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
    if alert_id is None:
        return None  # already open
    opens = 0
    if policy.flap_opens:
        opens = await conn.fetchval(
            """SELECT count(*) FROM alerts WHERE rule_id = $1 AND device_key = $2
                 AND opened_at > $3::timestamptz - make_interval(secs => $4)""",
            t.rule_id,
            t.device_key,
            t.at,
            policy.flap_window_s,
        )
    if not policy.flap_opens or opens < policy.flap_opens:
        await _event(conn, alert_id, t.at, "opened", {"value": t.value})
        await _outbox(conn, alert_id, t)
        return alert_id
    # Flapping: this alert carries the mark from now on; it is announced only when
    # it starts (the previous alert of the pair was not flapping).
    was_flapping = await conn.fetchval(
        """UPDATE alerts SET flapping = false WHERE rule_id = $1 AND device_key = $2
             AND flapping AND id <> $3 RETURNING true""",
        t.rule_id,
        t.device_key,
        alert_id,
    )
    await conn.execute("UPDATE alerts SET flapping = true WHERE id = $1", alert_id)
    await _event(conn, alert_id, t.at, "opened", {"value": t.value, "flapping": True})
    if not was_flapping:
        await _event(
            conn, alert_id, t.at, "flapping",
            {"opens": opens, "window_s": policy.flap_window_s},
        )  # fmt: skip
        await _outbox(conn, alert_id, t, occasion="flapping", state="flapping")
    return alert_id


async def _resolve(conn: Connection, t: AlertTransition) -> int | None:
    row = await conn.fetchrow(
        """UPDATE alerts SET state = 'resolved', resolved_at = $3
           WHERE rule_id = $1 AND device_key = $2 AND state <> 'resolved'
           RETURNING id, flapping""",
        t.rule_id,
        t.device_key,
        t.at,
    )
    if row is None:
        return None  # nothing to resolve
    await _event(conn, row["id"], t.at, "resolved", {"value": t.value})
    if not row["flapping"]:  # a flapping alert's end is told when it settles
        await _outbox(conn, row["id"], t)
    return int(row["id"])


async def record_alert_transitions(
    conn: Connection, transitions: list[AlertTransition], policy: AlertPolicy | None = None
) -> list[int | None]:
    """Record ``transitions`` in order, in one transaction; for each, the alert it
    opened or resolved, or None when it changed nothing."""
    policy = policy or AlertPolicy()
    async with conn.transaction():
        return [
            await (_open(conn, t, policy) if t.kind == "open" else _resolve(conn, t))
            for t in transitions
        ]


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
               WHERE a.rule_id = $1 AND a.state = 'open' AND NOT a.flapping
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
            await _event(conn, row["id"], None, "reminded", {"reminder": number})
            await _outbox(conn, row["id"], t, occasion=f"reminder-{number}")
            reminded.append(row["id"])
    return reminded


async def settle_flapping_alerts(
    conn: Connection, templates: dict[int, AlertTransition], *, window_s: float
) -> list[int]:
    """End the flapping of alerts that kept their state for ``window_s``: notify that
    state (open, or resolved) once. ``templates`` carries each enabled rule by id (a
    flapping alert of a rule no longer enabled just stops flapping, silently).
    Returns the alerts settled."""
    settled = []
    async with conn.transaction():
        rows = await conn.fetch(
            """SELECT a.id, a.rule_id, a.device_key, d.id AS device_id, a.state, a.value,
                      coalesce(a.resolved_at, a.opened_at) AS since
               FROM alerts a JOIN devices d ON d.key = a.device_key
               WHERE a.flapping
                 AND coalesce(a.resolved_at, a.opened_at) <= now() - make_interval(secs => $1)
               FOR UPDATE OF a""",
            window_s,
        )
        for row in rows:
            await conn.execute("UPDATE alerts SET flapping = false WHERE id = $1", row["id"])
            state = "resolved" if row["state"] == "resolved" else "open"
            await _event(conn, row["id"], None, "settled", {"state": state})
            template = templates.get(row["rule_id"])
            if template is not None:
                t = dataclasses.replace(
                    template,
                    device_key=row["device_key"],
                    device_id=row["device_id"],
                    kind="open" if state == "open" else "resolved",
                    at=row["since"],
                    value=row["value"],
                )
                await _outbox(conn, row["id"], t, occasion=f"settled-{state}")
            settled.append(row["id"])
    return settled
