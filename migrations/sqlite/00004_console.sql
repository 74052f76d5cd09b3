-- +goose Up
-- Console sign-in sessions. The cookie carries a random 256-bit session id;
-- only its SHA-256 is stored, so a leaked table holds no usable session.
-- data is the session's server-side state as JSON (the wizard drafts).
CREATE TABLE console_sessions (
    id_hash    TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    data       TEXT NOT NULL DEFAULT '{}',
    created_at DATETIME NOT NULL,
    expires_at DATETIME NOT NULL
);
CREATE INDEX console_sessions_user ON console_sessions (user_id);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);

-- +goose Down
DROP TABLE console_sessions;
