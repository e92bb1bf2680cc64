"""Minute-rollup deltas and their folding, against a real PostgreSQL (a fresh database
on the session stack's primary): whatever the batches and however often the compactor
runs, `rollup_1m_merged` equals the same aggregate computed from the raw readings, and
so does each hour and day tier together with the minute deltas not folded yet."""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensorium.storage import (
    ReadingBatch,
    compact_rollups,
    connect,
    create_pool,
    prune_batch_ids,
    write_batch,
)
from tests.support import StackHandle, db_fetch, fresh_database, run_trio

_MINUTE_US = 60_000_000

_RAW_AGGREGATE = """
SELECT device_key, metric_id, date_trunc('minute', ts) AS bucket, count(*) AS count,
       sum(value) AS sum, min(value) AS min, max(value) AS max, max(ts) AS last_ts
FROM readings WHERE device_key = $1 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
"""
_ROLLED = """
SELECT device_key, metric_id, bucket, count, sum, min, max, last_ts, last_value
FROM rollup_1m_merged WHERE device_key = $1 ORDER BY 1, 2, 3
"""

# Per hour or day ($2 seconds): raw readings, and the tier plus the unfolded deltas.
_RAW_BY_WIDTH = """
SELECT metric_id, date_bin(make_interval(secs => $2), ts, timestamptz 'epoch') AS bucket,
       count(*) AS count, sum(value) AS sum, min(value) AS min, max(value) AS max,
       max(ts) AS last_ts, (array_agg(value ORDER BY ts DESC))[1] AS last_value
FROM readings WHERE device_key = $1 GROUP BY 1, 2 ORDER BY 1, 2
"""
_TIER_PLUS_DELTAS = """
SELECT metric_id, date_bin(make_interval(secs => $2), bucket, timestamptz 'epoch') AS bucket,
       sum(count) AS count, sum(sum) AS sum, min(min) AS min, max(max) AS max,
       max(last_ts) AS last_ts, (array_agg(last_value ORDER BY last_ts DESC))[1] AS last_value
FROM (SELECT * FROM {tier} WHERE device_key = $1
      UNION ALL
      SELECT device_key, metric_id, bucket, count, sum, min, max, last_ts, last_value
      FROM rollup_1m_delta WHERE device_key = $1) x
GROUP BY 1, 2 ORDER BY 1, 2
"""


@pytest.fixture(scope="module")
def database(stack: StackHandle) -> str:
    url = fresh_database(stack, "housekeeping")

    async def migrate() -> None:
        conn = await connect(url)
        try:
            today = dt.datetime.now(dt.UTC).date()
            await conn.execute(
                "SELECT ensure_readings_partitions($1, $2)",
                today - dt.timedelta(days=3),
                today + dt.timedelta(days=1),
            )
        finally:
            await conn.close()

    run_trio(migrate)
    return url


_device_keys = itertools.count(1)

# A reading: (minutes before "old": neighbours, the hour before, the day before; or the
# current minute), second, metric, value
_reading = st.tuples(
    st.sampled_from([0, 1, 2, 61, 1441, None]),
    st.integers(0, 59),
    st.integers(1, 3),
    st.floats(-1e6, 1e6, allow_nan=False),
)


def _write(url: str, batches: list[list[tuple[int, int, int, float, int | None]]]) -> None:
    async def go() -> None:
        conn = await connect(url)
        try:
            for rows in batches:
                batch = ReadingBatch(batch_id=secrets.randbits(63))
                batch.add_rows(rows)
                await conn.run(write_batch, batch, timeout=30)
        finally:
            await conn.close()

    run_trio(go)


def _compact(url: str) -> int:
    async def go() -> int:
        pool = await create_pool(url, min_size=1, max_size=1)
        try:
            return await compact_rollups(pool, settle_s=0, rows_per_pass=1)
        finally:
            await pool.close()

    folded: int = run_trio(go)
    return folded


# The device's mark and count: folded (device_ingest) and not folded yet (device_deltas),
# against the raw readings.
_MARKS = """
SELECT (SELECT max(ts) FROM readings WHERE device_key = $1) AS raw_hwm,
       (SELECT count(*) FROM readings WHERE device_key = $1) AS raw_count,
       (SELECT max(hwm_ts) FROM (SELECT hwm_ts FROM device_ingest WHERE device_key = $1
                                 UNION ALL
                                 SELECT hwm_ts FROM device_deltas WHERE device_key = $1) m
       ) AS hwm,
       (SELECT coalesce(sum(readings), 0) FROM (
            SELECT readings FROM device_ingest WHERE device_key = $1
            UNION ALL
            SELECT readings FROM device_deltas WHERE device_key = $1) m) AS count,
       device_last_seen($1) AS last_seen
"""


