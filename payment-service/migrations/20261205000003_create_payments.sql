-- One row per order payment-service has heard of: the payment it took (`completed`),
-- declined (`failed`) or gave back (`refunded`), or, for an order cancelled before its
-- payment, the promise that none will be taken (`cancelled`). The order id is the key,
-- so a charge and a cancellation of the same order take turns on its row.
CREATE TABLE payments (
    order_id     UUID        PRIMARY KEY,
    payment_id   UUID        NOT NULL UNIQUE,
    user_id      UUID        NOT NULL,
    amount_cents BIGINT      NOT NULL CHECK (amount_cents >= 0),
    status       TEXT        NOT NULL CHECK (status IN ('completed', 'failed', 'cancelled', 'refunded')),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
