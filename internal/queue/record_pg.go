package queue

import (
	"context"
	"fmt"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// outcomesPostgres records a batch of delivery outcomes — recipients,
// messages (status, next attempt, lease released), trace events, the
// connector statistics' counters and last outcomes (stats.go: aggregated
// and sorted by key in Go, so the upserts never meet one key twice and
// processes lock the shared counters in one order), and the bodies of
// finished messages deleted — in one statement, so one round trip, where
// writeOutcomes's transaction takes eight.
const outcomesPostgres = `WITH r AS (
	UPDATE message_recipients t SET status = v.status, attempts = v.attempts, last_reply = v.last_reply,
		connector_id = v.connector_id, connector = v.connector, route_reason = v.route_reason, updated_at = $1
	FROM unnest($2::bigint[], $3::text[], $4::integer[], $5::text[], $6::bigint[], $7::text[], $8::text[])
		AS v(id, status, attempts, last_reply, connector_id, connector, route_reason)
	WHERE t.id = v.id
), m AS (
	UPDATE messages t SET status = v.status, attempts = v.attempts, next_attempt_at = v.next_attempt_at,
		lease_owner = NULL, lease_until = NULL, updated_at = $1
	FROM unnest($9::bigint[], $10::text[], $11::integer[], $12::bigint[]) AS v(id, status, attempts, next_attempt_at)
	WHERE t.id = v.id
), e AS (
	INSERT INTO message_events (message_id, at, type, detail)
	SELECT v.message_id, v.at, v.type, v.detail
	FROM unnest($13::bigint[], $14::bigint[], $15::text[], $16::text[]) WITH ORDINALITY AS v(message_id, at, type, detail, ord)
	ORDER BY v.ord
), h AS (
	INSERT INTO connector_hourly AS t (connector_id, hour, kind, n)
	SELECT v.connector_id, v.hour, v.kind, v.n
	FROM unnest($18::bigint[], $19::bigint[], $20::text[], $21::bigint[]) AS v(connector_id, hour, kind, n)
	ORDER BY v.connector_id, v.hour, v.kind
	ON CONFLICT (connector_id, hour, kind) DO UPDATE SET n = t.n + excluded.n
), l AS (
	INSERT INTO connector_last AS t (connector_id, kind, at, status, address, message_uid, reply)
	SELECT v.connector_id, v.kind, v.at, v.status, v.address, v.message_uid, v.reply
	FROM unnest($22::bigint[], $23::text[], $24::bigint[], $25::text[], $26::text[], $27::text[], $28::text[])
		AS v(connector_id, kind, at, status, address, message_uid, reply)
	ORDER BY v.connector_id, v.kind
	ON CONFLICT (connector_id, kind) DO UPDATE SET at = excluded.at, status = excluded.status, address = excluded.address,
		message_uid = excluded.message_uid, reply = excluded.reply
	WHERE t.at <= excluded.at
)
DELETE FROM message_bodies WHERE message_id = ANY($17::bigint[])`

// outcomeArgs are the arguments of outcomesPostgres for a batch.
func outcomeArgs(batch []*outcome, now int64) []any {
	var (
		rID, rConnID                    []*int64
		rStatus, rReply, rConn, rReason []string
		rAttempts                       []int32
		mID, mNext                      []*int64
		mStatus                         []string
		mAttempts                       []int32
		eMsg, eAt                       []int64
		eType, eDetail                  []string
		finished                        = []int64{}
	)
	for _, o := range batch {
		for _, rc := range o.rcpts {
			id := rc.ID
			rID, rStatus, rAttempts = append(rID, &id), append(rStatus, string(rc.Status)), append(rAttempts, int32(rc.Attempts))
			rReply, rConnID = append(rReply, store.CleanText(rc.LastReply)), append(rConnID, rc.ConnectorID)
			rConn, rReason = append(rConn, rc.Connector), append(rReason, store.CleanText(rc.RouteReason))
		}
		id := o.msg.ID
		mID, mStatus, mAttempts, mNext = append(mID, &id), append(mStatus, string(o.status)), append(mAttempts, int32(o.attempts)), append(mNext, o.next)
		for _, e := range o.events {
			eMsg, eAt, eType, eDetail = append(eMsg, e.MessageID), append(eAt, e.At), append(eType, e.Type), append(eDetail, store.CleanText(e.Detail))
		}
		if o.deleteBody {
			finished = append(finished, o.msg.ID)
		}
	}
	ns := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	np := func(s []*int64) []*int64 {
		if s == nil {
			return []*int64{}
		}
		return s
	}
	ni := func(s []int32) []int32 {
		if s == nil {
			return []int32{}
		}
		return s
	}
	n64 := func(s []int64) []int64 {
		if s == nil {
			return []int64{}
		}
		return s
	}
	return append([]any{now,
		np(rID), ns(rStatus), ni(rAttempts), ns(rReply), np(rConnID), ns(rConn), ns(rReason),
		np(mID), ns(mStatus), ni(mAttempts), np(mNext),
		n64(eMsg), n64(eAt), ns(eType), ns(eDetail),
		finished}, statsOf(batch, now).args()...)
}

// record records a batch of outcomes on the bookkeeping pool: one
// statement, or, when the batch bounces messages, one transaction with the
// bounces' DSNs (accepted like any message, with acceptPostgres).
func (q postgresQueue) record(ctx context.Context, batch []*outcome) error {
	sqlDB, err := q.st.BookkeepingDB().DB()
	if err != nil {
		return err
	}
	args := outcomeArgs(batch, Micros(time.Now()))
	var dsns []request
	for _, o := range batch {
		if o.dsn != nil {
			dsns = append(dsns, request{m: o.dsn})
		}
	}
	if len(dsns) == 0 {
		if _, err := sqlDB.ExecContext(ctx, outcomesPostgres, args...); err != nil {
			return fmt.Errorf("record outcomes: %w", err)
		}
		return nil
	}
	tx, err := sqlDB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, outcomesPostgres, args...); err != nil {
		return fmt.Errorf("record outcomes: %w", err)
	}
	if err := execAccept(ctx, tx, dsns, nil); err != nil {
		return fmt.Errorf("queue DSNs: %w", err)
	}
	return tx.Commit()
}
