"""Garbage-collector settings for a process that allocates a few objects per message."""

from __future__ import annotations

import gc

__all__ = ["tune_garbage_collector"]


def tune_garbage_collector() -> None:
    """Freeze what start-up allocated and collect far less often.

    The hot path allocates a few small objects per reading. With CPython's default
    thresholds (a collection every 700 allocations) the collector ran thousands of
    times a second and, whenever it reached the oldest generation, walked every live
    actor's state: in a profile of the engine at full load it took most of the CPU.
    Reference counting still frees almost everything at once; the collector is only
    for cycles.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)
