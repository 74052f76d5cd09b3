package rules

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
)

// Message is what the rules look at once per message.
type Message struct {
	// Sender is the envelope sender (MAIL FROM); "" or "<>" is the null
	// sender, which has no domain and matches no sender key.
	Sender   string
	ClientIP netip.Addr
	// InboundConnector is the name of the inbound connector the message
	// came through; "" for none.
	InboundConnector string
	// FromOrganization is true when the message came through an
	// on_premises inbound connector (from_scope in_organization).
	FromOrganization bool
	// Header is the raw header section (the body may follow an empty
	// line). Nil when it was not kept: no header key holds then.
	Header []byte
	Size   int64
}

// Recipient is one envelope recipient.
type Recipient struct {
	Address string
	// InOrganization is true when the recipient's domain is an accepted
	// domain (sent_to_scope in_organization).
	InOrganization bool
}

// Outcome is what the rules decided for one recipient.
type Outcome struct {
	Recipient string
	// Route is set when an enforce rule routes the recipient; nil when
	// the usual routing applies (SPEC 3.5) or the recipient is rejected.
	Route *Route
	// Reject is set when an enforce rule rejects the recipient.
	Reject *Rejection
	// Audit lists the audit rules that matched, in priority order.
	Audit []AuditHit
	// Trace has one entry per rule of the Set, in priority order; only
	// Explain fills it.
	Trace []RuleResult
}

// Route is the outbound connector a rule chose.
type Route struct {
	ConnectorID int64
	RuleID      int64
	Rule        string
	OnError     OnError
}

// Rejection is the reply a rule rejects the recipient with.
type Rejection struct {
	RuleID int64
	Rule   string
	Reject Reject
}

// AuditHit records an audit rule that matched and what it would have done.
type AuditHit struct {
	RuleID      int64
	Rule        string
	ConnectorID int64   // the connector it would route to; 0 when it would reject
	Reject      *Reject // the reply it would reject with; nil when it would route
	// Would says it in words: "would route to connector 12",
	// "would reject with 550 5.7.1 Delivery not authorized, message refused".
	Would string
}

// RuleResult says what one rule did for one recipient, and why.
type RuleResult struct {
	RuleID int64
	Name   string
	Mode   Mode
	// Matched: the rule applies to the recipient (its conditions hold,
	// none of its exceptions does, it is within its dates).
	Matched bool
	// Applied: its action took effect (never for an audit rule).
	Applied bool
	Detail  string
}

// Set is an immutable, compiled rule set; Compile makes one. It is safe for
// concurrent use; a nil *Set holds no rules.
type Set struct {
	rules []compiled // in priority order

	headerIDs   map[string]int // lowercased header name → index
	headerNames []string

	anchors anchors
}

type compiled struct {
	rule    Rule   // normalized; as given when invalid
	invalid string // why the rule is never applied: its field errors
	cond    matcher
	exc     matcher
	would   string // what the action does, in words: "would route to connector 12"
}

// Compile builds a Set from rules: the enabled ones, in priority order
// (rules without a priority last; ties keep the order given). Each rule is
// normalized (a copy: rules is not modified) and its patterns compiled
// once, here. A rule that does not normalize cleanly (the store never holds
// one) is kept but never applies; Explain says why.
func Compile(rules []Rule) *Set {
	s := &Set{headerIDs: map[string]int{}, anchors: newAnchors()}
	var enabled []Rule
	for _, r := range rules {
		if r.Enabled {
			enabled = append(enabled, r)
		}
	}
	sort.SliceStable(enabled, func(i, j int) bool {
		a, b := enabled[i].Priority, enabled[j].Priority
		return a != nil && (b == nil || *a < *b)
	})
	s.rules = make([]compiled, len(enabled))
	for i, r := range enabled {
		c := &s.rules[i]
		n := r
		errs := FieldErrors{}
		var condRE, excRE []*regexp.Regexp
		n.normalize(errs, &condRE, &excRE)
		if len(errs) > 0 {
			c.rule, c.invalid = r, strings.TrimPrefix(errs.Error(), "invalid rule: ")
			continue
		}
		c.rule = n
		c.cond = s.matcher(&n.Conditions, condRE)
		c.exc = s.matcher(&n.Exceptions, excRE)
		if id := n.Actions.RouteToOutboundConnector; id != nil {
			c.would = fmt.Sprintf("would route to connector %d", *id)
		} else {
			c.would = "would reject with " + n.Actions.Reject.String()
		}
		if n.Actions.StopProcessing {
			c.would += " and stop processing"
		}
		s.anchors.add(int32(i), &c.cond)
	}
	s.anchors.finish(len(s.headerNames))
	return s
}

