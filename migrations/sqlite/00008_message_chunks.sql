-- +goose Up
-- The content of a large message, in pieces (see the PostgreSQL migration
-- of the same number).
CREATE TABLE message_chunks (
    uid  TEXT    NOT NULL,
    seq  INTEGER NOT NULL,
    at   INTEGER NOT NULL,
    data BLOB    NOT NULL,
    PRIMARY KEY (uid, seq)
);
CREATE INDEX message_chunks_at ON message_chunks (at);

-- +goose Down
DROP TABLE message_chunks;
