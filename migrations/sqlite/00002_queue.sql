-- +goose Up
-- Every message the relay accepted or rejected. Times are Unix microseconds
-- (UTC), the same on both engines.
CREATE TABLE messages (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    uid                  TEXT NOT NULL UNIQUE, -- the id in Received: and the trace
    received_at          BIGINT NOT NULL,
    status               TEXT NOT NULL CHECK (status IN ('queued', 'delivered', 'deferred', 'bounced', 'rejected')),
    client_ip            TEXT NOT NULL,
    helo                 TEXT NOT NULL DEFAULT '',
    tls_version          TEXT NOT NULL DEFAULT '',
    tls_cipher           TEXT NOT NULL DEFAULT '',
    client_cert          TEXT NOT NULL DEFAULT '',
    sender               TEXT NOT NULL DEFAULT '',
    message_id_header    TEXT NOT NULL DEFAULT '',
    size                 BIGINT NOT NULL DEFAULT 0,
    inbound_connector_id BIGINT,
    inbound_connector    TEXT NOT NULL DEFAULT '',
    inbound_revision     INTEGER,
    attribution          TEXT NOT NULL DEFAULT '',
    reply                TEXT NOT NULL DEFAULT '', -- the final reply sent to the client
    next_attempt_at      BIGINT,
    expires_at           BIGINT,
    attempts             INTEGER NOT NULL DEFAULT 0,
    lease_owner          TEXT,
    lease_until          BIGINT,
    updated_at           BIGINT NOT NULL
);
CREATE INDEX messages_due ON messages (next_attempt_at) WHERE status IN ('queued', 'deferred');
CREATE INDEX messages_received_at ON messages (received_at);
CREATE INDEX messages_sender ON messages (sender);
CREATE INDEX messages_message_id_header ON messages (message_id_header);

CREATE TABLE message_bodies (
    message_id INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    data       BLOB NOT NULL
);

CREATE TABLE message_recipients (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id   INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    address      TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('queued', 'delivered', 'deferred', 'bounced', 'rejected')),
    connector_id BIGINT,
    connector    TEXT NOT NULL DEFAULT '',
    route_reason TEXT NOT NULL DEFAULT '',
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_reply   TEXT NOT NULL DEFAULT '',
    updated_at   BIGINT NOT NULL
);
CREATE INDEX message_recipients_message ON message_recipients (message_id);
CREATE INDEX message_recipients_address ON message_recipients (address);

CREATE TABLE message_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    at         BIGINT NOT NULL,
    type       TEXT NOT NULL,
    detail     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX message_events_message ON message_events (message_id, id);

-- +goose Down
DROP TABLE message_events;
DROP TABLE message_recipients;
DROP TABLE message_bodies;
DROP TABLE messages;
