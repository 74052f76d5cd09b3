package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// ErrClosed is returned by Enqueue after Close.
var ErrClosed = errors.New("queue writer is closed")

// Batch limits for one group commit.
const (
	maxBatch      = 256
	maxBatchBytes = 32 << 20
	traceBacklog  = 4096 // rejected-message traces waiting; beyond it they are counted and dropped
)

type request struct {
	m    *Message
	done chan error // nil: trace only, nobody waits

	// leased: this process delivers the message itself. It is inserted
	// already leased to the local workers and handed to them after the
	// commit, so that it is neither claimed nor read back from the
	// database (see Workers.leaseFor).
	leased bool
	// Filled in by the insert: the message's id and its recipients' ids,
	// in the order of m.Recipients.
	id      int64
	rcptIDs []int64
}

// lease is the claim a batch's leased messages are inserted with.
type lease struct {
	owner string
	until int64 // Unix microseconds
}

// Writer commits messages to the queue in groups. It is safe for
// concurrent use.
type Writer struct {
	sql  dialect
	log  *slog.Logger
	reqs chan request
	wg   sync.WaitGroup

	closeOnce sync.Once
	closed    chan struct{}
	mu        sync.RWMutex // held for reading while sending on reqs

	// local delivers what this process accepts, while it has free
	// delivery slots, and is woken for what it leaves to the queue (see
	// HandOverTo); nil: every message waits in the queue for a claim.
	local atomic.Pointer[Workers]

	lastCommit, lastFailure atomic.Int64 // Unix nanoseconds of the last commit, the last failed one

	pending       atomic.Int64 // handed over, not yet committed or failed
	droppedTraces atomic.Int64
	batches       atomic.Int64
	committed     atomic.Int64
}

// NewWriter starts a Writer with committers group-committing to st.
func NewWriter(st *store.Store, log *slog.Logger) *Writer {
	w := &Writer{sql: dialectFor(st), log: log, reqs: make(chan request, traceBacklog), closed: make(chan struct{})}
	// One committer on both engines. Several committers on PostgreSQL (to
	// overlap one commit's fsync with the next batch's inserts) split the
	// waiting messages into smaller transactions and measured slower on
	// loopback: at 32 sessions 5 instead of 15 messages per commit and
	// ~30% fewer messages per second (docs/perf.md).
	w.wg.Add(1)
	go w.run()
	return w
}

// Enqueue commits m durably; when it returns nil the message survives a
// crash. The caller may answer 250 only after that.
func (w *Writer) Enqueue(ctx context.Context, m *Message) error {
	done := make(chan error, 1)
	w.mu.RLock()
	select {
	case <-w.closed:
		w.mu.RUnlock()
		return ErrClosed
	default:
	}
	select {
	case w.reqs <- request{m: m, done: done}:
		w.pending.Add(1)
		w.mu.RUnlock()
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	// Once handed over, the commit happens whatever the caller's context
	// does; wait for its outcome so that a 250 is never sent early.
	return <-done
}

// Trace records a rejected message without waiting. When the database
// falls far behind, traces beyond the backlog are dropped and counted.
func (w *Writer) Trace(m *Message) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	select {
	case <-w.closed:
		w.droppedTraces.Add(1)
		return
	default:
	}
	w.pending.Add(1)
	select {
	case w.reqs <- request{m: m}:
	default:
		w.pending.Add(-1)
		if n := w.droppedTraces.Add(1); n == 1 || n%1000 == 0 {
			w.log.Warn("trace backlog full; rejected-message traces dropped", "dropped_total", n)
		}
	}
}

