-- +goose Up
-- A recipient routed by a mail flow rule keeps the rule's decision, so
-- that delivery honours it (and its on_error) on every attempt without
-- evaluating the rules again (SPEC 7: once per message, after DATA).
ALTER TABLE message_recipients ADD COLUMN rule TEXT NOT NULL DEFAULT '';
ALTER TABLE message_recipients ADD COLUMN rule_connector_id BIGINT;
ALTER TABLE message_recipients ADD COLUMN rule_on_error TEXT NOT NULL DEFAULT '';

-- The header section of each traced message, kept for the trace's
-- retention, so that a rule preview can replay header conditions
-- (FLOWGATE_TRACE_HEADERS=off keeps none). Deleted with its message, as
-- the other children of messages are on SQLite.
CREATE TABLE message_headers (
    message_id INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    section    TEXT NOT NULL
);

-- +goose Down
DROP TABLE message_headers;
ALTER TABLE message_recipients DROP COLUMN rule_on_error;
ALTER TABLE message_recipients DROP COLUMN rule_connector_id;
ALTER TABLE message_recipients DROP COLUMN rule;
