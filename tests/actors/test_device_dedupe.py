"""The device actor's de-duplication, as a property: whatever the order, repetition,
reboots (seq back to 0) and commit timing, every distinct reading reaches the writer
exactly once. The database's part (what is stored) is played by the rows this test has
committed, which is exactly what the real writer's transaction makes visible."""

from __future__ import annotations

from collections.abc import Sequence

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorium.actors import (
    DeviceContext,
    Envelope,
    Receipt,
    Telemetry,
    WriteRequest,
    device_behavior,
)

Reading = tuple[str, int, int | None, float]  # metric, ts_us, seq, value

readings_of_one_message = st.tuples(
    st.integers(0, 30),  # ts step
    st.one_of(st.none(), st.integers(0, 5)),  # seq
    st.lists(st.sampled_from(["t", "h", "p"]), min_size=1, max_size=3, unique=True),
)


@settings(max_examples=150, deadline=None)
@given(
    messages=st.lists(readings_of_one_message, min_size=1, max_size=25),
    schedule=st.lists(st.tuples(st.integers(0, 24), st.booleans()), max_size=60),
    batch_sizes=st.lists(st.integers(1, 4), min_size=1, max_size=10),
)
def test_every_distinct_reading_is_written_exactly_once(
    messages: list[tuple[int, int | None, list[str]]],
    schedule: list[tuple[int, bool]],
    batch_sizes: list[int],
) -> None:
    base = 1_700_000_000_000_000
    payloads = [
        Telemetry(base + step * 1000, seq, [(name, float(step)) for name in names])
        for step, seq, names in messages
    ]
    # Deliveries: every message once, plus redeliveries in the schedule's order.
    deliveries = list(range(len(payloads))) + [i % len(payloads) for i, _ in schedule]
    commit_after = [flag for _, flag in schedule] + [True] * len(payloads)

    written: list[tuple[str, int, int | None]] = []
    stored: set[tuple[int, int, int | None]] = set()
    queue: list[WriteRequest] = []
    ids = {"t": 1, "h": 2, "p": 3}
    names = {v: k for k, v in ids.items()}

    async def submit(request: WriteRequest) -> None:
        queue.append(request)

    def commit() -> None:
        """The writer's transaction: rows become visible, then receipts settle."""
        while queue:
            request = queue.pop(0)
            for _key, metric_id, ts, _value, seq in request.rows:
                written.append((names[metric_id], ts, seq))
                stored.add((metric_id, ts, seq))
            for receipt in request.receipts:
                receipt.settle()

    async def metric_ids(wanted: set[str]) -> dict[str, int]:
        return {name: ids[name] for name in wanted}

    async def stored_keys(key: int, ts: list[int]) -> set[tuple[int, int, int | None]]:
        return {row for row in stored if row[1] in ts}

    context = DeviceContext(
        submit=submit,
        metric_ids=metric_ids,
        stored_keys=stored_keys,
        initial_hwm=lambda key: -1,
        metric_id_nowait=ids.get,
    )
    make = device_behavior(context)

    async def main() -> None:
        behavior, _ = make(1, None)
        position = 0
        sizes = iter(batch_sizes * 100)
        while position < len(deliveries):
            size = next(sizes)
            batch: Sequence[Envelope] = [
                Envelope(1, 1, "dev", "mqtt", [payloads[i]], Receipt())
                for i in deliveries[position : position + size]
            ]
            await behavior.handle(batch)
            if commit_after[min(position, len(commit_after) - 1)]:
                commit()
            position += size
        commit()

    trio.run(main)
    expected = {(name, p.ts_us, p.seq) for p in payloads for name, _ in p.metrics}
    # Each distinct reading exactly once: no loss, no duplicate.
    assert len(written) == len(set(written))
    assert set(written) == expected
