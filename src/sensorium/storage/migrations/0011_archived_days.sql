-- UTC days whose readings partition was exported to object storage, verified, and
-- dropped (and, later, perhaps restored).
CREATE TABLE archived_days (
    day            date PRIMARY KEY,
    readings       bigint NOT NULL,
    manifest_key   text NOT NULL,
    archived_at    timestamptz NOT NULL DEFAULT now(),
    restored_at    timestamptz
);
