package queue

import (
	"context"
	"crypto/rand"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/delivery"
	"github.com/flowgate/flowgate/internal/liveconfig"
	"github.com/flowgate/flowgate/internal/routing"
	"github.com/flowgate/flowgate/internal/store"
)

// Deliverer sends one message along one route (delivery.Client).
type Deliverer interface {
	Deliver(ctx context.Context, t delivery.Target, from string, rcpts []string, body []byte) delivery.Result
}

// WorkerConfig tunes the delivery workers.
type WorkerConfig struct {
	Hostname      string
	RetrySchedule []time.Duration // delay before retry n is RetrySchedule[min(n, len-1)]
	Concurrency   int             // messages delivered at once by this process
	Lease         time.Duration   // how long a claim holds before others may take it
	Poll          time.Duration   // how often to look for due messages without a wake-up
	// Gather is how long a wake-up for new messages waits before claiming,
	// so that one claim takes the messages of several commits; default
	// 5 ms, negative: none.
	Gather time.Duration
}

// Workers claim due messages and deliver them. Several processes may run
// Workers on one PostgreSQL database: claims are leases taken with FOR
// UPDATE SKIP LOCKED, renewed while a delivery runs, released at shutdown,
// and taken over by others when a process dies.
type Workers struct {
	st    *store.Store
	live  *liveconfig.Config
	d     Deliverer
	w     *Writer
	cfg   WorkerConfig
	log   *slog.Logger
	owner string
	wake  chan struct{}
	news  atomic.Bool // messages were queued since the last claim
	full  atomic.Bool // the last claim was limited by free capacity

	// direct carries messages this process accepted and delivers itself
	// (handOver), without claiming them; at most Concurrency wait in it,
	// because each holds a slot reserved before its commit.
	direct chan *job

	handedOver, claimed atomic.Int64 // messages delivered from memory, messages claimed

	// stopBy is when Run stopped taking work, plus recordStopBudget (Unix
	// nanoseconds; 0 while running): record gives up retrying then.
	stopBy atomic.Int64

	mu       sync.Mutex
	inFlight map[int64]bool
	reserved int  // slots promised to messages being committed (leaseFor)
	running  bool // Run is taking work: slots may be reserved
}

// NewWorkers prepares delivery workers; Run starts them.
func NewWorkers(st *store.Store, live *liveconfig.Config, d Deliverer, w *Writer, cfg WorkerConfig, log *slog.Logger) *Workers {
	if len(cfg.RetrySchedule) == 0 {
		cfg.RetrySchedule = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour}
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 32
	}
	if cfg.Lease == 0 {
		cfg.Lease = 5 * time.Minute
	}
	if cfg.Poll == 0 {
		cfg.Poll = time.Second
	}
	if cfg.Gather == 0 {
		cfg.Gather = 5 * time.Millisecond
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	wk := &Workers{st: st, live: live, d: d, w: w, cfg: cfg, log: log, wake: make(chan struct{}, 1),
		owner: cfg.Hostname + "/" + hex.EncodeToString(b[:]), inFlight: map[int64]bool{},
		direct: make(chan *job, cfg.Concurrency)}
	if w != nil {
		wake := wk.Wake
		w.onCommit.Store(&wake)
		w.local.Store(wk)
	}
	return wk
}

// Stats counts the messages this process took for delivery: handed over
// by its own queue writer (delivered from memory) and claimed from the
// database (accepted while every slot was busy, retries, other processes'
// expired leases).
func (wk *Workers) Stats() (handedOver, claimed int64) {
	return wk.handedOver.Load(), wk.claimed.Load()
}

// Owner is this process's name on the leases it takes.
func (wk *Workers) Owner() string { return wk.owner }

// Wake asks the workers to look for due messages now.
func (wk *Workers) Wake() {
	wk.news.Store(true)
	wk.signal()
}

// capacityFreed wakes the workers when a delivery slot came free and the
// last claim left due messages behind, or messages were queued while no
// slot was free; otherwise a claim would find nothing new (each claim is a
// statement for the database).
func (wk *Workers) capacityFreed() {
	if wk.full.Load() || wk.news.Load() {
		wk.signal()
	}
}

