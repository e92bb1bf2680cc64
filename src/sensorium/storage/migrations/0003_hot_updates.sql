-- The writer updates every device's high-water mark and the current minute's rollups
-- in each batch. With room left in each page, PostgreSQL updates those rows in place
-- (HOT updates: no new index entries), which keeps the per-batch upserts cheap.
ALTER TABLE device_ingest SET (fillfactor = 50);
ALTER TABLE rollup_1m SET (fillfactor = 70);
