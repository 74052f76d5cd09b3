// Package preview replays the mail flow rules over the message trace (SPEC
// 7, "Preview"): what a draft rule, a changed rule, or an existing rule
// turned on and enforced would have done to the messages received in a
// window, recipient by recipient, compared with what today's rule set does
// to them. The API (POST /api/v1/rules/preview) and the console call Run.
//
// A preview only reads: the routing configuration once (the accepted
// domains, the active connectors and the rules, as the relay's index is
// built: liveconfig.LoadRouting), then the traced messages of the window
// in batches of ids (a few batches read at once, decided in order), with
// their recipients and, for the messages a changed rule could match, their
// kept header sections (message_headers, migration 00011). It writes
// nothing, takes no lock and runs no transaction. A message no changed
// rule (the previewed one, the one it stands in for) matches is the same
// on both sides and is not evaluated further; whether a rule could match
// is first decided without the header section (see probe), so that only
// the header sections that matter are read.
//
// Decisions:
//
//   - "before" is today's rule set replayed, not the route the trace
//     recorded: both sides are computed by the same code under the same
//     connectors and accepted domains, so that only the previewed change
//     can make them differ.
//   - Both sides are evaluated at the message's received_at, so that
//     activation and expiry dates behave as they would have when the
//     message arrived.
//   - Replayed are the messages received in [Now-Since, Now] that reached
//     the rules: not the DSNs flowgate wrote itself (client_ip "local"),
//     and not messages refused before the rules ran (status rejected
//     without a recipient a rule rejected). Considered counts them.
//   - A recipient's route is the rule's connector and the rule's name
//     when an enforce rule routes it through an active connector; when
//     that connector cannot carry mail, delivery's on_error decides: defer
//     (no connector, the rule, deferred) or ignore (as if no rule). With
//     no rule it is SPEC 3.5's route: the connector's name, or no
//     connector for MX delivery, or deferred for an accepted domain no
//     connector routes. A recipient a rule rejects has rejected true and
//     the rule's name.
//   - Matched counts the messages for which the previewed rule, taken
//     alone, matches at least one recipient: its conditions hold, none of
//     its exceptions does and the message's time is within its dates —
//     whether or not it is enabled, and whether or not an earlier rule's
//     stop_processing or route would keep it from acting.
//   - Undecidable counts the messages whose header section is not kept (no
//     message_headers row, or a section that may have been cut at
//     queue.MaxKeptHeader) for which the header matters: the previewed
//     rule, or the rule it stands in for, has a header key and its other
//     keys do not already decide that it does not match. Such messages are
//     neither matched nor listed as changed.
//   - Changed lists at most MaxChanged recipients (message order, then
//     recipient order); ChangedTotal counts them all.
package preview

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/liveconfig"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/routing"
	"github.com/flowgate/flowgate/internal/rules"
	"github.com/flowgate/flowgate/internal/store"
)

// DefaultSince is the window of a preview that names none (SPEC 7).
const DefaultSince = 24 * time.Hour

// MaxChanged bounds Result.Changed; Result.ChangedTotal counts beyond it.
const MaxChanged = 10000

// batchSize is the number of messages read at once.
const batchSize = 2000

// Request is what to preview: exactly one of Rule and RuleID.
type Request struct {
	// Rule is a draft rule. With ID 0 it is added to the rule set, at its
	// priority (shifting the others) or last; with the ID of a rule it
	// stands in for that rule, at its priority or, when nil, in that
	// rule's place. It is previewed as it is: a disabled draft changes
	// nothing, an audit draft routes nothing.
	Rule *rules.Rule
	// RuleID is an existing rule, previewed as it is but enabled and in
	// enforce mode.
	RuleID int64
	// Since is the window: the messages received in [Now-Since, Now]; 0
	// means DefaultSince. The caller bounds it by the trace retention.
	Since time.Duration
	// Now ends the window; zero means time.Now().
	Now time.Time
}

