package queue

import (
	"context"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/flowgate/flowgate/internal/store"
)

// sqliteQueue is the queue's SQL for the embedded SQLite database: one
// process serves it (store.LockServe), and its statements run in this
// process, so a transaction of several statements costs no round trips.
type sqliteQueue struct{ st *store.Store }

func (q sqliteQueue) accept(ctx context.Context, batch []request, ls *lease) error {
	defer q.turn()()
	return q.st.Transact(ctx, func(tx *gorm.DB) error { return insertBatch(tx, batch, ls) })
}

func (q sqliteQueue) claim(ctx context.Context, owner string, now, until int64, n int) ([]messageRow, error) {
	defer q.turn()()
	var rows []messageRow
	err := q.st.BookkeepingDB().WithContext(ctx).Raw(claimStatement(""), owner, until, now, now, n).Scan(&rows).Error
	return rows, err
}

func (q sqliteQueue) record(ctx context.Context, batch []*outcome) error {
	defer q.turn()()
	return q.st.BookkeepingDB().WithContext(ctx).Transaction(func(tx *gorm.DB) error { return writeOutcomes(tx, batch) })
}

// prune deletes a batch of finished messages received before cutoff; the
// children go with them through their foreign keys' ON DELETE CASCADE.
func (q sqliteQueue) prune(ctx context.Context, cutoff int64, batch int) (int64, error) {
	defer q.turn()()
	res := q.st.BookkeepingDB().WithContext(ctx).Exec(`DELETE FROM messages WHERE id IN (SELECT id FROM messages
		WHERE received_at < ? AND status IN ('delivered', 'bounced', 'rejected')
		ORDER BY received_at LIMIT ?)`, cutoff, batch)
	return res.RowsAffected, res.Error
}

// releaseOrphans clears every delivery lease. One process serves a SQLite
// database (store.LockServe), so any lease found at its start belongs to a
// process that ended without releasing it.
func (q sqliteQueue) releaseOrphans(ctx context.Context) (int64, error) {
	res := q.st.DB().WithContext(ctx).Exec("UPDATE messages SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL")
	return res.RowsAffected, res.Error
}

// turn waits for the queue's turn to write (store.SQLiteWrites) and
// returns the function that gives it back.
func (q sqliteQueue) turn() func() {
	mu := q.st.SQLiteWrites()
	mu.Lock()
	return mu.Unlock
}

// claimStatement leases due messages and returns them, in one statement
// (its own transaction: no BEGIN and COMMIT round trips); lock is
// PostgreSQL's row-locking clause for the subquery.
func claimStatement(lock string) string {
	return `UPDATE messages SET lease_owner = ?, lease_until = ?
			WHERE id IN (SELECT id FROM messages
				WHERE status IN ('queued', 'deferred') AND next_attempt_at <= ?
				  AND (lease_until IS NULL OR lease_until < ?)
				ORDER BY next_attempt_at LIMIT ? ` + lock + `)
			RETURNING *`
}

// insertBatch inserts a batch with gorm and fills in the ids of the
// requests: SQLite's accept (on PostgreSQL, only the tests' reference for
// acceptPostgres).
func insertBatch(tx *gorm.DB, batch []request, ls *lease) error {
	now := Micros(time.Now())
	for _, r := range batch {
		r.m.clean()
	}
	rows := make([]messageRow, len(batch))
	for i := range batch {
		rows[i] = batch[i].row(now, ls)
	}
	if err := tx.Create(&rows).Error; err != nil {
		return fmt.Errorf("insert messages: %w", err)
	}
	var bodies []bodyRow
	var rcpts []recipientRow
	var events []eventRow
	var headers []headerRow
	for i, r := range batch {
		id := rows[i].ID
		if r.m.Body != nil {
			bodies = append(bodies, bodyRow{MessageID: id, Data: r.m.Body})
		}
		for _, rc := range r.m.Recipients {
			rcpts = append(rcpts, recipientRow{MessageID: id, Address: rc.Address, Status: rc.Status, ConnectorID: rc.ConnectorID,
				Connector: rc.Connector, RouteReason: rc.RouteReason, LastReply: rc.LastReply, UpdatedAt: now,
				Rule: rc.Rule.Rule, RuleConnectorID: rc.Rule.ConnectorID, RuleOnError: rc.Rule.OnError})
		}
		if r.m.Header != nil {
			headers = append(headers, headerRow{MessageID: id, Section: headerText(r.m.Header)})
		}
		for _, e := range r.m.Events {
			events = append(events, eventRow{MessageID: id, At: Micros(e.At), Type: e.Type, Detail: e.Detail})
		}
	}
	if len(bodies) > 0 {
		if err := tx.CreateInBatches(&bodies, 64).Error; err != nil {
			return fmt.Errorf("insert bodies: %w", err)
		}
	}
	if len(headers) > 0 {
		if err := tx.CreateInBatches(&headers, 64).Error; err != nil {
			return fmt.Errorf("insert header sections: %w", err)
		}
	}
	if len(rcpts) > 0 {
		if err := tx.CreateInBatches(&rcpts, 500).Error; err != nil {
			return fmt.Errorf("insert recipients: %w", err)
		}
	}
	if len(events) > 0 {
		if err := tx.CreateInBatches(&events, 500).Error; err != nil {
			return fmt.Errorf("insert events: %w", err)
		}
	}
	k := 0
	for i := range batch {
		r := &batch[i]
		r.id, r.rcptIDs = rows[i].ID, make([]int64, len(r.m.Recipients))
		for j := range r.rcptIDs {
			if rcpts[k].ID == 0 {
				return fmt.Errorf("insert recipients: no id returned")
			}
			r.rcptIDs[j] = rcpts[k].ID
			k++
		}
	}
	return nil
}