func (wk *Workers) signal() {
	select {
	case wk.wake <- struct{}{}:
	default:
	}
}

// leaseFor reserves free delivery slots for the queued messages of a batch
// about to be committed, marks as many of them leased and returns the lease
// to insert them with (nil: none). The accepting process then delivers
// them straight from memory (handOver): no claim, no second read of the
// body. Messages beyond the free slots are queued unleased, for any
// process's claim. If this process dies, the leases expire and another
// process (or this one, restarted) claims the messages like any others.
func (wk *Workers) leaseFor(batch []request) *lease {
	wanted := 0
	for i := range batch {
		if batch[i].m.Status == Queued && batch[i].m.Body != nil {
			wanted++
		}
	}
	if wanted == 0 {
		return nil
	}
	wk.mu.Lock()
	k := 0
	if wk.running {
		k = min(wanted, wk.cfg.Concurrency-len(wk.inFlight)-wk.reserved)
	}
	if k > 0 {
		wk.reserved += k
	}
	wk.mu.Unlock()
	if k <= 0 {
		return nil
	}
	for i := range batch {
		if k > 0 && batch[i].m.Status == Queued && batch[i].m.Body != nil {
			batch[i].leased = true
			k--
		}
	}
	return &lease{owner: wk.owner, until: Micros(time.Now().Add(wk.cfg.Lease))}
}

// handOver gives a leased request's slot to its delivery once committed, or
// back when the commit failed.
func (wk *Workers) handOver(r *request, committed bool, ls *lease) {
	wk.mu.Lock()
	wk.reserved--
	if committed {
		wk.inFlight[r.id] = true
	}
	wk.mu.Unlock()
	if committed {
		wk.handedOver.Add(1)
		wk.direct <- r.job(ls) // never blocks: the job holds one of Concurrency slots
	} else {
		wk.capacityFreed()
	}
}

// NextRetry is the delay before the retry that follows `attempts` failed
// attempts (attempts ≥ 1): the schedule's entry, the last one repeating.
func NextRetry(schedule []time.Duration, attempts int) time.Duration {
	i := attempts - 1
	if i < 0 {
		i = 0
	}
	if i >= len(schedule) {
		i = len(schedule) - 1
	}
	return schedule[i]
}

// job is one claimed message with everything needed to deliver it.
type job struct {
	msg   messageRow
	rcpts []*recipientRow // every recipient; pending ones are queued or deferred
	body  []byte
}

// outcome is the record of one delivery pass, committed in groups.
type outcome struct {
	msg        *messageRow
	rcpts      []*recipientRow // the recipients this pass handled
	events     []eventRow
	status     Status
	next       *int64
	dsn        *Message
	deleteBody bool
}

// Run delivers until ctx ends, then waits for deliveries in flight (up to
// grace), records their outcomes and releases every claim this process
// still holds.
func (wk *Workers) Run(ctx context.Context, grace time.Duration) {
	wk.log.Info("delivery workers started", "owner", wk.owner, "concurrency", wk.cfg.Concurrency, "lease", wk.cfg.Lease.String())
	jobs := make(chan *job)
	outcomes := make(chan *outcome, wk.cfg.Concurrency)
	var wg sync.WaitGroup
	deliverCtx, stopDeliveries := context.WithCancel(context.Background())
	defer stopDeliveries()
	deliver := func(j *job) {
		if o := wk.process(deliverCtx, j); o != nil {
			outcomes <- o
		} else {
			wk.done(j.msg.ID)
			wk.capacityFreed()
		}
	}
	for range wk.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case j, ok := <-jobs:
					if !ok {
						return // jobs handed over but not started are released below
					}
					deliver(j)
				case j := <-wk.direct:
					deliver(j)
				}
			}
		}()
	}
	wk.mu.Lock()
	wk.running = true
	wk.mu.Unlock()
	recorded := make(chan struct{})
	go func() { wk.record(outcomes); close(recorded) }()

	renew := time.NewTicker(wk.cfg.Lease / 3)
	defer renew.Stop()
	poll := time.NewTicker(wk.cfg.Poll)
	defer poll.Stop()
	claimNow := true
