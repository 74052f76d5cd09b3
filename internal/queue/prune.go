package queue

import (
	"context"
	"log/slog"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// pruneBatch is how many messages one prune statement deletes: small
// enough that a batch never holds locks (or, on SQLite, the write lock)
// for long next to the relay's commits.
const pruneBatch = 1000

// Prune deletes the trace of finished messages — delivered, bounced or
// rejected — received before cutoff: the message rows with their
// recipients, events and any body left. Queued and deferred messages are
// never deleted, however old. It works in batches of batch messages
// (pruneBatch when ≤ 0) until none is left and returns how many it deleted.
// Several processes may prune one PostgreSQL database at once: each batch
// skips rows another holds.
func Prune(ctx context.Context, st *store.Store, cutoff time.Time, batch int) (int64, error) {
	if batch <= 0 {
		batch = pruneBatch
	}
	// SQLite deletes the children through their foreign keys' ON DELETE
	// CASCADE; on PostgreSQL, where the child tables have no foreign keys
	// (migration 00007), the same statement deletes them.
	q := `DELETE FROM messages WHERE id IN (SELECT id FROM messages
		WHERE received_at < ? AND status IN ('delivered', 'bounced', 'rejected')
		ORDER BY received_at LIMIT ?)`
	if st.Dialect() == store.Postgres {
		q = `WITH doomed AS (
			SELECT id FROM messages WHERE received_at < ? AND status IN ('delivered', 'bounced', 'rejected')
			ORDER BY received_at LIMIT ? FOR UPDATE SKIP LOCKED
		), b AS (
			DELETE FROM message_bodies WHERE message_id IN (SELECT id FROM doomed)
		), r AS (
			DELETE FROM message_recipients WHERE message_id IN (SELECT id FROM doomed)
		), e AS (
			DELETE FROM message_events WHERE message_id IN (SELECT id FROM doomed)
		)
		DELETE FROM messages WHERE id IN (SELECT id FROM doomed)`
	}
	var total int64
	for {
		// Trace retention is bookkeeping: on PostgreSQL it need not wait
		// for the WAL flush (a batch forgotten by a crash is deleted again
		// on the next run).
		res := st.BookkeepingDB().WithContext(ctx).Exec(q, Micros(cutoff), batch)
		if res.Error != nil {
			return total, res.Error
		}
		total += res.RowsAffected
		if res.RowsAffected < int64(batch) {
			return total, nil
		}
	}
}

// RunPruner applies the trace retention: it prunes messages received more
// than retention ago at once and then every interval, until ctx ends. A
// retention ≤ 0 keeps everything.
func RunPruner(ctx context.Context, st *store.Store, retention, interval time.Duration, log *slog.Logger) {
	if retention <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		cutoff := time.Now().Add(-retention)
		n, err := Prune(ctx, st, cutoff, 0)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			log.Warn("trace retention: pruning failed; trying again later", "err", err, "deleted", n)
		case n > 0:
			log.Info("trace retention: deleted finished messages", "count", n, "received_before", cutoff.UTC().Format(time.RFC3339))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
