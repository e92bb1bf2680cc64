-- Hour and day rollups are read one device at a time, a bucket after another: with
-- every column in the primary key's index, a 30-day read of 720 hours is an index-only
-- scan of a few leaf pages, instead of 720 heap pages scattered over the table (the
-- compactor writes each hour for all devices at once, so a device's rows never sit
-- together). Measured by `sensorium bench query --full` (BENCHMARKS.md).
ALTER TABLE rollup_1h DROP CONSTRAINT rollup_1h_pkey,
    ADD PRIMARY KEY (device_key, metric_id, bucket)
        INCLUDE (count, sum, min, max, last_ts, last_value);
ALTER TABLE rollup_1d DROP CONSTRAINT rollup_1d_pkey,
    ADD PRIMARY KEY (device_key, metric_id, bucket)
        INCLUDE (count, sum, min, max, last_ts, last_value);