loop:
	for {
		free := wk.cfg.Concurrency - wk.count()
		if free > 0 && claimNow {
			wk.news.Store(false)
			limit := min(free, 64)
			batch, err := wk.claim(ctx, limit)
			if err != nil && ctx.Err() == nil {
				wk.log.Error("claim due messages", "err", err)
			}
			for _, j := range batch {
				select {
				case jobs <- j:
				case <-ctx.Done():
					break loop
				}
			}
			wk.full.Store(len(batch) == limit)
			if len(batch) == limit {
				continue // more may be due
			}
		}
		select {
		case <-ctx.Done():
			break loop
		case <-wk.wake:
			// New messages, or capacity for messages left behind.
			claimNow = wk.news.Load() || wk.full.Load()
			if claimNow && !wk.full.Load() && wk.cfg.Gather > 0 {
				time.Sleep(wk.cfg.Gather) // let more commits land: fewer, bigger claims
			}
		case <-poll.C:
			claimNow = true // retries that came due, other processes' expired leases
		case <-renew.C:
			wk.renew()
			claimNow = wk.news.Load()
		}
	}
	wk.stopBy.Store(time.Now().Add(recordStopBudget).UnixNano())
	// No more slots for new commits; wait for those promised to commits
	// under way (bounded by the writer's commit timeouts), so that release
	// below also gives back what they lease.
	wk.mu.Lock()
	wk.running = false
	wk.mu.Unlock()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		wk.mu.Lock()
		r := wk.reserved
		wk.mu.Unlock()
		if r == 0 {
			break
		}
	}
	close(jobs)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		stopDeliveries()
		<-done
	}
	close(outcomes)
	<-recorded
	wk.release()
}

// count is the delivery slots in use or promised.
func (wk *Workers) count() int {
	wk.mu.Lock()
	defer wk.mu.Unlock()
	return len(wk.inFlight) + wk.reserved
}

func (wk *Workers) done(id int64) {
	wk.mu.Lock()
	delete(wk.inFlight, id)
	wk.mu.Unlock()
}

// claim leases up to n due messages to this process and loads them, in
// three statements for the whole batch.
func (wk *Workers) claim(ctx context.Context, n int) ([]*job, error) {
	now := Micros(time.Now())
	until := Micros(time.Now().Add(wk.cfg.Lease))
	lock := ""
	if wk.st.Dialect() == store.Postgres {
		lock = "FOR UPDATE SKIP LOCKED"
	}
	var rows []messageRow
	// One statement is its own transaction: no BEGIN and COMMIT round trips.
	err := wk.st.BookkeepingDB().WithContext(ctx).Raw(`UPDATE messages SET lease_owner = ?, lease_until = ?
			WHERE id IN (SELECT id FROM messages
				WHERE status IN ('queued', 'deferred') AND next_attempt_at <= ?
				  AND (lease_until IS NULL OR lease_until < ?)
				ORDER BY next_attempt_at LIMIT ? `+lock+`)
			RETURNING *`, wk.owner, until, now, now, n).Scan(&rows).Error
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	wk.claimed.Add(int64(len(rows)))
	ids := make([]int64, len(rows))
	jobs := make(map[int64]*job, len(rows))
	out := make([]*job, len(rows))
	wk.mu.Lock()
	for i := range rows {
		ids[i] = rows[i].ID
		out[i] = &job{msg: rows[i]}
		jobs[rows[i].ID] = out[i]
		wk.inFlight[rows[i].ID] = true
	}
	wk.mu.Unlock()
	db := wk.st.DB().WithContext(ctx)
	var rcpts []*recipientRow
	if err := db.Where("message_id IN ?", ids).Order("id").Find(&rcpts).Error; err != nil {
		wk.forget(ids)
		return nil, fmt.Errorf("load recipients: %w", err)
	}
	for _, r := range rcpts {
		jobs[r.MessageID].rcpts = append(jobs[r.MessageID].rcpts, r)
	}
	var bodies []bodyRow
	if err := db.Where("message_id IN ?", ids).Find(&bodies).Error; err != nil {
		wk.forget(ids)
		return nil, fmt.Errorf("load bodies: %w", err)
	}
	for i := range bodies {
		jobs[bodies[i].MessageID].body = bodies[i].Data
	}
	return out, nil
}

