"""The actor registry: lazy spawn by key, supervision, idle passivation, shutdown.

One live actor per key at most. A message for a key with no live actor spawns one,
built from the state the key had when it was last passivated. An actor idle for
``idle_timeout_s`` with an empty mailbox passivates: its task and mailbox go, its state
stays (small), and the next message brings it back.

Supervision is one-for-one: a crash restarts only that actor, after a backoff; the
batch it was handling is delivered again one message at a time, and a message that
crashes it on its own is handed to ``on_undeliverable`` (never silently lost). Past the
restart intensity the actor escalates: to ``on_escalation`` if given (the actor's queued
messages go to ``on_undeliverable``), else by raising `ActorEscalation` into the
registry's nursery.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

import trio

from sensorium.engine._actor import Behavior, BehaviorFactory, RestartPolicy
from sensorium.engine._errors import ActorEscalation, MailboxClosed
from sensorium.engine._mailbox import Mailbox

__all__ = ["ActorRegistry", "RegistryStatistics"]

K = TypeVar("K")
M = TypeVar("M")
S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class RegistryStatistics:
    live: int
    passivated: int
    spawned: int
    passivations: int
    restarts: int
    escalations: int
    undeliverable: int
    delivered: int
    queued: int


class _Cell(Generic[M, S]):
    __slots__ = ("behavior", "busy", "crashes", "last_active", "mailbox", "state")

    def __init__(self, mailbox: Mailbox[M], state: S | None) -> None:
        self.mailbox = mailbox
        self.state = state
        self.behavior: object = None
        self.busy = False  # handling a batch (never passivated then)
        self.last_active = trio.current_time()
        self.crashes: deque[float] = deque()


class ActorRegistry(Generic[K, M, S]):
    """Use `ActorRegistry.open(...)` to get one bound to a nursery."""

    def __init__(
        self,
        nursery: trio.Nursery,
        factory: BehaviorFactory[K, S, M],
        *,
        mailbox_size: int,
        idle_timeout_s: float,
        max_batch: int = 256,
        restart: RestartPolicy | None = None,
        on_undeliverable: Callable[[K, M, BaseException], None],
        on_escalation: Callable[[K, ActorEscalation], None] | None = None,
    ) -> None:
        self._nursery = nursery
        self._factory = factory
        self._mailbox_size = mailbox_size
        self._idle_timeout_s = idle_timeout_s
        self._max_batch = max_batch
        self._restart = restart or RestartPolicy()
        self._on_undeliverable = on_undeliverable
        self._on_escalation = on_escalation
        self._live: dict[K, _Cell[M, S]] = {}
        self._passivated: dict[K, S] = {}
        self._closing = False
        self._all_stopped = trio.Event()
        self._all_stopped.set()
        self._spawned = self._passivations = self._restarts = 0
        self._escalations = self._undeliverable = self._delivered = 0

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        factory: BehaviorFactory[K, S, M],
        *,
        shutdown_timeout_s: float = 10.0,
        **options: object,
    ) -> AsyncIterator[ActorRegistry[K, M, S]]:
        """A registry whose actors live in a nursery of their own; on exit every
        mailbox is closed and drained, within ``shutdown_timeout_s``."""
        async with trio.open_nursery() as nursery:
            registry = cls(nursery, factory, **options)  # type: ignore[arg-type]
            nursery.start_soon(registry._sweep_idle)
            try:
                yield registry
            finally:
                with trio.CancelScope(shield=True):
                    await registry.stop(timeout_s=shutdown_timeout_s)
                nursery.cancel_scope.cancel()

    # -- sending ------------------------------------------------------------------------

    def _cell(self, key: K) -> _Cell[M, S]:
        cell = self._live.get(key)
        if cell is None:
            if self._closing:
                raise MailboxClosed("the registry is shutting down")
            cell = _Cell(Mailbox(self._mailbox_size), self._passivated.pop(key, None))
            self._live[key] = cell
            self._spawned += 1
            self._all_stopped = trio.Event() if self._all_stopped.is_set() else self._all_stopped
            self._nursery.start_soon(self._supervise, key, cell)
        return cell

    async def send(self, key: K, message: M) -> None:
        """Deliver to ``key``'s actor, spawning it if needed; waits while it is full."""
        await self._cell(key).mailbox.send(message)

    def send_nowait(self, key: K, message: M) -> None:
        """Like `send`, but raises `MailboxFull` instead of waiting."""
        self._cell(key).mailbox.send_nowait(message)

    def state_of(self, key: K) -> S | None:
        """The state of ``key``'s actor, live or passivated (for inspection and tests)."""
        cell = self._live.get(key)
        return cell.state if cell is not None else self._passivated.get(key)

    # -- the actor's task ---------------------------------------------------------------

    async def _supervise(self, key: K, cell: _Cell[M, S]) -> None:
        try:
            await self._run(key, cell)
        except _Stopped:
            pass
        finally:
            if self._live.get(key) is cell:
                del self._live[key]
                if cell.state is not None:
                    self._passivated[key] = cell.state
            if not self._live:
                self._all_stopped.set()

    async def _run(self, key: K, cell: _Cell[M, S]) -> None:
        behavior, cell.state = self._factory(key, cell.state)
        cell.behavior = behavior
        mailbox = cell.mailbox
        while True:
            try:
                batch = [await mailbox.receive()]
            except trio.EndOfChannel:
                return  # closed and drained: shutdown, or passivated by the sweeper
            cell.busy = True
            while len(batch) < self._max_batch:
                try:
                    batch.append(mailbox.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            behavior = await self._deliver(key, cell, behavior, batch)
            cell.behavior = behavior
            cell.busy = False
            cell.last_active = trio.current_time()

    @property
    def idle_timeout_s(self) -> float:
        return self._idle_timeout_s

    @idle_timeout_s.setter
    def idle_timeout_s(self, seconds: float) -> None:
        """Takes effect at the sweeper's next pass (within 5 s)."""
        if seconds <= 0:
            raise ValueError("the idle timeout must be positive")
        self._idle_timeout_s = seconds

    async def _sweep_idle(self) -> None:
        """Passivate actors idle for ``idle_timeout_s``: one task looks at every actor a
        few times per timeout, instead of each actor arming a timeout per message."""
        while True:
            await trio.sleep(min(max(self._idle_timeout_s / 4, 0.01), 5.0))
            if self._closing:
                return
            now = trio.current_time()
            for key, cell in list(self._live.items()):
                if (
                    cell.busy
                    or cell.mailbox.queued
                    or now - cell.last_active < self._idle_timeout_s
                ):
                    continue
                # No await from the check to the close: no sender can slip a message into
                # a mailbox nobody will read; the next message spawns a new actor from
                # the same state, and this one ends at its next receive.
                compact = getattr(cell.behavior, "before_passivation", None)
                if compact is not None:
                    compact()  # let the behaviour shrink its state first
                del self._live[key]
                cell.mailbox.close()
                if cell.state is not None:
                    self._passivated[key] = cell.state
                self._passivations += 1

    async def _deliver(
        self, key: K, cell: _Cell[M, S], behavior: Behavior[M], batch: Sequence[M]
    ) -> Behavior[M]:
        try:
            await behavior.handle(batch)
        except Exception as exc:
            behavior = await self._crashed(key, cell, exc, unhandled=batch)
            # Again, one at a time: whatever crashes alone is undeliverable.
            for index, message in enumerate(batch):
                try:
                    await behavior.handle((message,))
                except Exception as again:
                    self._give_up(key, message, again)
                    behavior = await self._crashed(key, cell, again, unhandled=batch[index + 1 :])
                else:
                    self._delivered += 1
        else:
            self._delivered += len(batch)
        return behavior

    def _give_up(self, key: K, message: M, exc: BaseException) -> None:
        self._undeliverable += 1
        self._on_undeliverable(key, message, exc)

    async def _crashed(
        self, key: K, cell: _Cell[M, S], exc: BaseException, *, unhandled: Sequence[M]
    ) -> Behavior[M]:
        """Count the crash, escalate past the limit, else back off and rebuild.

        On escalation, ``unhandled`` (the rest of the batch) and the queued messages
        are handed to ``on_undeliverable``.
        """
        now = trio.current_time()
        policy = self._restart
        cell.crashes.append(now)
        while cell.crashes and cell.crashes[0] < now - policy.window_s:
            cell.crashes.popleft()
        if len(cell.crashes) > policy.max_restarts:
            self._escalations += 1
            escalation = ActorEscalation(str(key), len(cell.crashes), policy.window_s, exc)
            if self._on_escalation is None:
                raise escalation from exc
            self._on_escalation(key, escalation)
            # The actor stops; what it still had is handed over, not lost.
            cell.mailbox.close()
            for message in unhandled:
                self._give_up(key, message, escalation)
            while True:
                try:
                    message = cell.mailbox.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                self._give_up(key, message, escalation)
            cell.crashes.clear()
            raise _Stopped from None
        self._restarts += 1
        await trio.sleep(policy.backoff(len(cell.crashes)))
        behavior, cell.state = self._factory(key, cell.state)
        return behavior

    # -- stopping -----------------------------------------------------------------------

    async def stop(self, *, timeout_s: float) -> bool:
        """Close every mailbox and wait for the actors to drain them.

        Returns False if ``timeout_s`` passed first (the remaining actors are cancelled
        by the caller's nursery).
        """
        self._closing = True
        for cell in list(self._live.values()):
            cell.mailbox.close()
        with trio.move_on_after(timeout_s) as scope:
            await self._all_stopped.wait()
        return not scope.cancelled_caught

    def statistics(self) -> RegistryStatistics:
        return RegistryStatistics(
            live=len(self._live),
            passivated=len(self._passivated),
            spawned=self._spawned,
            passivations=self._passivations,
            restarts=self._restarts,
            escalations=self._escalations,
            undeliverable=self._undeliverable,
            delivered=self._delivered,
            queued=sum(cell.mailbox.queued for cell in self._live.values()),
        )


class _Stopped(Exception):
    """Internal: an escalated actor ends its task quietly."""