// Route is a recipient's route on one side of a preview.
type Route struct {
	// Connector is the outbound connector's name; nil for MX delivery, a
	// deferral or a rejection.
	Connector *string `json:"connector"`
	// Rule is the name of the rule that chose the route (or rejected the
	// recipient); nil when SPEC 3.5's routing applies.
	Rule *string `json:"rule"`
	// Rejected: a rule rejects the recipient.
	Rejected bool `json:"rejected"`
	// Deferred: the recipient would be deferred (451 4.4.0): an accepted
	// domain no connector routes, or a rule's connector that cannot carry
	// mail now with on_error defer.
	Deferred bool `json:"deferred,omitempty"`
}

// Change is one recipient whose route the previewed change changes.
type Change struct {
	MessageID string `json:"message_id"` // the trace's message id (GET /api/v1/messages/{id})
	Recipient string `json:"recipient"`
	Before    Route  `json:"before"`
	After     Route  `json:"after"`
}

// Result is a preview's answer (SPEC 7).
type Result struct {
	Considered  int      `json:"considered"`
	Matched     int      `json:"matched"`
	Changed     []Change `json:"changed"`
	Undecidable int      `json:"undecidable"`
	// ChangedTotal counts the changed recipients, also those past
	// MaxChanged; Truncated says Changed stops short of it.
	ChangedTotal int  `json:"changed_total"`
	Truncated    bool `json:"truncated"`
	// Rule is the previewed rule's name; From and To bound the window.
	Rule string    `json:"rule"`
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Run previews req over the trace in st. A request that cannot be
// previewed (no rule or both, an invalid draft, an unknown rule, a route
// to something that is not an outbound connector, a priority out of
// range) is a rules.FieldErrors keyed by the request's JSON path:
// "rule", "rule.name", "rule.actions.route_to_outbound_connector",
// "rule_id", "since".
func Run(ctx context.Context, st *store.Store, req Request) (*Result, error) {
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	since := req.Since
	switch {
	case since < 0:
		return nil, rules.FieldErrors{"since": "the window cannot be negative"}
	case since == 0:
		since = DefaultSince
	}
	cfg, err := liveconfig.LoadRouting(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("preview: load the routing configuration: %w", err)
	}
	p, err := plan(ctx, st, cfg.Rules, req)
	if err != nil {
		return nil, err
	}
	r := &replay{
		ix:      routing.Build(cfg),
		after:   rules.Compile(p.after),
		inbound: map[int64]*routing.Inbound{},
		byName:  map[string]*routing.Inbound{},
		routes:  map[string]route{},
		res: &Result{Changed: []Change{}, Rule: p.previewed.Name,
			From: now.Add(-since).UTC(), To: now.UTC()},
	}
	r.before = r.ix.Rules()
	for i := range cfg.Inbound {
		c := &cfg.Inbound[i]
		r.inbound[c.ID] = c
		if _, ok := r.byName[strings.ToLower(c.Name)]; !ok {
			r.byName[strings.ToLower(c.Name)] = c
		}
	}
	for i, c := range p.changed() {
		set := alone(c)
		if i == 0 {
			r.previewed = set
		} else {
			r.replaced = set
		}
		r.probes = append(r.probes, newProbe(c))
		r.loadHeaders = r.loadHeaders || set.NeedsHeaders()
	}
	r.loadHeaders = r.loadHeaders || r.before.NeedsHeaders() || r.after.NeedsHeaders()
	if err := r.run(ctx, st, queue.Micros(r.res.From), queue.Micros(r.res.To)); err != nil {
		return nil, err
	}
	return r.res, nil
}

// planned is the rule set with the change, and what the replay needs to
// know about the change.
type planned struct {
	after     []rules.Rule // the rule set with the change, priorities 0..n-1
	previewed rules.Rule   // the rule as previewed (normalized)
	// replaced is the rule the previewed one stands in for when its
	// conditions may differ (a draft with an id); nil otherwise.
	replaced *rules.Rule
}

// changed are the rules whose matching can make the two sides differ.
func (p *planned) changed() []rules.Rule {
	out := []rules.Rule{p.previewed}
	if p.replaced != nil {
		out = append(out, *p.replaced)
	}
	return out
}

func plan(ctx context.Context, st *store.Store, current []rules.Rule, req Request) (*planned, error) {
	switch {
	case req.Rule != nil && req.RuleID != 0:
		return nil, rules.FieldErrors{"rule": "send a draft rule or the id of a rule (rule_id), not both"}
	case req.Rule == nil && req.RuleID == 0:
		return nil, rules.FieldErrors{"rule": "send a draft rule (rule) or the id of a rule (rule_id) to preview"}
	case req.RuleID < 0:
		return nil, rules.FieldErrors{"rule_id": "enter the id of a rule"}
	}
	list := make([]rules.Rule, len(current))
	copy(list, current)
	indexOf := func(id int64) int {
		for i := range list {
			if list[i].ID == id {
				return i
			}
		}
		return -1
	}
	p := &planned{}
	if req.Rule == nil {
		i := indexOf(req.RuleID)
		if i < 0 {
			return nil, rules.FieldErrors{"rule_id": fmt.Sprintf("no rule has id %d", req.RuleID)}
		}
		p.previewed = list[i]
		p.previewed.Enabled, p.previewed.Mode = true, rules.Enforce
		list[i] = p.previewed
	} else {
		d := *req.Rule
		errs := rules.FieldErrors{}
		for k, v := range d.Normalize() {
			errs[joinPath("rule", k)] = v
		}
		n, pos := len(list), len(list)
		if d.ID != 0 {
			i := indexOf(d.ID)
			if i < 0 {
				errs["rule.id"] = fmt.Sprintf("no rule has id %d; leave the id out to preview a new rule", d.ID)
			} else {
				old := list[i]
				p.replaced = &old
				list = append(list[:i], list[i+1:]...)
				pos = i
				if d.Priority != nil && *d.Priority > n-1 {
					errs["rule.priority"] = fmt.Sprintf("at most %d (the number of rules after the first, as 0 runs first); %d puts the rule last", n-1, n-1)
				}
			}
		} else if d.Priority != nil && *d.Priority > n {
			errs["rule.priority"] = fmt.Sprintf("at most %d (the number of rules); %d, or no priority, puts the rule last", n, n)
		}
		if d.Priority != nil && *d.Priority >= 0 && *d.Priority <= len(list) {
			pos = *d.Priority
		}
		if err := checkRoute(ctx, st, &d, errs); err != nil {
			return nil, err
		}
		if len(errs) > 0 {
			return nil, errs
		}
		list = append(list[:pos], append([]rules.Rule{d}, list[pos:]...)...)
		p.previewed = d
	}
	for i := range list {
		prio := i
		list[i].Priority = &prio
	}
	p.after = list
	return p, nil
}

// alone compiles a rule by itself, enabled and in audit mode, so that
// Evaluate records every recipient it matches, whatever it does and
// whatever the other rules do.
func alone(r rules.Rule) *rules.Set {
	r.Enabled, r.Mode, r.Priority = true, rules.Audit, nil
	return rules.Compile([]rules.Rule{r})
}

// checkRoute is the store's check of a rule's route: the id of an
// outbound connector that exists (disabled or not yet active is fine: the
// rule's on_error decides what delivery does then).
func checkRoute(ctx context.Context, st *store.Store, r *rules.Rule, errs rules.FieldErrors) error {
	id := r.Actions.RouteToOutboundConnector
	if id == nil || *id < 1 {
		return nil
	}
	const field = "rule.actions.route_to_outbound_connector"
	_, err := st.GetConnector(ctx, connector.Outbound, *id)
	if err == nil {
		return nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("preview: check the rule's connector: %w", err)
	}
	in, err := st.GetConnector(ctx, connector.Inbound, *id)
	switch {
	case err == nil:
		errs[field] = fmt.Sprintf("connector %d (%q) is an inbound connector; a rule routes to an outbound connector", *id, in.Name)
	case errors.Is(err, store.ErrNotFound):
		errs[field] = fmt.Sprintf("no outbound connector has id %d", *id)
	default:
		return fmt.Errorf("preview: check the rule's connector: %w", err)
	}
	return nil
}

func joinPath(prefix, key string) string {
	if key == "" {
		return prefix
	}
	return prefix + "." + key
}

func hasHeaderKeys(r *rules.Rule) bool {
	return r.Conditions.HeaderContains != nil || r.Conditions.HeaderMatches != nil ||
		r.Exceptions.HeaderContains != nil || r.Exceptions.HeaderMatches != nil
}

// probe decides, before the header section is read, whether a changed
// rule could match a message: the rule with its header keys left out
// matches a recipient (its other conditions hold, none of its other
// exceptions does, the message's time is within its dates). A rule that
// could not match does nothing, so a message no changed rule could match
// is the same on both sides; and only when a rule with a header key could
// match does the header section decide anything.
type probe struct {
	headerKeys bool       // the rule has a header key
	always     bool       // its only conditions are header keys
	rule       rules.Rule // the rule without its header keys
	set        *rules.Set // rule, alone (see alone)
}

func newProbe(r rules.Rule) *probe {
	p := &probe{headerKeys: hasHeaderKeys(&r), rule: r}
	s := &p.rule
	s.Conditions.HeaderContains, s.Conditions.HeaderMatches = nil, nil
	s.Exceptions.HeaderContains, s.Exceptions.HeaderMatches = nil, nil
	if emptyPredicates(&s.Conditions) {
		p.always = true
		return p
	}
	p.set = alone(*s)
	return p
}

// couldMatch reports whether the rule could match one of the recipients,
// whatever the message's header section.
func (p *probe) couldMatch(now time.Time, m *rules.Message, rcpts []rules.Recipient) bool {
	if p.always {
		return p.rule.ActiveAt(now)
	}
	return anyAudit(p.set.Evaluate(now, m, rcpts))
}

func emptyPredicates(p *rules.Predicates) bool {
	return p.SenderAddressIs == nil && p.SenderDomainIs == nil && p.RecipientAddressIs == nil &&
		p.RecipientDomainIs == nil && p.FromScope == "" && p.SentToScope == "" && p.SenderIPRanges == nil &&
		p.HeaderContains == nil && p.HeaderMatches == nil && p.MessageSizeOver == nil && p.InboundConnectorIs == nil
}

func anyAudit(out []rules.Outcome) bool {
	for i := range out {
		if len(out[i].Audit) > 0 {
			return true
		}
	}
	return false
}

// route is Route, comparable.
type route struct {
	connector, rule    string
	rejected, deferred bool
}

func (r route) public() Route {
	out := Route{Rejected: r.rejected, Deferred: r.deferred}
	if r.connector != "" {
		c := r.connector
		out.Connector = &c
	}
	if r.rule != "" {
		n := r.rule
		out.Rule = &n
	}
	return out
}

// replay is one preview's state. Readers prepare messages (prepare; they
// only read the replay's fields); run's goroutine decides them (decide:
// routes, res).
type replay struct {
	ix            *routing.Index
	before, after *rules.Set
	// previewed and replaced are the previewed rule and the rule it
	// stands in for (nil: none), each alone (see alone).
	previewed, replaced *rules.Set
	probes              []*probe // of the previewed rule and the replaced one
	loadHeaders         bool     // some rule looks at header sections
	inbound             map[int64]*routing.Inbound
	byName              map[string]*routing.Inbound
	routes              map[string]route // recipient domain → SPEC 3.5 route
	res                 *Result
}

// message is one traced message as the replay reads it.
type message struct {
	id          int64
	uid         string
	receivedAt  int64
	rejected    bool // status rejected
	clientIP    string
	sender      string
	size        int64
	inboundID   sql.NullInt64
	inboundName string
	addrs       []string
	ruleRejects bool // a rule rejected one of its recipients when it was received

	// Set by prepare.
	replayed      bool // the message reached the rules
	relevant      bool // a changed rule could match it
	headerDecides bool // a changed rule with a header key could match it
	now           time.Time
	msg           rules.Message
	rcpts         []rules.Recipient
	headerKept    bool // msg.Header is the whole header section
}

// run replays the window's messages in batches of ids, in id order. The
// batches are read and prepared by readers, several at a time (each with
// its own database connection); this goroutine decides them in order. A
// batch is handed out only with a token, which its decision gives back,
// and tokens are taken in batch order: at most a few batches are in
// memory, and the next one to decide always has its token.
func (r *replay) run(ctx context.Context, st *store.Store, from, to int64) error {
	bounds, err := batchBounds(st.DB().WithContext(ctx), from, to)
	if err != nil || len(bounds) == 0 {
		return err
	}
	readers := min(max(runtime.GOMAXPROCS(0), 2), 4)
	ctx, cancel := context.WithCancel(ctx)
	type read struct {
		batch []message
		err   error
	}
	results := make([]chan read, len(bounds))
	for k := range results {
		results[k] = make(chan read, 1)
	}
	tokens := make(chan struct{}, readers+1)
	jobs := make(chan int)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	go func() {
		defer close(jobs)
		for k := range bounds {
			select {
			case tokens <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- k:
			case <-ctx.Done():
				return
			}
		}
	}()
	db := st.DB().WithContext(ctx)
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rd := &reader{replay: r, accepted: map[string]bool{}}
			for k := range jobs {
				end := int64(math.MaxInt64)
				if k+1 < len(bounds) {
					end = bounds[k+1]
				}
				batch, err := rd.readBatch(db, bounds[k], end, from, to)
				results[k] <- read{batch, err}
			}
		}()
	}
	for k := range bounds {
		var rd read
		select {
		case rd = <-results[k]:
		case <-ctx.Done():
			return ctx.Err()
		}
		if rd.err != nil {
			return rd.err
		}
		for i := range rd.batch {
			r.decide(&rd.batch[i])
		}
		<-tokens
	}
	return nil
}

