"""The engine's side of alerting: which rules apply to a device (the rule book), and the
alert actor that records what the device actors' rules decide.

The rule book holds every enabled rule, by tenant, and reloads them within a second of
any change (rules, or the devices' tags, which tag-scoped rules follow). A device actor
asks it, per message, for the rules of its device: a tenant without rules costs one
dict lookup, and the answer is the same list object until the next reload (a device
actor keys its evaluation plan on it).

The alert actor takes transitions from a bounded channel (a device actor waits while
it is full) and records them, with their outbox rows, in one transaction per batch;
when the primary is away it keeps trying, so a transition is never dropped.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Literal

import trio
from pydantic import TypeAdapter

from sensorium.actors._alert_rules import Condition, NoDataCondition, QuietHours
from sensorium.engine import Doorbell
from sensorium.logs import get_logger
from sensorium.storage import (
    AlertPolicy,
    AlertTransition,
    Pool,
    record_alert_transitions,
    remind_open_alerts,
    settle_flapping_alerts,
)

__all__ = ["AlertRecorder", "LiveRule", "NoDataSweeper", "RuleBook"]

log = get_logger(__name__)
_CONDITION: TypeAdapter[Condition] = TypeAdapter(Condition)
_NO_RULES: list[LiveRule] = []

# Cheap: the rules table is small. The devices' part is asked only while some rule
# follows a tag (a million devices make it a scan).
_RULES_SIGNATURE = """
SELECT count(*)::text || '/' || coalesce(max(updated_at)::text, '') FROM alert_rules
"""
_DEVICES_SIGNATURE = """
SELECT count(*)::text || '/' || coalesce(max(updated_at)::text, '') FROM devices
"""


@dataclass(frozen=True, slots=True)
class LiveRule:
    id: int
    name: str
    metric: str
    condition: Condition
    severity: str
    channels: list[dict[str, Any]]
    scope: dict[str, Any]
    renotify_s: int | None = None
    quiet_hours: QuietHours | None = None

    def transition(
        self,
        *,
        device_key: int,
        device_id: str,
        kind: Literal["open", "resolved"],
        at: dt.datetime,
        value: float | None,
    ) -> AlertTransition:
        """What the alert actor records when this rule opens or resolves for a device
        (email and SMS held until the rule's quiet hours end, if they are on now)."""
        quiet = self.quiet_hours
        return AlertTransition(
            rule_id=self.id,
            rule_name=self.name,
            severity=self.severity,
            metric=self.metric,
            channels=self.channels,
            device_key=device_key,
            device_id=device_id,
            kind=kind,
            at=at,
            value=value,
            held_until=quiet.until(dt.datetime.now(dt.UTC)) if quiet is not None else None,
        )


class RuleBook:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool
        self._by_tenant: dict[int, list[LiveRule]] = {}
        self._tagged: dict[str, frozenset[int]] = {}  # tag -> device keys carrying it
        self._signature: str | None = None
        # tenant -> its rules evaluated on readings, and whether they all apply to
        # every device of the tenant (then every device gets that very list)
        self._streaming: dict[int, tuple[list[LiveRule], bool]] = {}
        self._per_device: dict[int, list[LiveRule]] = {}  # device key -> its rules

    def rules_for(self, tenant_id: int, device_key: int, device_id: str) -> list[LiveRule]:
        """The rules a device actor evaluates on the device's readings (no-data rules
        are the sweeper's). The same list object until the next reload: do not change
        it."""
        streaming = self._streaming.get(tenant_id)
        if streaming is None:
            return _NO_RULES
        rules, everywhere = streaming
        if everywhere:
            return rules
        mine = self._per_device.get(device_key)
        if mine is None:
            mine = self._per_device[device_key] = [
                rule for rule in rules if self._applies(rule, device_key, device_id)
            ]
        return mine

    def all_rules(self) -> list[LiveRule]:
        return [rule for rules in self._by_tenant.values() for rule in rules]

    def reminding_rules(self) -> list[LiveRule]:
        """Rules that notify again while their alerts stay open (``renotify_s``)."""
        return [r for rules in self._by_tenant.values() for r in rules if r.renotify_s]

    def no_data_rules(self) -> list[tuple[int, LiveRule]]:
        """(tenant id, rule) of every no-data rule."""
        return [
            (tenant, rule)
            for tenant, rules in self._by_tenant.items()
            for rule in rules
            if isinstance(rule.condition, NoDataCondition)
        ]

    def _applies(self, rule: LiveRule, device_key: int, device_id: str) -> bool:
        scope = rule.scope
        if "device_id" in scope:
            return bool(scope["device_id"] == device_id)
        if "tag" in scope:
            return device_key in self._tagged.get(scope["tag"], frozenset())
        return True

    async def reload(self) -> None:
        rows = await self._pool.fetch(
            """SELECT id, tenant_id, name, metric, condition::text AS condition, severity,
                      channels::text AS channels, scope::text AS scope, renotify_s,
                      quiet_hours::text AS quiet_hours
               FROM alert_rules WHERE enabled ORDER BY id"""
        )
        by_tenant: dict[int, list[LiveRule]] = {}
        for row in rows:
            rule = LiveRule(
                id=row["id"],
                name=row["name"],
                metric=row["metric"],
                condition=_CONDITION.validate_python(json.loads(row["condition"])),
                severity=row["severity"],
                channels=json.loads(row["channels"]),
                scope=json.loads(row["scope"]),
                renotify_s=row["renotify_s"],
                quiet_hours=(
                    QuietHours.model_validate_json(row["quiet_hours"])
                    if row["quiet_hours"]
                    else None
                ),
            )
            by_tenant.setdefault(row["tenant_id"], []).append(rule)
        tags = sorted({r.scope["tag"] for rs in by_tenant.values() for r in rs if "tag" in r.scope})
        tagged: dict[str, set[int]] = {tag: set() for tag in tags}
        if tags:
            for row in await self._pool.fetch(
                "SELECT key, tags FROM devices WHERE tags && $1::text[]", tags
            ):
                for tag in row["tags"]:
                    if tag in tagged:
                        tagged[tag].add(row["key"])
        self._by_tenant = by_tenant
        self._tagged = {tag: frozenset(keys) for tag, keys in tagged.items()}
        self._streaming = {}
        for tenant, rules in by_tenant.items():
            streaming = [r for r in rules if not isinstance(r.condition, NoDataCondition)]
            if streaming:
                everywhere = all("tenant" in r.scope for r in streaming)
                self._streaming[tenant] = (streaming, everywhere)
        self._per_device = {}

    async def keep_fresh(self, *, interval_s: float = 1.0) -> None:
        """Reload whenever the rules or the devices changed; runs until cancelled."""
        while True:
            try:
                signature = await self._pool.fetchval(_RULES_SIGNATURE)
                if self._tagged:
                    signature += "/" + await self._pool.fetchval(_DEVICES_SIGNATURE)
                if signature != self._signature:
                    await self.reload()
                    self._signature = signature
            except Exception as exc:  # the primary away: keep the rules we have
                log.warning("alert rules not reloaded", error=str(exc))
            await trio.sleep(interval_s)


class AlertRecorder:
    """The alert actor: records transitions with their notifications."""

    def __init__(
        self, pool: Pool, *, policy: AlertPolicy | None = None, queue_size: int = 1024
    ) -> None:
        self._pool = pool
        self.policy = policy or AlertPolicy()
        self.bell = Doorbell()  # rung when notifications were queued
        # severity -> alerts not resolved, as of the last sweep (for metrics)
        self.open_by_severity: dict[str, int] = {}
        self._send, self._receive = trio.open_memory_channel[AlertTransition](queue_size)
        self.recorded = 0

    async def submit(self, transition: AlertTransition) -> None:
        await self._send.send(transition)

    def close(self) -> None:
        self._send.close()

    async def run(self) -> None:
        """Until closed and drained."""
        async with self._receive:
            while True:
                try:
                    batch = [await self._receive.receive()]
                except trio.EndOfChannel:
                    return
                while len(batch) < 256:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                await self._record(batch)

    async def _record(self, batch: list[AlertTransition]) -> None:
        attempt = 0
        while True:
            try:
                async with self._pool.acquire() as conn:
                    done = await record_alert_transitions(conn, batch, self.policy)
                recorded = sum(1 for alert in done if alert is not None)
                self.recorded += recorded
                if recorded:
                    self.bell.ring()
                return
            except trio.Cancelled:
                raise
            except Exception as exc:
                attempt += 1
                log.warning("alert transitions not recorded; retrying", error=str(exc))
                await trio.sleep(min(0.1 * 2**attempt, 5.0))


# The devices of a no-data rule that went quiet (and have no live alert of it), and
# the ones with a live alert that spoke since it opened. Never-seen devices are not
# "quiet".
_SCOPE = (
    "d.tenant_id = $1 AND ($3::text IS NULL OR d.id = $3) "
    "AND ($4::text IS NULL OR $4 = ANY(d.tags))"
)
_GONE_QUIET = f"""
SELECT d.key, d.id, now() AS at FROM devices d
WHERE {_SCOPE} AND device_last_seen(d.key) < now() - make_interval(secs => $5)
  AND NOT EXISTS (SELECT FROM alerts a
                  WHERE a.rule_id = $2 AND a.device_key = d.key AND a.state <> 'resolved')
"""
_SPOKE_AGAIN = f"""
SELECT d.key, d.id, i.last_seen AS at FROM alerts a
JOIN devices d ON d.key = a.device_key
CROSS JOIN LATERAL (SELECT device_last_seen(d.key) AS last_seen) i
WHERE {_SCOPE} AND a.rule_id = $2 AND a.state <> 'resolved'
  AND i.last_seen > a.opened_at
"""


class NoDataSweeper:
    """Opens and resolves no-data alerts from what the database knows (each device's
    last-seen time and the live alerts), so they survive passivation and restarts;
    reminds of alerts left open past their rule's ``renotify_s``; settles flapping
    alerts that kept their state for the flapping window; and counts the alerts not
    resolved, for metrics."""

    def __init__(self, pool: Pool, book: RuleBook, recorder: AlertRecorder) -> None:
        self._pool = pool
        self._book = book
        self._recorder = recorder

    async def run(self, *, interval_s: float) -> None:
        while True:
            try:
                await self.sweep()
            except Exception as exc:  # the primary away: the next sweep tries again
                log.warning("no-data sweep failed", error=str(exc))
            await trio.sleep(interval_s)

    async def sweep(self) -> int:
        """One pass; returns how many transitions it handed to the alert actor (and
        reminders it queued)."""
        handed = 0
        now = dt.datetime.now(dt.UTC)
        self._recorder.open_by_severity = {
            row["severity"]: row["n"]
            for row in await self._pool.fetch(
                """SELECT r.severity, count(*) AS n FROM alerts a
                   JOIN alert_rules r ON r.id = a.rule_id
                   WHERE a.state <> 'resolved' GROUP BY r.severity"""
            )
        }
        policy = self._recorder.policy
        if policy.flap_opens:
            templates = {
                rule.id: rule.transition(
                    device_key=0, device_id="", kind="open", at=now, value=None
                )
                for rule in self._book.all_rules()
            }
            async with self._pool.acquire() as conn:
                settled = await settle_flapping_alerts(
                    conn, templates, window_s=policy.flap_window_s
                )
            if settled:
                self._recorder.bell.ring()
            handed += len(settled)
        for rule in self._book.reminding_rules():
            assert rule.renotify_s is not None
            template = rule.transition(device_key=0, device_id="", kind="open", at=now, value=None)
            async with self._pool.acquire() as conn:
                reminded = await remind_open_alerts(conn, template, every_s=float(rule.renotify_s))
            if reminded:
                self._recorder.bell.ring()
            handed += len(reminded)
        for tenant_id, rule in self._book.no_data_rules():
            assert isinstance(rule.condition, NoDataCondition)
            scope = (tenant_id, rule.id, rule.scope.get("device_id"), rule.scope.get("tag"))
            for kind, sql, args in (
                ("open", _GONE_QUIET, (*scope, rule.condition.no_data_s)),
                ("resolved", _SPOKE_AGAIN, scope),
            ):
                for row in await self._pool.fetch(sql, *args):
                    await self._recorder.submit(
                        rule.transition(
                            device_key=row["key"],
                            device_id=row["id"],
                            kind=kind,  # type: ignore[arg-type]
                            # Opened as of the query's snapshot: a reading that
                            # commits after it is newer, and resolves the alert.
                            at=row["at"],
                            value=None,
                        )
                    )
                    handed += 1
        return handed