// Sync waits until everything handed to the writer so far — including
// traces, which nobody waits for — has been committed (or has failed).
func (w *Writer) Sync(ctx context.Context) error {
	for w.pending.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// Stats reports counters for metrics and tests.
func (w *Writer) Stats() (batches, committed, droppedTraces int64) {
	return w.batches.Load(), w.committed.Load(), w.droppedTraces.Load()
}

// Failing reports whether the last commit failed, within the last
// `within`, with no commit since: the relay is answering 451 to the mail
// it receives.
func (w *Writer) Failing(within time.Duration) bool {
	f := w.lastFailure.Load()
	return f > w.lastCommit.Load() && time.Since(time.Unix(0, f)) < within
}

// Close stops accepting work, commits what is waiting and returns.
func (w *Writer) Close() {
	w.closeOnce.Do(func() {
		w.mu.Lock()
		close(w.closed)
		close(w.reqs)
		w.mu.Unlock()
		w.wg.Wait()
	})
}

func (w *Writer) run() {
	defer w.wg.Done()
	for first := range w.reqs {
		batch := []request{first}
		size := len(first.m.Body)
	fill:
		for len(batch) < maxBatch && size < maxBatchBytes {
			select {
			case r, ok := <-w.reqs:
				if !ok {
					break fill
				}
				batch = append(batch, r)
				size += len(r.m.Body)
			default:
				break fill
			}
		}
		wk := w.local.Load()
		var ls *lease
		if wk != nil {
			ls = wk.leaseFor(batch)
		}
		errs := w.commitEach(batch, ls)
		unleased := false // queued messages committed for the workers to claim
		for i := range batch {
			r := &batch[i]
			if errs[i] != nil {
				w.log.Error("message not stored", "msg_id", r.m.UID, "err", errs[i])
			} else if r.m.Status == Queued && !r.leased {
				unleased = true
			}
			if r.done != nil {
				r.done <- errs[i]
			}
			if r.leased {
				wk.handOver(r, errs[i] == nil, ls)
			}
		}
		if unleased && wk != nil {
			wk.Wake()
		}
		w.pending.Add(-int64(len(batch)))
	}
}

// commitEach commits a batch; when the whole batch fails, it commits the
// messages one by one, so that one unstorable message cannot fail the
// others waiting with it. It returns one error per request.
func (w *Writer) commitEach(batch []request, ls *lease) []error {
	errs := make([]error, len(batch))
	err := w.commit(batch, ls)
	if err == nil || len(batch) == 1 {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	w.log.Warn("queue batch failed; committing its messages one by one", "messages", len(batch), "err", err)
	for i := range batch {
		errs[i] = w.commit(batch[i:i+1], ls)
	}
	return errs
}

// commit inserts a batch in one transaction (on PostgreSQL one statement,
// see acceptPostgres), retrying a few times on a
// transient failure (SQLite busy, a dropped PostgreSQL connection).
func (w *Writer) commit(batch []request, ls *lease) error {
	var err error
	for attempt := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = w.sql.accept(ctx, batch, ls)
		cancel()
		if err == nil {
			w.lastCommit.Store(time.Now().UnixNano())
			w.batches.Add(1)
			w.committed.Add(int64(len(batch)))
			return nil
		}
		time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
	}
	w.lastFailure.Store(time.Now().UnixNano())
	return fmt.Errorf("commit %d messages: %w", len(batch), err)
}

// row is the messages row of a request as inserted.
func (r *request) row(now int64, ls *lease) messageRow {
	m := r.m
	row := messageRow{
		UID: m.UID, ReceivedAt: Micros(m.ReceivedAt), Status: m.Status, ClientIP: m.ClientIP, Helo: m.Helo,
		TLSVersion: m.TLSVersion, TLSCipher: m.TLSCipher, ClientCert: m.ClientCert, Sender: m.Sender,
		MessageIDHeader: m.MessageIDHeader, Size: m.contentSize(), InboundConnectorID: m.InboundConnectorID,
		InboundConnector: m.InboundConnector, InboundRevision: m.InboundRevision, Attribution: m.Attribution,
		Reply: m.Reply, UpdatedAt: now,
	}
	if m.Status == Queued {
		next := Micros(m.ReceivedAt)
		row.NextAttemptAt = &next
		if !m.ExpiresAt.IsZero() {
			exp := Micros(m.ExpiresAt)
			row.ExpiresAt = &exp
		}
	}
	if r.leased && ls != nil {
		owner, until := ls.owner, ls.until
		row.LeaseOwner, row.LeaseUntil = &owner, &until
	}
	return row
}
