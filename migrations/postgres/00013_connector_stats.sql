-- +goose Up
-- The connector page's live view (SPEC 4): mail per connector and hour,
-- kept as a rollup so that the page reads a few hundred rows however
-- large the trace is. The delivery workers add to it in the same
-- statement that records delivery outcomes (queue.outcomesPostgres), so
-- it counts exactly what the trace records. A row counts, for one
-- connector (outbound: the recipient's route; inbound: the message's
-- connector) and one hour (its start, Unix microseconds, UTC):
--   delivered, deferred, bounced  recipients that reached that outcome in
--                                 a delivery pass of that hour (a
--                                 recipient deferred twice counts twice)
--   tls                           the delivered ones that went over TLS
--   lat:<ms>, lat:inf             the delivered ones whose time from
--                                 receipt to delivery was under <ms>
--                                 milliseconds (and not under the next
--                                 smaller bound): a histogram with
--                                 log-scale buckets, for the median and
--                                 p95
--   rejected                      (inbound connectors) messages refused at
--                                 the relay, by hour of receipt: counted
--                                 from messages_rejected_inbound below
--                                 and kept here once the hour is over
-- Rows older than a week are deleted by the trace pruning (queue.Prune).
CREATE TABLE connector_hourly (
    connector_id BIGINT NOT NULL,
    hour         BIGINT NOT NULL,
    kind         TEXT   NOT NULL,
    n            BIGINT NOT NULL,
    PRIMARY KEY (connector_id, hour, kind)
);
CREATE INDEX connector_hourly_hour ON connector_hourly (hour);

-- A connector's last success (a delivered recipient) and last failure (a
-- deferred or bounced one), with the next hop's reply; written by the same
-- statement, one row per connector and kind.
CREATE TABLE connector_last (
    connector_id BIGINT NOT NULL,
    kind         TEXT   NOT NULL CHECK (kind IN ('success', 'failure')),
    at           BIGINT NOT NULL,
    status       TEXT   NOT NULL,
    address      TEXT   NOT NULL,
    message_uid  TEXT   NOT NULL,
    reply        TEXT   NOT NULL,
    PRIMARY KEY (connector_id, kind)
);

-- Mail an inbound connector's restrictions (or the relay's rules) refused
-- is traced as a message with status 'rejected' and is never delivered:
-- the live view counts it from this index, which only rejected messages
-- are entered in, so accepted mail pays nothing for it. (Building it reads
-- the messages table once.)
CREATE INDEX messages_rejected_inbound ON messages (inbound_connector_id, received_at) WHERE status = 'rejected';

-- +goose Down
DROP INDEX messages_rejected_inbound;
DROP TABLE connector_last;
DROP TABLE connector_hourly;
