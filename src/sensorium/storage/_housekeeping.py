"""Housekeeping on the primary, off the ingest path: folding minute-rollup deltas (and
adding them to the hour and day rollups) and forgetting old batch ids.

The writer appends one rollup delta per (device, metric, minute) a batch touched to
`rollup_1m_delta` (migrations 0004, 0012); reads add them to the folded rows, so they
are right at any moment. Folding the deltas of closed minutes into one row of
`rollup_1m` keeps those reads, and the delta table, small.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from sensorium.logs import get_logger
from sensorium.storage._bridge import Pool

__all__ = ["HousekeepingOptions", "compact_rollups", "keep_house", "prune_batch_ids"]

log = get_logger(__name__)

# Up to `$2` (device, metric, minute) keys with deltas in minutes that ended `$1`
# seconds ago or earlier: their deltas, and the row already folded for the key if a
# late reading brought the minute back, become one folded row of rollup_1m; the deltas
# alone are added to the hour and day tiers. A delta a batch commits meanwhile is not
# in this statement's snapshot: it stays, for the next pass.
_FOLD = """
WITH keys AS (
    SELECT DISTINCT device_key, metric_id, bucket FROM rollup_1m_delta
    WHERE bucket < now() - interval '1 minute' - make_interval(secs => $1)
    LIMIT $2
), fresh AS (
    DELETE FROM rollup_1m_delta r USING keys k
    WHERE r.device_key = k.device_key AND r.metric_id = k.metric_id AND r.bucket = k.bucket
    RETURNING r.device_key, r.metric_id, r.bucket, r.count, r.sum, r.min, r.max, r.last_ts,
              r.last_value
), earlier AS (
    DELETE FROM rollup_1m r USING keys k
    WHERE r.device_key = k.device_key AND r.metric_id = k.metric_id AND r.bucket = k.bucket
    RETURNING r.device_key, r.metric_id, r.bucket, r.count, r.sum, r.min, r.max, r.last_ts,
              r.last_value
), folded AS (
    INSERT INTO rollup_1m (device_key, metric_id, bucket, count, sum, min, max, last_ts,
                           last_value, merged)
    SELECT device_key, metric_id, bucket, sum(count), sum(sum), min(min), max(max),
           max(last_ts), (array_agg(last_value ORDER BY last_ts DESC))[1], true
    FROM (SELECT * FROM fresh UNION ALL SELECT * FROM earlier) g
    GROUP BY device_key, metric_id, bucket
    RETURNING 1
)%s
SELECT count(*) FROM folded
"""
_ADD_TO_TIER = """, to_{tier} AS (
    INSERT INTO rollup_{tier} AS t (device_key, metric_id, bucket, count, sum, min, max,
                                    last_ts, last_value)
    SELECT device_key, metric_id, date_bin(interval '{width}', bucket, timestamptz 'epoch'),
           sum(count), sum(sum), min(min), max(max), max(last_ts),
           (array_agg(last_value ORDER BY last_ts DESC))[1]
    FROM fresh GROUP BY 1, 2, 3
    ON CONFLICT (device_key, metric_id, bucket) DO UPDATE SET
        count = t.count + excluded.count,
        sum = t.sum + excluded.sum,
        min = least(t.min, excluded.min),
        max = greatest(t.max, excluded.max),
        last_ts = greatest(t.last_ts, excluded.last_ts),
        last_value = CASE WHEN excluded.last_ts > t.last_ts THEN excluded.last_value
                          ELSE t.last_value END
)"""
_TIER_WIDTHS = (("1h", "1 hour"), ("1d", "1 day"))
_FOLD = _FOLD % "".join(_ADD_TO_TIER.format(tier=t, width=w) for t, w in _TIER_WIDTHS)


_FOLD_LOCK_KEY = 0x5E45_0003  # every folding pass agrees on it (0001: migrations, 0002: lease)


@dataclass(frozen=True, slots=True)
class HousekeepingOptions:
    interval_s: float = 60.0
    # Minutes are folded this long after they end: most late readings have arrived by
    # then (any later one adds a delta that the next pass folds again).
    rollup_settle_s: float = 120.0
    fold_keys_per_pass: int = 50_000
    # A batch id is looked up only when its COMMIT was lost, within seconds of it.
    keep_batch_ids_s: float = 86_400.0


async def compact_rollups(pool: Pool, *, settle_s: float, keys_per_pass: int) -> int:
    """Fold every closed minute's deltas; returns how many keys were folded."""
    folded = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            # One folding pass at a time, whoever runs it (the engine's housekeeping, a
            # bench, an operator): two passes deleting the same rows would deadlock.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _FOLD_LOCK_KEY)
            done: int = await conn.fetchval(_FOLD, settle_s, keys_per_pass)
        folded += done
        if done < keys_per_pass:
            return folded


async def prune_batch_ids(pool: Pool, *, keep_s: float) -> int:
    status = await pool.execute(
        "DELETE FROM ingest_batches WHERE committed_at < now() - make_interval(secs => $1)",
        keep_s,
    )
    return int(status.split()[-1])


async def keep_house(pool: Pool, options: HousekeepingOptions) -> None:
    """Runs until cancelled; a failed pass (the primary away) is retried next time."""
    while True:
        try:
            with trio.fail_after(max(options.interval_s, 30.0)):
                folded = await compact_rollups(
                    pool, settle_s=options.rollup_settle_s, keys_per_pass=options.fold_keys_per_pass
                )
                pruned = await prune_batch_ids(pool, keep_s=options.keep_batch_ids_s)
            if folded or pruned:
                log.info("housekeeping", rollup_keys_folded=folded, batch_ids_pruned=pruned)
        except Exception as exc:
            log.warning("housekeeping failed", error=f"{type(exc).__name__}: {exc}")
        await trio.sleep(options.interval_s)
