-- Orders and their lines. Amounts are integer cents: money is never a float.
CREATE TABLE orders (
    id          UUID PRIMARY KEY,
    user_id     UUID        NOT NULL,
    kind        TEXT        NOT NULL DEFAULT 'standard' CHECK (kind IN ('standard', 'welcome')),
    status      TEXT        NOT NULL DEFAULT 'pending'
                            CHECK (status IN ('pending', 'paid', 'payment_failed', 'cancelled')),
    total_cents BIGINT      NOT NULL CHECK (total_cents >= 0),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A redelivered user.created must not make a second welcome order.
CREATE UNIQUE INDEX orders_one_welcome_order_per_user ON orders (user_id) WHERE kind = 'welcome';
CREATE INDEX orders_user_id_created_at_idx ON orders (user_id, created_at DESC);
CREATE INDEX orders_status_idx ON orders (status);

CREATE TABLE order_items (
    order_id         UUID    NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_no          INTEGER NOT NULL,
    product_id       TEXT    NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 9999),
    unit_price_cents BIGINT  NOT NULL CHECK (unit_price_cents >= 0),
    PRIMARY KEY (order_id, line_no)
);
