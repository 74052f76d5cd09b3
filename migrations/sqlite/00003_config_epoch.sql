-- +goose Up
-- One row counting configuration changes: every change to connectors or
-- accepted domains increments it in its own transaction, so a process can
-- notice changes made by others by polling one tiny row (SQLite has no
-- LISTEN/NOTIFY; on PostgreSQL it backs up the notifications).
CREATE TABLE config_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch BIGINT NOT NULL
);
INSERT INTO config_epoch (id, epoch) VALUES (1, 0);

-- +goose Down
DROP TABLE config_epoch;
