-- +goose Up
-- The content of a large message, in pieces, so that neither accepting
-- nor delivering it holds the whole message in memory. The relay writes
-- the pieces (each ends at a line end) as it reads DATA, keyed by the
-- message's uid, before the message itself is committed; a message whose
-- content is here has no message_bodies row. Pieces of a message that was
-- never committed (refused mid-way, a crash) are deleted by the trace
-- pruning once they are a day old.
CREATE TABLE message_chunks (
    uid  TEXT    NOT NULL,
    seq  INTEGER NOT NULL,
    at   BIGINT  NOT NULL,
    data BYTEA   NOT NULL,
    PRIMARY KEY (uid, seq)
);
CREATE INDEX message_chunks_at ON message_chunks (at);
-- +goose StatementBegin
DO $$
BEGIN
    ALTER TABLE message_chunks ALTER COLUMN data SET COMPRESSION lz4;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'message_chunks.data keeps the default compression: %', SQLERRM;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP TABLE message_chunks;
