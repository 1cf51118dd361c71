-- The cancellation saga: a cancelled order whose payment had been taken becomes
-- `refunded` when payment-service gives the payment back.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('pending', 'paid', 'payment_failed', 'cancelled', 'refunded'));