func (wk *Workers) forget(ids []int64) {
	for _, id := range ids {
		wk.done(id)
	}
}

// renew extends the leases of messages being delivered.
func (wk *Workers) renew() {
	wk.mu.Lock()
	ids := make([]int64, 0, len(wk.inFlight))
	for id := range wk.inFlight {
		ids = append(ids, id)
	}
	wk.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	until := Micros(time.Now().Add(wk.cfg.Lease))
	err := wk.st.BookkeepingDB().Exec("UPDATE messages SET lease_until = ? WHERE lease_owner = ? AND id IN ?", until, wk.owner, ids).Error
	if err != nil {
		wk.log.Warn("renew leases", "err", err)
	}
}

// release gives back every claim this process holds, for others to take.
func (wk *Workers) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := wk.st.DB().WithContext(ctx).Exec("UPDATE messages SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?", wk.owner).Error; err != nil {
		wk.log.Warn("release leases", "err", err)
	}
}

// ReleaseOrphanedLeases clears every delivery lease on a SQLite database.
// Call it only while holding store.LockServe: one process serves a SQLite
// database, so any lease found then belongs to a process that ended
// without releasing it (killed, or the machine went down), and its
// messages are delivered now rather than when the lease would run out
// (FLOWGATE_DELIVERY_LEASE, 5 minutes by default). On PostgreSQL another
// process may hold them: it does nothing there.
func ReleaseOrphanedLeases(ctx context.Context, st *store.Store) (int64, error) {
	if st.Dialect() != store.SQLite {
		return 0, nil
	}
	res := st.DB().WithContext(ctx).Exec("UPDATE messages SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL")
	if res.Error != nil {
		return 0, fmt.Errorf("release orphaned leases: %w", res.Error)
	}
	return res.RowsAffected, nil
}

// group is the recipients of one message that share a route.
type group struct {
	target delivery.Target
	route  routing.Route
	rcpts  []*recipientRow
}

