package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/delivery"
	"github.com/flowgate/flowgate/internal/liveconfig"
	"github.com/flowgate/flowgate/internal/store"
)

// Deliverer sends one message along one route (delivery.Client).
type Deliverer interface {
	Deliver(ctx context.Context, t delivery.Target, from string, rcpts []string, content delivery.Content) delivery.Result
}

// WorkerConfig tunes the delivery workers.
type WorkerConfig struct {
	Hostname      string
	RetrySchedule []time.Duration // delay before retry n is RetrySchedule[min(n, len-1)]
	Lifetime      time.Duration   // how long a DSN this process queues may stay queued (FLOWGATE_QUEUE_LIFETIME)
	Concurrency   int             // messages delivered at once by this process
	// DestinationConcurrency is the most deliveries this process makes at
	// once to one destination (destinations.go); default a quarter of
	// Concurrency.
	DestinationConcurrency int
	Lease                  time.Duration // how long a claim holds before others may take it
	Poll                   time.Duration // how often to look for due messages without a wake-up
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
	sql   dialect
	live  *liveconfig.Config
	d     Deliverer
	dests *destinations // deliveries under way per destination
	cfg   WorkerConfig
	log   *slog.Logger
	owner string
	wake  chan struct{}
	news  atomic.Bool // messages were queued since the last claim
	full  atomic.Bool // the last claim was limited by free capacity

	// direct carries messages this process accepted and delivers itself
	// (handOver), without claiming them; at most 2 × Concurrency wait in
	// it, because each holds a slot reserved before its commit (Concurrency
	// slots, and as many again for deliveries parked on a stuck
	// destination).
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

// NewWorkers prepares delivery workers; Run starts them. To deliver what
// this process accepts straight from memory, hand them its Writer's
// messages with Writer.HandOverTo.
func NewWorkers(st *store.Store, live *liveconfig.Config, d Deliverer, cfg WorkerConfig, log *slog.Logger) *Workers {
	if len(cfg.RetrySchedule) == 0 {
		cfg.RetrySchedule = config.DefaultRetrySchedule()
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = config.DefaultQueueLifetime
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = config.DefaultDeliveryConcurrency
	}
	if cfg.DestinationConcurrency == 0 {
		cfg.DestinationConcurrency = max(1, cfg.Concurrency/4)
	}
	if cfg.Lease == 0 {
		cfg.Lease = config.DefaultDeliveryLease
	}
	if cfg.Poll == 0 {
		cfg.Poll = time.Second
	}
	if cfg.Gather == 0 {
		cfg.Gather = 5 * time.Millisecond
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	wk := &Workers{st: st, sql: dialectFor(st), live: live, d: d, cfg: cfg, dests: newDestinations(cfg.DestinationConcurrency), log: log, wake: make(chan struct{}, 1),
		owner: cfg.Hostname + "/" + hex.EncodeToString(b[:]), inFlight: map[int64]bool{},
		direct: make(chan *job, 2*cfg.Concurrency)}
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

// Run delivers until ctx ends, then waits for deliveries in flight (up to
// grace), records their outcomes and releases every claim this process
// still holds.
func (wk *Workers) Run(ctx context.Context, grace time.Duration) {
	wk.log.Info("delivery workers started", "owner", wk.owner, "concurrency", wk.cfg.Concurrency, "lease", wk.cfg.Lease.String())
	// Prove this process alive before it takes any lease (liveness.go).
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	var watchDone <-chan struct{}
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		var err error
		watchDone, err = wk.sql.watchOwners(watchCtx, wk.owner, wk.log, func(string, int64) { wk.Wake() })
		if err == nil {
			break
		}
		wk.log.Error("take the liveness lock; delivery waits for it", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
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
	// Each job is delivered on a goroutine of its own; the slots (count)
	// bound how many there are. The dispatcher stops when jobs is closed;
	// jobs handed over but not started then are released below.
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := func(j *job) {
			wg.Add(1)
			go func() { defer wg.Done(); deliver(j) }()
		}
		for {
			select {
			case j, ok := <-jobs:
				if !ok {
					return
				}
				start(j)
			case j := <-wk.direct:
				start(j)
			}
		}
	}()
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
	stopWatch()
	<-watchDone
}

// count is the delivery slots in use or promised.
func (wk *Workers) count() int {
	parked := wk.parked()
	wk.mu.Lock()
	defer wk.mu.Unlock()
	return len(wk.inFlight) + wk.reserved - parked
}

// parked is how many deliveries wait on a stuck destination, up to
// Concurrency: they do not count against the slots, so a hung next hop
// does not keep other mail from them (at most twice Concurrency messages
// are then in flight).
func (wk *Workers) parked() int {
	return min(wk.dests.stuckTurns(destinationWait), wk.cfg.Concurrency)
}

func (wk *Workers) done(id int64) {
	wk.mu.Lock()
	delete(wk.inFlight, id)
	wk.mu.Unlock()
}
