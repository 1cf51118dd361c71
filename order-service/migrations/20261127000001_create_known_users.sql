-- The users order-service knows of, built from user.created and user.deleted: an
-- order is accepted only for a user known here and not deleted.
CREATE TABLE known_users (
    user_id    UUID PRIMARY KEY,
    deleted_at TIMESTAMPTZ,
    seen_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Users who already have orders were announced before this table existed.
INSERT INTO known_users (user_id) SELECT DISTINCT user_id FROM orders ON CONFLICT DO NOTHING;
