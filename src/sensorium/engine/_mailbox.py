"""A bounded mailbox: a `BoundedQueue` with backpressure and statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import trio

from sensorium.engine._errors import MailboxClosed, MailboxFull
from sensorium.engine._queue import BoundedQueue

__all__ = ["Mailbox", "MailboxStatistics"]

M = TypeVar("M")


@dataclass(frozen=True, slots=True)
class MailboxStatistics:
    capacity: int
    queued: int
    sent: int
    rejected: int


class Mailbox(Generic[M]):
    """``send`` waits while full (backpressure); ``send_nowait`` raises `MailboxFull`."""

    __slots__ = ("_queue", "_rejected", "_sent")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a mailbox holds at least one message")
        self._queue = BoundedQueue[M](capacity)
        self._sent = 0
        self._rejected = 0

    async def send(self, message: M) -> None:
        """Waits while full. A mailbox with room takes the message without a trio
        checkpoint: the hot path hands thousands of messages per socket read without
        yielding for each (it yields at the next read)."""
        queue = self._queue
        try:
            try:
                queue.put_nowait(message)
            except trio.WouldBlock:
                await queue.put(message)
        except trio.ClosedResourceError:
            raise MailboxClosed("the mailbox is closed") from None
        self._sent += 1

    def send_nowait(self, message: M) -> None:
        try:
            self._queue.put_nowait(message)
        except trio.WouldBlock:
            self._rejected += 1
            raise MailboxFull(f"mailbox full ({self.capacity} messages)") from None
        except trio.ClosedResourceError:
            raise MailboxClosed("the mailbox is closed") from None
        self._sent += 1

    async def receive(self) -> M:
        return await self._queue.get()

    def receive_nowait(self) -> M:
        """Raises `trio.WouldBlock` when empty, `trio.EndOfChannel` once closed and drained."""
        return self._queue.get_nowait()

    def close(self) -> None:
        """Refuse new messages; queued ones can still be received."""
        self._queue.close()

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def capacity(self) -> int:
        return self._queue.capacity

    def statistics(self) -> MailboxStatistics:
        return MailboxStatistics(self.capacity, self.queued, self._sent, self._rejected)
