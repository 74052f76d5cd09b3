-- +goose Up
-- An outbound connector on hold (SPEC 3.6): its mail is still accepted
-- and queued but not attempted until it is released. Operational state,
-- not a setting: it is no part of a revision, and holding or releasing
-- makes no new revision.
ALTER TABLE connectors ADD COLUMN held_at DATETIME;
ALTER TABLE connectors ADD COLUMN held_by TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE connectors DROP COLUMN held_by;
ALTER TABLE connectors DROP COLUMN held_at;
