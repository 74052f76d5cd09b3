package queue

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// recordGather is how long record waits, after an outcome arrives, for
// more to record with it. Recording is bookkeeping (the message is already
// where it is going), and at low concurrency one statement per delivered
// message was a large share of PostgreSQL's CPU; a few milliseconds' wait
// puts several outcomes in each statement (docs/perf.md, "Changes tried").
const recordGather = 5 * time.Millisecond

// record commits outcomes in groups: one transaction (one fsync) for the
// outcomes that arrive within recordGather of the first (at most 128), so
// the cost of recording is shared like the cost of accepting.
func (wk *Workers) record(outcomes <-chan *outcome) {
	for first := range outcomes {
		batch := []*outcome{first}
		gather := time.NewTimer(recordGather)
	fill:
		for len(batch) < 128 {
			select {
			case o, ok := <-outcomes:
				if !ok {
					break fill
				}
				batch = append(batch, o)
			case <-gather.C:
				break fill
			}
		}
		gather.Stop()
		err := wk.recordBatch(batch)
		for _, o := range batch {
			wk.done(o.msg.ID)
			if err == nil {
				wk.log.Debug("delivery pass", "msg_id", o.msg.UID, "status", o.status, "recipients", len(o.rcpts))
			}
		}
		if err != nil {
			wk.log.Error("record delivery outcomes; the messages will be retried when their leases expire", "messages", len(batch), "err", err)
		} else {
			wk.dropFinishedChunks(batch)
		}
		// Capacity came free: look for work now if some was left behind;
		// a bounce's DSN is a new message.
		dsn := false
		for _, o := range batch {
			dsn = dsn || o.dsn != nil
		}
		if dsn && err == nil {
			wk.Wake()
		} else {
			wk.capacityFreed()
		}
	}
}

// dropFinishedChunks deletes the pieces of the large messages a batch
// finished. A failure leaves them to Prune.
func (wk *Workers) dropFinishedChunks(batch []*outcome) {
	var uids []string
	for _, o := range batch {
		if o.chunkedUID != "" {
			uids = append(uids, o.chunkedUID)
		}
	}
	if len(uids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := wk.sql.dropChunks(ctx, uids); err != nil {
		wk.log.Warn("delete the content of finished messages; the trace pruning will", "messages", len(uids), "err", err)
	}
}

// recordStopBudget is how long record keeps retrying after Run stopped
// taking work, so that a database outage cannot hold up a shutdown.
const recordStopBudget = 5 * time.Second

// recordBatch writes a batch of outcomes, retrying with backoff (50 ms
// doubling to 2 s) while the database is away — a restart or a failover
// takes seconds, and an outcome given up on means the messages are
// delivered again when their leases expire. While it retries, the
// messages stay in flight, so renew keeps their leases whenever the
// database answers. It gives up after half a lease (a lease is renewed
// every third of one, so it normally still holds then; one that ran out
// meanwhile may have let another process take the message, and this late
// record then overwrites what that process recorded: at worst one more
// delivery, as at-least-once allows), or recordStopBudget after
// Run stopped; and after three attempts when the database answered with
// an error of the statement itself.
func (wk *Workers) recordBatch(batch []*outcome) error {
	start := time.Now()
	delay := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := wk.sql.record(ctx, batch)
		cancel()
		if err == nil {
			if attempt > 0 {
				wk.log.Info("delivery outcomes recorded after a database failure", "messages", len(batch), "attempts", attempt+1)
			}
			return nil
		}
		next := time.Now().Add(delay)
		if !databaseAway(err) && attempt >= 2 || next.Sub(start) > wk.cfg.Lease/2 {
			return err
		}
		if by := wk.stopBy.Load(); by != 0 && next.UnixNano() > by {
			return err
		}
		if attempt == 0 {
			wk.log.Warn("record delivery outcomes failed; retrying", "messages", len(batch), "err", err)
		}
		time.Sleep(delay)
		delay = min(2*delay, 2*time.Second)
	}
}

// databaseAway reports whether err says the database could not be
// reached or is not taking work for now (connection refused, reset or
// timed out; PostgreSQL's classes 08 connection exception, 53 insufficient
// resources, 57 operator intervention such as a shutdown), as opposed to
// an error of the statement itself. SQLite runs in this process: never.
func databaseAway(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:min(2, len(pgErr.Code))] {
		case "08", "53", "57":
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, net.ErrClosed)
}
