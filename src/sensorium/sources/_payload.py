"""Decoding and validating telemetry payloads, the same for MQTT and HTTP.

A payload is one object ``{"ts": <RFC 3339 string or epoch ms>, "seq": <int, optional>,
"metrics": {"name": number, ...}}`` or a JSON array of them. An array is judged item by
item: good items go on, bad ones are rejected with their index and a reason. Bad input
never raises out of here.

The fast path is one msgspec decode into typed structs (about 1 us per message); only a
payload that fails it is decoded again generically, to say precisely what is wrong.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass

import msgspec

from sensorium.actors import Telemetry

__all__ = [
    "Decoded",
    "Limits",
    "Rejection",
    "Telemetry",
    "decode_payload",
]

_METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# Readings before 2000 are a device with no clock, not history.
MIN_TS_US = 946_684_800_000_000
_SEQ_MAX = 2**63 - 1


class _Item(msgspec.Struct):
    ts: str | int | float
    metrics: dict[str, float]
    seq: int | None = None


_FAST = msgspec.json.Decoder(_Item | list[_Item])
_ANY = msgspec.json.Decoder()


@dataclass(frozen=True, slots=True)
class Limits:
    max_payload_bytes: int = 65536
    max_batch_items: int = 1000
    max_future_skew_s: float = 300.0


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an item (``index``; ``None`` for the whole payload) was refused."""

    index: int | None
    reason: str  # a short stable code, counted in metrics
    detail: str  # for people: names the field


@dataclass(frozen=True, slots=True)
class Decoded:
    items: list[Telemetry]  # the valid items, in payload order
    rejected: list[Rejection]


# Metric names seen valid: a fleet uses few, so the regular expression runs once each.
_VALID_NAMES: set[str] = set()
_VALID_NAMES_MAX = 10_000


def _remember_valid_name(name: str) -> bool:
    if not _METRIC_NAME.match(name):
        return False
    if len(_VALID_NAMES) < _VALID_NAMES_MAX:
        _VALID_NAMES.add(name)
    return True


def _ts_us(value: str | int | float) -> int | str:
    """Microseconds since the epoch, or a reason string."""
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return "not an RFC 3339 timestamp"
        if parsed.tzinfo is None:
            return "timestamp has no UTC offset"
        delta = parsed - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if not math.isfinite(value):
        return "timestamp is not finite"
    return int(value * 1000)  # epoch milliseconds


def _check(item: _Item, index: int, now_us: int, limits: Limits) -> Telemetry | Rejection:
    ts = _ts_us(item.ts)
    if isinstance(ts, str):
        return Rejection(index, "bad-timestamp", f"ts: {ts}")
    if ts < MIN_TS_US:
        return Rejection(index, "timestamp-too-old", "ts: before 2000-01-01")
    if ts > now_us + int(limits.max_future_skew_s * 1_000_000):
        return Rejection(
            index,
            "timestamp-in-future",
            f"ts: more than {limits.max_future_skew_s:g} s ahead of the server's clock",
        )
    if item.seq is not None and not 0 <= item.seq <= _SEQ_MAX:
        return Rejection(index, "bad-seq", "seq: must be an integer from 0 to 2**63-1")
    if not item.metrics:
        return Rejection(index, "empty-metrics", "metrics: no readings")
    metrics = []
    valid_names = _VALID_NAMES
    for name, value in item.metrics.items():
        if name not in valid_names and not _remember_valid_name(name):
            return Rejection(
                index,
                "bad-metric-name",
                f"metrics.{name[:80]}: name must match {_METRIC_NAME.pattern}",
            )
        if not math.isfinite(value):
            return Rejection(index, "non-finite-value", f"metrics.{name}: not a finite number")
        metrics.append((name, value))
    return Telemetry(ts, item.seq, metrics)


