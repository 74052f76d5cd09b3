package queue

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/flowgate/flowgate/internal/delivery"
	"github.com/flowgate/flowgate/internal/routing"
	"github.com/flowgate/flowgate/internal/smtpreply"
	"github.com/flowgate/flowgate/internal/store"
)

// The queue's controls (SPEC 4 "Queue", SPEC 5): what an admin may do to
// mail that waits. Each is safe against a delivery under way on any
// process, and each writes an audit row naming who did it:
//
//   - Retry makes a waiting message due now. A delivery under way is not
//     disturbed: it is then the retry, and its outcome sets the next attempt.
//   - Bounce takes the message the way a delivery worker claims one (only
//     when no delivery holds it), marks its waiting recipients bounced and
//     queues the DSN to the sender, in the one commit a delivery pass's
//     outcome uses. A message being delivered right now is refused
//     (ErrInFlight) rather than bounced after or during its delivery.
//   - Delete removes a waiting message, its content and its trace in one
//     transaction, only when no delivery holds it (else ErrInFlight), so a
//     deleted message is never delivered afterwards; no DSN is sent.
//   - Hold and Release (store.HoldConnector) are configuration changes that
//     reach every process's routing index within a second; delivery passes
//     leave a held connector's recipients waiting. Release makes its mail
//     due now.
//   - Reroute recomputes the routes of a connector's waiting recipients
//     under today's connectors and makes their messages due now.

// ErrInFlight is an action refused because a delivery holds the message
// right now.
var ErrInFlight = errors.New("the message is being delivered right now")

// FinishedError is an action refused because the message no longer waits.
type FinishedError struct{ Status Status }

func (e *FinishedError) Error() string {
	return fmt.Sprintf("the message is %s: only queued or deferred messages can be changed", e.Status)
}