// matcher compiles predicates; res are their header_matches patterns,
// compiled by normalize.
func (s *Set) matcher(p *Predicates, res []*regexp.Regexp) matcher {
	m := matcher{}
	if p.RecipientAddressIs != nil {
		m.keys, m.recipientAddrs = append(m.keys, keyRecipientAddress), newSet(p.RecipientAddressIs)
	}
	if p.RecipientDomainIs != nil {
		m.keys, m.recipientDomains = append(m.keys, keyRecipientDomain), newSet(p.RecipientDomainIs)
	}
	if p.SenderAddressIs != nil {
		m.keys, m.senderAddrs = append(m.keys, keySenderAddress), newSet(p.SenderAddressIs)
	}
	if p.SenderDomainIs != nil {
		m.keys, m.senderDomains = append(m.keys, keySenderDomain), newSet(p.SenderDomainIs)
	}
	if p.FromScope != "" {
		m.keys, m.fromScope = append(m.keys, keyFromScope), p.FromScope
	}
	if p.SentToScope != "" {
		m.keys, m.sentToScope = append(m.keys, keySentToScope), p.SentToScope
	}
	if p.InboundConnectorIs != nil {
		m.keys, m.inboundConnector = append(m.keys, keyInboundConnector), newSet(p.InboundConnectorIs)
	}
	if p.MessageSizeOver != nil {
		m.keys, m.sizeOver = append(m.keys, keyMessageSize), *p.MessageSizeOver
	}
	if p.SenderIPRanges != nil {
		m.keys = append(m.keys, keySenderIP)
		for _, r := range p.SenderIPRanges {
			if spec, err := connector.ParseIPSpec(r); err == nil {
				m.ips = append(m.ips, spec)
			}
		}
	}
	if p.HeaderContains != nil {
		m.keys = append(m.keys, keyHeaderContains)
		var names []string
		for _, hw := range p.HeaderContains {
			t := containsTest{header: s.headerID(hw.Header), name: hw.Header, words: hw.Words}
			for _, w := range hw.Words {
				t.lower = append(t.lower, strings.ToLower(w))
			}
			m.contains = append(m.contains, t)
			names = appendNew(names, hw.Header)
		}
		m.containsFields = strings.Join(names, " or ")
	}
	if p.HeaderMatches != nil {
		m.keys = append(m.keys, keyHeaderMatches)
		var names []string
		for i, hp := range p.HeaderMatches {
			prefix, _ := res[i].LiteralPrefix()
			m.matches = append(m.matches, matchTest{header: s.headerID(hp.Header), name: hp.Header, pattern: res[i], prefix: prefix})
			names = appendNew(names, hp.Header)
		}
		m.matchesFields = strings.Join(names, " or ")
	}
	slices.Sort(m.keys)
	for _, k := range m.keys {
		if isRecipientKey(k) {
			m.recipientKeys++
		}
	}
	return m
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

func (s *Set) headerID(name string) int {
	k := strings.ToLower(name)
	id, ok := s.headerIDs[k]
	if !ok {
		id = len(s.headerNames)
		s.headerIDs[k] = id
		s.headerNames = append(s.headerNames, name)
	}
	return id
}

// Len returns the number of rules in the set: the enabled rules given to
// Compile.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.rules)
}

// Rules returns the set's rules in priority order, normalized. They share
// their lists with the Set: do not modify them.
func (s *Set) Rules() []Rule {
	if s == nil {
		return nil
	}
	out := make([]Rule, len(s.rules))
	for i := range s.rules {
		out[i] = s.rules[i].rule
	}
	return out
}

