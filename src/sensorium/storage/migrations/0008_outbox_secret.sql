-- A webhook delivery is signed with the secret its rule had when the transition was
-- recorded: kept with the notification (never shown by the API), so that editing or
-- deleting the rule later cannot change or break a delivery already queued.
ALTER TABLE notification_outbox ADD COLUMN secret text;
