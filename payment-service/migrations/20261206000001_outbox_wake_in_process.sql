-- The relay is woken in process by the writer after its commit (shared::outbox::RelayWake),
-- no longer by NOTIFY: PostgreSQL commits notifying transactions one at a time across the
-- whole server, so every writer queued behind that lock under load.
DROP TRIGGER IF EXISTS outbox_notify ON outbox;
DROP FUNCTION IF EXISTS outbox_notify();
