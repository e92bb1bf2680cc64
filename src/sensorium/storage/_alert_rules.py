"""Alert rules in the database, always within one tenant.

The rule's parts (scope, condition, channels) are stored as JSON as the API gave them,
validated before they get here (actors/_alert_rules.py and http/_alerts.py).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sensorium.storage._bridge import Connection

__all__ = [
    "AlertRuleRecord",
    "create_alert_rule",
    "delete_alert_rule",
    "get_alert_rule",
    "list_alert_rules",
    "update_alert_rule",
]

_COLUMNS = (
    "id, tenant_id, name, scope, metric, condition, severity, channels, renotify_s, "
    "quiet_hours, enabled, created_at, updated_at"
)
# What PATCH may change, and how each value is stored.
_UPDATABLE = {
    "name": "text",
    "scope": "jsonb",
    "metric": "text",
    "condition": "jsonb",
    "severity": "text",
    "channels": "jsonb",
    "renotify_s": "integer",
    "quiet_hours": "jsonb",
    "enabled": "boolean",
}


@dataclass(frozen=True, slots=True)
class AlertRuleRecord:
    id: int
    tenant_id: int
    name: str
    scope: dict[str, Any]
    metric: str
    condition: dict[str, Any]
    severity: str
    channels: list[dict[str, Any]]
    renotify_s: int | None
    quiet_hours: dict[str, Any] | None
    enabled: bool
    created_at: dt.datetime
    updated_at: dt.datetime

    def as_json(self) -> dict[str, object]:
        """The rule as the API shows it: webhook secrets are write-only."""
        return {
            "id": self.id,
            "name": self.name,
            "scope": self.scope,
            "metric": self.metric,
            "condition": self.condition,
            "severity": self.severity,
            "channels": [
                {k: v for k, v in channel.items() if k != "secret"} for channel in self.channels
            ],
            "renotify_s": self.renotify_s,
            "quiet_hours": self.quiet_hours,
            "enabled": self.enabled,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def _record(row: Any) -> AlertRuleRecord:
    return AlertRuleRecord(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        scope=json.loads(row["scope"]),
        metric=row["metric"],
        condition=json.loads(row["condition"]),
        severity=row["severity"],
        channels=json.loads(row["channels"]),
        renotify_s=row["renotify_s"],
        quiet_hours=json.loads(row["quiet_hours"]) if row["quiet_hours"] else None,
        enabled=row["enabled"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def create_alert_rule(
    conn: Connection, *, tenant_id: int, rule: dict[str, Any]
) -> AlertRuleRecord:
    row = await conn.fetchrow(
        f"""INSERT INTO alert_rules (tenant_id, name, scope, metric, condition, severity,
                                     channels, renotify_s, enabled, quiet_hours)
            VALUES ($1, $2, $3::jsonb, $4, $5::jsonb, $6, $7::jsonb, $8, $9, $10::jsonb)
            RETURNING {_COLUMNS}""",
        tenant_id,
        rule["name"],
        json.dumps(rule["scope"]),
        rule["metric"],
        json.dumps(rule["condition"]),
        rule["severity"],
        json.dumps(rule["channels"]),
        rule.get("renotify_s"),
        rule.get("enabled", True),
        json.dumps(rule["quiet_hours"]) if rule.get("quiet_hours") else None,
    )
    assert row is not None
    return _record(row)


async def list_alert_rules(conn: Connection, *, tenant_id: int) -> list[AlertRuleRecord]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM alert_rules WHERE tenant_id = $1 ORDER BY id", tenant_id
    )
    return [_record(row) for row in rows]


async def get_alert_rule(
    conn: Connection, *, tenant_id: int, rule_id: int
) -> AlertRuleRecord | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM alert_rules WHERE tenant_id = $1 AND id = $2", tenant_id, rule_id
    )
    return _record(row) if row is not None else None


async def update_alert_rule(
    conn: Connection, *, tenant_id: int, rule_id: int, changes: dict[str, Any]
) -> AlertRuleRecord | None:
    """Change the given fields (a subset of the rule's); None when there is no such rule."""
    sets: list[str] = ["updated_at = now()"]
    args: list[Any] = [tenant_id, rule_id]
    for name, value in changes.items():
        kind = _UPDATABLE[name]  # KeyError: a field the API does not let change
        # A JSON null (no quiet hours) is stored as SQL NULL.
        args.append(json.dumps(value) if kind == "jsonb" and value is not None else value)
        sets.append(f"{name} = ${len(args)}::{kind}")
    row = await conn.fetchrow(
        f"""UPDATE alert_rules SET {", ".join(sets)} WHERE tenant_id = $1 AND id = $2
            RETURNING {_COLUMNS}""",
        *args,
    )
    return _record(row) if row is not None else None


async def delete_alert_rule(conn: Connection, *, tenant_id: int, rule_id: int) -> bool:
    status = await conn.execute(
        "DELETE FROM alert_rules WHERE tenant_id = $1 AND id = $2", tenant_id, rule_id
    )
    return status.endswith(" 1")
