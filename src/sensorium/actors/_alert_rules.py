"""Alert rules and their evaluation, one (rule, device) at a time, in stream order.

A rule's condition is one of DESIGN.md's three shapes:

- threshold: ``{"op": ">"|">="|"<"|"<="|"outside", "threshold": x, "high": y,
  "clear": z, "for_s": n, "clear_for_s": n}``. ``outside`` breaches below ``threshold``
  or above ``high``. ``clear`` is the hysteresis: a breached ``>`` rule clears only
  below ``clear`` (at or under the threshold); ``<`` only above it; for ``outside``
  it is a margin, the value must come back inside ``[threshold + clear, high - clear]``.
  Without ``clear`` a rule clears as soon as it no longer breaches. ``for_s``: the
  breach must hold that long before the alert opens; ``clear_for_s``: the clear must
  hold that long before it resolves.
- rate of change: ``{"rate_per_s": x, "window_s": n}``: opens when the value moved by
  at least ``x`` per second (``x < 0``: fell by at least ``|x|``) across the readings
  of the last ``n`` seconds; resolves when it no longer does.
- no data: ``{"no_data_s": n}``: opens when the device has sent nothing for ``n``
  seconds (checked by a sweep on the wall clock), resolves on its next reading.

Durations are measured on the readings' own timestamps, so evaluation is the same
whenever the readings are processed; a reading older than the newest one already seen
by a rule describes the past and does not move it.

A rule may also have quiet hours, ``{"start": "22:00", "end": "07:00", "timezone":
"Europe/Berlin"}``: its email and SMS notifications made inside that daily window are
held until it ends (webhooks, read by machines, are not held).
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from collections import deque
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "Condition",
    "NoDataCondition",
    "NoDataState",
    "QuietHours",
    "RateCondition",
    "RateState",
    "RuleState",
    "ThresholdCondition",
    "ThresholdState",
    "Transition",
    "new_state",
]

_US = 1_000_000
_MAX_WINDOW_READINGS = 4096  # readings a rate rule keeps per device, at most
_Finite = Annotated[float, Field(allow_inf_nan=False)]
_Seconds = Annotated[float, Field(ge=0, le=30 * 86_400, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ThresholdCondition(_Strict):
    op: Literal[">", ">=", "<", "<=", "outside"]
    threshold: _Finite
    high: _Finite | None = Field(default=None, description="the upper bound, for outside")
    clear: _Finite | None = Field(default=None, description="hysteresis: see the module")
    for_s: _Seconds = 0.0
    clear_for_s: _Seconds = 0.0

    @model_validator(mode="after")
    def _consistent(self) -> ThresholdCondition:
        if self.op == "outside":
            if self.high is None or self.high <= self.threshold:
                raise ValueError("outside needs high above threshold")
            if self.clear is not None and not 0 <= 2 * self.clear < self.high - self.threshold:
                raise ValueError("outside: clear is a margin, 0 <= clear < (high - threshold) / 2")
        elif self.high is not None:
            raise ValueError(f"high is only for outside, not {self.op}")
        elif self.clear is not None:
            if self.op in (">", ">=") and self.clear > self.threshold:
                raise ValueError(f"{self.op}: clear must be at or below threshold")
            if self.op in ("<", "<=") and self.clear < self.threshold:
                raise ValueError(f"{self.op}: clear must be at or above threshold")
        return self

    def breached(self, value: float) -> bool:
        op, limit = self.op, self.threshold
        if op == ">":
            return value > limit
        if op == ">=":
            return value >= limit
        if op == "<":
            return value < limit
        if op == "<=":
            return value <= limit
        assert self.high is not None
        return value < limit or value > self.high

    def cleared(self, value: float) -> bool:
        if self.clear is None:
            return not self.breached(value)
        if self.op in (">", ">="):
            return value < self.clear
        if self.op in ("<", "<="):
            return value > self.clear
        assert self.high is not None
        return self.threshold + self.clear <= value <= self.high - self.clear


class RateCondition(_Strict):
    rate_per_s: _Finite = Field(description="change per second; negative: a fall")
    window_s: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)]

    @model_validator(mode="after")
    def _nonzero(self) -> RateCondition:
        if self.rate_per_s == 0:
            raise ValueError("rate_per_s: not 0")
        return self


class NoDataCondition(_Strict):
    no_data_s: Annotated[float, Field(gt=0, le=30 * 86_400, allow_inf_nan=False)]


Condition = ThresholdCondition | RateCondition | NoDataCondition


class QuietHours(_Strict):
    start: dt.time = Field(description="local time the window opens, like 22:00")
    end: dt.time = Field(description="local time it closes, like 07:00 (the next day)")
    timezone: str = Field(
        default="UTC", pattern=r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$", max_length=64,
        description="an IANA zone name, like Europe/Berlin",
    )  # fmt: skip

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise ValueError(f"unknown time zone {name!r}") from exc
        return name

    @model_validator(mode="after")
    def _a_window(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet hours: start and end must differ")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("quiet hours: local times, the zone goes in timezone")
        return self

    def until(self, now: dt.datetime) -> dt.datetime | None:
        """When the window that ``now`` (aware) falls in ends; None outside it."""
        zone = zoneinfo.ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        at = local.time().replace(tzinfo=None)
        day = local.date()
        if self.start < self.end:
            inside = self.start <= at < self.end
        else:  # across midnight: 22:00-07:00
            inside = at >= self.start or at < self.end
            if at >= self.start:
                day += dt.timedelta(days=1)
        if not inside:
            return None
        return dt.datetime.combine(day, self.end, tzinfo=zone).astimezone(dt.UTC)


@dataclass(frozen=True, slots=True)
class Transition:
    kind: Literal["open", "resolved"]
    at_us: int  # the reading's time (or the sweep's, for no data)
    value: float | None


@dataclass(slots=True)
class ThresholdState:
    """OK -> (breach held for_s) -> OPEN -> (clear held clear_for_s) -> OK."""

    condition: ThresholdCondition
    open: bool = False
    since_us: int | None = None  # when the pending change began, if one is pending
    latest_us: int = -(2**62)

    def observe(self, ts_us: int, value: float) -> Transition | None:
        if ts_us < self.latest_us:
            return None
        self.latest_us = ts_us
        condition = self.condition
        if not self.open:
            if not condition.breached(value):
                self.since_us = None
                return None
            return self._pending(ts_us, condition.for_s, "open", value)
        if not condition.cleared(value):
            self.since_us = None
            return None
        return self._pending(ts_us, condition.clear_for_s, "resolved", value)

    def _pending(
        self, ts_us: int, hold_s: float, kind: Literal["open", "resolved"], value: float
    ) -> Transition | None:
        if self.since_us is None:
            self.since_us = ts_us
        if ts_us - self.since_us < hold_s * _US:
            return None
        self.open = kind == "open"
        self.since_us = None
        return Transition(kind, ts_us, value)


@dataclass(slots=True)
class RateState:
    condition: RateCondition
    open: bool = False
    window: deque[tuple[int, float]] = field(
        default_factory=lambda: deque(maxlen=_MAX_WINDOW_READINGS)
    )

    def observe(self, ts_us: int, value: float) -> Transition | None:
        window = self.window
        if window and ts_us <= window[-1][0]:
            return None
        window.append((ts_us, value))
        horizon = ts_us - self.condition.window_s * _US
        while window[0][0] < horizon:
            window.popleft()
        first_ts, first_value = window[0]
        rate = (value - first_value) * _US / (ts_us - first_ts) if ts_us > first_ts else 0.0
        limit = self.condition.rate_per_s
        breached = rate >= limit if limit > 0 else rate <= limit
        if breached == self.open or math.isnan(rate):
            return None
        self.open = breached
        return Transition("open" if breached else "resolved", ts_us, value)


@dataclass(slots=True)
class NoDataState:
    condition: NoDataCondition
    open: bool = False
    last_us: int | None = None  # the newest reading's time

    def observe(self, ts_us: int, value: float) -> Transition | None:
        if self.last_us is None or ts_us > self.last_us:
            self.last_us = ts_us
        if self.open:
            self.open = False
            return Transition("resolved", ts_us, value)
        return None

    def check(self, now_us: int, *, last_seen_us: int | None = None) -> Transition | None:
        """The sweep: ``last_seen_us`` (kept by the database across passivation and
        restarts) stands in when this state has seen nothing yet."""
        last = self.last_us if self.last_us is not None else last_seen_us
        if self.open or last is None or now_us - last < self.condition.no_data_s * _US:
            return None
        self.open = True
        return Transition("open", now_us, None)


RuleState = ThresholdState | RateState | NoDataState


def new_state(condition: Condition) -> RuleState:
    if isinstance(condition, ThresholdCondition):
        return ThresholdState(condition)
    if isinstance(condition, RateCondition):
        return RateState(condition)
    return NoDataState(condition)
