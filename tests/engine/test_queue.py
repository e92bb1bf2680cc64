"""The bounded queue under the mailboxes and the writer, on trio's MockClock: order,
bounds, close, cancellation, and random producer/consumer schedules losing nothing."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorium.engine import BoundedQueue


async def test_fifo_bound_and_nowait() -> None:
    queue = BoundedQueue[int](2)
    queue.put_nowait(1)
    await queue.put(2)
    assert len(queue) == 2
    with pytest.raises(trio.WouldBlock):
        queue.put_nowait(3)
    assert [await queue.get(), queue.get_nowait()] == [1, 2]
    with pytest.raises(trio.WouldBlock):
        queue.get_nowait()
    with pytest.raises(ValueError, match="at least one"):
        BoundedQueue[int](0)


async def test_a_full_queue_makes_put_wait_until_a_get(
    autojump_clock: trio.testing.MockClock,
) -> None:
    queue = BoundedQueue[str](1)
    queue.put_nowait("first")
    put_at: list[float] = []

    async def producer() -> None:
        await queue.put("second")
        put_at.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(producer)
        await trio.sleep(5)
        assert put_at == [] and len(queue) == 1  # still waiting: backpressure
        assert await queue.get() == "first"
    assert put_at == [5.0]
    assert queue.get_nowait() == "second"


async def test_a_waiting_get_wakes_on_put(autojump_clock: trio.testing.MockClock) -> None:
    queue = BoundedQueue[int](4)
    got: list[tuple[int, float]] = []

    async def consumer() -> None:
        got.append((await queue.get(), trio.current_time()))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        await trio.sleep(3)
        queue.put_nowait(7)
    assert got == [(7, 3.0)]


async def test_close_drains_then_ends_and_wakes_every_waiter(
    autojump_clock: trio.testing.MockClock,
) -> None:
    queue = BoundedQueue[int](1)
    queue.put_nowait(1)
    outcomes: list[str] = []

    async def blocked_producer() -> None:
        try:
            await queue.put(2)
        except trio.ClosedResourceError:
            outcomes.append("put refused")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(blocked_producer)
        await trio.sleep(1)
        queue.close()
    assert outcomes == ["put refused"]
    assert queue.closed
    with pytest.raises(trio.ClosedResourceError):
        queue.put_nowait(3)
    assert await queue.get() == 1  # what was queued is still taken
    with pytest.raises(trio.EndOfChannel):
        queue.get_nowait()

    empty = BoundedQueue[int](1)

    async def blocked_consumer() -> None:
        try:
            await empty.get()
        except trio.EndOfChannel:
            outcomes.append("get ended")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(blocked_consumer)
        await trio.sleep(1)
        empty.close()
    assert outcomes == ["put refused", "get ended"]


async def test_a_cancelled_waiter_takes_no_wake_up_from_the_others(
    autojump_clock: trio.testing.MockClock,
) -> None:
    queue = BoundedQueue[str](1)
    queue.put_nowait("held")
    landed: list[str] = []
    first_in_line = trio.CancelScope()

    async def producer(item: str, scope: trio.CancelScope) -> None:
        with scope:
            await queue.put(item)
            landed.append(item)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(producer, "given up", first_in_line)
        await trio.sleep(1)
        nursery.start_soon(producer, "waiting", trio.CancelScope())
        await trio.sleep(1)
        first_in_line.cancel()
        await trio.sleep(1)
        assert await queue.get() == "held"  # the slot it frees goes to the one still waiting
    assert landed == ["waiting"]
    assert queue.get_nowait() == "waiting"


async def test_get_is_a_checkpoint_even_with_items_waiting() -> None:
    queue = BoundedQueue[int](1)
    queue.put_nowait(1)
    with trio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(trio.Cancelled):
            await queue.get()
    assert len(queue) == 1  # a cancelled get took nothing


@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(1, 4),
    producers=st.lists(st.lists(st.floats(0, 1), min_size=0, max_size=12), min_size=1, max_size=4),
    consumer_gaps=st.lists(st.floats(0, 1), max_size=30),
    close_after=st.floats(0, 20) | st.none(),
)
def test_random_schedules_deliver_each_item_once_in_each_producers_order(
    capacity: int,
    producers: list[list[float]],
    consumer_gaps: list[float],
    close_after: float | None,
) -> None:
    """Producers with random pauses, a consumer with random pauses, maybe a close in the
    middle: every item a put accepted is taken exactly once, each producer's items in
    the order it put them, and the queue never holds more than its capacity."""
    queue = BoundedQueue[tuple[int, int]](capacity)
    accepted: list[tuple[int, int]] = []
    taken: list[tuple[int, int]] = []
    peak = [0]

    async def producer(number: int, gaps: list[float]) -> None:
        for index, gap in enumerate(gaps):
            await trio.sleep(gap)
            try:
                await queue.put((number, index))
            except trio.ClosedResourceError:
                return
            accepted.append((number, index))
            peak[0] = max(peak[0], len(queue))

    async def consumer() -> None:
        index = 0
        while True:
            try:
                taken.append(await queue.get())
            except trio.EndOfChannel:
                return
            await trio.sleep(consumer_gaps[index % len(consumer_gaps)] if consumer_gaps else 0)
            index += 1

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consumer)
            async with trio.open_nursery() as sources:
                for number, gaps in enumerate(producers):
                    sources.start_soon(producer, number, gaps)
                if close_after is not None:
                    await trio.sleep(close_after)
                    queue.close()
            queue.close()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert sorted(taken) == sorted(accepted)
    for number in range(len(producers)):
        mine = [index for producer_number, index in taken if producer_number == number]
        assert mine == sorted(mine) == list(range(len(mine)))
    assert peak[0] <= capacity