// QueueRow is the waiting recipients of one outbound connector and next
// hop. Counts are recipients (a message to three addresses at one next hop
// counts three); held ones are not counted as queued or deferred.
type QueueRow struct {
	ConnectorID int64      `json:"connector_id,omitempty"` // 0: no connector
	Connector   *string    `json:"connector"`              // its name; nil: MX delivery or no route
	NextHop     string     `json:"next_hop"`
	Queued      int64      `json:"queued"`   // not attempted yet
	Deferred    int64      `json:"deferred"` // attempted, will be retried
	Held        int64      `json:"held"`     // waiting for the connector's release
	OldestAt    *time.Time `json:"oldest_at"`
	LastError   string     `json:"last_error"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	// HeldSince and HeldBy are set while the connector is held.
	HeldSince *time.Time `json:"held_since,omitempty"`
	HeldBy    string     `json:"held_by,omitempty"`
	// ExpiresAt is when the first of the row's messages reaches the queue
	// lifetime and bounces.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// QueueSummary is GET /api/v1/queue: total messages waiting, and the rows.
type QueueSummary struct {
	Total      int64      `json:"total"`
	Connectors []QueueRow `json:"connectors"`
}

// Summarize counts the waiting mail per outbound connector and next hop,
// from the messages that wait (the partial index messages_due), so its
// cost follows the queue, not the trace. Held connectors are listed even
// with no mail waiting, so that they can be released.
func Summarize(ctx context.Context, st *store.Store, ix *routing.Index) (*QueueSummary, error) {
	domain := "substr(r.address, instr(r.address, '@') + 1)"
	if st.Dialect() == store.Postgres {
		domain = "substr(r.address, strpos(r.address, '@') + 1)"
	}
	db := st.DB().WithContext(ctx)
	var groups []struct {
		ConnectorID *int64
		Connector   string
		Domain      string
		Status      Status
		N           int64
		Oldest      int64
		Expires     *int64
	}
	err := db.Raw(`SELECT r.connector_id, r.connector, ` + domain + ` AS domain, r.status, COUNT(*) AS n,
			MIN(m.received_at) AS oldest, MIN(m.expires_at) AS expires
		FROM messages m JOIN message_recipients r ON r.message_id = m.id
		WHERE m.status IN ('queued', 'deferred') AND r.status IN ('queued', 'deferred')
		GROUP BY r.connector_id, r.connector, ` + domain + `, r.status`).Scan(&groups).Error
	if err != nil {
		return nil, fmt.Errorf("queue summary: %w", err)
	}
	var lastErrors []struct {
		ConnectorID *int64
		Domain      string
		LastReply   string
		UpdatedAt   int64
	}
	err = db.Raw(`SELECT connector_id, domain, last_reply, updated_at FROM (
			SELECT r.connector_id, ` + domain + ` AS domain, r.last_reply, r.updated_at,
				ROW_NUMBER() OVER (PARTITION BY r.connector_id, ` + domain + ` ORDER BY r.updated_at DESC, r.id DESC) AS rn
			FROM messages m JOIN message_recipients r ON r.message_id = m.id
			WHERE m.status IN ('queued', 'deferred') AND r.status = 'deferred'
		) x WHERE rn = 1`).Scan(&lastErrors).Error
	if err != nil {
		return nil, fmt.Errorf("queue summary: last errors: %w", err)
	}
	var total int64
	if err := db.Raw(`SELECT COUNT(*) FROM messages WHERE status IN ('queued', 'deferred')`).Scan(&total).Error; err != nil {
		return nil, fmt.Errorf("queue summary: total: %w", err)
	}
	held, err := st.HeldConnectors(ctx)
	if err != nil {
		return nil, err
	}
	heldByID := map[int64]store.HeldConnector{}
	for _, h := range held {
		heldByID[h.ID] = h
	}
	rows := map[string]*QueueRow{}
	rowFor := func(connID *int64, name, domain string) *QueueRow {
		id := int64(0)
		if connID != nil {
			id = *connID
		}
		hop := nextHop(ix, id, domain)
		key := strconv.FormatInt(id, 10) + "|" + hop
		if r, ok := rows[key]; ok {
			return r
		}
		r := &QueueRow{ConnectorID: id, NextHop: hop}
		if id != 0 {
			n := name
			r.Connector = &n
			if h, ok := heldByID[id]; ok {
				r.HeldSince, r.HeldBy = &h.HeldAt, h.HeldBy
			}
		}
		rows[key] = r
		return r
	}
	for _, g := range groups {
		r := rowFor(g.ConnectorID, g.Connector, g.Domain)
		switch {
		case r.HeldSince != nil:
			r.Held += g.N
		case g.Status == Deferred:
			r.Deferred += g.N
		default:
			r.Queued += g.N
		}
		if t := FromMicros(g.Oldest); r.OldestAt == nil || t.Before(*r.OldestAt) {
			r.OldestAt = &t
		}
		if g.Expires != nil {
			if t := FromMicros(*g.Expires); r.ExpiresAt == nil || t.Before(*r.ExpiresAt) {
				r.ExpiresAt = &t
			}
		}
	}
	for _, e := range lastErrors {
		r := rowFor(e.ConnectorID, "", e.Domain)
		if t := FromMicros(e.UpdatedAt); r.LastErrorAt == nil || t.After(*r.LastErrorAt) {
			r.LastError, r.LastErrorAt = e.LastReply, &t
		}
	}
	for _, h := range held {
		found := false
		for _, r := range rows {
			found = found || r.ConnectorID == h.ID
		}
		if !found {
			id := h.ID
			r := rowFor(&id, h.Name, "")
			r.NextHop = nextHop(ix, h.ID, "")
		}
	}
	out := &QueueSummary{Total: total, Connectors: make([]QueueRow, 0, len(rows))}
	for _, r := range rows {
		out.Connectors = append(out.Connectors, *r)
	}
	sort.Slice(out.Connectors, func(i, j int) bool {
		a, b := out.Connectors[i], out.Connectors[j]
		an, bn := "", ""
		if a.Connector != nil {
			an = strings.ToLower(*a.Connector)
		}
		if b.Connector != nil {
			bn = strings.ToLower(*b.Connector)
		}
		if (a.Connector == nil) != (b.Connector == nil) {
			return a.Connector != nil // connectors first, MX delivery last
		}
		if an != bn {
			return an < bn
		}
		return a.NextHop < b.NextHop
	})
	return out, nil
}

// nextHop names where a connector (0: none) sends a recipient domain's
// mail under today's index: its smart hosts, or the domain's MX.
func nextHop(ix *routing.Index, connectorID int64, domain string) string {
	if connectorID == 0 {
		if _, ok := ix.Accepted(domain); ok {
			return "no route (" + domain + " is an accepted domain)"
		}
		return "MX of " + domain
	}
	c, ok := ix.OutboundByID(connectorID)
	if !ok {
		return "connector not in service (turned off, deleted or not active)"
	}
	t := delivery.ConnectorTarget(c.Name, &c.Spec, c.Parsed(), domain)
	if t.MXDomain != "" {
		if domain == "" {
			return "MX of each recipient's domain"
		}
		return "MX of " + domain
	}
	hosts := make([]string, len(t.Hosts))
	for i, h := range t.Hosts {
		name := h.Name
		if name == "" && h.IP.IsValid() {
			name = h.IP.String()
		}
		hosts[i] = net.JoinHostPort(name, strconv.Itoa(h.Port))
	}
	return strings.Join(hosts, ", ")
}

// WaitingMessage is one message of the queue page's list.
type WaitingMessage struct {
	UID           string
	ReceivedAt    time.Time
	Sender        string
	Status        Status
	Attempts      int
	NextAttemptAt *time.Time
	ExpiresAt     *time.Time
	InFlight      bool // a delivery holds it right now
	Recipients    []TraceRecipient
}

// ListWaiting lists up to limit waiting messages, oldest first, after the
// message with id afterID (0: from the start); with connectorID (-1: any;
// 0: those with a recipient routed without a connector), only messages
// with a waiting recipient routed through it. next is the afterID of the
// next page (0: none).
func ListWaiting(ctx context.Context, st *store.Store, connectorID, afterID int64, limit int) (list []WaitingMessage, next int64, err error) {
	db := st.DB().WithContext(ctx)
	// The waiting messages are found first, through the partial index
	// messages_due (its status condition written out, so that SQLite can
	// use it too), then ordered: so the cost follows the queue, where
	// walking the primary key in order would read the trace's finished
	// messages between the waiting ones.
	query := `WITH w AS MATERIALIZED (SELECT id FROM messages WHERE status IN ('queued', 'deferred') AND id > ?)
		SELECT m.* FROM messages m JOIN w ON w.id = m.id`
	args := []any{afterID}
	switch {
	case connectorID > 0:
		query += ` WHERE EXISTS (SELECT 1 FROM message_recipients r WHERE r.message_id = m.id AND r.connector_id = ? AND r.status IN ('queued', 'deferred'))`
		args = append(args, connectorID)
	case connectorID == 0:
		query += ` WHERE EXISTS (SELECT 1 FROM message_recipients r WHERE r.message_id = m.id AND r.connector_id IS NULL AND r.status IN ('queued', 'deferred'))`
	}
	query += ` ORDER BY m.id LIMIT ?`
	args = append(args, limit+1)
	var rows []messageRow
	if err := db.Raw(query, args...).Scan(&rows).Error; err != nil {
		return nil, 0, fmt.Errorf("list waiting messages: %w", err)
	}
	if len(rows) > limit {
		rows = rows[:limit]
		next = rows[limit-1].ID
	}
	if len(rows) == 0 {
		return nil, 0, nil
	}
	ids := make([]int64, len(rows))
	for i := range rows {
		ids[i] = rows[i].ID
	}
	var rcpts []recipientRow
	if err := db.Where("message_id IN ?", ids).Order("id").Find(&rcpts).Error; err != nil {
		return nil, 0, fmt.Errorf("list waiting messages: recipients: %w", err)
	}
	byMsg := map[int64][]TraceRecipient{}
	for _, r := range rcpts {
		byMsg[r.MessageID] = append(byMsg[r.MessageID], TraceRecipient{Address: r.Address, Status: r.Status, Connector: r.Connector,
			RouteReason: r.RouteReason, Attempts: r.Attempts, LastReply: r.LastReply})
	}
	now := Micros(time.Now())
	for _, m := range rows {
		w := WaitingMessage{UID: m.UID, ReceivedAt: FromMicros(m.ReceivedAt), Sender: m.Sender, Status: m.Status, Attempts: m.Attempts,
			InFlight: m.LeaseUntil != nil && *m.LeaseUntil >= now, Recipients: byMsg[m.ID]}
		if m.NextAttemptAt != nil {
			t := FromMicros(*m.NextAttemptAt)
			w.NextAttemptAt = &t
		}
		if m.ExpiresAt != nil {
			t := FromMicros(*m.ExpiresAt)
			w.ExpiresAt = &t
		}
		list = append(list, w)
	}
	return list, next, nil
}

// Control is the queue's controls for one process: its delivery workers
// (a bounce is recorded as their delivery pass would be) and its store.
type Control struct {
	wk *Workers
}

// NewControl returns the controls over wk's queue.
func NewControl(wk *Workers) *Control { return &Control{wk: wk} }

// Lifetime is how long a message may wait before it bounces.
func (c *Control) Lifetime() time.Duration { return c.wk.cfg.Lifetime }

// Summarize is Summarize over this process's routing index.
func (c *Control) Summarize(ctx context.Context) (*QueueSummary, error) {
	return Summarize(ctx, c.wk.st, c.wk.live.Index())
}

// refusal says why an action found no waiting, free message uid:
// unknown, finished, or being delivered right now.
func (c *Control) refusal(ctx context.Context, uid string) error {
	var m messageRow
	err := c.wk.st.DB().WithContext(ctx).Select("id, status, lease_until").Where("uid = ?", uid).Take(&m).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ErrNoMessage
	}
	if err != nil {
		return fmt.Errorf("load message %s: %w", uid, err)
	}
	if m.Status != Queued && m.Status != Deferred {
		return &FinishedError{Status: m.Status}
	}
	if m.LeaseUntil != nil && *m.LeaseUntil >= Micros(time.Now()) {
		return ErrInFlight
	}
	return fmt.Errorf("message %s changed meanwhile; try again", uid)
}

// Retry makes a waiting message due now (see the package comment).
func (c *Control) Retry(ctx context.Context, actor store.Actor, uid string) error {
	now := Micros(time.Now())
	err := c.wk.st.DB().WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var m messageRow
		if err := tx.Select("id, sender").Where("uid = ? AND status IN ?", uid, []Status{Queued, Deferred}).Take(&m).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return errRefused
			}
			return err
		}
		res := tx.Exec("UPDATE messages SET next_attempt_at = ? WHERE id = ? AND status IN ?", now, m.ID, []Status{Queued, Deferred})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return errRefused
		}
		if err := tx.Create(&eventRow{MessageID: m.ID, At: now, Type: "retry", Detail: "retry now asked by " + actor.String()}).Error; err != nil {
			return err
		}
		return store.AuditTx(tx, actor, "retry", "message", m.ID, uid, map[string]any{"sender": m.Sender})
	})
	if errors.Is(err, errRefused) {
		return c.refusal(ctx, uid)
	}
	if err != nil {
		return fmt.Errorf("retry %s: %w", uid, err)
	}
	c.wk.Wake()
	return nil
}

var errRefused = errors.New("refused")

// adminBounce is the reply a bounced recipient gets in the DSN.
var adminBounce = smtpreply.Reply{Code: 550, Enhanced: [3]int{5, 0, 0}, Text: "returned to the sender by the mail administrator before it could be delivered"}

// Bounce returns a waiting message to its sender (see the package
// comment).
func (c *Control) Bounce(ctx context.Context, actor store.Actor, uid string) error {
	wk := c.wk
	now := Micros(time.Now())
	var rows []messageRow
	err := wk.st.DB().WithContext(ctx).Raw(`UPDATE messages SET lease_owner = ?, lease_until = ?
		WHERE uid = ? AND status IN ('queued', 'deferred') AND (lease_until IS NULL OR lease_until < ?)
		RETURNING *`, wk.owner, Micros(time.Now().Add(wk.cfg.Lease)), uid, now).Scan(&rows).Error
	if err != nil {
		return fmt.Errorf("bounce %s: %w", uid, err)
	}
	if len(rows) == 0 {
		return c.refusal(ctx, uid)
	}
	jobs, err := wk.load(ctx, rows)
	if err != nil {
		c.giveBack(rows[0].ID)
		return fmt.Errorf("bounce %s: %w", uid, err)
	}
	j := jobs[0]
	defer wk.done(j.msg.ID)
	var pending []*recipientRow
	priorBounced := false
	for _, rc := range j.rcpts {
		switch rc.Status {
		case Queued, Deferred:
			rc.setReply(Bounced, adminBounce)
			pending = append(pending, rc)
		case Bounced:
			priorBounced = true
		}
	}
	p := &pass{}
	p.events = append(p.events, eventRow{MessageID: j.msg.ID, At: now, Type: "bounced",
		Detail: fmt.Sprintf("%s: returned to the sender by %s", addresses(pending), actor)})
	o := wk.outcomeOf(&j.msg, pending, priorBounced, func() []byte { return j.head(ctx, wk.st) }, p)
	if o.deleteBody && j.chunks > 0 {
		o.chunkedUID = j.msg.UID
	}
	if err := wk.sql.record(ctx, []*outcome{o}); err != nil {
		c.giveBack(j.msg.ID)
		return fmt.Errorf("bounce %s: %w", uid, err)
	}
	wk.dropFinishedChunks([]*outcome{o})
	wk.Wake() // the DSN is a new message
	detail := map[string]any{"sender": j.msg.Sender, "recipients": addresses(pending)}
	if o.dsn != nil {
		detail["dsn"] = o.dsn.UID
	}
	if err := wk.st.DB().WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return store.AuditTx(tx, actor, "bounce", "message", j.msg.ID, uid, detail)
	}); err != nil {
		return fmt.Errorf("bounce %s: the message was bounced, but its audit row was not written: %w", uid, err)
	}
	return nil
}

// giveBack releases this process's lease on a message an action took.
func (c *Control) giveBack(id int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.wk.st.DB().WithContext(ctx).Exec("UPDATE messages SET lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ?", id, c.wk.owner).Error; err != nil {
		c.wk.log.Warn("release a message after a failed action; it is delivered when the lease runs out", "id", id, "err", err)
	}
}

// Delete removes a waiting message with its content and trace, without a
// DSN (see the package comment).
func (c *Control) Delete(ctx context.Context, actor store.Actor, uid string) error {
	now := Micros(time.Now())
	err := c.wk.st.DB().WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Take the row the way a claim would (a claim skips it from here
		// on, and this fails when a delivery holds it), then delete.
		var rows []messageRow
		if err := tx.Raw(`UPDATE messages SET lease_owner = ?, lease_until = ?
			WHERE uid = ? AND status IN ('queued', 'deferred') AND (lease_until IS NULL OR lease_until < ?)
			RETURNING *`, "delete:"+actor.String(), Micros(time.Now().Add(time.Hour)), uid, now).Scan(&rows).Error; err != nil {
			return err
		}
		if len(rows) == 0 {
			return errRefused
		}
		m := rows[0]
		var rcpts []string
		if err := tx.Model(&recipientRow{}).Where("message_id = ?", m.ID).Order("id").Pluck("address", &rcpts).Error; err != nil {
			return err
		}
		for _, stmt := range []string{
			"DELETE FROM message_bodies WHERE message_id = ?",
			"DELETE FROM message_recipients WHERE message_id = ?",
			"DELETE FROM message_events WHERE message_id = ?",
			"DELETE FROM message_headers WHERE message_id = ?",
			"DELETE FROM messages WHERE id = ?",
		} {
			if err := tx.Exec(stmt, m.ID).Error; err != nil {
				return err
			}
		}
		if err := tx.Exec("DELETE FROM message_chunks WHERE uid = ?", m.UID).Error; err != nil {
			return err
		}
		return store.AuditTx(tx, actor, "delete", "message", m.ID, uid, map[string]any{
			"sender": m.Sender, "recipients": strings.Join(rcpts, ", "), "received_at": FromMicros(m.ReceivedAt).Format(time.RFC3339),
			"size": m.Size, "status": m.Status, "attempts": m.Attempts})
	})
	if errors.Is(err, errRefused) {
		return c.refusal(ctx, uid)
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", uid, err)
	}
	return nil
}

// Release takes a connector off hold and makes its waiting mail due now.
func (c *Control) Release(ctx context.Context, actor store.Actor, id int64) (*store.Connector, error) {
	conn, err := c.wk.st.HoldConnector(ctx, actor, id, false)
	if err != nil {
		return nil, err
	}
	now := Micros(time.Now())
	if err := c.wk.st.DB().WithContext(ctx).Exec(`UPDATE messages SET next_attempt_at = ?
		WHERE status IN ('queued', 'deferred') AND EXISTS (SELECT 1 FROM message_recipients r
			WHERE r.message_id = messages.id AND r.connector_id = ? AND r.status IN ('queued', 'deferred'))`, now, id).Error; err != nil {
		return conn, fmt.Errorf("released; its mail is attempted at its next retry, not now: %w", err)
	}
	c.wk.Wake()
	return conn, nil
}

// Hold puts a connector on hold.
func (c *Control) Hold(ctx context.Context, actor store.Actor, id int64) (*store.Connector, error) {
	return c.wk.st.HoldConnector(ctx, actor, id, true)
}

// Reroute recomputes, under today's connectors (this process's index),
// the route of every waiting recipient routed through connector id, and
// makes their messages due now. It returns how many recipients it
// re-routed. A recipient a mail flow rule routed keeps the rule's decision
// (rules run once per message, when it is received; SPEC 7), as every
// delivery pass does.
func (c *Control) Reroute(ctx context.Context, actor store.Actor, id int64) (int, error) {
	st := c.wk.st
	conn, err := st.GetConnector(ctx, "outbound", id)
	if err != nil {
		return 0, err
	}
	ix := c.wk.live.Index()
	now := Micros(time.Now())
	n := 0
	err = st.DB().WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var rcpts []*recipientRow
		if err := tx.Raw(`SELECT r.* FROM messages m JOIN message_recipients r ON r.message_id = m.id
			WHERE m.status IN ('queued', 'deferred') AND r.status IN ('queued', 'deferred') AND r.connector_id = ?
			ORDER BY r.id`, id).Scan(&rcpts).Error; err != nil {
			return err
		}
		// Recipients that get the same route are updated together.
		type newRoute struct {
			connID       int64
			conn, reason string
		}
		byRoute := map[newRoute][]int64{}
		var order []newRoute
		moved := map[string]int{}
		msgSet := map[int64]bool{}
		var msgs []int64
		for _, rc := range rcpts {
			route := routeOf(ix, rc, domainOf(rc.Address))
			connID, name, reason := routeFields(route)
			k := newRoute{conn: name, reason: "re-routed by " + actor.String() + ": " + reason}
			if connID != nil {
				k.connID = *connID
			}
			if _, ok := byRoute[k]; !ok {
				order = append(order, k)
			}
			byRoute[k] = append(byRoute[k], rc.ID)
			to := name
			if to == "" {
				to = route.Kind.String()
			}
			moved[to]++
			if !msgSet[rc.MessageID] {
				msgSet[rc.MessageID] = true
				msgs = append(msgs, rc.MessageID)
			}
			n++
		}
		for _, k := range order {
			var connID *int64
			if k.connID != 0 {
				connID = &k.connID
			}
			for ids := range slices.Chunk(byRoute[k], 500) {
				if err := tx.Exec("UPDATE message_recipients SET connector_id = ?, connector = ?, route_reason = ?, updated_at = ? WHERE id IN ? AND status IN ?",
					connID, k.conn, store.CleanText(k.reason), now, ids, []Status{Queued, Deferred}).Error; err != nil {
					return err
				}
			}
		}
		events := make([]eventRow, 0, len(msgs))
		for ids := range slices.Chunk(msgs, 500) {
			if err := tx.Exec("UPDATE messages SET next_attempt_at = ? WHERE id IN ? AND status IN ?", now, ids, []Status{Queued, Deferred}).Error; err != nil {
				return err
			}
		}
		for _, mid := range msgs {
			events = append(events, eventRow{MessageID: mid, At: now, Type: "rerouted",
				Detail: fmt.Sprintf("routes recomputed by %s under today's connectors; due now", actor)})
		}
		if len(events) > 0 {
			if err := tx.CreateInBatches(events, 500).Error; err != nil {
				return err
			}
		}
		return store.AuditTx(tx, actor, "reroute", "connector", id, conn.Name, map[string]any{"rerouted": n, "now_via": moved})
	})
	if err != nil {
		return 0, fmt.Errorf("re-route: %w", err)
	}
	c.wk.Wake()
	return n, nil
}
