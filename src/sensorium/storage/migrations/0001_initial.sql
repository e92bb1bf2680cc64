-- Sensorium's first schema: tenants, users, devices, readings and what surrounds them.
-- Readings are written by binary COPY at hundreds of thousands of rows per second, so
-- the table is narrow (compact ids, no foreign keys, no unique index) and partitioned by
-- UTC day. Exact de-duplication is the engine's job (see actors/), helped by the
-- per-device high-water marks in device_ingest and the (device_key, ts) index.

CREATE TABLE tenants (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id      bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email          text NOT NULL,
    password_hash  text NOT NULL,
    role           text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- key is the compact id used inside (readings, rollups); id is the public one.
CREATE TABLE devices (
    key                 integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                  text NOT NULL UNIQUE CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    tenant_id           bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                text NOT NULL,
    tags                text[] NOT NULL DEFAULT '{}',
    token_hash          bytea NOT NULL,
    mqtt_password_hash  text NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_tenant_idx ON devices (tenant_id);
CREATE UNIQUE INDEX devices_token_hash_key ON devices (token_hash);

-- Bumped whenever a device's broker credentials change, so that whoever keeps the
-- broker's password file (the embedded stack) knows to regenerate it.
CREATE TABLE broker_credentials (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version    bigint NOT NULL DEFAULT 0
);
INSERT INTO broker_credentials DEFAULT VALUES;

CREATE FUNCTION bump_broker_credentials() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE broker_credentials SET version = version + 1;
    RETURN NULL;
END $$;

CREATE TRIGGER devices_credentials_changed
    AFTER INSERT OR DELETE OR UPDATE OF id, mqtt_password_hash ON devices
    FOR EACH STATEMENT EXECUTE FUNCTION bump_broker_credentials();

CREATE TABLE metrics (
    id    smallint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name  text NOT NULL UNIQUE CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$')
);

-- One row per (device, metric, ts, value): count(*) is the number of readings stored.
-- Columns ordered widest first so rows pack without padding.
CREATE TABLE readings (
    ts          timestamptz NOT NULL,
    value       double precision NOT NULL,
    device_key  integer NOT NULL,
    metric_id   smallint NOT NULL,
    seq         bigint
) PARTITION BY RANGE (ts);
CREATE INDEX readings_device_ts_idx ON readings (device_key, ts);

-- Creates the UTC-day partitions covering [first_day, last_day]; safe to call
-- concurrently and repeatedly.
CREATE FUNCTION ensure_readings_partitions(first_day date, last_day date)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    day date := first_day;
BEGIN
    WHILE day <= last_day LOOP
        BEGIN
            EXECUTE format(
                'CREATE TABLE IF NOT EXISTS %I PARTITION OF readings '
                'FOR VALUES FROM (%L) TO (%L)',
                'readings_' || to_char(day, 'YYYYMMDD'),
                (day::timestamp AT TIME ZONE 'UTC'),
                ((day + 1)::timestamp AT TIME ZONE 'UTC'));
        EXCEPTION WHEN duplicate_table THEN
            NULL;  -- another session created it between our check and our CREATE
        END;
        day := day + 1;
    END LOOP;
END $$;

CREATE VIEW readings_named AS
    SELECT d.id AS device, m.name AS metric, r.ts, r.value
    FROM readings r
    JOIN devices d ON d.key = r.device_key
    JOIN metrics m ON m.id = r.metric_id;

-- Minute rollups, maintained by the writer in the same transaction as the raw rows.
CREATE TABLE rollup_1m (
    device_key  integer NOT NULL,
    metric_id   smallint NOT NULL,
    bucket      timestamptz NOT NULL,
    count       integer NOT NULL,
    sum         double precision NOT NULL,
    min         double precision NOT NULL,
    max         double precision NOT NULL,
    last_ts     timestamptz NOT NULL,
    last_value  double precision NOT NULL,
    PRIMARY KEY (device_key, metric_id, bucket)
);

-- Per-device ingest high-water marks, written with each batch: every stored reading of
-- a device has ts <= hwm_ts.
CREATE TABLE device_ingest (
    device_key     integer PRIMARY KEY,
    hwm_ts         timestamptz NOT NULL,
    last_seen      timestamptz NOT NULL,
    readings       bigint NOT NULL DEFAULT 0
);

CREATE TABLE dead_letters (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at   timestamptz NOT NULL DEFAULT now(),
    source        text NOT NULL CHECK (source IN ('mqtt', 'http')),
    tenant_id     bigint,
    device_id     text,
    topic         text,
    reason        text NOT NULL,
    detail        text NOT NULL DEFAULT '',
    payload       bytea NOT NULL,
    payload_size  integer NOT NULL
);
CREATE INDEX dead_letters_tenant_idx ON dead_letters (tenant_id, received_at DESC);

CREATE TABLE alert_rules (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL,
    scope       jsonb NOT NULL,
    metric      text NOT NULL,
    condition   jsonb NOT NULL,
    severity    text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    channels    jsonb NOT NULL DEFAULT '[]',
    renotify_s  integer,
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE alerts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id          bigint NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    device_key       integer NOT NULL,
    state            text NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    opened_at        timestamptz NOT NULL,
    acknowledged_at  timestamptz,
    acknowledged_by  bigint REFERENCES users (id) ON DELETE SET NULL,
    resolved_at      timestamptz,
    value            double precision
);
-- At most one alert that is not resolved per (rule, device).
CREATE UNIQUE INDEX alerts_one_live_idx ON alerts (rule_id, device_key) WHERE state <> 'resolved';

CREATE TABLE alert_events (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id  bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    at        timestamptz NOT NULL DEFAULT now(),
    kind      text NOT NULL,
    actor     text,
    detail    jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE notification_outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id         uuid NOT NULL UNIQUE,
    alert_id         bigint REFERENCES alerts (id) ON DELETE CASCADE,
    channel          text NOT NULL CHECK (channel IN ('email', 'sms', 'webhook')),
    recipient        text NOT NULL,
    payload          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz
);
CREATE INDEX notification_outbox_due_idx ON notification_outbox (channel, next_attempt_at)
    WHERE status = 'pending';
