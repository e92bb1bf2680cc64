"""The doorbell on trio's MockClock: a ring wakes a waiter at once, a ring during the
waiter's work is not lost, and without a ring the wait ends at its timeout."""

from __future__ import annotations

import trio
import trio.testing

from sensorium.engine import Doorbell


def test_a_ring_wakes_at_once_and_a_ring_during_work_is_kept() -> None:
    woke: list[float] = []

    async def main() -> None:
        bell = Doorbell()

        async def waiter() -> None:
            for _ in range(3):
                rung = bell.current()
                await trio.sleep(1)  # the work of one pass
                await Doorbell.wait(rung, timeout_s=10)
                woke.append(trio.current_time())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.sleep(0.5)
            bell.ring()  # during the first pass's work: its wait ends at once (t=1)
            await trio.sleep(2)  # t=2.5: the second pass waits since t=2
            bell.ring()  # wakes it now
        # The third pass has no ring: it waits its whole timeout.

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert woke == [1.0, 2.5, 13.5]
