"""The runtime's exceptions, and whose fault each is.

EngineError
├── MailboxFull        send_nowait on a full mailbox: back off (the caller's load)
├── MailboxClosed      sending to an actor that stopped (the caller is late)
└── ActorEscalation    an actor crashed more often than its restart intensity allows
"""

from __future__ import annotations

__all__ = ["ActorEscalation", "EngineError", "MailboxClosed", "MailboxFull"]


class EngineError(Exception):
    """Base of the runtime's errors."""


class MailboxFull(EngineError):
    """The mailbox is at capacity; `send` would wait."""


class MailboxClosed(EngineError):
    """The mailbox no longer accepts messages (its actor is stopping)."""


class ActorEscalation(EngineError):
    """An actor exceeded its restart intensity; its parent must decide."""

    def __init__(self, name: str, restarts: int, window_s: float, last: BaseException) -> None:
        super().__init__(
            f"actor {name} crashed {restarts} times within {window_s:g} s; last error: {last!r}"
        )
        self.name = name
        self.last = last
