"""A bounded mailbox: a trio memory channel with backpressure and statistics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import trio

from sensorium.engine._errors import MailboxClosed, MailboxFull

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

    __slots__ = ("_receive", "_rejected", "_send", "_sent", "capacity")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a mailbox holds at least one message")
        self.capacity = capacity
        self._send, self._receive = trio.open_memory_channel[M](capacity)
        self._sent = 0
        self._rejected = 0

    async def send(self, message: M) -> None:
        """Waits while full. A mailbox with room takes the message without a trio
        checkpoint: the hot path hands thousands of messages per socket read without
        yielding for each (it yields at the next read)."""
        try:
            try:
                self._send.send_nowait(message)
            except trio.WouldBlock:
                await self._send.send(message)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise MailboxClosed("the mailbox is closed") from None
        self._sent += 1

    def send_nowait(self, message: M) -> None:
        try:
            self._send.send_nowait(message)
        except trio.WouldBlock:
            self._rejected += 1
            raise MailboxFull(f"mailbox full ({self.capacity} messages)") from None
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise MailboxClosed("the mailbox is closed") from None
        self._sent += 1

    async def receive(self) -> M:
        return await self._receive.receive()

    def receive_nowait(self) -> M:
        """Raises `trio.WouldBlock` when empty, `trio.EndOfChannel` once closed and drained."""
        return self._receive.receive_nowait()

    def close(self) -> None:
        """Refuse new messages; queued ones can still be received."""
        self._send.close()

    @property
    def queued(self) -> int:
        return self._receive.statistics().current_buffer_used

    def statistics(self) -> MailboxStatistics:
        return MailboxStatistics(self.capacity, self.queued, self._sent, self._rejected)
