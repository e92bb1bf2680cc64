-- Hour and day rollups. A month of one device's minute rollups is 43,200 rows; the
-- same month is 720 hour rows or 30 day rows. The writer does not touch these tables:
-- the compactor, when it folds a minute's unfolded deltas into one row, adds those
-- deltas to the minute's hour and day in the same transaction. So at any snapshot
--     tier rows + minute deltas not yet folded (merged = false)
-- is exactly the aggregate of the raw readings, with no refresh lag and no cost on
-- the ingest path. Buckets are UTC hours and days (date_bin from the epoch).
CREATE TABLE rollup_1h (
    device_key  integer NOT NULL,
    metric_id   smallint NOT NULL,
    bucket      timestamptz NOT NULL,
    count       bigint NOT NULL,
    sum         double precision NOT NULL,
    min         double precision NOT NULL,
    max         double precision NOT NULL,
    last_ts     timestamptz NOT NULL,
    last_value  double precision NOT NULL,
    PRIMARY KEY (device_key, metric_id, bucket)
);

CREATE TABLE rollup_1d (LIKE rollup_1h INCLUDING ALL);

-- What is already folded is already in the tiers.
INSERT INTO rollup_1h
SELECT device_key, metric_id, date_bin('1 hour', bucket, timestamptz 'epoch'),
       sum(count), sum(sum), min(min), max(max), max(last_ts),
       (array_agg(last_value ORDER BY last_ts DESC))[1]
FROM rollup_1m WHERE merged GROUP BY 1, 2, 3;

INSERT INTO rollup_1d
SELECT device_key, metric_id, date_bin('1 day', bucket, timestamptz 'epoch'),
       sum(count), sum(sum), min(min), max(max), max(last_ts),
       (array_agg(last_value ORDER BY last_ts DESC))[1]
FROM rollup_1h GROUP BY 1, 2, 3;

-- Reads of a tier add one device's unfolded minute deltas: index those by device.
-- (The compactor scans the whole of this small index to find what to fold.)
DROP INDEX rollup_1m_unmerged_idx;
CREATE INDEX rollup_1m_unmerged_idx ON rollup_1m (device_key, metric_id, bucket)
    WHERE NOT merged;
