-- +goose Up
-- Nothing to do: on SQLite the queue's child tables keep their foreign keys
-- (see the PostgreSQL migration of the same number for why PostgreSQL
-- drops them). The number is kept so both engines have the same versions.
SELECT 1;

-- +goose Down
SELECT 1;