func writeOutcomes(tx *gorm.DB, batch []*outcome) error {
	now := Micros(time.Now())
	var events []eventRow
	var dsns []request
	var finished []int64
	var rcptVals, msgVals []any
	for _, o := range batch {
		for _, rc := range o.rcpts {
			rcptVals = append(rcptVals, rc.ID, string(rc.Status), rc.Attempts, store.CleanText(rc.LastReply), rc.ConnectorID,
				rc.Connector, store.CleanText(rc.RouteReason))
		}
		msgVals = append(msgVals, o.msg.ID, string(o.status), o.attempts, o.next)
		for _, e := range o.events {
			e.Detail = store.CleanText(e.Detail)
			events = append(events, e)
		}
		if o.deleteBody {
			finished = append(finished, o.msg.ID)
		}
		if o.dsn != nil {
			dsns = append(dsns, request{m: o.dsn})
		}
	}
	if err := updateFromValues(tx, rcptUpdate, rcptCols, rcptVals, now); err != nil {
		return fmt.Errorf("update recipients: %w", err)
	}
	if err := updateFromValues(tx, msgUpdate, msgCols, msgVals, now); err != nil {
		return fmt.Errorf("update messages: %w", err)
	}
	if len(events) > 0 {
		if err := tx.CreateInBatches(&events, 500).Error; err != nil {
			return err
		}
	}
	if err := statsOf(batch, now).write(tx); err != nil {
		return err
	}
	if len(finished) > 0 {
		if err := tx.Where("message_id IN ?", finished).Delete(&bodyRow{}).Error; err != nil {
			return err
		}
	}
	if len(dsns) > 0 {
		return insertBatch(tx, dsns, nil)
	}
	return nil
}

// The outcome of a batch is recorded with one UPDATE per table (per chunk
// of rows) that joins the table with a VALUES list, instead of one UPDATE
// per row: on PostgreSQL every statement is a round trip. The CASTs give
// the VALUES columns their types on PostgreSQL (parameters in VALUES are
// otherwise text) and are harmless on SQLite (≥ 3.33 for UPDATE … FROM).
const (
	rcptCols   = 7
	rcptUpdate = `WITH v(id, status, attempts, last_reply, connector_id, connector, route_reason) AS (VALUES %s)
		UPDATE message_recipients SET status = v.status, attempts = v.attempts, last_reply = v.last_reply,
			connector_id = v.connector_id, connector = v.connector, route_reason = v.route_reason, updated_at = ?
		FROM v WHERE message_recipients.id = v.id`
	rcptRow = `(CAST(? AS bigint), CAST(? AS text), CAST(? AS integer), CAST(? AS text), CAST(? AS bigint), CAST(? AS text), CAST(? AS text))`

	msgCols   = 4
	msgUpdate = `WITH v(id, status, attempts, next_attempt_at) AS (VALUES %s)
		UPDATE messages SET status = v.status, attempts = v.attempts, next_attempt_at = v.next_attempt_at,
			lease_owner = NULL, lease_until = NULL, updated_at = ?
		FROM v WHERE messages.id = v.id`
	msgRow = `(CAST(? AS bigint), CAST(? AS text), CAST(? AS integer), CAST(? AS bigint))`

	valuesPerStatement = 7000 // well under PostgreSQL's 65535 and SQLite's 32766 parameters
)

// updateFromValues runs stmt (rcptUpdate or msgUpdate) over vals, cols
// values per row, in as few statements as the parameter limit allows.
func updateFromValues(tx *gorm.DB, stmt string, cols int, vals []any, now int64) error {
	row := rcptRow
	if cols == msgCols {
		row = msgRow
	}
	per := valuesPerStatement / cols * cols
	for len(vals) > 0 {
		n := min(len(vals), per)
		rows := strings.Repeat(row+",", n/cols)
		args := append(vals[:n:n], now)
		if err := tx.Exec(fmt.Sprintf(stmt, rows[:len(rows)-1]), args...).Error; err != nil {
			return err
		}
		vals = vals[n:]
	}
	return nil
}
