package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

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

	mu       sync.Mutex
	inFlight map[int64]bool
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
	var b [6]byte
	_, _ = rand.Read(b[:])
	wk := &Workers{st: st, live: live, d: d, w: w, cfg: cfg, log: log, wake: make(chan struct{}, 1),
		owner: cfg.Hostname + "/" + hex.EncodeToString(b[:]), inFlight: map[int64]bool{}}
	if w != nil {
		wake := wk.Wake
		w.onCommit.Store(&wake)
	}
	return wk
}

// Owner is this process's name on the leases it takes.
func (wk *Workers) Owner() string { return wk.owner }

// Wake asks the workers to look for due messages now.
func (wk *Workers) Wake() {
	select {
	case wk.wake <- struct{}{}:
	default:
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

// Run delivers until ctx ends, then waits for deliveries in flight (up to
// grace) and releases every claim this process still holds.
func (wk *Workers) Run(ctx context.Context, grace time.Duration) {
	wk.log.Info("delivery workers started", "owner", wk.owner, "concurrency", wk.cfg.Concurrency, "lease", wk.cfg.Lease.String())
	jobs := make(chan int64)
	var wg sync.WaitGroup
	deliverCtx, stopDeliveries := context.WithCancel(context.Background())
	defer stopDeliveries()
	for range wk.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range jobs {
				wk.process(deliverCtx, id)
				wk.done(id)
			}
		}()
	}
	renew := time.NewTicker(wk.cfg.Lease / 3)
	defer renew.Stop()
	poll := time.NewTicker(wk.cfg.Poll)
	defer poll.Stop()
loop:
	for {
		free := wk.cfg.Concurrency - wk.count()
		if free > 0 {
			ids, err := wk.claim(ctx, free)
			if err != nil && ctx.Err() == nil {
				wk.log.Error("claim due messages", "err", err)
			}
			for _, id := range ids {
				select {
				case jobs <- id:
				case <-ctx.Done():
					break loop
				}
			}
			if len(ids) == free {
				continue // more may be due
			}
		}
		select {
		case <-ctx.Done():
			break loop
		case <-wk.wake:
		case <-poll.C:
		case <-renew.C:
			wk.renew()
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
	wk.release()
}

func (wk *Workers) count() int {
	wk.mu.Lock()
	defer wk.mu.Unlock()
	return len(wk.inFlight)
}

func (wk *Workers) done(id int64) {
	wk.mu.Lock()
	delete(wk.inFlight, id)
	wk.mu.Unlock()
}

// claim leases up to n due messages to this process.
func (wk *Workers) claim(ctx context.Context, n int) ([]int64, error) {
	now := Micros(time.Now())
	until := Micros(time.Now().Add(wk.cfg.Lease))
	lock := ""
	if wk.st.Dialect() == store.Postgres {
		lock = "FOR UPDATE SKIP LOCKED"
	}
	var ids []int64
	err := wk.st.Transact(ctx, func(tx *gorm.DB) error {
		return tx.Raw(`UPDATE messages SET lease_owner = ?, lease_until = ?
			WHERE id IN (SELECT id FROM messages
				WHERE status IN ('queued', 'deferred') AND next_attempt_at <= ?
				  AND (lease_until IS NULL OR lease_until < ?)
				ORDER BY next_attempt_at LIMIT ? `+lock+`)
			RETURNING id`, wk.owner, until, now, now, n).Scan(&ids).Error
	})
	if err != nil {
		return nil, err
	}
	wk.mu.Lock()
	for _, id := range ids {
		wk.inFlight[id] = true
	}
	wk.mu.Unlock()
	return ids, nil
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
	err := wk.st.DB().Exec("UPDATE messages SET lease_until = ? WHERE lease_owner = ? AND id IN ?", until, wk.owner, ids).Error
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

// group is the recipients of one message that share a route.
type group struct {
	target delivery.Target
	route  routing.Route
	rcpts  []*recipientRow
}

// process delivers one claimed message: route every pending recipient,
// deliver each group in one transaction, and record the outcome.
func (wk *Workers) process(ctx context.Context, id int64) {
	defer func() {
		if v := recover(); v != nil {
			wk.log.Error("delivery worker panic", "message_id", id, "panic", v)
		}
	}()
	db := wk.st.DB().WithContext(ctx)
	var msg messageRow
	if err := db.Where("id = ? AND lease_owner = ?", id, wk.owner).Take(&msg).Error; err != nil {
		wk.log.Warn("claimed message vanished", "message_id", id, "err", err)
		return
	}
	var rcpts []*recipientRow
	if err := db.Where("message_id = ? AND status IN ?", id, []Status{Queued, Deferred}).Order("id").Find(&rcpts).Error; err != nil {
		wk.log.Error("load recipients", "msg_id", msg.UID, "err", err)
		return
	}
	var body bodyRow
	if err := db.Where("message_id = ?", id).Take(&body).Error; err != nil {
		wk.log.Error("load body", "msg_id", msg.UID, "err", err)
		return
	}
	ix := wk.live.Index()
	var events []eventRow
	event := func(typ, format string, args ...any) {
		events = append(events, eventRow{MessageID: id, At: Micros(time.Now()), Type: typ, Detail: fmt.Sprintf(format, args...)})
	}
	groups := map[string]*group{}
	var order []string
	for _, rc := range rcpts {
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
		res := wk.d.Deliver(ctx, g.target, msg.Sender, addrs, body.Data)
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
	wk.finish(ctx, &msg, rcpts, body.Data, events)
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

// finish records a delivery pass in one transaction: recipients, events,
// the message's status and next attempt, bounces for expired recipients,
// and a DSN for every newly bounced recipient.
func (wk *Workers) finish(ctx context.Context, msg *messageRow, rcpts []*recipientRow, body []byte, events []eventRow) {
	now := time.Now()
	expired := msg.ExpiresAt != nil && Micros(now) >= *msg.ExpiresAt
	var failures []Failure
	pending := 0
	for _, rc := range rcpts {
		if rc.Status == Deferred && expired {
			rc.Status = Bounced
			rc.LastReply = "queue lifetime expired; last reply: " + rc.LastReply
			failures = append(failures, Failure{Recipient: rc.Address, Status: statusOf(rc.LastReply, true), Diagnosis: rc.LastReply})
			continue
		}
		switch rc.Status {
		case Bounced:
			failures = append(failures, Failure{Recipient: rc.Address, Status: statusOf(rc.LastReply, false), Diagnosis: rc.LastReply})
		case Deferred, Queued:
			pending++
		}
	}
	attempts := msg.Attempts + 1
	var status Status
	var next *int64
	switch {
	case pending > 0:
		status = Deferred
		n := Micros(now.Add(NextRetry(wk.cfg.RetrySchedule, attempts)))
		next = &n
	default:
		status = Delivered
		var bounced int64
		for _, rc := range rcpts {
			if rc.Status == Bounced {
				bounced++
			}
		}
		if bounced > 0 {
			// Recipients finished earlier also count.
			status = Bounced
		} else if n := wk.countOther(ctx, msg.ID, Bounced); n > 0 {
			status = Bounced
		}
	}
	var dsn *Message
	if len(failures) > 0 {
		events = append(events, eventRow{MessageID: msg.ID, At: Micros(now), Type: "bounced", Detail: fmt.Sprintf("%d recipient(s) failed permanently", len(failures))})
		if msg.Sender != "" {
			dsn = wk.dsnFor(msg, body, failures, now)
			events = append(events, eventRow{MessageID: msg.ID, At: Micros(now), Type: "dsn", Detail: "delivery status notification " + dsn.UID + " queued to " + msg.Sender})
		} else {
			events = append(events, eventRow{MessageID: msg.ID, At: Micros(now), Type: "dsn", Detail: "no DSN: the message has the null sender (a bounce never bounces)"})
		}
	}
	if status != Deferred {
		events = append(events, eventRow{MessageID: msg.ID, At: Micros(now), Type: string(status), Detail: "final"})
	}
	err := wk.st.Transact(context.Background(), func(tx *gorm.DB) error {
		for _, rc := range rcpts {
			rc.UpdatedAt = Micros(now)
			if err := tx.Model(&recipientRow{}).Where("id = ?", rc.ID).Updates(map[string]any{
				"status": rc.Status, "attempts": rc.Attempts, "last_reply": rc.LastReply, "connector_id": rc.ConnectorID,
				"connector": rc.Connector, "route_reason": rc.RouteReason, "updated_at": rc.UpdatedAt}).Error; err != nil {
				return err
			}
		}
		if len(events) > 0 {
			if err := tx.CreateInBatches(&events, 200).Error; err != nil {
				return err
			}
		}
		if err := tx.Model(&messageRow{}).Where("id = ?", msg.ID).Updates(map[string]any{
			"status": status, "attempts": attempts, "next_attempt_at": next, "lease_owner": nil, "lease_until": nil,
			"updated_at": Micros(now)}).Error; err != nil {
			return err
		}
		if status != Deferred {
			if err := tx.Where("message_id = ?", msg.ID).Delete(&bodyRow{}).Error; err != nil {
				return err
			}
		}
		if dsn != nil {
			return insertBatch(tx, []request{{m: dsn}})
		}
		return nil
	})
	if err != nil {
		wk.log.Error("record delivery outcome; the message will be retried when its lease expires", "msg_id", msg.UID, "err", err)
		return
	}
	if dsn != nil {
		wk.Wake()
	}
	wk.log.Info("delivery pass", "msg_id", msg.UID, "status", status, "recipients", len(rcpts), "pending", pending, "failed", len(failures))
}

func (wk *Workers) countOther(ctx context.Context, messageID int64, s Status) int64 {
	var n int64
	wk.st.DB().WithContext(ctx).Model(&recipientRow{}).Where("message_id = ? AND status = ?", messageID, s).Count(&n)
	return n
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
