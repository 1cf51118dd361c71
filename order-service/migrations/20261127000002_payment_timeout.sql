-- The saga's payment timeout: when the order's payment was last requested, how many
-- times, and why an order ended where it did when no payment answer decided it.
ALTER TABLE orders
    ADD COLUMN payment_requests     INTEGER     NOT NULL DEFAULT 1,
    ADD COLUMN payment_requested_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    ADD COLUMN status_reason        TEXT;
UPDATE orders SET payment_requested_at = created_at;
CREATE INDEX orders_pending_payment_idx ON orders (payment_requested_at) WHERE status = 'pending';