// process delivers one claimed message: route every pending recipient and
// deliver each group in one transaction. It returns the pass's outcome.
func (wk *Workers) process(ctx context.Context, j *job) (out *outcome) {
	defer func() {
		if v := recover(); v != nil {
			wk.log.Error("delivery worker panic", "msg_id", j.msg.UID, "panic", v)
			out = nil
		}
	}()
	msg := &j.msg
	var pending []*recipientRow
	priorBounced := false
	for _, rc := range j.rcpts {
		switch rc.Status {
		case Queued, Deferred:
			pending = append(pending, rc)
		case Bounced:
			priorBounced = true
		}
	}
	if len(pending) == 0 {
		wk.log.Warn("claimed message has no pending recipient", "msg_id", msg.UID)
		return &outcome{msg: msg, status: finalStatus(priorBounced), deleteBody: true}
	}
	if j.body == nil {
		// Should never happen; never report such a message as delivered.
		wk.log.Error("queued message has no content; its recipients are bounced", "msg_id", msg.UID)
		for _, rc := range pending {
			rc.Status, rc.LastReply = Bounced, "554 5.3.0 the message content is missing from the queue"
			rc.Attempts++
		}
		return wk.outcomeOf(msg, pending, priorBounced, nil, nil)
	}
	ix := wk.live.Index()
	var events []eventRow
	event := func(typ, format string, args ...any) {
		events = append(events, eventRow{MessageID: msg.ID, At: Micros(time.Now()), Type: typ, Detail: fmt.Sprintf(format, args...)})
	}
	groups := map[string]*group{}
	var order []string
	for _, rc := range pending {
		domain := rc.Address[strings.LastIndexByte(rc.Address, '@')+1:]
		route := ix.Route(domain)
		key, target := targetFor(route, domain)
		if route.Connector != nil {
			cid := route.Connector.ID
			rc.ConnectorID, rc.Connector = &cid, route.Connector.Name
		} else {
			rc.ConnectorID, rc.Connector = nil, ""
		}
		rc.RouteReason = route.Reason
		g, ok := groups[key]
		if !ok {
			g = &group{target: target, route: route}
			groups[key] = g
			order = append(order, key)
		}
		g.rcpts = append(g.rcpts, rc)
	}
	for _, key := range order {
		g := groups[key]
		if g.route.Kind == routing.Defer {
			for _, rc := range g.rcpts {
				rc.Status, rc.LastReply = Deferred, "451 4.4.0 "+g.route.Reason
				rc.Attempts++
			}
			event("deferred", "%s: %s", addresses(g.rcpts), g.route.Reason)
			continue
		}
		addrs := make([]string, len(g.rcpts))
		for i, rc := range g.rcpts {
			addrs[i] = rc.Address
		}
		res := wk.d.Deliver(ctx, g.target, msg.Sender, addrs, j.body)
		for _, a := range res.Attempts {
			tlsInfo := "no TLS"
			if a.TLSVersion != "" {
				tlsInfo = a.TLSVersion + " " + a.TLSCipher
			}
			note := ""
			if a.Note != "" {
				note = "; " + a.Note
			}
			event("attempt", "%s via %s: host %s [%s], %s%s: %s (by %s)", addresses(g.rcpts), g.target.Via, a.Host, a.Addr, tlsInfo, note, a.Reply, wk.owner)
		}
		byAddr := map[string]delivery.RcptResult{}
		for _, r := range res.Rcpts {
			byAddr[r.Address] = r
		}
		for _, rc := range g.rcpts {
			r := byAddr[rc.Address]
			rc.Attempts++
			rc.LastReply = r.Reply
			switch {
			case r.Delivered:
				rc.Status = Delivered
			case r.Permanent:
				rc.Status = Bounced
			default:
				rc.Status = Deferred
			}
		}
	}
	return wk.outcomeOf(msg, pending, priorBounced, j.body, events)
}

func finalStatus(bounced bool) Status {
	if bounced {
		return Bounced
	}
	return Delivered
}

// recordGather is how long record waits, after an outcome arrives, for
// more to record with it. Recording is bookkeeping (the message is already
// where it is going), and at low concurrency one statement per delivered
// message was a third of PostgreSQL's CPU; a few milliseconds' wait puts
// several outcomes in each statement (docs/perf.md, change 20).
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
		var err error
		if wk.st.Dialect() == store.Postgres {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err = recordPostgres(ctx, wk.st, batch)
			cancel()
		} else {
			err = wk.st.BookkeepingDB().Transaction(func(tx *gorm.DB) error { return writeOutcomes(tx, batch) })
		}
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
		msgVals = append(msgVals, o.msg.ID, string(o.status), o.msg.Attempts+1, o.next)
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

func addresses(rs []*recipientRow) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.Address
	}
	return strings.Join(parts, ", ")
}

// targetFor turns a route into a delivery target and a grouping key.
func targetFor(route routing.Route, domain string) (string, delivery.Target) {
	switch route.Kind {
	case routing.ViaConnector:
		c := route.Connector
		p := c.Parsed()
		t := delivery.Target{Via: fmt.Sprintf("connector %q", c.Name), TLS: c.Spec.TLSSettings, TLSDomain: p.TLSDomain}
		if c.Spec.UseMXRecord {
			t.MXDomain = domain
			return fmt.Sprintf("c%d|%s", c.ID, domain), t
		}
		for _, h := range p.SmartHosts {
			t.Hosts = append(t.Hosts, delivery.Host{Name: h.Host, IP: h.IP, Port: h.Port})
		}
		return fmt.Sprintf("c%d", c.ID), t
	case routing.ViaMX:
		return "mx|" + domain, delivery.Target{Via: "MX of " + domain, MXDomain: domain, TLS: connector.TLSOpportunistic}
	}
	return "defer|" + domain, delivery.Target{}
}

