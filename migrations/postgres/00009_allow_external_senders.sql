-- +goose Up
-- Mail whose envelope sender is in an accepted domain is accepted only
-- through our own connectors unless the domain allows external senders
-- (SPEC 3.3).
ALTER TABLE accepted_domains ADD COLUMN allow_external_senders BOOLEAN NOT NULL DEFAULT FALSE;

-- +goose Down
ALTER TABLE accepted_domains DROP COLUMN allow_external_senders;
