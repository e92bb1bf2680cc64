"""Actors: a behaviour, the state it keeps, and the policy that restarts it.

An actor is a trio task that takes messages from its bounded `Mailbox` in batches (all
that is queued, up to a limit) and hands them to its `Behavior`. The actor's *state*
lives outside the behaviour, in the actor's cell: a crash replaces the behaviour (built
again from the same state) but loses no state and no queued message. State is the
actor's to keep consistent: change it only once a message is judged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

__all__ = ["Behavior", "BehaviorFactory", "RestartPolicy"]

M = TypeVar("M")
M_contra = TypeVar("M_contra", contravariant=True)
K = TypeVar("K")
S = TypeVar("S")


class Behavior(Protocol[M_contra]):
    """What an actor does with a batch of messages. Returning means delivered."""

    async def handle(self, messages: Sequence[M_contra]) -> None: ...


# Builds the behaviour of the actor ``key`` around its state (``None`` when new) and
# returns both: the state may be created here. Parameters: [key, state, message].
BehaviorFactory = Callable[[K, S | None], tuple[Behavior[M], S]]


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """One-for-one restarts with exponential backoff and an intensity limit.

    After a crash the actor waits ``min(base_s * 2**n, cap_s)`` (n: crashes within
    the window so far) and starts again. More than ``max_restarts`` crashes within
    ``window_s`` escalate to the parent.
    """

    max_restarts: int = 5
    window_s: float = 10.0
    backoff_base_s: float = 0.01
    backoff_cap_s: float = 1.0

    def backoff(self, recent_crashes: int) -> float:
        return float(min(self.backoff_base_s * 2 ** max(recent_crashes - 1, 0), self.backoff_cap_s))
