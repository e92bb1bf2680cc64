"""Housekeeping on the primary, off the ingest path: folding what the batches appended
to `device_deltas` (minute rollups into `rollup_1m` and the hour and day rollups, high-
water marks and last-seen times into `device_ingest`) and forgetting old batch ids.

The writer appends one row per device a batch touched, holding a rollup delta per
(metric, minute) (migrations 0004, 0012, 0013); reads add them to the folded rows, so
they are right at any moment. Folding the rows whose minutes have all closed keeps
those reads, and the table, small.
"""

from __future__ import annotations

from dataclasses import dataclass

import trio

from sensorium.logs import get_logger
from sensorium.storage._bridge import Pool

__all__ = ["HousekeepingOptions", "compact_rollups", "keep_house", "prune_batch_ids"]

log = get_logger(__name__)

# Up to `$2` device rows whose latest minute ended `$1` seconds ago or earlier: their
# deltas, and the row already folded for a (device, metric, minute) if a late reading
# brought the minute back, become one folded row of rollup_1m; the deltas alone are
# added to the hour and day tiers, the rows' marks to device_ingest. A row a batch
# commits meanwhile is not in this statement's snapshot: it stays, for the next pass.
# (A minute whose deltas are split between a folded row and one that waits, for a later
# minute in the same row, is simply folded again by a later pass.)
_FOLD = """
WITH gone AS (
    DELETE FROM device_deltas
    WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM device_deltas
        WHERE date_bin('1 minute', hwm_ts, timestamptz 'epoch')
              < now() - interval '1 minute' - make_interval(secs => $1)
        LIMIT $2))
    RETURNING *
), fresh AS (
    SELECT g.device_key, u.metric_id, u.bucket, u.count, u.sum, u.min, u.max, u.last_ts,
           u.last_value
    FROM gone g
    CROSS JOIN LATERAL unnest(g.metric_id, g.bucket, g.count, g.sum, g.min, g.max,
                              g.last_ts, g.last_value)
        AS u(metric_id, bucket, count, sum, min, max, last_ts, last_value)
), keys AS (
    SELECT DISTINCT device_key, metric_id, bucket FROM fresh
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
), marks AS (
    INSERT INTO device_ingest AS d (device_key, hwm_ts, last_seen, readings)
    SELECT device_key, max(hwm_ts), max(written_at), sum(readings)
    FROM gone GROUP BY device_key
    ON CONFLICT (device_key) DO UPDATE SET
        hwm_ts = greatest(d.hwm_ts, excluded.hwm_ts),
        last_seen = greatest(d.last_seen, excluded.last_seen),
        readings = d.readings + excluded.readings
)%s
SELECT count(*) FROM gone
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
    fold_rows_per_pass: int = 20_000
    # A batch id is looked up only when its COMMIT was lost, within seconds of it.
    keep_batch_ids_s: float = 86_400.0


async def compact_rollups(pool: Pool, *, settle_s: float, rows_per_pass: int) -> int:
    """Fold every device_deltas row whose minutes have all closed; returns how many."""
    folded = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            # One folding pass at a time, whoever runs it (the engine's housekeeping, a
            # bench, an operator): two passes deleting the same rows would deadlock.
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _FOLD_LOCK_KEY)
            done: int = await conn.fetchval(_FOLD, settle_s, rows_per_pass)
        folded += done
        if done < rows_per_pass:
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
                    pool, settle_s=options.rollup_settle_s, rows_per_pass=options.fold_rows_per_pass
                )
                pruned = await prune_batch_ids(pool, keep_s=options.keep_batch_ids_s)
            if folded or pruned:
                log.info("housekeeping", delta_rows_folded=folded, batch_ids_pruned=pruned)
        except Exception as exc:
            log.warning("housekeeping failed", error=f"{type(exc).__name__}: {exc}")
        await trio.sleep(options.interval_s)
