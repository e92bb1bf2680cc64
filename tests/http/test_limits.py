"""The API's throttles on trio's MockClock: failed logins per key within a window, and
token buckets per user."""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorium.http._limits import FailureWindow, TokenBuckets, retry_after_header


def _run(fn: object) -> None:
    trio.run(fn, clock=trio.testing.MockClock(autojump_threshold=0))  # type: ignore[arg-type]


def test_failures_past_the_limit_wait_until_the_oldest_leaves_the_window() -> None:
    async def main() -> None:
        window = FailureWindow(limit=3, window_s=60)
        for _ in range(3):
            assert window.retry_after("a@example.com") is None
            window.record_failure("a@example.com")
            await trio.sleep(10)
        # Failures at t=0, 10, 20; now t=30: the first leaves the window at t=60.
        assert window.retry_after("a@example.com") == 30
        assert window.retry_after("someone-else") is None
        await trio.sleep(30)
        assert window.retry_after("a@example.com") is None
        window.record_failure("a@example.com")  # t=60: failures at 10, 20, 60
        assert window.retry_after("a@example.com") == 10
        window.forget("a@example.com")  # a successful login
        assert window.retry_after("a@example.com") is None

    _run(main)


def test_failure_window_forgets_the_oldest_keys_past_its_bound() -> None:
    async def main() -> None:
        window = FailureWindow(limit=1, window_s=60, max_keys=2)
        for key in ("a", "b", "c"):
            window.record_failure(key)
        assert window.retry_after("a") is None  # forgotten: memory stays bounded
        assert window.retry_after("b") is not None
        assert window.retry_after("c") is not None

    _run(main)


@settings(max_examples=50, deadline=None)
@given(
    rate=st.floats(0.5, 100),
    gaps=st.lists(st.floats(0, 2), min_size=1, max_size=60),
)
def test_token_bucket_never_admits_more_than_burst_plus_rate_times_time(
    rate: float, gaps: list[float]
) -> None:
    burst = 2 * rate

    async def main() -> None:
        buckets = TokenBuckets(rate, burst=burst)
        admitted = 0
        start = trio.current_time()
        for gap in gaps:
            await trio.sleep(gap)
            wait = buckets.take("user")
            if wait is None:
                admitted += 1
            else:
                assert wait > 0
                # Waiting as told always admits.
                await trio.sleep(wait)
                assert buckets.take("user") is None
                admitted += 1
        elapsed = trio.current_time() - start
        assert admitted <= max(burst, 1.0) + rate * elapsed + 1e-6

    _run(main)


def test_token_bucket_refuses_past_the_burst_and_says_how_long_to_wait() -> None:
    async def main() -> None:
        buckets = TokenBuckets(rate=2, burst=4)
        assert [buckets.take(7) for _ in range(4)] == [None] * 4
        assert buckets.take(7) == 0.5
        assert buckets.take(8) is None  # another user has its own bucket
        await trio.sleep(0.5)
        assert buckets.take(7) is None

    _run(main)


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(1.2) == "2"
    assert retry_after_header(30) == "30"
