"""Alert rule evaluation, in stream order on the readings' timestamps: hysteresis,
durations, rate of change, no data, and the conditions' validation."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
import trio
import trio.testing
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from sensorium.actors._alert_rules import (
    NoDataCondition,
    NoDataState,
    QuietHours,
    RateCondition,
    RateState,
    ThresholdCondition,
    ThresholdState,
    Transition,
)

S = 1_000_000  # microseconds


def _run(state: ThresholdState | RateState, readings: list[tuple[float, float]]) -> list[str]:
    out = []
    for at_s, value in readings:
        transition = state.observe(int(at_s * S), value)
        if transition is not None:
            out.append(f"{transition.kind}@{at_s:g}")
    return out


def test_hysteresis_holds_the_alert_open_between_clear_and_threshold() -> None:
    rule = ThresholdState(ThresholdCondition(op=">", threshold=5, clear=3))
    readings = [(0, 4), (1, 6), (2, 5), (3, 4), (4, 3), (5, 2.9), (6, 4), (7, 5.5)]
    assert _run(rule, readings) == ["open@1", "resolved@5", "open@7"]


def test_without_clear_a_rule_resolves_once_it_no_longer_breaches() -> None:
    rule = ThresholdState(ThresholdCondition(op="<=", threshold=-18))
    assert _run(rule, [(0, -20), (1, -18), (2, -17.9)]) == ["open@0", "resolved@2"]


def test_durations_must_hold_and_a_dip_starts_them_again() -> None:
    rule = ThresholdState(ThresholdCondition(op=">", threshold=8, for_s=10, clear_for_s=5))
    readings = [
        (0, 9), (6, 9), (8, 7),  # a dip at 8 s: the breach must hold 10 s from 10 s
        (10, 9), (15, 9), (20, 9),  # open at 20 s
        (21, 7), (24, 9),  # a clear of 3 s is not enough
        (25, 7), (29, 7), (30, 6),  # resolved at 30 s
    ]  # fmt: skip
    assert _run(rule, readings) == ["open@20", "resolved@30"]


def test_outside_breaches_both_ways_and_clears_inside_the_margin() -> None:
    rule = ThresholdState(ThresholdCondition(op="outside", threshold=2, high=8, clear=1))
    readings = [(0, 5), (1, 1.5), (2, 2.5), (3, 3), (4, 9), (5, 7.5), (6, 7)]
    assert _run(rule, readings) == ["open@1", "resolved@3", "open@4", "resolved@6"]


def test_a_late_reading_does_not_move_a_rule() -> None:
    rule = ThresholdState(ThresholdCondition(op=">", threshold=5))
    assert _run(rule, [(10, 6), (5, 1), (11, 6)]) == ["open@10"]


@given(
    steps=st.lists(st.tuples(st.integers(1, 10), st.floats(-10, 10)), min_size=1, max_size=60),
    for_s=st.sampled_from([0, 3, 10]),
    clear_for_s=st.sampled_from([0, 4]),
)
def test_transitions_alternate_and_match_the_readings(
    steps: list[tuple[int, float]], for_s: float, clear_for_s: float
) -> None:
    """Against a plain reading of the rule: an alert opens at the first reading that
    completes for_s seconds of uninterrupted breach, and resolves at the first that
    completes clear_for_s seconds of uninterrupted clear."""
    condition = ThresholdCondition(
        op=">", threshold=2, clear=-1, for_s=for_s, clear_for_s=clear_for_s
    )
    state = ThresholdState(condition)
    at = 0
    expected: list[Transition] = []
    is_open, run_start = False, None
    got: list[Transition] = []
    for gap, value in steps:
        at += gap
        if (transition := state.observe(at * S, value)) is not None:
            got.append(transition)
        wanted = condition.cleared(value) if is_open else condition.breached(value)
        if not wanted:
            run_start = None
            continue
        run_start = at if run_start is None else run_start
        if at - run_start >= (clear_for_s if is_open else for_s):
            expected.append(Transition("resolved" if is_open else "open", at * S, value))
            is_open, run_start = not is_open, None
    assert got == expected
    assert [t.kind for t in got] == ["open", "resolved"] * (len(got) // 2) + ["open"] * (
        len(got) % 2
    )


def test_rate_of_change_opens_on_a_fast_rise_and_resolves_when_it_slows() -> None:
    rule = RateState(RateCondition(rate_per_s=0.5, window_s=10))
    readings = [(0, 20), (2, 20.2), (4, 21), (6, 23.5), (8, 24), (20, 24.1), (30, 24.2)]
    # 0 -> 6 s: 3.5 in 6 s = 0.58/s opens; at 20 s the window holds 20 s only: flat.
    assert _run(rule, readings) == ["open@6", "resolved@20"]
    falling = RateState(RateCondition(rate_per_s=-1, window_s=60))
    assert _run(falling, [(0, 10), (5, 9), (10, -1)]) == ["open@10"]


def test_no_data_opens_after_the_silence_and_resolves_on_the_next_reading() -> None:
    state = NoDataState(NoDataCondition(no_data_s=300))
    assert state.check(1_000 * S, last_seen_us=800 * S) is None  # 200 s of silence
    opened = state.check(1_101 * S, last_seen_us=800 * S)
    assert opened == Transition("open", 1_101 * S, None)
    assert state.check(1_200 * S, last_seen_us=800 * S) is None  # at most one open
    assert state.observe(1_250 * S, 4.0) == Transition("resolved", 1_250 * S, 4.0)
    assert state.check(1_500 * S) is None
    assert state.check(1_551 * S) is not None
    assert NoDataState(NoDataCondition(no_data_s=1)).check(10 * S) is None  # never seen


@pytest.mark.parametrize(
    "body",
    [
        {"op": ">", "threshold": 5, "clear": 6},  # hysteresis the wrong way
        {"op": "<", "threshold": 5, "clear": 4},
        {"op": "outside", "threshold": 5},  # no high
        {"op": "outside", "threshold": 5, "high": 4},
        {"op": "outside", "threshold": 0, "high": 4, "clear": 2},  # margin too wide
        {"op": ">", "threshold": 5, "high": 9},
        {"op": ">", "threshold": float("nan")},
        {"op": ">", "threshold": 1, "for_s": -1},
        {"op": "!=", "threshold": 1},
        {"op": ">", "threshold": 1, "colour": "red"},
    ],
)
def test_inconsistent_threshold_conditions_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ThresholdCondition.model_validate(body)


def test_other_conditions_are_validated() -> None:
    with pytest.raises(ValidationError):
        RateCondition.model_validate({"rate_per_s": 0, "window_s": 10})
    with pytest.raises(ValidationError):
        RateCondition.model_validate({"rate_per_s": 1, "window_s": 0})
    with pytest.raises(ValidationError):
        NoDataCondition.model_validate({"no_data_s": -5})


def test_on_a_mock_clock_durations_hysteresis_and_no_data_follow_simulated_time() -> None:
    """A device task sends a reading every 10 s of trio's MockClock (hours pass in no
    real time), stamped with the clock; a sweep task checks for no data every 5 s.
    The breach must hold 30 s to open, the clear 20 s (below 4) to resolve; the device
    goes quiet for 100 s and the no-data rule (60 s) opens at the first sweep after."""
    threshold = ThresholdState(
        ThresholdCondition(op=">", threshold=8, clear=4, for_s=30, clear_for_s=20)
    )
    quiet = NoDataState(NoDataCondition(no_data_s=60))
    # (from, to, value): what the device reads during [from, to) seconds.
    script = [(0, 50, 5.0), (50, 70, 9.0), (70, 80, 5.0), (80, 150, 9.0), (150, 160, 6.0),
              (160, 200, 3.0)]  # fmt: skip
    log: list[str] = []

    def now_us() -> int:
        return int(trio.current_time() * S)

    async def device() -> None:
        for _start, end, value in script:
            while trio.current_time() < end:
                for state, name in ((threshold, "threshold"), (quiet, "no-data")):
                    t = state.observe(now_us(), value)
                    if t is not None:
                        log.append(f"{name} {t.kind}@{t.at_us // S}")
                await trio.sleep(10)
        await trio.sleep(100)  # quiet
        t = quiet.observe(now_us(), 3.0)
        assert t is not None
        log.append(f"no-data {t.kind}@{t.at_us // S}")

    async def sweep() -> None:
        while True:
            await trio.sleep(5)
            t = quiet.check(now_us())
            if t is not None:
                log.append(f"no-data {t.kind}@{t.at_us // S}")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sweep)
            await device()
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    # 9.0 from 50 to 70 is 20 s: not enough. From 80 it holds: open at 110 (80 + 30).
    # 6.0 at 150 is under the threshold but above clear: still open. Below clear from
    # 160: resolved at 180 (160 + 20). Last reading at 190; quiet from 200; the sweep
    # at 250 is the first 60 s after it; the reading at 300 resolves.
    assert log == [
        "threshold open@110",
        "threshold resolved@180",
        "no-data open@250",
        "no-data resolved@300",
    ]


@given(
    start=st.times(), end=st.times(),
    zone=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata",
                          "Australia/Lord_Howe"]),
    now=st.datetimes(min_value=dt.datetime(2000, 1, 2), max_value=dt.datetime(2099, 12, 30),
                     timezones=st.just(dt.UTC)),
)  # fmt: skip
def test_quiet_hours_hold_exactly_inside_the_window_until_its_end(
    start: dt.time, end: dt.time, zone: str, now: dt.datetime
) -> None:
    start, end = start.replace(microsecond=0), end.replace(microsecond=0)
    assume(start != end)
    quiet = QuietHours(start=start, end=end, timezone=zone)
    local = now.astimezone(zoneinfo.ZoneInfo(zone)).time().replace(tzinfo=None)
    inside = start <= local < end if start < end else (local >= start or local < end)
    until = quiet.until(now)
    assert (until is not None) == inside
    if until is not None:
        assert now < until <= now + dt.timedelta(hours=26)  # a day, and a DST shift
        # It ends at the end time, local (a time that a DST jump skips moves with it).
        ends = until.astimezone(zoneinfo.ZoneInfo(zone)).time().replace(tzinfo=None)
        skipped = dt.datetime.combine(until.date(), end) - dt.datetime.combine(until.date(), ends)
        assert ends == end or abs(skipped) <= dt.timedelta(hours=1)


def test_quiet_hours_are_validated() -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        QuietHours(start=dt.time(22), end=dt.time(7), timezone="Mars/Olympus_Mons")
    with pytest.raises(ValidationError, match="must differ"):
        QuietHours(start=dt.time(7), end=dt.time(7))
    with pytest.raises(ValidationError):
        QuietHours(start=dt.time(22), end=dt.time(7), timezone="../../etc/passwd")
