-- +goose Up
-- Message bodies are written once on accept and read at most once or twice,
-- so TOAST compression is on the hot path: lz4 costs a fraction of the CPU
-- of the default pglz (docs/perf.md, "Changes tried"). A server built without lz4
-- (or older than PostgreSQL 14) keeps the default, with a notice.
-- +goose StatementBegin
DO $$
BEGIN
    ALTER TABLE message_bodies ALTER COLUMN data SET COMPRESSION lz4;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'message_bodies.data keeps the default compression: %', SQLERRM;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
BEGIN
    ALTER TABLE message_bodies ALTER COLUMN data SET COMPRESSION default;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'message_bodies.data compression unchanged: %', SQLERRM;
END
$$;
-- +goose StatementEnd