// NeedsHeaders reports whether some rule has a header key (in its
// conditions or exceptions): only then is Message.Header looked at.
func (s *Set) NeedsHeaders() bool { return s != nil && len(s.headerNames) > 0 }

// Evaluate applies the rules to a message, recipient by recipient, at time
// now, and returns one Outcome per recipient in the order given (SPEC 7):
//
//   - the enabled rules within their dates (activation <= now < expiry)
//     are taken in priority order; a rule matches a recipient when all
//     its conditions hold and none of its exceptions does;
//   - a matching audit rule adds an AuditHit and nothing else: it never
//     routes, rejects or stops processing;
//   - the first matching enforce rule that routes sets the Route; later
//     routing rules are not applied;
//   - the first matching enforce rule that rejects rejects the recipient,
//     even when an earlier rule routed it (Route is then cleared): SPEC 7
//     says "a rejecting enforce rule rejects the recipient" without
//     exception, and only later *routing* rules are not applied. Only
//     stop_processing of an earlier rule prevents a rejection. Rules
//     after a rejection are still evaluated (audit rules still record)
//     but none is applied;
//   - a matching enforce rule with stop_processing ends processing for the
//     recipient after it, whether or not its own action was applied.
//
// Only the rules whose anchor holds are tested (see anchors). The header
// section is scanned once per message, for the fields some rule needs,
// and each rule's message keys are tested at most once per message; only
// recipient keys are tested per recipient. Outcome.Trace is left empty;
// Explain fills it.
func (s *Set) Evaluate(now time.Time, m *Message, rcpts []Recipient) []Outcome {
	return s.evaluate(now, m, rcpts, false)
}

// Explain is Evaluate with Outcome.Trace filled: every rule of the set, in
// priority order, with whether it matched, whether it was applied, and
// why. It tests every rule (no index) and is meant for the route test and
// the message trace, not for the hot path; its decisions are Evaluate's.
func (s *Set) Explain(now time.Time, m *Message, rcpts []Recipient) []Outcome {
	return s.evaluate(now, m, rcpts, true)
}

func (s *Set) evaluate(now time.Time, m *Message, rcpts []Recipient, explain bool) []Outcome {
	out := make([]Outcome, len(rcpts))
	for i := range rcpts {
		out[i].Recipient = rcpts[i].Address
	}
	if s == nil || len(s.rules) == 0 || len(rcpts) == 0 {
		return out
	}
	if m == nil {
		m = &Message{}
	}
	mf := s.prepare(m)
	var ev evaluation
	if !explain {
		ev.init(s, now, &mf)
	}
	for i := range rcpts {
		st := recipientState{o: &out[i], explain: explain, ev: &ev}
		var rf rcptFacts
		rf.addr, rf.domain = envelopeAddress(rcpts[i].Address)
		rf.inOrganization = rcpts[i].InOrganization
		if explain {
			st.o.Trace = make([]RuleResult, 0, len(s.rules))
			for j := range s.rules {
				s.step(&st, int32(j), now, &mf, &rf)
			}
			continue
		}
		ev.candidates(&rf, func(j int32) bool {
			s.step(&st, j, now, &mf, &rf)
			return st.stopped == ""
		})
	}
	return out
}

// prepare computes the message facts, decoding the header fields the rules
// need.
func (s *Set) prepare(m *Message) msgFacts {
	mf := msgFacts{
		clientIP:         m.ClientIP.Unmap(),
		fromOrganization: m.FromOrganization,
		size:             m.Size,
	}
	mf.senderAddr, mf.senderDomain = envelopeAddress(m.Sender)
	mf.inbound = strings.ToLower(strings.TrimSpace(m.InboundConnector))
	if len(s.headerNames) > 0 && m.Header != nil {
		mf.headersKept = true
		mf.fields = make([][]field, len(s.headerNames))
		var lower [MaxHeaderNameLen]byte
		scanFields(m.Header, func(name, value []byte) {
			if len(name) > len(lower) {
				return
			}
			for i, c := range name {
				if c >= 'A' && c <= 'Z' {
					c += 'a' - 'A'
				}
				lower[i] = c
			}
			if id, ok := s.headerIDs[string(lower[:len(name)])]; ok {
				mf.fields[id] = append(mf.fields[id], field{value: decodeValue(value)})
			}
		})
	}
	return mf
}

