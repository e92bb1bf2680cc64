"""The actor runtime, on trio's MockClock: restarts, passivation, shutdown, no loss."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorium.engine import (
    ActorEscalation,
    ActorRegistry,
    Mailbox,
    MailboxClosed,
    MailboxFull,
    RestartPolicy,
)


@dataclass
class Counter:
    """Actor state: what it has seen (kept across restarts and passivation)."""

    seen: list[int] = field(default_factory=list)
    incarnations: int = 0


class CrashOn:
    """Crashes on the messages in ``poison`` (every time) or ``flaky`` (first time only)."""

    def __init__(self, state: Counter, poison: set[int], flaky: set[int]) -> None:
        self.state = state
        self.poison = poison
        self.flaky = flaky

    async def handle(self, messages: Sequence[int]) -> None:
        for m in messages:
            if m in self.poison:
                raise RuntimeError(f"poison {m}")
            if m in self.flaky:
                self.flaky.discard(m)
                raise RuntimeError(f"flaky {m}")
        self.state.seen.extend(messages)  # change state only once the batch is judged


def factory(poison: set[int] = frozenset(), flaky: set[int] | None = None):  # type: ignore[assignment]
    flaky = set() if flaky is None else flaky

    def make(key: str, state: Counter | None) -> tuple[CrashOn, Counter]:
        state = state or Counter()
        state.incarnations += 1
        return CrashOn(state, set(poison), flaky), state

    return make


async def test_mailbox_backpressure_and_nowait() -> None:
    box: Mailbox[int] = Mailbox(2)
    box.send_nowait(1)
    await box.send(2)
    with pytest.raises(MailboxFull):
        box.send_nowait(3)
    with trio.move_on_after(0.01) as scope:
        await box.send(3)  # waits: backpressure
    assert scope.cancelled_caught
    assert box.statistics().queued == 2 and box.statistics().rejected == 1
    box.close()
    with pytest.raises(MailboxClosed):
        box.send_nowait(4)
    assert [await box.receive(), await box.receive()] == [1, 2]


async def test_lazy_spawn_delivers_in_order(autojump_clock: trio.testing.MockClock) -> None:
    undeliverable: list[object] = []
    async with ActorRegistry.open(
        factory(),
        mailbox_size=4,
        idle_timeout_s=60,
        on_undeliverable=lambda k, m, e: undeliverable.append(m),
    ) as registry:
        for i in range(20):
            await registry.send("a", i)
            await registry.send("b", 100 + i)
        assert registry.statistics().live == 2
    assert registry.state_of("a").seen == list(range(20))  # type: ignore[union-attr]
    assert registry.state_of("b").seen == [100 + i for i in range(20)]  # type: ignore[union-attr]
    assert undeliverable == []


async def test_idle_actor_passivates_and_comes_back_with_its_state(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with ActorRegistry.open(
        factory(), mailbox_size=4, idle_timeout_s=30, on_undeliverable=lambda k, m, e: None
    ) as registry:
        await registry.send("a", 1)
        await trio.sleep(29)
        assert registry.statistics().live == 1
        await trio.sleep(2)
        stats = registry.statistics()
        assert (stats.live, stats.passivated, stats.passivations) == (0, 1, 1)
        await registry.send("a", 2)
        await trio.sleep(0.001)
        state = registry.state_of("a")
        assert state is not None and state.seen == [1, 2] and state.incarnations == 2


async def test_crash_restarts_with_backoff_and_poison_is_undeliverable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    undeliverable: list[tuple[str, int, str]] = []
    policy = RestartPolicy(max_restarts=10, window_s=60, backoff_base_s=1, backoff_cap_s=8)
    async with ActorRegistry.open(
        factory(poison={3}),
        mailbox_size=16,
        idle_timeout_s=600,
        restart=policy,
        on_undeliverable=lambda k, m, e: undeliverable.append((k, m, str(e))),
    ) as registry:
        start = trio.current_time()
        for i in range(6):
            registry.send_nowait("a", i)
        await registry.send("other", 7)
        await trio.sleep(100)
        # Two crashes (batch, then 3 alone): backoffs of 1 s and 2 s.
        stats = registry.statistics()
        assert stats.restarts == 2 and stats.undeliverable == 1
    assert trio.current_time() - start >= 3
    assert undeliverable == [("a", 3, "poison 3")]
    assert registry.state_of("a").seen == [0, 1, 2, 4, 5]  # type: ignore[union-attr]
    assert registry.state_of("other").seen == [7]  # type: ignore[union-attr]


async def test_escalation_past_the_restart_intensity_raises_to_the_parent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    policy = RestartPolicy(max_restarts=2, window_s=60, backoff_base_s=0.1)
    with pytest.RaisesGroup(ActorEscalation, flatten_subgroups=True):
        async with ActorRegistry.open(
            factory(poison={1, 2, 3}),
            mailbox_size=8,
            idle_timeout_s=600,
            restart=policy,
            on_undeliverable=lambda k, m, e: None,
        ) as registry:
            for i in (1, 2, 3):
                registry.send_nowait("a", i)
            await trio.sleep(10)


async def test_escalation_handler_keeps_the_rest_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    escalated: list[str] = []
    undeliverable: list[int] = []
    policy = RestartPolicy(max_restarts=1, window_s=60, backoff_base_s=0.1)
    async with ActorRegistry.open(
        factory(poison={1, 2}),
        mailbox_size=8,
        idle_timeout_s=600,
        restart=policy,
        on_undeliverable=lambda k, m, e: undeliverable.append(m),
        on_escalation=lambda k, e: escalated.append(k),
    ) as registry:
        for i in (1, 2, 5, 6):
            registry.send_nowait("a", i)
        await trio.sleep(10)
        await registry.send("a", 9)  # a fresh incarnation
        await trio.sleep(1)
    assert escalated == ["a"]
    state = registry.state_of("a")
    assert state is not None
    # Every message is either delivered or handed over: none vanished.
    assert sorted(state.seen + undeliverable) == [1, 2, 5, 6, 9]
    assert 9 in state.seen


async def test_shutdown_drains_mailboxes_within_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with ActorRegistry.open(
        factory(), mailbox_size=100, idle_timeout_s=600, on_undeliverable=lambda k, m, e: None
    ) as registry:
        for i in range(50):
            registry.send_nowait(f"k{i % 5}", i)
    assert registry.statistics().live == 0
    assert sum(len(registry.state_of(f"k{j}").seen) for j in range(5)) == 50  # type: ignore[union-attr]
    with pytest.raises(MailboxClosed):
        registry.send_nowait("k0", 1)


@settings(max_examples=int(os.environ.get("SENSORIUM_HYPOTHESIS_EXAMPLES", "40")), deadline=None)
@given(
    plan=st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 999)), max_size=60),
    poison=st.sets(st.integers(0, 999), max_size=5),
    flaky=st.sets(st.integers(0, 999), max_size=10),
    idle=st.sampled_from([0.5, 5.0, 600.0]),
    gaps=st.lists(st.floats(0, 2), max_size=60),
)
def test_random_crash_schedules_lose_nothing(
    plan: list[tuple[str, int]],
    poison: set[int],
    flaky: set[int],
    idle: float,
    gaps: list[float],
) -> None:
    """Every message sent is delivered exactly once or reported undeliverable; shutdown
    always finishes."""
    undeliverable: list[tuple[str, int]] = []
    registries = []

    async def main() -> None:
        async with ActorRegistry.open(
            factory(poison=poison, flaky=set(flaky)),
            mailbox_size=3,
            idle_timeout_s=idle,
            restart=RestartPolicy(max_restarts=1000, window_s=1, backoff_base_s=0.01),
            on_undeliverable=lambda k, m, e: undeliverable.append((k, m)),
            shutdown_timeout_s=1e6,
        ) as registry:
            registries.append(registry)
            for index, (key, message) in enumerate(plan):
                await registry.send(key, message)
                if index < len(gaps):
                    await trio.sleep(gaps[index])

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    registry = registries[0]
    delivered = [(key, m) for key in "abcd" for m in (registry.state_of(key) or Counter()).seen]
    assert sorted(delivered + undeliverable) == sorted(plan)
    assert all(m in poison for _, m in undeliverable)
    assert registry.statistics().live == 0
