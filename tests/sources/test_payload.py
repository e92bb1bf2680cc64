"""Payload judging: valid messages come out exactly; anything else is a rejection with a
reason, never an exception."""

from __future__ import annotations

import json
import math
import time

from hypothesis import example, given
from hypothesis import strategies as st

from sensorium.sources import Limits, decode_payload

NOW_US = int(time.time() * 1_000_000)
LIMITS = Limits(max_payload_bytes=65536, max_batch_items=100, max_future_skew_s=300)

names = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
values = st.floats(allow_nan=False, allow_infinity=False, width=64)
messages = st.fixed_dictionaries(
    {
        "ts": st.integers(946_684_800_000, NOW_US // 1000),
        "metrics": st.dictionaries(names, values, min_size=1, max_size=5),
    },
    optional={"seq": st.integers(0, 2**63 - 1)},
)


@given(st.lists(messages, min_size=1, max_size=20))
def test_valid_messages_come_out_exactly(batch: list[dict[str, object]]) -> None:
    decoded = decode_payload(json.dumps(batch).encode(), now_us=NOW_US, limits=LIMITS)
    assert decoded.rejected == []
    assert len(decoded.items) == len(batch)
    for item, message in zip(decoded.items, batch, strict=True):
        assert item.ts_us == message["ts"] * 1000  # type: ignore[operator]
        assert item.seq == message.get("seq")
        assert dict(item.metrics) == message["metrics"]


@example(b'"\x80"')  # a JSON string that is not UTF-8 (msgspec raised UnicodeDecodeError)
@example(b'[{"ts": 1, "metrics": {"t\xff": 1}}]')
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    decoded = decode_payload(raw, now_us=NOW_US, limits=LIMITS)
    assert decoded.items or decoded.rejected
    assert all(r.reason and r.detail for r in decoded.rejected)


@given(
    st.lists(
        st.one_of(messages, st.integers(), st.text(max_size=5), st.none()), min_size=1, max_size=10
    )
)
def test_arrays_are_judged_item_by_item(batch: list[object]) -> None:
    decoded = decode_payload(json.dumps(batch).encode(), now_us=NOW_US, limits=LIMITS)
    good = [m for m in batch if isinstance(m, dict)]
    assert len(decoded.items) == len(good)
    assert sorted(r.index for r in decoded.rejected if r.index is not None) == [
        i for i, m in enumerate(batch) if not isinstance(m, dict)
    ]


def test_each_kind_of_bad_input_has_its_reason() -> None:
    now_ms = NOW_US // 1000
    cases = {
        b"{": "malformed-json",
        b"[]": "empty-array",
        b"7": "not-an-object",
        json.dumps({"ts": now_ms, "metrics": {"t": True}}).encode(): "wrong-type",
        json.dumps({"ts": now_ms, "metrics": {"T": 1}}).encode(): "bad-metric-name",
        json.dumps({"ts": now_ms, "metrics": {}}).encode(): "empty-metrics",
        json.dumps({"metrics": {"t": 1}}).encode(): "missing-field",
        json.dumps({"ts": 5, "metrics": {"t": 1}}).encode(): "timestamp-too-old",
        json.dumps({"ts": now_ms + 10**7, "metrics": {"t": 1}}).encode(): "timestamp-in-future",
        json.dumps({"ts": "yesterday", "metrics": {"t": 1}}).encode(): "bad-timestamp",
        json.dumps({"ts": "2026-01-01T00:00:00", "metrics": {"t": 1}}).encode(): "bad-timestamp",
        json.dumps({"ts": now_ms, "seq": -1, "metrics": {"t": 1}}).encode(): "bad-seq",
        b'{"ts": 1764090000000, "metrics": {"t": 1e999}}': "non-finite-value",
        b"x" * 70_000: "oversize",
        json.dumps([{"ts": now_ms, "metrics": {"t": 1}}] * 101).encode(): "too-many-items",
    }
    for raw, reason in cases.items():
        decoded = decode_payload(raw, now_us=NOW_US, limits=LIMITS)
        assert [r.reason for r in decoded.rejected] == [reason], raw[:60]
        assert decoded.items == []
    rfc3339 = decode_payload(
        b'{"ts": "2026-01-02T03:04:05.678+01:00", "metrics": {"t": 1.5}}',
        now_us=NOW_US,
        limits=LIMITS,
    )
    assert rfc3339.items[0].ts_us == 1_767_319_445_678_000
    assert not math.isnan(rfc3339.items[0].metrics[0][1])
