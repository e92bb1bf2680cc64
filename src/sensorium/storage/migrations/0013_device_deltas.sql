-- What one batch did to one device, in one row, appended: its minute-rollup deltas (one
-- element per (metric, minute), the same position in every array) and its high-water
-- mark. Until now a batch appended a row per (device, metric, minute) to
-- rollup_1m_delta and upserted the device's row of device_ingest. The upsert's row
-- locks made two batches in flight wait on each other's COMMIT (a device in both), and
-- each delta row was one more index entry for the primary to write and the replicas to
-- replay. Measured with `sensorium bench writer --devices 10000 --messages 10`, runs
-- interleaved: 0.61-0.65 of asyncpg's one-transaction COPY before, 0.71-0.77 with this
-- table (BENCHMARKS.md, 2026-11-26 08:05-09:50 UTC).
--
-- device_ingest keeps what the compactor has folded; the current state of a device is
-- that together with its rows here (device_last_seen below; the writer's high-water
-- marks at start-up take the greatest of both). `rollup_1m_delta` becomes a view that
-- unnests these rows, so every read of "rollup_1m + deltas" stays as it was.
CREATE TABLE device_deltas (
    device_key  integer NOT NULL,
    written_at  timestamptz NOT NULL DEFAULT now(),  -- the batch's transaction time
    hwm_ts      timestamptz NOT NULL,                -- its latest reading of the device
    readings    integer NOT NULL,
    metric_id   smallint[] NOT NULL,
    bucket      timestamptz[] NOT NULL,
    count       integer[] NOT NULL,
    sum         double precision[] NOT NULL,
    min         double precision[] NOT NULL,
    max         double precision[] NOT NULL,
    last_ts     timestamptz[] NOT NULL,
    last_value  double precision[] NOT NULL
);
-- (device_key, written_at): a device's rows, and its latest write by one index probe.
CREATE INDEX device_deltas_key_idx ON device_deltas (device_key, written_at);

-- The deltas not folded yet move over, one row per device; their readings are already
-- counted in device_ingest, and they were written when the device was last seen.
INSERT INTO device_deltas (device_key, written_at, hwm_ts, readings, metric_id, bucket,
                           count, sum, min, max, last_ts, last_value)
SELECT r.device_key, coalesce(min(i.last_seen), '-infinity'), max(r.last_ts), 0,
       array_agg(r.metric_id ORDER BY r.metric_id, r.bucket),
       array_agg(r.bucket ORDER BY r.metric_id, r.bucket),
       array_agg(r.count ORDER BY r.metric_id, r.bucket),
       array_agg(r.sum ORDER BY r.metric_id, r.bucket),
       array_agg(r.min ORDER BY r.metric_id, r.bucket),
       array_agg(r.max ORDER BY r.metric_id, r.bucket),
       array_agg(r.last_ts ORDER BY r.metric_id, r.bucket),
       array_agg(r.last_value ORDER BY r.metric_id, r.bucket)
FROM rollup_1m_delta r LEFT JOIN device_ingest i ON i.device_key = r.device_key
GROUP BY r.device_key;

DROP VIEW rollup_1m_merged;
DROP TABLE rollup_1m_delta;

-- A device's deltas: `WHERE device_key = ...` reaches device_deltas' index.
CREATE VIEW rollup_1m_delta AS
SELECT d.device_key, u.metric_id, u.bucket, u.count, u.sum, u.min, u.max, u.last_ts,
       u.last_value
FROM device_deltas d
CROSS JOIN LATERAL unnest(d.metric_id, d.bucket, d.count, d.sum, d.min, d.max, d.last_ts,
                          d.last_value)
    AS u(metric_id, bucket, count, sum, min, max, last_ts, last_value);

CREATE VIEW rollup_1m_merged AS
SELECT device_key, metric_id, bucket,
       sum(count)::bigint AS count,
       sum(sum) AS sum,
       min(min) AS min,
       max(max) AS max,
       max(last_ts) AS last_ts,
       (array_agg(last_value ORDER BY last_ts DESC))[1] AS last_value
FROM (
    SELECT device_key, metric_id, bucket, count, sum, min, max, last_ts, last_value
    FROM rollup_1m
    UNION ALL
    SELECT device_key, metric_id, bucket, count, sum, min, max, last_ts, last_value
    FROM rollup_1m_delta
) r
GROUP BY device_key, metric_id, bucket;

-- When a device's last batch committed (NULL: never): two index probes, so that a
-- sweep over every device of a tenant stays cheap however many deltas wait.
CREATE FUNCTION device_last_seen(device integer) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT greatest((SELECT last_seen FROM device_ingest WHERE device_key = device),
                    (SELECT max(written_at) FROM device_deltas WHERE device_key = device))
$$;
