-- When a notification was first handed to its sender. A row handed over once is never
-- put into a digest afterwards: if the engine died during that delivery, the receiver
-- may have it, and the row must go again as it was, with its own event id.
ALTER TABLE notification_outbox ADD COLUMN started_at timestamptz;
