-- +goose Up
-- On PostgreSQL the queue's child tables (bodies, recipients, trace events)
-- no longer carry foreign keys to messages. Each key was checked by a
-- trigger per inserted row — a query and a row lock on the parent — and a
-- message gets a body, a recipient and about four events on accept, more
-- on delivery: that was over half of the accept statement's work in the
-- server, and removing it measured 20–30% more messages per second at one
-- session (docs/perf.md, "Changes tried"). What the keys guaranteed is kept by
-- construction: children are only ever inserted by the statement that
-- inserts their message (acceptPostgres) or for a message being delivered,
-- which is never deleted (outcomesPostgres), and they are deleted together
-- with their message by the trace pruning (queue.Prune), which used the
-- keys' ON DELETE CASCADE before. SQLite keeps its keys: there they cost
-- little next to the single writer.
ALTER TABLE message_bodies DROP CONSTRAINT IF EXISTS message_bodies_message_id_fkey;
ALTER TABLE message_recipients DROP CONSTRAINT IF EXISTS message_recipients_message_id_fkey;
ALTER TABLE message_events DROP CONSTRAINT IF EXISTS message_events_message_id_fkey;

-- +goose Down
-- Children whose message is gone would fail the keys: remove them first.
DELETE FROM message_bodies b WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = b.message_id);
DELETE FROM message_recipients r WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = r.message_id);
DELETE FROM message_events e WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = e.message_id);
ALTER TABLE message_bodies ADD CONSTRAINT message_bodies_message_id_fkey
    FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE CASCADE;
ALTER TABLE message_recipients ADD CONSTRAINT message_recipients_message_id_fkey
    FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE CASCADE;
ALTER TABLE message_events ADD CONSTRAINT message_events_message_id_fkey
    FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE CASCADE;
