"""Alert rule evaluation, in stream order on the readings' timestamps: hysteresis,
durations, rate of change, no data, and the conditions' validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from sensorium.actors._alert_rules import (
    NoDataCondition,
    NoDataState,
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
