"""The device actor: orders and de-duplicates one device's readings, keeps its latest
values, and hands new rows to the writer.

De-duplication is exact without a unique index (which would cut COPY speed 3-7x). The
identity of a reading is (metric, ts, seq), seq being absent for devices that send
none; a device that reboots and restarts seq at 0 sends new timestamps, so its new
readings are new. For each reading:

- ts above the device's high-water mark (the newest ts stored or on its way): new,
  since every stored reading has ts <= the mark (the writer moves the mark in the same
  transaction as the rows);
- else, among the keys accepted but not yet committed (``pending``): a duplicate;
- else the database decides (one indexed query per batch on (device_key, ts)): stored
  means duplicate, absent means a late reading, which is stored.

Keys leave ``pending`` once their batch commits, when the database knows them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from sensorium.actors._alert_rules import RuleState, new_state
from sensorium.actors._alerting import LiveRule
from sensorium.actors._envelope import Envelope
from sensorium.actors._receipt import Receipt
from sensorium.actors._writer import Row, WriteRequest
from sensorium.storage import AlertTransition

__all__ = ["DeviceContext", "DeviceState", "PoisonPill", "device_behavior"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# (metric name, ts_us, seq)
Key = tuple[str, int, int | None]


class PoisonPill(RuntimeError):
    """Injected fault (settings: ``engine.poison_marker``): crashes the device actor."""


@dataclass(slots=True)
class DeviceState:
    """What a device actor keeps, live or passivated."""

    hwm_us: int = -1
    pending: dict[Key, Receipt] = field(default_factory=dict)
    # Oldest first; a list, not a deque: it holds one entry per uncommitted batch (a
    # handful), and an empty deque costs ~600 bytes in each of a million idle actors.
    pending_order: list[tuple[Receipt, tuple[Key, ...]]] = field(default_factory=list)
    latest: dict[str, tuple[int, float]] = field(default_factory=dict)
    # rule id -> its evaluation state for this device (only when rules apply)
    alerts: dict[int, RuleState] | None = None
    # The rules' list it was made for (the rule book's, until a reload), and by metric
    # name, each rule with its state: made once, not per message.
    alert_plan: tuple[list[LiveRule], dict[str, list[tuple[LiveRule, RuleState]]]] | None = None

    def prune(self) -> None:
        """Forget pending keys whose batch committed (the database has them now)."""
        order = self.pending_order
        done = 0
        while done < len(order) and order[done][0].settled:
            receipt, keys = order[done]
            for key in keys:
                if self.pending.get(key) is receipt:
                    del self.pending[key]
            done += 1
        if done:
            del order[:done]


@dataclass(slots=True)
class DeviceContext:
    """What every device actor shares."""

    submit: Callable[[WriteRequest], Awaitable[None]]
    metric_ids: Callable[[set[str]], Awaitable[dict[str, int]]]
    # (device_key, [ts_us]) -> {(metric_id, ts_us, seq)} already stored
    stored_keys: Callable[[int, list[int]], Awaitable[set[tuple[int, int, int | None]]]]
    initial_hwm: Callable[[int], int]
    poison_marker: bytes | None = None
    metric_id_nowait: Callable[[str], int | None] = lambda name: None
    # The alert rules of a device (tenant_id, device_key, device_id), and where their
    # transitions go; none by default.
    rules_for: Callable[[int, int, str], list[LiveRule]] = lambda tenant, key, device: []
    alert: Callable[[AlertTransition], Awaitable[None]] | None = None


class _DeviceBehavior:
    __slots__ = ("context", "key", "state")

    def __init__(self, key: int, state: DeviceState, context: DeviceContext) -> None:
        self.key = key
        self.state = state
        self.context = context

    def before_passivation(self) -> None:
        """Drop what the database now knows, so a passivated device costs little."""
        state = self.state
        state.prune()
        state.alert_plan = None  # made again on the next reading; the states stay
        if not state.pending:
            # A dict keeps its grown table after its keys go; a new one is 64 bytes.
            state.pending = {}
            state.pending_order = []

    async def handle(self, envelopes: Sequence[Envelope]) -> None:
        state = self.state
        context = self.context
        state.prune()
        todo = [e for e in envelopes if not e.handled]
        if not todo:
            return
        marker = context.poison_marker
        if marker is not None:
            for envelope in todo:
                # Before any change of state: the registry then delivers the batch again
                # one message at a time, and only the poison one fails.
                if marker in envelope.raw:
                    raise PoisonPill(f"poison payload for device {envelope.device_id}")
        ids = await self._metric_ids(todo)
        # The database is asked only about timestamps at or below the mark.
        uncertain = sorted(
            {item.ts_us for e in todo for item in e.items if item.ts_us <= state.hwm_us}
        )
        stored = await context.stored_keys(self.key, uncertain) if uncertain else set()
        rows: list[Row] = []
        judged: list[Receipt] = []
        transitions: list[AlertTransition] = []
        try:
            for envelope in todo:
                first = len(rows)
                self._judge(envelope, ids, stored, rows)
                judged.append(envelope.receipt)
                rules = context.rules_for(envelope.tenant_id, self.key, envelope.device_id)
                if rules and len(rows) > first:
                    self._evaluate(envelope, rules, ids, rows[first:], transitions)
        finally:
            # One request for what was judged, even if a later message failed: state
            # changed for those, so their rows must reach the writer. Duplicates go
            # through it too: it commits in order, so by the time these receipts
            # settle, the originals are committed.
            if judged:
                await context.submit(WriteRequest(rows=rows, receipts=judged))
            if transitions and context.alert is not None:
                for transition in transitions:
                    await context.alert(transition)

    def _plan(self, rules: list[LiveRule]) -> dict[str, list[tuple[LiveRule, RuleState]]]:
        """Each rule with its state, by metric; a rule whose condition is unchanged
        across a reload keeps its state (a pending duration goes on)."""
        state = self.state
        plan = state.alert_plan
        if plan is not None and plan[0] is rules:
            return plan[1]
        states = state.alerts
        if states is None:
            states = state.alerts = {}
        by_metric: dict[str, list[tuple[LiveRule, RuleState]]] = {}
        for rule in rules:
            rule_state = states.get(rule.id)
            if rule_state is None or rule_state.condition != rule.condition:
                rule_state = states[rule.id] = new_state(rule.condition)
            by_metric.setdefault(rule.metric, []).append((rule, rule_state))
        for gone in states.keys() - {rule.id for rule in rules}:
            del states[gone]
        state.alert_plan = (rules, by_metric)
        return by_metric

    def _evaluate(
        self,
        envelope: Envelope,
        rules: list[LiveRule],
        ids: dict[str, int],
        rows: list[Row],
        transitions: list[AlertTransition],
    ) -> None:
        """Feed the new readings, in stream order, to the rules of their metric."""
        by_metric = self._plan(rules)
        names = {metric_id: name for name, metric_id in ids.items() if name in by_metric}
        if not names:
            return
        for _, row_metric, ts_us, value, _ in rows:
            name = names.get(row_metric)
            if name is None:
                continue
            for rule, rule_state in by_metric[name]:
                transition = rule_state.observe(ts_us, value)
                if transition is not None:
                    transitions.append(
                        rule.transition(
                            device_key=self.key,
                            device_id=envelope.device_id,
                            kind=transition.kind,
                            at=_EPOCH + dt.timedelta(microseconds=transition.at_us),
                            value=transition.value,
                        )
                    )

    async def _metric_ids(self, envelopes: list[Envelope]) -> dict[str, int]:
        """Ids of every metric named in ``envelopes``; the catalog's cache answers
        almost always, a new name costs one query."""
        known = self.context.metric_id_nowait
        ids: dict[str, int] = {}
        missing: set[str] = set()
        for envelope in envelopes:
            for item in envelope.items:
                for name, _ in item.metrics:
                    if name not in ids:
                        metric_id = known(name)
                        if metric_id is None:
                            missing.add(name)
                        else:
                            ids[name] = metric_id
        if missing:
            ids.update(await self.context.metric_ids(missing))
        return ids

    def _judge(
        self,
        envelope: Envelope,
        ids: dict[str, int],
        stored: set[tuple[int, int, int | None]],
        rows: list[Row],
    ) -> None:
        """Decide each reading of ``envelope``: new (appended to ``rows``) or duplicate.
        All or nothing: the state changes only once every reading is judged."""
        state = self.state
        pending = state.pending
        device_key = self.key
        hwm = state.hwm_us
        keys: dict[Key, None] = {}  # new in this message, in order
        new_rows: list[Row] = []
        latest: dict[str, tuple[int, float]] = {}
        accepted = duplicates = 0
        for item in envelope.items:
            ts, seq = item.ts_us, item.seq
            new_here = 0
            for name, value in item.metrics:
                key = (name, ts, seq)
                if key in keys or (
                    ts <= hwm and (key in pending or (ids[name], ts, seq) in stored)
                ):
                    continue
                keys[key] = None
                new_rows.append((device_key, ids[name], ts, value, seq))
                new_here += 1
                seen = latest.get(name) or state.latest.get(name)
                if seen is None or ts >= seen[0]:
                    latest[name] = (ts, value)
            if new_here:
                accepted += 1
            else:
                duplicates += 1
            if ts > hwm:
                hwm = ts
        # Judged: now change the state (nothing below can fail).
        receipt = envelope.receipt
        for key in keys:
            pending[key] = receipt
        if keys:
            state.pending_order.append((receipt, tuple(keys)))
        state.latest.update(latest)
        state.hwm_us = hwm
        rows.extend(new_rows)
        receipt.accepted += accepted
        receipt.duplicates += duplicates
        envelope.handled = True


def device_behavior(
    context: DeviceContext,
) -> Callable[[int, DeviceState | None], tuple[_DeviceBehavior, DeviceState]]:
    """The factory the registry calls to build (or rebuild) a device actor."""

    def make(key: int, state: DeviceState | None) -> tuple[_DeviceBehavior, DeviceState]:
        if state is None:
            state = DeviceState(hwm_us=context.initial_hwm(key))
        return _DeviceBehavior(key, state, context), state

    return make
