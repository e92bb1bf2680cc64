"""A doorbell: one task rings when there is work, others wake up at once instead of at
their next poll. A ring is never lost: a waiter takes the bell's current event before
it does its work, so a ring during that work wakes its next wait immediately."""

from __future__ import annotations

import trio

__all__ = ["Doorbell"]


class Doorbell:
    def __init__(self) -> None:
        self._event = trio.Event()

    def ring(self) -> None:
        self._event.set()
        self._event = trio.Event()

    def current(self) -> trio.Event:
        """Take this before working; wait on it after (``wait``)."""
        return self._event

    @staticmethod
    async def wait(event: trio.Event, *, timeout_s: float) -> None:
        """Until ``event`` (a ring since it was taken) or ``timeout_s``."""
        with trio.move_on_after(timeout_s):
            await event.wait()
