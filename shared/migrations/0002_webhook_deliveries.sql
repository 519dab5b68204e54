-- Webhook deliveries already accepted, by (site, webhook-id): a retried or duplicated delivery changes nothing.
-- Rows older than the senders' retry horizon are pruned by reconcile.
CREATE TABLE webhook_deliveries (
    site        text        NOT NULL,
    webhook_id  text        NOT NULL,
    event       text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, webhook_id)
);
CREATE INDEX webhook_deliveries_received ON webhook_deliveries (received_at);
