-- +goose Up
-- Mail flow rules (SPEC 7). body is the whole rule as JSON (rules.Rule
-- marshalled, its priority left null): the source of truth for the
-- conditions, exceptions, actions, dates, on_error and comment. The
-- columns beside it are what the store queries and enforces: the name
-- (unique ignoring case), the priority, enabled and mode, and the outbound
-- connector the rule routes to (for "which rules use this connector").
--
-- Priorities are unique (this index) and dense, 0..n-1 (the store keeps
-- them so in the transaction that changes them). There is no CHECK
-- (priority >= 0): the store shifts a range of priorities through negative
-- values, so that no row ever collides with another under the unique index
-- in whatever order the rows are updated.
--
-- Rules are deleted for good; the audit log keeps the deleted rule.
CREATE TABLE rules (
    id                 BIGSERIAL PRIMARY KEY,
    name               TEXT NOT NULL,
    name_key           TEXT NOT NULL UNIQUE, -- lower(name): rule names are unique, ignoring case
    priority           INTEGER NOT NULL,
    enabled            BOOLEAN NOT NULL DEFAULT TRUE,
    mode               TEXT NOT NULL CHECK (mode IN ('enforce', 'audit')),
    body               TEXT NOT NULL,
    route_connector_id BIGINT REFERENCES connectors (id), -- connectors are only soft-deleted
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX rules_priority ON rules (priority);
CREATE INDEX rules_route_connector ON rules (route_connector_id) WHERE route_connector_id IS NOT NULL;

-- +goose Down
DROP TABLE rules;