// outcomeOf decides what a delivery pass means: which recipients bounced
// (a 5xx, or the queue lifetime ran out), whether the message is finished,
// when to retry, and the DSN for newly bounced recipients.
func (wk *Workers) outcomeOf(msg *messageRow, rcpts []*recipientRow, priorBounced bool, body []byte, events []eventRow) *outcome {
	now := time.Now()
	expired := msg.ExpiresAt != nil && Micros(now) >= *msg.ExpiresAt
	var failures []Failure
	pending := 0
	bounced := priorBounced
	for _, rc := range rcpts {
		if rc.Status == Deferred && expired {
			rc.Status = Bounced
			rc.LastReply = "queue lifetime expired; last reply: " + rc.LastReply
			failures = append(failures, Failure{Recipient: rc.Address, Status: statusOf(rc.LastReply, true), Diagnosis: rc.LastReply})
			bounced = true
			continue
		}
		switch rc.Status {
		case Bounced:
			failures = append(failures, Failure{Recipient: rc.Address, Status: statusOf(rc.LastReply, false), Diagnosis: rc.LastReply})
			bounced = true
		case Deferred, Queued:
			pending++
		}
	}
	o := &outcome{msg: msg, rcpts: rcpts, events: events}
	if pending > 0 {
		o.status = Deferred
		n := Micros(now.Add(NextRetry(wk.cfg.RetrySchedule, msg.Attempts+1)))
		o.next = &n
	} else {
		o.status, o.deleteBody = finalStatus(bounced), true
	}
	ev := func(typ, detail string) {
		o.events = append(o.events, eventRow{MessageID: msg.ID, At: Micros(now), Type: typ, Detail: detail})
	}
	if len(failures) > 0 {
		ev("bounced", fmt.Sprintf("%d recipient(s) failed permanently", len(failures)))
		if msg.Sender != "" {
			o.dsn = wk.dsnFor(msg, body, failures, now)
			ev("dsn", "delivery status notification "+o.dsn.UID+" queued to "+msg.Sender)
		} else {
			ev("dsn", "no DSN: the message has the null sender (a bounce never bounces)")
		}
	}
	if o.status != Deferred {
		ev(string(o.status), "final")
	}
	return o
}

// dsnFor builds the bounce message for failures, addressed to the sender
// and routed like any other message.
func (wk *Workers) dsnFor(msg *messageRow, body []byte, failures []Failure, now time.Time) *Message {
	uid := newMessageUID()
	data := BuildDSN(wk.cfg.Hostname, msg.UID, FromMicros(msg.ReceivedAt), msg.Sender, body, failures, now)
	domain := msg.Sender[strings.LastIndexByte(msg.Sender, '@')+1:]
	route := wk.live.Index().Route(domain)
	rc := Recipient{Address: msg.Sender, Status: Queued, RouteReason: route.Reason}
	if route.Connector != nil {
		cid := route.Connector.ID
		rc.ConnectorID, rc.Connector = &cid, route.Connector.Name
	}
	return &Message{
		UID: uid, ReceivedAt: now, Status: Queued, ClientIP: "local", Helo: wk.cfg.Hostname, Sender: "",
		MessageIDHeader: "<dsn-" + msg.UID + "@" + wk.cfg.Hostname + ">", Attribution: "delivery status notification for " + msg.UID,
		Reply: "generated", ExpiresAt: now.Add(48 * time.Hour), Recipients: []Recipient{rc}, Body: data,
		Events: []Event{{At: now, Type: "received", Detail: fmt.Sprintf("DSN for %s: %d failed recipient(s)", msg.UID, len(failures))}},
	}
}

func newMessageUID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return "d" + strings.ToLower(hex.EncodeToString(b[:]))[:19]
}
