-- Quiet hours: a rule may hold its email and SMS notifications during a daily window
-- ({"start": "22:00", "end": "07:00", "timezone": "Europe/Berlin"}); they go out when
-- the window ends.
ALTER TABLE alert_rules ADD COLUMN quiet_hours jsonb;

-- Flapping: an alert opened while its (rule, device) keeps opening and resolving is
-- recorded but not notified; `flapping` marks the newest such alert until it settles.
ALTER TABLE alerts ADD COLUMN flapping boolean NOT NULL DEFAULT false;
CREATE INDEX alerts_flapping_idx ON alerts (rule_id) WHERE flapping;
-- The flap count looks back over one (rule, device)'s recent openings.
CREATE INDEX alerts_rule_device_opened_idx ON alerts (rule_id, device_key, opened_at);

-- Digests: what is due for one recipient at once goes out as one message, a row of
-- its own (is_digest, no alert); the rows it carries become 'digested' and point to it.
ALTER TABLE notification_outbox DROP CONSTRAINT notification_outbox_status_check;
ALTER TABLE notification_outbox ADD CONSTRAINT notification_outbox_status_check
    CHECK (status IN ('pending', 'sent', 'failed', 'digested'));
ALTER TABLE notification_outbox ADD COLUMN is_digest boolean NOT NULL DEFAULT false;
ALTER TABLE notification_outbox
    ADD COLUMN digest_id bigint REFERENCES notification_outbox (id) ON DELETE SET NULL;
-- The per-recipient rate counts the messages sent to a recipient lately.
CREATE INDEX notification_outbox_sent_idx ON notification_outbox (channel, recipient, sent_at)
    WHERE status = 'sent';
CREATE INDEX notification_outbox_recipient_due_idx
    ON notification_outbox (channel, recipient, next_attempt_at) WHERE status = 'pending';
