-- +goose Up
-- The connector page's live view: mail per connector and hour, and each
-- connector's last success and failure (see the PostgreSQL migration of
-- the same number).
CREATE TABLE connector_hourly (
    connector_id INTEGER NOT NULL,
    hour         INTEGER NOT NULL,
    kind         TEXT    NOT NULL,
    n            INTEGER NOT NULL,
    PRIMARY KEY (connector_id, hour, kind)
);
CREATE INDEX connector_hourly_hour ON connector_hourly (hour);

CREATE TABLE connector_last (
    connector_id INTEGER NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('success', 'failure')),
    at           INTEGER NOT NULL,
    status       TEXT    NOT NULL,
    address      TEXT    NOT NULL,
    message_uid  TEXT    NOT NULL,
    reply        TEXT    NOT NULL,
    PRIMARY KEY (connector_id, kind)
);

CREATE INDEX messages_rejected_inbound ON messages (inbound_connector_id, received_at) WHERE status = 'rejected';

-- +goose Down
DROP INDEX messages_rejected_inbound;
DROP TABLE connector_last;
DROP TABLE connector_hourly;