// replayedMessages is the SQL condition on messages that the replay reads:
// received in the window (two parameters), and not the DSNs flowgate
// wrote itself (client_ip "local"), which never went through the rules.
const replayedMessages = "received_at >= ? AND received_at <= ? AND client_ip <> 'local'"

// batchBounds returns the first id of each batch of batchSize messages of
// the window, in order: batch k has the ids from bounds[k] up to
// bounds[k+1].
func batchBounds(db *gorm.DB, from, to int64) ([]int64, error) {
	rows, err := db.Raw(`SELECT id FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS n FROM messages
		WHERE `+replayedMessages+`) w WHERE n % ? = 1 ORDER BY id`, from, to, batchSize).Rows()
	if err != nil {
		return nil, fmt.Errorf("preview: find the window's messages: %w", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("preview: find the window's messages: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("preview: find the window's messages: %w", err)
	}
	return out, nil
}

// reader reads and prepares batches; each reader goroutine has its own.
type reader struct {
	*replay
	accepted map[string]bool // recipient domain → accepted domain
}

// readBatch reads and prepares the messages of the window with ids from
// first up to end, with their recipients and, for the messages a changed
// rule could match, their header sections.
func (r *reader) readBatch(db *gorm.DB, first, end, from, to int64) ([]message, error) {
	batch := make([]message, 0, batchSize)
	rows, err := db.Raw(`SELECT id, uid, received_at, status = ?, client_ip, sender, size, inbound_connector_id, inbound_connector
		FROM messages WHERE id >= ? AND id < ? AND `+replayedMessages+` ORDER BY id`,
		string(queue.Rejected), first, end, from, to).Rows()
	if err != nil {
		return nil, fmt.Errorf("preview: read messages: %w", err)
	}
	for rows.Next() {
		var m message
		if err := rows.Scan(&m.id, &m.uid, &m.receivedAt, &m.rejected, &m.clientIP, &m.sender, &m.size, &m.inboundID, &m.inboundName); err != nil {
			rows.Close()
			return nil, fmt.Errorf("preview: read messages: %w", err)
		}
		batch = append(batch, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("preview: read messages: %w", err)
	}
	if len(batch) == 0 {
		return batch, nil
	}
	if err := readRecipients(db, batch); err != nil {
		return nil, err
	}
	var want []int64
	for i := range batch {
		r.prepare(&batch[i])
		if batch[i].relevant {
			want = append(want, batch[i].id)
		}
	}
	if r.loadHeaders && len(want) > 0 {
		if err := readHeaders(db, batch, want); err != nil {
			return nil, err
		}
	}
	return batch, nil
}

// readRecipients adds their recipients to the messages of batch (in id
// order).
func readRecipients(db *gorm.DB, batch []message) error {
	rows, err := db.Raw(`SELECT message_id, address, rule_on_error = ? FROM message_recipients
		WHERE message_id >= ? AND message_id <= ? ORDER BY message_id, id`, queue.RuleRejects, batch[0].id, batch[len(batch)-1].id).Rows()
	if err != nil {
		return fmt.Errorf("preview: read recipients: %w", err)
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		var id int64
		var addr string
		var ruleRejected bool
		if err := rows.Scan(&id, &addr, &ruleRejected); err != nil {
			return fmt.Errorf("preview: read recipients: %w", err)
		}
		for i < len(batch) && batch[i].id < id {
			i++
		}
		if i < len(batch) && batch[i].id == id {
			batch[i].addrs = append(batch[i].addrs, addr)
			batch[i].ruleRejects = batch[i].ruleRejects || ruleRejected
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("preview: read recipients: %w", err)
	}
	return nil
}

// readHeaders adds their kept header sections to the messages of batch (in
// id order) whose ids are listed (in order): by id range when they are
// most of the batch, else by their ids.
func readHeaders(db *gorm.DB, batch []message, ids []int64) error {
	var q *gorm.DB
	if 2*len(ids) > len(batch) {
		q = db.Raw(`SELECT message_id, section FROM message_headers
			WHERE message_id >= ? AND message_id <= ? ORDER BY message_id`, ids[0], ids[len(ids)-1])
	} else {
		q = db.Raw(`SELECT message_id, section FROM message_headers WHERE message_id IN ? ORDER BY message_id`, ids)
	}
	rows, err := q.Rows()
	if err != nil {
		return fmt.Errorf("preview: read header sections: %w", err)
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		var id int64
		var section []byte
		if err := rows.Scan(&id, &section); err != nil {
			return fmt.Errorf("preview: read header sections: %w", err)
		}
		for i < len(batch) && batch[i].id < id {
			i++
		}
		if i < len(batch) && batch[i].id == id && batch[i].relevant {
			if section == nil {
				section = []byte{}
			}
			batch[i].msg.Header = section
			batch[i].headerKept = !mayBeCut(section, batch[i].size)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("preview: read header sections: %w", err)
	}
	return nil
}

// mayBeCut reports whether a kept header section was cut at
// queue.MaxKeptHeader: queue.HeaderSection keeps the empty line that ends
// a whole section, so a section without it that is not the whole message
// was cut.
func mayBeCut(section []byte, size int64) bool {
	whole := bytes.HasSuffix(section, []byte("\n\n")) || bytes.HasSuffix(section, []byte("\n\r\n"))
	return !whole && size > int64(len(section))
}

// prepare builds what the rules look at for a message, but its header
// section, and runs the probes.
func (r *reader) prepare(m *message) {
	if len(m.addrs) == 0 {
		return // nothing to route
	}
	if m.rejected && !m.ruleRejects {
		return // refused before the rules ran
	}
	m.replayed = true
	m.now = queue.FromMicros(m.receivedAt)
	m.msg = rules.Message{Sender: m.sender, Size: m.size}
	if ip, err := netip.ParseAddr(m.clientIP); err == nil {
		m.msg.ClientIP = ip
	}
	if m.inboundID.Valid || m.inboundName != "" {
		c := r.inbound[m.inboundID.Int64]
		if c == nil {
			c = r.byName[strings.ToLower(m.inboundName)]
		}
		if c != nil {
			m.msg.InboundConnector = c.Name
			m.msg.FromOrganization = c.Spec.ConnectorType == connector.OnPremises
		} else {
			m.msg.InboundConnector = m.inboundName
		}
	}
	m.rcpts = make([]rules.Recipient, len(m.addrs))
	for i, a := range m.addrs {
		d := domainOf(a)
		ours, ok := r.accepted[d]
		if !ok {
			_, ours = r.ix.Accepted(d)
			if len(r.accepted) < maxCachedDomains {
				r.accepted[d] = ours
			}
		}
		m.rcpts[i] = rules.Recipient{Address: a, InOrganization: ours}
	}
	for _, p := range r.probes {
		if p.couldMatch(m.now, &m.msg, m.rcpts) {
			m.relevant = true
			m.headerDecides = m.headerDecides || p.headerKeys
		}
	}
}

// decide replays one prepared message.
func (r *replay) decide(m *message) {
	if !m.replayed {
		return
	}
	r.res.Considered++
	if !m.relevant {
		return // no changed rule matches: both sides are the same
	}
	if m.headerDecides && !m.headerKept {
		r.res.Undecidable++
		return
	}
	now, msg, rcpts := m.now, &m.msg, m.rcpts
	matched := anyAudit(r.previewed.Evaluate(now, msg, rcpts))
	if matched {
		r.res.Matched++
	}
	if !matched && (r.replaced == nil || !anyAudit(r.replaced.Evaluate(now, msg, rcpts))) {
		// Neither changed rule matches a recipient: a rule that does not
		// match does nothing (not even stop processing), so both sides
		// are the same.
		return
	}
	before := r.before.Evaluate(now, msg, rcpts)
	after := r.after.Evaluate(now, msg, rcpts)
	for i := range rcpts {
		d := domainOf(rcpts[i].Address)
		b, a := r.route(&before[i], d), r.route(&after[i], d)
		if a == b {
			continue
		}
		r.res.ChangedTotal++
		if len(r.res.Changed) >= MaxChanged {
			r.res.Truncated = true
			continue
		}
		r.res.Changed = append(r.res.Changed, Change{MessageID: m.uid, Recipient: rcpts[i].Address, Before: b.public(), After: a.public()})
	}
}

// route is a recipient's route given the rules' outcome for it.
func (r *replay) route(o *rules.Outcome, domain string) route {
	switch {
	case o.Reject != nil:
		return route{rule: o.Reject.Rule, rejected: true}
	case o.Route != nil:
		if c, ok := r.ix.OutboundByID(o.Route.ConnectorID); ok {
			return route{connector: c.Name, rule: o.Route.Rule}
		}
		if o.Route.OnError != rules.Ignore {
			return route{rule: o.Route.Rule, deferred: true}
		}
	}
	if rt, ok := r.routes[domain]; ok {
		return rt
	}
	var rt route
	switch ir := r.ix.Route(domain); ir.Kind {
	case routing.ViaConnector:
		rt.connector = ir.Connector.Name
	case routing.Defer:
		rt.deferred = true
	}
	if len(r.routes) < maxCachedDomains {
		r.routes[domain] = rt
	}
	return rt
}

// maxCachedDomains bounds the replay's caches of per-domain answers.
const maxCachedDomains = 100000

func domainOf(address string) string { return address[strings.LastIndexByte(address, '@')+1:] }
