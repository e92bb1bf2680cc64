"""Throttles of the HTTP API, in memory per process, on trio's clock (so MockClock
tests them): failed logins per account and per address, and requests per user.

Each app server keeps its own counts: behind a load balancer spreading requests over
N servers an attacker gets at most N times the configured attempts, which keeps the
login path free of database writes. Both structures are bounded: past ``max_keys``
the least recently seen keys are forgotten.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque

import trio

__all__ = ["FailureWindow", "TokenBuckets", "retry_after_header"]


class FailureWindow:
    """At most ``limit`` failures per key within ``window_s``; then wait."""

    def __init__(self, limit: int, window_s: float, *, max_keys: int = 100_000) -> None:
        self._limit = limit
        self._window_s = window_s
        self._max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str) -> deque[float] | None:
        failures = self._failures.get(key)
        if failures is None:
            return None
        horizon = trio.current_time() - self._window_s
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        return failures

    def retry_after(self, key: str) -> float | None:
        """Seconds to wait before ``key`` may try again; None when it may now."""
        failures = self._recent(key)
        if failures is None or len(failures) < self._limit:
            return None
        return failures[0] + self._window_s - trio.current_time()

    def record_failure(self, key: str) -> None:
        failures = self._recent(key)
        if failures is None:
            failures = self._failures[key] = deque(maxlen=self._limit)
        failures.append(trio.current_time())
        self._failures.move_to_end(key)
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)


class TokenBuckets:
    """``rate`` requests per second per key, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float, *, max_keys: int = 100_000) -> None:
        self._rate = rate
        self._burst = burst
        self._max_keys = max_keys
        self._buckets: OrderedDict[object, tuple[float, float]] = OrderedDict()  # tokens, at

    def take(self, key: object) -> float | None:
        """Take one token: None if there was one, else seconds until there is."""
        now = trio.current_time()
        tokens, at = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        if tokens >= 1.0 - 1e-9:  # waiting exactly as told must be enough
            self._buckets[key] = (tokens - 1.0, now)
            wait = None
        else:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self._rate
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait


def retry_after_header(seconds: float) -> str:
    """Whole seconds, at least 1 (Retry-After takes an integer)."""
    return str(max(1, math.ceil(seconds)))
