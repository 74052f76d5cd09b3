-- +goose Up
CREATE TABLE accepted_domains (
    id          BIGSERIAL PRIMARY KEY,
    domain      TEXT NOT NULL UNIQUE,
    domain_type TEXT NOT NULL CHECK (domain_type IN ('authoritative', 'internal_relay')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A connector is a name and pointers into its immutable revisions.
CREATE TABLE connectors (
    id                 BIGSERIAL PRIMARY KEY,
    direction          TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    name               TEXT NOT NULL,
    name_key           TEXT NOT NULL, -- lower(name): names are unique per direction, ignoring case
    enabled            BOOLEAN NOT NULL DEFAULT TRUE,
    latest_revision    INTEGER NOT NULL,
    active_revision    INTEGER,
    validated_revision INTEGER,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at         TIMESTAMPTZ
);
CREATE UNIQUE INDEX connectors_direction_name_key ON connectors (direction, name_key) WHERE deleted_at IS NULL;

CREATE TABLE connector_revisions (
    connector_id BIGINT NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    revision     INTEGER NOT NULL CHECK (revision > 0),
    spec         TEXT NOT NULL, -- the revision's settings as JSON
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by   TEXT NOT NULL,
    PRIMARY KEY (connector_id, revision)
);

-- +goose StatementBegin
CREATE FUNCTION connector_revisions_immutable() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'connector revisions are immutable';
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd

CREATE TRIGGER connector_revisions_no_update
    BEFORE UPDATE ON connector_revisions
    FOR EACH ROW EXECUTE FUNCTION connector_revisions_immutable();

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE, -- lowercased
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE, -- hex SHA-256 of the token; the token itself is never stored
    token_prefix TEXT NOT NULL,        -- first characters, to tell tokens apart in lists
    role         TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);

-- Written in the same transaction as the change it records.
CREATE TABLE audit_log (
    id           BIGSERIAL PRIMARY KEY,
    at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    object_type  TEXT NOT NULL,
    object_id    BIGINT,
    object_name  TEXT NOT NULL DEFAULT '',
    connector_id BIGINT,
    revision     INTEGER,
    detail       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_connector ON audit_log (connector_id, id);
CREATE INDEX audit_log_at ON audit_log (at);

-- +goose Down
DROP TABLE audit_log;
DROP TABLE api_tokens;
DROP TABLE users;
DROP TRIGGER connector_revisions_no_update ON connector_revisions;
DROP FUNCTION connector_revisions_immutable();
DROP TABLE connector_revisions;
DROP TABLE connectors;
DROP TABLE accepted_domains;
