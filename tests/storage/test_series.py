"""How a range is cut into pieces read from the rollup tiers and raw rows: the pieces
tile the range exactly, each tier piece is whole tier buckets that never straddle two
answer buckets, and the coarsest fitting tier is used."""

from __future__ import annotations

import datetime as dt
import itertools

from hypothesis import given
from hypothesis import strategies as st

from sensorium.storage import plan_pieces

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_WIDTH_S = {"rollup_1d": 86_400, "rollup_1h": 3_600, "rollup_1m": 60}
_NOW_US = 1_795_000_000_000_000  # late 2026


def _at(us: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=us)


def _us(moment: dt.datetime) -> int:
    return round((moment - _EPOCH) / dt.timedelta(microseconds=1))


@given(
    start_us=st.integers(_NOW_US - 90 * 86_400_000_000, _NOW_US),
    span_us=st.integers(1, 60 * 86_400_000_000),
    bucket_s=st.none() | st.sampled_from([1, 30, 60, 90, 300, 3_600, 7_200, 86_400, 172_800]),
)
def test_pieces_tile_the_range_with_fitting_tiers(
    start_us: int, span_us: int, bucket_s: int | None
) -> None:
    start, end = _at(start_us), _at(start_us + span_us)
    pieces = plan_pieces(start, end, bucket_s)
    assert pieces[0].start == start and pieces[-1].end == end
    for before, after in itertools.pairwise(pieces):
        assert before.end == after.start
    for piece in pieces:
        assert piece.start < piece.end
        if piece.source == "raw":
            continue
        width_us = _WIDTH_S[piece.source] * 1_000_000
        assert _us(piece.start) % width_us == 0 and _us(piece.end) % width_us == 0
        if bucket_s is not None:
            assert bucket_s % _WIDTH_S[piece.source] == 0
    # Nothing coarser would have fitted a raw piece: it is shorter than a minute at an
    # edge whenever minute rollups may answer.
    if bucket_s is None or bucket_s % 60 == 0:
        assert all((p.end - p.start) < dt.timedelta(minutes=2) for p in pieces if p.source == "raw")
    # At most one piece of each source per side: the count stays small.
    assert len(pieces) <= 7


def test_a_month_ending_now_reads_hours_minutes_and_a_raw_edge() -> None:
    end = dt.datetime(2026, 11, 25, 23, 47, 12, 500_000, tzinfo=dt.UTC)
    start = end - dt.timedelta(days=30)
    pieces = plan_pieces(start, end, 3_600)
    assert [p.source for p in pieces] == [
        "raw", "rollup_1m", "rollup_1h", "rollup_1m", "raw",
    ]  # fmt: skip
    assert pieces[2].start == dt.datetime(2026, 10, 27, 0, 0, tzinfo=dt.UTC)
    assert pieces[2].end == dt.datetime(2026, 11, 25, 23, 0, tzinfo=dt.UTC)
    # Whole days with day buckets read the day tier only.
    days = plan_pieces(
        dt.datetime(2026, 10, 1, tzinfo=dt.UTC), dt.datetime(2026, 11, 1, tzinfo=dt.UTC), 86_400
    )
    assert [p.source for p in days] == ["rollup_1d"]
    # A 90 s bucket cannot use minute rollups (a minute could straddle two answers).
    assert [p.source for p in plan_pieces(start, end, 90)] == ["raw"]
