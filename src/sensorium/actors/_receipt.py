"""Receipts: how a source learns that what it handed in is durable.

A receipt is settled once every part of its message (accepted readings, a dead letter)
is committed; then its callback runs: the MQTT source queues the PUBACK, the HTTP
handler answers. Settling twice is harmless (a redelivered duplicate).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Receipt"]


class Receipt:
    __slots__ = ("_done", "_parts", "accepted", "duplicates", "settled")

    def __init__(self, done: Callable[[Receipt], None] | None = None, *, parts: int = 1) -> None:
        self._done = done
        self._parts = parts
        self.accepted = 0  # items stored by this message
        self.duplicates = 0  # items already stored
        self.settled = False

    def add_part(self) -> None:
        """One more part must commit before the receipt settles."""
        self._parts += 1

    def settle(self) -> None:
        """One part is durable; the last one runs the callback."""
        if self.settled:
            return
        self._parts -= 1
        if self._parts <= 0:
            self.settled = True
            if self._done is not None:
                self._done(self)
