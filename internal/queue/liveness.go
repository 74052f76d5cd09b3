package queue

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flowgate/flowgate/internal/store"
)

// Liveness on PostgreSQL (SPEC 3.6). A lease alone lets a dead process's
// messages wait until it runs out (FLOWGATE_DELIVERY_LEASE, 5 minutes by
// default). So every process proves that it is alive in the database
// itself: it holds a session advisory lock, keyed by its owner name, on a
// connection of its own, and PostgreSQL drops the lock the moment that
// connection dies with the process. Every ownerCheck, each process looks
// at the owners of unexpired leases; an owner whose lock it can take is
// gone, and it releases that owner's leases, so the messages are claimed
// and delivered within seconds (by itself, or by the same process
// restarted, which has a new owner name). Leases still protect a process
// that is alive but slow: its lock holds while it delivers.
//
// A PostgreSQL restart drops every lock at once. A process that finds its
// own connection gone takes its lock again at the next check, and judges
// others only once it has held its own lock for ownerGrace — by then every
// live process has taken its lock back — so a restart does not make live
// processes' messages look orphaned.
const (
	ownerCheck = 500 * time.Millisecond
	ownerGrace = 2 * time.Second
)

var errLockBusy = errors.New("liveness lock held by another session for a moment")

// ownerLockKey is the advisory lock key that proves owner alive.
func ownerLockKey(owner string) int64 {
	h := fnv.New64a()
	h.Write([]byte("flowgate queue owner\x00"))
	h.Write([]byte(owner))
	return int64(h.Sum64())
}

// ownerWatch holds this process's liveness lock and releases the leases
// of owners that are gone.
type ownerWatch struct {
	st        *store.Store
	owner     string
	log       *slog.Logger
	released  func(owner string, n int64) // leases of a gone owner were released
	conn      *pgx.Conn
	heldSince time.Time
}

// watchOwners takes this process's liveness lock (before the process
// takes any lease) and then, until ctx ends, keeps it and releases the
// leases of owners that are gone. On failure to take the lock at first it
// returns the error: the process must not deliver without it.
func (q postgresQueue) watchOwners(ctx context.Context, owner string, log *slog.Logger, released func(owner string, n int64)) (done <-chan struct{}, err error) {
	w := &ownerWatch{st: q.st, owner: owner, log: log, released: released}
	if err := w.hold(ctx); err != nil {
		return nil, err
	}
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		defer w.close()
		t := time.NewTicker(ownerCheck)
		defer t.Stop()
		lost := false // logged once per loss, not at every check
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := w.hold(ctx); err != nil {
				if ctx.Err() == nil && !lost {
					log.Warn("liveness lock lost; taking it again", "err", err)
				}
				lost = true
				continue
			}
			if lost {
				log.Info("liveness lock held again")
				lost = false
			}
			if time.Since(w.heldSince) >= ownerGrace {
				if err := w.reap(ctx); err != nil && ctx.Err() == nil {
					log.Warn("look for the leases of processes that are gone", "err", err)
				}
			}
		}
	}()
	return ch, nil
}

// hold makes sure this process holds its liveness lock: on the open
// connection, or on a new one.
func (w *ownerWatch) hold(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if w.conn != nil {
		if err := w.conn.Ping(cctx); err == nil {
			return nil
		}
		w.close()
	}
	conn, err := w.st.Connect(cctx)
	if err != nil {
		return err
	}
	var ok bool
	if err := conn.QueryRow(cctx, "SELECT pg_try_advisory_lock($1)", ownerLockKey(w.owner)).Scan(&ok); err != nil || !ok {
		// !ok: another process is checking whether this one is alive
		// right now; the next check takes the lock.
		_ = conn.Close(context.Background())
		if err == nil {
			err = errLockBusy
		}
		return err
	}
	w.conn, w.heldSince = conn, time.Now()
	return nil
}

// reap releases the leases of every other owner whose liveness lock is
// free: the process that held it is gone.
func (w *ownerWatch) reap(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rows, err := w.conn.Query(cctx, `SELECT DISTINCT lease_owner FROM messages
		WHERE status IN ('queued', 'deferred') AND lease_owner IS NOT NULL AND lease_owner <> $1 AND lease_until > $2`,
		w.owner, Micros(time.Now()))
	if err != nil {
		return err
	}
	owners, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, o := range owners {
		key := ownerLockKey(o)
		var gone bool
		if err := w.conn.QueryRow(cctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&gone); err != nil {
			return err
		}
		if !gone {
			continue
		}
		tag, err := w.conn.Exec(cctx, "UPDATE messages SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1", o)
		if _, uerr := w.conn.Exec(cctx, "SELECT pg_advisory_unlock($1)", key); err == nil {
			err = uerr
		}
		if err != nil {
			return err
		}
		w.log.Info("released the delivery leases of a process that is gone", "gone_owner", o, "leases", tag.RowsAffected())
		w.released(o, tag.RowsAffected())
	}
	return nil
}

func (w *ownerWatch) close() {
	if w.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = w.conn.Close(ctx)
		cancel()
		w.conn = nil
	}
}

// watchOwners on SQLite: one process serves the database (store.LockServe)
// and releases every lease it finds at start (ReleaseOrphanedLeases).
func (sqliteQueue) watchOwners(ctx context.Context, _ string, _ *slog.Logger, _ func(string, int64)) (<-chan struct{}, error) {
	ch := make(chan struct{})
	close(ch)
	return ch, nil
}
