"""A distribution of observations in fixed buckets: what a Prometheus histogram shows,
kept by the code that observes (one bisect per observation) and read at scrape time,
so the observing code imports nothing of Prometheus."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

__all__ = ["Distribution"]


class Distribution:
    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)  # the last: above every bound
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, observations at or below it), ending with ("+Inf", all)."""
        running = 0
        out = []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else f"{bound:g}", running))
        return out
