-- +goose Up
-- One row per validation run of one connector revision: the step list and
-- the whole SMTP/TLS transcript, as the console and the API show them.
CREATE TABLE validations (
    id           BIGSERIAL PRIMARY KEY,
    connector_id BIGINT NOT NULL REFERENCES connectors (id),
    revision     INTEGER NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('passed', 'failed')),
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ NOT NULL,
    sender       TEXT NOT NULL DEFAULT '',
    recipients   TEXT NOT NULL DEFAULT '[]', -- JSON list
    steps        TEXT NOT NULL DEFAULT '[]', -- JSON list of {name, status, detail, duration_ms}
    transcript   TEXT NOT NULL DEFAULT '',
    created_by   TEXT NOT NULL,
    FOREIGN KEY (connector_id, revision) REFERENCES connector_revisions (connector_id, revision)
);
CREATE INDEX validations_connector ON validations (connector_id, revision, id);

-- The newest validation of each connector, for lists and the status.
ALTER TABLE connectors ADD COLUMN last_validation_id BIGINT;
ALTER TABLE connectors ADD COLUMN last_validation_revision INTEGER;
ALTER TABLE connectors ADD COLUMN last_validation_status TEXT;
ALTER TABLE connectors ADD COLUMN last_validation_at TIMESTAMPTZ;

-- +goose Down
ALTER TABLE connectors DROP COLUMN last_validation_at;
ALTER TABLE connectors DROP COLUMN last_validation_status;
ALTER TABLE connectors DROP COLUMN last_validation_revision;
ALTER TABLE connectors DROP COLUMN last_validation_id;
DROP TABLE validations;