def _explain(raw_item: object, index: int) -> Rejection:
    """Why a generically decoded item is not a valid message (the slow path)."""
    if not isinstance(raw_item, dict):
        return Rejection(
            index, "not-an-object", f"item is {type(raw_item).__name__}, not an object"
        )
    if "ts" not in raw_item:
        return Rejection(index, "missing-field", "ts: required")
    if "metrics" not in raw_item:
        return Rejection(index, "missing-field", "metrics: required")
    metrics = raw_item["metrics"]
    if isinstance(metrics, dict):
        for name, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                return Rejection(
                    index,
                    "wrong-type",
                    f"metrics.{str(name)[:80]}: expected a number, got "
                    f"{'a boolean' if isinstance(value, bool) else type(value).__name__}",
                )
    try:
        msgspec.convert(raw_item, _Item)
    except msgspec.ValidationError as exc:
        message = str(exc)
        reason = "non-finite-value" if "out of range" in message else "wrong-type"
        path = (
            message.rsplit(" - at `$", 1)[-1].rstrip("`").lstrip(".") if " - at " in message else ""
        )
        return Rejection(
            index, reason, f"{path}: {message.split(' - at ')[0]}" if path else message
        )
    return Rejection(index, "wrong-type", "not a telemetry message")


def decode_payload(raw: bytes, *, now_us: int, limits: Limits) -> Decoded:
    """Judge a payload; never raises on bad input."""
    if len(raw) > limits.max_payload_bytes:
        return Decoded(
            [],
            [
                Rejection(
                    None,
                    "oversize",
                    f"payload of {len(raw)} bytes; the limit is {limits.max_payload_bytes}",
                )
            ],
        )
    try:
        parsed = _FAST.decode(raw)
    except msgspec.ValidationError:  # valid JSON, wrong shape (a DecodeError subclass)
        return _slow_path(raw, now_us=now_us, limits=limits)
    except msgspec.DecodeError as exc:
        return Decoded([], [Rejection(None, "malformed-json", str(exc))])
    except UnicodeDecodeError as exc:  # msgspec raises it for bad UTF-8 in a string
        return Decoded([], [Rejection(None, "malformed-json", f"not UTF-8: {exc.reason}")])
    if isinstance(parsed, _Item):
        result = _check(parsed, 0, now_us, limits)
        if isinstance(result, Rejection):
            return Decoded([], [result])
        return Decoded([result], [])
    if len(parsed) > limits.max_batch_items:
        return Decoded(
            [],
            [
                Rejection(
                    None,
                    "too-many-items",
                    f"{len(parsed)} items; the limit is {limits.max_batch_items}",
                )
            ],
        )
    if not parsed:
        return Decoded([], [Rejection(None, "empty-array", "the array holds no message")])
    items: list[Telemetry] = []
    rejected: list[Rejection] = []
    for index, item in enumerate(parsed):
        result = _check(item, index, now_us, limits)
        if isinstance(result, Rejection):
            rejected.append(result)
        else:
            items.append(result)
    return Decoded(items, rejected)


def _slow_path(raw: bytes, *, now_us: int, limits: Limits) -> Decoded:
    try:
        generic = _ANY.decode(raw)
    except msgspec.DecodeError as exc:  # e.g. a number beyond float range
        reason = "non-finite-value" if "out of range" in str(exc) else "malformed-json"
        return Decoded([], [Rejection(None, reason, str(exc))])
    except UnicodeDecodeError as exc:  # a string that is not UTF-8, like b'"\x80"'
        return Decoded([], [Rejection(None, "malformed-json", f"not UTF-8: {exc.reason}")])
    if isinstance(generic, dict):
        return Decoded([], [_explain(generic, 0)])
    if not isinstance(generic, list):
        return Decoded(
            [],
            [
                Rejection(
                    None,
                    "not-an-object",
                    f"payload is {type(generic).__name__}, not an object or array",
                )
            ],
        )
    if len(generic) > limits.max_batch_items:
        return Decoded(
            [],
            [
                Rejection(
                    None,
                    "too-many-items",
                    f"{len(generic)} items; the limit is {limits.max_batch_items}",
                )
            ],
        )
    items: list[Telemetry] = []
    rejected: list[Rejection] = []
    for index, raw_item in enumerate(generic):
        try:
            item = msgspec.convert(raw_item, _Item)
        except msgspec.ValidationError:
            rejected.append(_explain(raw_item, index))
            continue
        result = _check(item, index, now_us, limits)
        if isinstance(result, Rejection):
            rejected.append(result)
        else:
            items.append(result)
    return Decoded(items, rejected)