def _assert_rollups_match_raw(url: str, device_key: int) -> None:
    marks = db_fetch(url, _MARKS, device_key)[0]
    assert (marks["hwm"], marks["count"]) == (marks["raw_hwm"], marks["raw_count"])
    assert marks["last_seen"] is not None
    raw = db_fetch(url, _RAW_AGGREGATE, device_key)
    rolled = db_fetch(url, _ROLLED, device_key)
    assert [(r["metric_id"], r["bucket"], r["count"]) for r in rolled] == [
        (r["metric_id"], r["bucket"], r["count"]) for r in raw
    ]
    for got, want in zip(rolled, raw, strict=True):
        assert got["sum"] == pytest.approx(want["sum"], rel=1e-9, abs=1e-6)
        assert (got["min"], got["max"]) == (want["min"], want["max"])
        assert got["last_ts"] == want["last_ts"]
    # last_value is the value of the latest reading of that minute.
    for got in rolled:
        values = db_fetch(
            url,
            "SELECT value FROM readings WHERE device_key = $1 AND metric_id = $2 AND ts = $3",
            device_key,
            got["metric_id"],
            got["last_ts"],
        )
        assert got["last_value"] in {v["value"] for v in values}
    for tier, width_s in (("rollup_1h", 3600.0), ("rollup_1d", 86400.0)):
        raw = db_fetch(url, _RAW_BY_WIDTH, device_key, width_s)
        tiered = db_fetch(url, _TIER_PLUS_DELTAS.format(tier=tier), device_key, width_s)
        assert [(r["metric_id"], r["bucket"], r["count"]) for r in tiered] == [
            (r["metric_id"], r["bucket"], r["count"]) for r in raw
        ], tier
        for got, want in zip(tiered, raw, strict=True):
            assert got["sum"] == pytest.approx(want["sum"], rel=1e-9, abs=1e-6)
            assert (got["min"], got["max"]) == (want["min"], want["max"])
            assert (got["last_ts"], got["last_value"]) == (want["last_ts"], want["last_value"])


@settings(max_examples=12, deadline=None)
@given(
    batches=st.lists(st.lists(_reading, min_size=1, max_size=12), min_size=1, max_size=4),
    fold_after=st.sets(st.integers(0, 3)),
)
def test_folded_rollups_equal_the_raw_aggregate(
    database: str, batches: list[list[tuple[int | None, int, int, float]]], fold_after: set[int]
) -> None:
    """Batches in any order and size, with passes of the compactor between any of them
    (a later batch's delta for a folded minute is a late reading): the merged view equals
    the raw aggregate after every step, and ends with one row per closed minute, but for
    the minutes of a batch that also wrote the current minute (its device row waits)."""
    device_key = next(_device_keys)
    # Minutes that ended long ago (folded by every pass) and the current one (never).
    now_minute_us = int(time.time()) // 60 * _MINUTE_US
    old_minute_us = now_minute_us - 30 * _MINUTE_US
    seq = itertools.count()
    waiting: set[tuple[int, int]] = set()  # (minute, metric) of batches with the current one
    for index, readings in enumerate(batches):
        rows = [
            (
                device_key,
                metric,
                (now_minute_us if minute is None else old_minute_us - minute * _MINUTE_US)
                + second * 1_000_000
                + next(seq),  # distinct timestamps: "last" is well defined
                value,
                None,
            )
            for minute, second, metric, value in readings
        ]
        if any(minute is None for minute, _, _, _ in readings):
            waiting |= {(ts - ts % _MINUTE_US, metric) for _, metric, ts, _, _ in rows}
        _write(database, [rows])
        _assert_rollups_match_raw(database, device_key)
        if index in fold_after:
            _compact(database)
            _assert_rollups_match_raw(database, device_key)
    compacted_at_us = time.time() * 1_000_000
    _compact(database)
    _assert_rollups_match_raw(database, device_key)
    rows = db_fetch(
        database,
        """SELECT bucket, metric_id, count(*) AS n, bool_and(folded) AS merged
           FROM (SELECT bucket, metric_id, true AS folded FROM rollup_1m WHERE device_key = $1
                 UNION ALL
                 SELECT bucket, metric_id, false FROM rollup_1m_delta WHERE device_key = $1) r
           GROUP BY 1, 2""",
        device_key,
    )
    current_open = compacted_at_us < now_minute_us + _MINUTE_US
    for row in rows:
        minute_us = round(row["bucket"].timestamp() * 1_000_000)
        if minute_us < now_minute_us and not (
            current_open and (minute_us, row["metric_id"]) in waiting
        ):
            assert (row["n"], row["merged"]) == (1, True)  # closed minute: folded
        elif current_open and minute_us == now_minute_us:
            assert not row["merged"]  # the current minute is never folded
        # (else the minute ended while the example ran: it may have been folded)


def test_batch_ids_older_than_the_window_are_forgotten(database: str) -> None:
    db_fetch(
        database,
        """INSERT INTO ingest_batches (id, readings, committed_at)
           VALUES (-1, 1, now() - interval '2 days'), (-2, 1, now())""",
    )

    async def go() -> int:
        pool = await create_pool(database, min_size=1, max_size=1)
        try:
            return await prune_batch_ids(pool, keep_s=86_400)
        finally:
            await pool.close()

    assert run_trio(go) >= 1
    left = db_fetch(database, "SELECT id FROM ingest_batches WHERE id < 0")
    assert [r["id"] for r in left] == [-2]
