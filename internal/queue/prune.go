package queue

import (
	"context"
	"fmt"
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
// recipients, events and any body left; and the hours of the connector
// statistics' rollup older than a week or than cutoff. Queued and
// deferred messages are never deleted, however old. It works in batches
// of batch messages (pruneBatch when ≤ 0) until none is left and returns
// how many it deleted.
// Several processes may prune one PostgreSQL database at once: each batch
// skips rows another holds.
func Prune(ctx context.Context, st *store.Store, cutoff time.Time, batch int) (int64, error) {
	if batch <= 0 {
		batch = pruneBatch
	}
	var total int64
	for {
		// Trace retention is bookkeeping: on PostgreSQL it need not wait
		// for the WAL flush (a batch forgotten by a crash is deleted again
		// on the next run).
		n, err := dialectFor(st).prune(ctx, Micros(cutoff), batch)
		if err != nil {
			return total, err
		}
		total += n
		if n < int64(batch) {
			break
		}
	}
	// The connector statistics' rollup keeps a week (stats.go).
	if err := pruneStats(ctx, st, cutoff); err != nil {
		return total, fmt.Errorf("prune connector statistics: %w", err)
	}
	// Pieces of large messages that no waiting message needs: left by a
	// message refused or a process killed mid-message, or by a failed
	// deletion once the message was finished.
	if _, err := dialectFor(st).pruneChunks(ctx, Micros(time.Now().Add(-chunkOrphanAge))); err != nil {
		return total, fmt.Errorf("prune message pieces: %w", err)
	}
	return total, nil
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
