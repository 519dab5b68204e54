-- A delivery is recorded before its messages are published, and confirmed after the broker confirms them.
-- A retry of a delivery that is recorded but not confirmed (its publish still under way, or failed) publishes
-- again instead of being told "duplicate": messages carry ids only, so a second publish is harmless, and a
-- sender that gave up waiting must not be told its event is safe when it may not be.
ALTER TABLE webhook_deliveries ADD COLUMN confirmed_at timestamptz;
UPDATE webhook_deliveries SET confirmed_at = received_at;
