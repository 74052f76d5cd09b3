package queue

import (
	"context"
	"log/slog"

	"github.com/flowgate/flowgate/internal/store"
)

// dialect is one database engine's queue SQL. It is chosen once, when a
// Writer or Workers is built (dialectFor), so that no function branches
// on the engine. Statements that are the same on both engines (loading a
// claimed message, renewing leases) live with their callers.
type dialect interface {
	// accept commits a batch of new messages in one transaction, the
	// messages a process delivers itself leased to ls (nil: none), and
	// fills in the requests' ids.
	accept(ctx context.Context, batch []request, ls *lease) error
	// claim leases up to n due messages (queued or deferred, next attempt
	// reached, no lease or an expired one) to owner until `until` and
	// returns their rows; now and until are Unix microseconds.
	claim(ctx context.Context, owner string, now, until int64, n int) ([]messageRow, error)
	// record commits a batch of delivery outcomes in one transaction,
	// with the DSNs they queue, and releases the messages' leases.
	record(ctx context.Context, batch []*outcome) error
	// prune deletes up to batch finished messages (delivered, bounced,
	// rejected) received before cutoff, with their children.
	prune(ctx context.Context, cutoff int64, batch int) (int64, error)
	// releaseOrphans releases, at start, the leases a previous run of this
	// process left behind, where that can be known.
	releaseOrphans(ctx context.Context) (int64, error)
	// putChunk stores a piece of a large message's content (chunks.go)
	// durably; dropChunks deletes the pieces of the messages uids.
	putChunk(ctx context.Context, uid string, seq int, at int64, data []byte) error
	dropChunks(ctx context.Context, uids []string) error
	// pruneChunks deletes the pieces, stored before `before`, of messages
	// that are not waiting for delivery.
	pruneChunks(ctx context.Context, before int64) (int64, error)
	// watchOwners proves this process alive to the others sharing the
	// database and releases the leases of processes that are gone, until
	// ctx ends (done is closed then); see liveness.go.
	watchOwners(ctx context.Context, owner string, log *slog.Logger, released func(owner string, n int64)) (done <-chan struct{}, err error)
}

func dialectFor(st *store.Store) dialect {
	if st.Dialect() == store.Postgres {
		return postgresQueue{st}
	}
	return sqliteQueue{st}
}
