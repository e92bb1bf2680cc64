"""Alerts as people see them: listed with filters, acknowledged (who and when, in the
audit trail), and their history. Always within one tenant (through the rule)."""

from __future__ import annotations

import json
from typing import Any

from sensorium.storage._bridge import Connection

__all__ = ["acknowledge_alert", "alert_history", "list_alerts"]

_SELECT = """
SELECT a.id, a.rule_id, r.name AS rule_name, r.severity, r.metric, d.id AS device_id,
       a.state, a.opened_at, a.acknowledged_at, a.acknowledged_by, a.resolved_at, a.value,
       a.flapping
FROM alerts a JOIN alert_rules r ON r.id = a.rule_id
LEFT JOIN devices d ON d.key = a.device_key
"""


def _json(row: Any) -> dict[str, Any]:
    def at(name: str) -> str | None:
        return row[name].isoformat() if row[name] is not None else None

    return {
        "id": row["id"],
        "rule": {"id": row["rule_id"], "name": row["rule_name"], "severity": row["severity"]},
        "metric": row["metric"],
        "device_id": row["device_id"],
        "state": row["state"],
        "value": row["value"],
        "opened_at": at("opened_at"),
        "acknowledged_at": at("acknowledged_at"),
        "acknowledged_by": row["acknowledged_by"],
        "resolved_at": at("resolved_at"),
        "flapping": row["flapping"],
    }


async def list_alerts(
    conn: Connection,
    *,
    tenant_id: int,
    state: str | None = None,
    device_id: str | None = None,
    rule_id: int | None = None,
    before: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first; ``before`` an alert id, to page."""
    rows = await conn.fetch(
        _SELECT
        + """WHERE r.tenant_id = $1 AND ($2::text IS NULL OR a.state = $2)
               AND ($3::text IS NULL OR d.id = $3) AND ($4::int8 IS NULL OR a.rule_id = $4)
               AND ($5::int8 IS NULL OR a.id < $5)
             ORDER BY a.id DESC LIMIT $6""",
        tenant_id,
        state,
        device_id,
        rule_id,
        before,
        limit,
    )
    return [_json(row) for row in rows]


async def acknowledge_alert(
    conn: Connection, *, tenant_id: int, alert_id: int, user_id: int
) -> tuple[str, dict[str, Any] | None]:
    """("acknowledged" | "not-open" | "missing", the alert). Only an open alert is
    acknowledged; the audit trail says who did it."""
    async with conn.transaction():
        row = await conn.fetchrow(
            _SELECT + "WHERE r.tenant_id = $1 AND a.id = $2 FOR UPDATE OF a",
            tenant_id,
            alert_id,
        )
        if row is None:
            return "missing", None
        if row["state"] != "open":
            return "not-open", _json(row)
        await conn.execute(
            """UPDATE alerts SET state = 'acknowledged', acknowledged_at = now(),
                      acknowledged_by = $2 WHERE id = $1""",
            alert_id,
            user_id,
        )
        await conn.execute(
            """INSERT INTO alert_events (alert_id, kind, actor, detail)
               VALUES ($1, 'acknowledged', $2, '{}'::jsonb)""",
            alert_id,
            f"user:{user_id}",
        )
        updated = await conn.fetchrow(_SELECT + "WHERE a.id = $1", alert_id)
    return "acknowledged", _json(updated)


async def alert_history(
    conn: Connection, *, tenant_id: int, alert_id: int
) -> dict[str, list[dict[str, Any]]] | None:
    """The alert's events, oldest first, and its notifications with what became of
    them; None when the tenant has no such alert."""
    found = await conn.fetchval(
        """SELECT 1 FROM alerts a JOIN alert_rules r ON r.id = a.rule_id
           WHERE r.tenant_id = $1 AND a.id = $2""",
        tenant_id,
        alert_id,
    )
    if found is None:
        return None
    rows = await conn.fetch(
        "SELECT at, kind, actor, detail::text AS detail FROM alert_events "
        "WHERE alert_id = $1 ORDER BY id",  # as recorded
        alert_id,
    )
    events = [
        {
            "at": r["at"].isoformat(),
            "kind": r["kind"],
            "actor": r["actor"],
            "detail": json.loads(r["detail"]),
        }
        for r in rows
    ]
    # A notification carried in a digest went (or failed) with it.
    sent = await conn.fetch(
        """SELECT o.event_id, o.channel, o.recipient, coalesce(g.status, o.status) AS status,
                  g.event_id AS digest_event_id, coalesce(g.attempts, o.attempts) AS attempts,
                  coalesce(g.last_error, o.last_error) AS last_error, o.created_at,
                  coalesce(g.sent_at, o.sent_at) AS sent_at
           FROM notification_outbox o LEFT JOIN notification_outbox g ON g.id = o.digest_id
           WHERE o.alert_id = $1 ORDER BY o.id""",
        alert_id,
    )
    notifications = [
        {
            "event_id": str(r["event_id"]),
            "channel": r["channel"],
            "recipient": r["recipient"],
            "status": r["status"],
            "digest_event_id": str(r["digest_event_id"]) if r["digest_event_id"] else None,
            "attempts": r["attempts"],
            "last_error": r["last_error"],
            "created_at": r["created_at"].isoformat(),
            "sent_at": r["sent_at"].isoformat() if r["sent_at"] else None,
        }
        for r in sent
    ]
    return {"items": events, "notifications": notifications}
