-- Every batch the writer commits leaves its id here, in the same transaction. When a
-- connection drops during COMMIT the writer cannot know whether the batch landed; it
-- looks its id up before writing it again, so a retry never doubles a batch.
CREATE TABLE ingest_batches (
    id            bigint PRIMARY KEY,
    committed_at  timestamptz NOT NULL DEFAULT now(),
    readings      integer NOT NULL
);
CREATE INDEX ingest_batches_committed_at_idx ON ingest_batches (committed_at);
