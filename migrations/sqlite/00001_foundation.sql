-- +goose Up
CREATE TABLE accepted_domains (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    domain      TEXT NOT NULL UNIQUE,
    domain_type TEXT NOT NULL CHECK (domain_type IN ('authoritative', 'internal_relay')),
    created_at  DATETIME NOT NULL
);

-- A connector is a name and pointers into its immutable revisions.
CREATE TABLE connectors (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    direction          TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    name               TEXT NOT NULL,
    name_key           TEXT NOT NULL, -- lower(name): names are unique per direction, ignoring case
    enabled            BOOLEAN NOT NULL DEFAULT 1,
    latest_revision    INTEGER NOT NULL,
    active_revision    INTEGER,
    validated_revision INTEGER,
    created_at         DATETIME NOT NULL,
    updated_at         DATETIME NOT NULL,
    deleted_at         DATETIME
);
CREATE UNIQUE INDEX connectors_direction_name_key ON connectors (direction, name_key) WHERE deleted_at IS NULL;

CREATE TABLE connector_revisions (
    connector_id INTEGER NOT NULL REFERENCES connectors (id) ON DELETE CASCADE,
    revision     INTEGER NOT NULL CHECK (revision > 0),
    spec         TEXT NOT NULL, -- the revision's settings as JSON
    created_at   DATETIME NOT NULL,
    created_by   TEXT NOT NULL,
    PRIMARY KEY (connector_id, revision)
);

-- +goose StatementBegin
CREATE TRIGGER connector_revisions_no_update
BEFORE UPDATE ON connector_revisions
BEGIN
    SELECT RAISE(ABORT, 'connector revisions are immutable');
END;
-- +goose StatementEnd

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT NOT NULL UNIQUE, -- lowercased
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    created_at    DATETIME NOT NULL,
    updated_at    DATETIME NOT NULL
);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE, -- hex SHA-256 of the token; the token itself is never stored
    token_prefix TEXT NOT NULL,        -- first characters, to tell tokens apart in lists
    role         TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    created_by   TEXT NOT NULL,
    created_at   DATETIME NOT NULL,
    last_used_at DATETIME,
    revoked_at   DATETIME
);

-- Written in the same transaction as the change it records.
CREATE TABLE audit_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           DATETIME NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    object_type  TEXT NOT NULL,
    object_id    INTEGER,
    object_name  TEXT NOT NULL DEFAULT '',
    connector_id INTEGER,
    revision     INTEGER,
    detail       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_connector ON audit_log (connector_id, id);
CREATE INDEX audit_log_at ON audit_log (at);

-- +goose Down
DROP TABLE audit_log;
DROP TABLE api_tokens;
DROP TABLE users;
DROP TRIGGER connector_revisions_no_update;
DROP TABLE connector_revisions;
DROP TABLE connectors;
DROP TABLE accepted_domains;