// recipientState is the decision so far for one recipient.
type recipientState struct {
	o       *Outcome
	explain bool
	ev      *evaluation // the message's cached results; nil when explaining
	routed  string      // the rule that routed the recipient
	stopped string      // the rule whose stop_processing ended processing
}

// step applies one rule to one recipient.
func (s *Set) step(st *recipientState, j int32, now time.Time, mf *msgFacts, rf *rcptFacts) {
	c := &s.rules[j]
	r := &c.rule
	switch {
	case st.stopped != "":
		if st.explain {
			st.trace(c, false, false, "not evaluated: stop_processing of rule %q ended processing for this recipient", st.stopped)
		}
		return
	case c.invalid != "":
		if st.explain {
			st.trace(c, false, false, "not evaluated: the rule is invalid: %s", c.invalid)
		}
		return
	case !r.ActiveAt(now):
		if st.explain {
			st.trace(c, false, false, "not evaluated: outside its dates (%s)", dates(r))
		}
		return
	}
	var held string
	if st.explain {
		ok, why := c.cond.all(mf, rf, true)
		if !ok {
			st.trace(c, false, false, "a condition does not hold: %s", why)
			return
		}
		held = why
		if hit, why := c.exc.any(mf, rf, true); hit {
			st.trace(c, false, false, "excepted: %s", why)
			return
		}
	} else if !st.ev.matches(j, rf) {
		return
	}
	a := &r.Actions
	if r.Mode == Audit {
		hit := AuditHit{RuleID: r.ID, Rule: r.Name, Would: c.would}
		if a.RouteToOutboundConnector != nil {
			hit.ConnectorID = *a.RouteToOutboundConnector
		} else {
			rj := *a.Reject
			hit.Reject = &rj
		}
		st.o.Audit = append(st.o.Audit, hit)
		if st.explain {
			st.trace(c, true, false, "audit: %s (%s)", c.would, held)
		}
		return
	}
	switch {
	case st.o.Reject != nil:
		if st.explain {
			st.trace(c, true, false, "not applied: rule %q already rejected this recipient (%s)", st.o.Reject.Rule, held)
		}
	case a.Reject != nil:
		st.o.Reject = &Rejection{RuleID: r.ID, Rule: r.Name, Reject: *a.Reject}
		switch {
		case !st.explain:
		case st.o.Route != nil:
			st.trace(c, true, true, "rejects with %s, overriding the route of rule %q (%s)", a.Reject, st.routed, held)
		default:
			st.trace(c, true, true, "rejects with %s (%s)", a.Reject, held)
		}
		st.o.Route = nil
	case st.routed != "":
		if st.explain {
			st.trace(c, true, false, "not applied: rule %q already routed this recipient (%s)", st.routed, held)
		}
	default:
		st.o.Route = &Route{ConnectorID: *a.RouteToOutboundConnector, RuleID: r.ID, Rule: r.Name, OnError: r.OnError}
		st.routed = r.Name
		if st.explain {
			st.trace(c, true, true, "routes to connector %d (%s)", *a.RouteToOutboundConnector, held)
		}
	}
	if a.StopProcessing {
		st.stopped = r.Name
	}
}

// trace records a RuleResult; callers call it only when explaining, so
// that the hot path builds no arguments.
func (st *recipientState) trace(c *compiled, matched, applied bool, format string, args ...any) {
	st.o.Trace = append(st.o.Trace, RuleResult{
		RuleID: c.rule.ID, Name: c.rule.Name, Mode: c.rule.Mode,
		Matched: matched, Applied: applied, Detail: fmt.Sprintf(format, args...),
	})
}

func dates(r *Rule) string {
	var parts []string
	if r.ActivationDate != nil {
		parts = append(parts, "active from "+r.ActivationDate.Format(time.RFC3339))
	}
	if r.ExpiryDate != nil {
		parts = append(parts, "expired at "+r.ExpiryDate.Format(time.RFC3339))
	}
	return strings.Join(parts, ", ")
}
