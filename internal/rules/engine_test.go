package rules_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/rules"
)

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// routing returns an enabled enforce rule that routes to connector id.
func routing(name string, priority int, cond rules.Predicates, id int64) rules.Rule {
	return rules.Rule{Name: name, Priority: ptr(priority), Enabled: true, Conditions: cond,
		Actions: rules.Actions{RouteToOutboundConnector: ptr(id)}}
}

// rejecting returns an enabled enforce rule that rejects with the defaults.
func rejecting(name string, priority int, cond rules.Predicates) rules.Rule {
	return rules.Rule{Name: name, Priority: ptr(priority), Enabled: true, Conditions: cond,
		Actions: rules.Actions{Reject: &rules.Reject{}}}
}

// compile compiles rules that must all be valid.
func compile(t testing.TB, rs ...rules.Rule) *rules.Set {
	t.Helper()
	for _, r := range rs {
		if errs := r.Normalize(); errs != nil {
			t.Fatalf("rule %q: %v", r.Name, errs)
		}
	}
	return rules.Compile(rs)
}

// evaluate runs Evaluate and Explain and fails when they disagree.
func evaluate(t *testing.T, s *rules.Set, m *rules.Message, rcpts ...rules.Recipient) []rules.Outcome {
	t.Helper()
	fast := s.Evaluate(now, m, rcpts)
	slow := s.Explain(now, m, rcpts)
	if len(fast) != len(rcpts) || len(slow) != len(rcpts) {
		t.Fatalf("%d and %d outcomes for %d recipients", len(fast), len(slow), len(rcpts))
	}
	for i := range fast {
		if !sameDecision(fast[i], slow[i]) {
			t.Fatalf("recipient %d: Evaluate and Explain disagree:\n%s\n%s", i, describe(fast[i]), describe(slow[i]))
		}
		if fast[i].Trace != nil {
			t.Fatal("Evaluate filled the trace")
		}
		if len(slow[i].Trace) != s.Len() {
			t.Fatalf("Explain traced %d rules of %d", len(slow[i].Trace), s.Len())
		}
	}
	return slow
}

func sameDecision(a, b rules.Outcome) bool {
	if a.Recipient != b.Recipient || (a.Route == nil) != (b.Route == nil) || (a.Reject == nil) != (b.Reject == nil) || len(a.Audit) != len(b.Audit) {
		return false
	}
	if a.Route != nil && *a.Route != *b.Route || a.Reject != nil && *a.Reject != *b.Reject {
		return false
	}
	for i := range a.Audit {
		x, y := a.Audit[i], b.Audit[i]
		if x.Rule != y.Rule || x.ConnectorID != y.ConnectorID || x.Would != y.Would || (x.Reject == nil) != (y.Reject == nil) {
			return false
		}
	}
	return true
}

func describe(o rules.Outcome) string {
	var b strings.Builder
	b.WriteString(o.Recipient + ":")
	if o.Route != nil {
		b.WriteString(" route " + o.Route.Rule)
	}
	if o.Reject != nil {
		b.WriteString(" reject " + o.Reject.Rule)
	}
	for _, h := range o.Audit {
		b.WriteString(" audit " + h.Rule)
	}
	for _, r := range o.Trace {
		b.WriteString("\n  " + r.Name + ": " + r.Detail)
	}
	return b.String()
}

const hdr = "From: a@contoso.com\r\nSubject: [EXT] Quarterly report\r\nX-Classification: Highly CONFIDENTIAL\r\n\r\nbody"

func TestConditionKeys(t *testing.T) {
	msg := func(change func(m *rules.Message)) *rules.Message {
		m := &rules.Message{Sender: "john@contoso.com", ClientIP: netip.MustParseAddr("192.0.2.7"),
			InboundConnector: "Partner A", Header: []byte(hdr), Size: 2000}
		if change != nil {
			change(m)
		}
		return m
	}
	sender := func(s string) func(m *rules.Message) { return func(m *rules.Message) { m.Sender = s } }
	ip := func(s string) func(m *rules.Message) {
		return func(m *rules.Message) { m.ClientIP = netip.MustParseAddr(s) }
	}
	header := func(h string) func(m *rules.Message) { return func(m *rules.Message) { m.Header = []byte(h) } }
	to := func(a string) rules.Recipient { return rules.Recipient{Address: a} }
	bob := to("bob@fabrikam.com")

	cases := []struct {
		name string
		cond rules.Predicates
		m    *rules.Message
		rcpt rules.Recipient
		want bool
	}{
		{"sender address", rules.Predicates{SenderAddressIs: []string{"John@Contoso.com"}}, msg(sender("JOHN@contoso.COM")), bob, true},
		{"sender address in brackets", rules.Predicates{SenderAddressIs: []string{"john@contoso.com"}}, msg(sender("<john@contoso.com>")), bob, true},
		{"sender address, other", rules.Predicates{SenderAddressIs: []string{"john@contoso.com"}}, msg(sender("jane@contoso.com")), bob, false},
		{"sender address, subdomain", rules.Predicates{SenderAddressIs: []string{"john@contoso.com"}}, msg(sender("john@sales.contoso.com")), bob, false},
		{"sender address, null sender", rules.Predicates{SenderAddressIs: []string{"john@contoso.com"}}, msg(sender("")), bob, false},
		{"sender address, second value", rules.Predicates{SenderAddressIs: []string{"x@y.com", "john@contoso.com"}}, msg(nil), bob, true},
		{"sender domain", rules.Predicates{SenderDomainIs: []string{"contoso.com"}}, msg(nil), bob, true},
		{"sender domain, subdomain", rules.Predicates{SenderDomainIs: []string{"contoso.com"}}, msg(sender("a@Mail.Sales.CONTOSO.com.")), bob, true},
		{"sender domain, suffix only", rules.Predicates{SenderDomainIs: []string{"contoso.com"}}, msg(sender("a@notcontoso.com")), bob, false},
		{"sender domain, as a prefix", rules.Predicates{SenderDomainIs: []string{"contoso.com"}}, msg(sender("a@contoso.com.evil.example")), bob, false},
		{"sender domain, null sender", rules.Predicates{SenderDomainIs: []string{"contoso.com"}}, msg(sender("<>")), bob, false},
		{"sender domain, IDN", rules.Predicates{SenderDomainIs: []string{"bücher.example"}}, msg(sender("a@BÜCHER.example")), bob, true},
		{"recipient address", rules.Predicates{RecipientAddressIs: []string{"Bob@Fabrikam.com"}}, msg(nil), to("BOB@fabrikam.COM"), true},
		{"recipient address, other", rules.Predicates{RecipientAddressIs: []string{"bob@fabrikam.com"}}, msg(nil), to("bob@sales.fabrikam.com"), false},
		{"recipient domain", rules.Predicates{RecipientDomainIs: []string{"fabrikam.com"}}, msg(nil), bob, true},
		{"recipient domain, subdomain", rules.Predicates{RecipientDomainIs: []string{"fabrikam.com"}}, msg(nil), to("a@sales.fabrikam.com"), true},
		{"recipient domain, deep subdomain", rules.Predicates{RecipientDomainIs: []string{"sales.fabrikam.com"}}, msg(nil), to("a@x.y.Sales.Fabrikam.com"), true},
		{"recipient domain, parent", rules.Predicates{RecipientDomainIs: []string{"sales.fabrikam.com"}}, msg(nil), bob, false},
		{"recipient domain, suffix only", rules.Predicates{RecipientDomainIs: []string{"fabrikam.com"}}, msg(nil), to("a@xfabrikam.com"), false},
		{"recipient domain, no domain", rules.Predicates{RecipientDomainIs: []string{"fabrikam.com"}}, msg(nil), to("postmaster"), false},
		{"recipient domain, punycode", rules.Predicates{RecipientDomainIs: []string{"bücher.example"}}, msg(nil), to("a@xn--bcher-kva.example"), true},
		{"from in organization", rules.Predicates{FromScope: rules.InOrganization}, msg(func(m *rules.Message) { m.FromOrganization = true }), bob, true},
		{"from in organization, external", rules.Predicates{FromScope: rules.InOrganization}, msg(nil), bob, false},
		{"from outside", rules.Predicates{FromScope: rules.NotInOrganization}, msg(nil), bob, true},
		{"from outside, internal", rules.Predicates{FromScope: rules.NotInOrganization}, msg(func(m *rules.Message) { m.FromOrganization = true }), bob, false},
		{"sent to organization", rules.Predicates{SentToScope: rules.InOrganization}, msg(nil), rules.Recipient{Address: "a@contoso.com", InOrganization: true}, true},
		{"sent to organization, external", rules.Predicates{SentToScope: rules.InOrganization}, msg(nil), bob, false},
		{"sent outside", rules.Predicates{SentToScope: rules.NotInOrganization}, msg(nil), bob, true},
		{"sent outside, internal", rules.Predicates{SentToScope: rules.NotInOrganization}, msg(nil), rules.Recipient{Address: "a@contoso.com", InOrganization: true}, false},
		{"IP in CIDR", rules.Predicates{SenderIPRanges: []string{"192.0.2.0/24"}}, msg(nil), bob, true},
		{"IP mapped", rules.Predicates{SenderIPRanges: []string{"192.0.2.0/24"}}, msg(ip("::ffff:192.0.2.9")), bob, true},
		{"IP outside", rules.Predicates{SenderIPRanges: []string{"192.0.2.0/24"}}, msg(ip("198.51.100.1")), bob, false},
		{"IP in range", rules.Predicates{SenderIPRanges: []string{"10.0.0.1", "2001:db8::1-2001:db8::ff"}}, msg(ip("2001:db8::10")), bob, true},
		{"IP single", rules.Predicates{SenderIPRanges: []string{"10.0.0.1", "2001:db8::1-2001:db8::ff"}}, msg(ip("10.0.0.1")), bob, true},
		{"IP unknown", rules.Predicates{SenderIPRanges: []string{"0.0.0.0/0", "2000::/3"}}, msg(func(m *rules.Message) { m.ClientIP = netip.Addr{} }), bob, false},
		{"size over", rules.Predicates{MessageSizeOver: ptr[int64](1999)}, msg(nil), bob, true},
		{"size equal", rules.Predicates{MessageSizeOver: ptr[int64](2000)}, msg(nil), bob, false},
		{"size over 0", rules.Predicates{MessageSizeOver: ptr[int64](0)}, msg(func(m *rules.Message) { m.Size = 0 }), bob, false},
		{"inbound connector", rules.Predicates{InboundConnectorIs: []string{"partner a"}}, msg(nil), bob, true},
		{"inbound connector, other", rules.Predicates{InboundConnectorIs: []string{"Partner B"}}, msg(nil), bob, false},
		{"inbound connector, none", rules.Predicates{InboundConnectorIs: []string{"Partner A"}}, msg(func(m *rules.Message) { m.InboundConnector = "" }), bob, false},
		{"header contains", rules.Predicates{HeaderContains: []rules.HeaderWords{{Header: "X-Classification", Words: []string{"public", "confidential"}}}}, msg(nil), bob, true},
		{"header contains, other words", rules.Predicates{HeaderContains: []rules.HeaderWords{{Header: "X-Classification", Words: []string{"public"}}}}, msg(nil), bob, false},
		{"header contains, other field", rules.Predicates{HeaderContains: []rules.HeaderWords{{Header: "Subject", Words: []string{"confidential"}}}}, msg(nil), bob, false},
		{"header contains, second entry", rules.Predicates{HeaderContains: []rules.HeaderWords{
			{Header: "Subject", Words: []string{"nothing"}}, {Header: "x-classification", Words: []string{"Confidential"}}}}, msg(nil), bob, true},
		{"header contains, no header kept", rules.Predicates{HeaderContains: []rules.HeaderWords{{Header: "X-Classification", Words: []string{"confidential"}}}},
			msg(func(m *rules.Message) { m.Header = nil }), bob, false},
		{"header contains, in the body", rules.Predicates{HeaderContains: []rules.HeaderWords{{Header: "Subject", Words: []string{"body"}}}},
			msg(header("Subject: hi\r\n\r\nSubject: body\r\n")), bob, false},
		{"header contains, repeated field", rules.Predicates{HeaderContains: []rules.HeaderWords{{Header: "Received", Words: []string{"relay2"}}}},
			msg(header("Received: from relay1\r\nSubject: x\r\nReceived: from relay2\r\n\r\n")), bob, true},
		{"header contains, encoded", rules.Predicates{HeaderContains: []rules.HeaderWords{{Header: "Subject", Words: []string{"ÉTÉ"}}}},
			msg(header("Subject: =?UTF-8?B?w6l0w6k=?=\r\n\r\n")), bob, true},
		{"header contains, folded", rules.Predicates{HeaderContains: []rules.HeaderWords{{Header: "Subject", Words: []string{"quarterly report"}}}},
			msg(header("Subject: the quarterly\r\n report\r\n\r\n")), bob, true},
		{"header matches", rules.Predicates{HeaderMatches: []rules.HeaderPattern{{Header: "Subject", Pattern: `^\[EXT\]`}}}, msg(nil), bob, true},
		{"header matches, case-sensitive", rules.Predicates{HeaderMatches: []rules.HeaderPattern{{Header: "Subject", Pattern: `^\[ext\]`}}}, msg(nil), bob, false},
		{"header matches, (?i)", rules.Predicates{HeaderMatches: []rules.HeaderPattern{{Header: "Subject", Pattern: `(?i)^\[ext\]`}}}, msg(nil), bob, true},
		{"header matches, anchored", rules.Predicates{HeaderMatches: []rules.HeaderPattern{{Header: "Subject", Pattern: `^Quarterly`}}}, msg(nil), bob, false},
		{"header matches, decoded Latin-1", rules.Predicates{HeaderMatches: []rules.HeaderPattern{{Header: "Subject", Pattern: `^café au lait$`}}},
			msg(header("Subject: =?ISO-8859-1?Q?caf=E9?=\r\n =?ISO-8859-1?Q?_au_lait?=\r\n\r\n")), bob, true},
		{"keys are ANDed", rules.Predicates{SenderDomainIs: []string{"contoso.com"}, RecipientDomainIs: []string{"fabrikam.com"}, MessageSizeOver: ptr[int64](5000)}, msg(nil), bob, false},
		{"keys are ANDed, all hold", rules.Predicates{SenderDomainIs: []string{"contoso.com"}, RecipientDomainIs: []string{"fabrikam.com"}, MessageSizeOver: ptr[int64](1000),
			HeaderMatches: []rules.HeaderPattern{{Header: "Subject", Pattern: "report$"}}}, msg(nil), bob, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := compile(t, routing("r", 0, c.cond, 12))
			o := evaluate(t, s, c.m, c.rcpt)[0]
			if got := o.Route != nil; got != c.want {
				t.Fatalf("matched = %v, want %v\n%s", got, c.want, describe(o))
			}
			if c.want && (o.Route.ConnectorID != 12 || o.Route.Rule != "r" || o.Route.OnError != rules.Defer) {
				t.Errorf("route = %+v", *o.Route)
			}
			if tr := o.Trace[0]; tr.Matched != c.want || tr.Applied != c.want || tr.Detail == "" {
				t.Errorf("trace = %+v", tr)
			}
		})
	}
}

func TestExceptions(t *testing.T) {
	r := routing("legal", 0, rules.Predicates{RecipientDomainIs: []string{"fabrikam.com"}}, 12)
	r.Exceptions = rules.Predicates{
		SenderAddressIs: []string{"ceo@contoso.com"},
		HeaderContains:  []rules.HeaderWords{{Header: "X-Bypass", Words: []string{"yes"}}},
	}
	s := compile(t, r)
	cases := []struct {
		name   string
		m      rules.Message
		routed bool
		detail string
	}{
		{"no exception holds", rules.Message{Sender: "bob@contoso.com", Header: []byte("X-Bypass: no\r\n")}, true, "routes to connector 12"},
		{"the first holds", rules.Message{Sender: "CEO@contoso.com"}, false, "excepted: sender_address_is matched ceo@contoso.com"},
		{"the second holds", rules.Message{Sender: "bob@contoso.com", Header: []byte("X-Bypass: YES\r\n")}, false, `excepted: header_contains: X-Bypass contains "yes"`},
		{"both hold", rules.Message{Sender: "ceo@contoso.com", Header: []byte("X-Bypass: yes\r\n")}, false, "excepted"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := evaluate(t, s, &c.m, rules.Recipient{Address: "a@fabrikam.com"})[0]
			if (o.Route != nil) != c.routed || !strings.Contains(o.Trace[0].Detail, c.detail) {
				t.Fatalf("routed = %v, want %v; detail %q, want %q", o.Route != nil, c.routed, o.Trace[0].Detail, c.detail)
			}
		})
	}
	// Exceptions apply per recipient too.
	r2 := routing("r2", 0, rules.Predicates{SenderDomainIs: []string{"contoso.com"}}, 5)
	r2.Exceptions = rules.Predicates{RecipientDomainIs: []string{"fabrikam.com"}}
	out := evaluate(t, compile(t, r2), &rules.Message{Sender: "a@contoso.com"},
		rules.Recipient{Address: "x@sales.fabrikam.com"}, rules.Recipient{Address: "y@tailspin.example"})
	if out[0].Route != nil || out[1].Route == nil {
		t.Fatalf("per-recipient exception: %s / %s", describe(out[0]), describe(out[1]))
	}
}

func TestOrderStopAndAudit(t *testing.T) {
	fab := rules.Predicates{RecipientDomainIs: []string{"fabrikam.com"}}
	all := rules.Predicates{MessageSizeOver: ptr[int64](0)}
	none := rules.Predicates{SenderDomainIs: []string{"nowhere.example"}}
	audit := func(r rules.Rule) rules.Rule { r.Mode = rules.Audit; return r }
	stop := func(r rules.Rule) rules.Rule { r.Actions.StopProcessing = true; return r }
	type want struct {
		route   string // rule that routed, "" none
		reject  string
		audit   []string
		details []string // parts of the trace details, in priority order
	}
	cases := []struct {
		name  string
		rules []rules.Rule
		want  want
	}{
		{"priority order, not input order", []rules.Rule{routing("c", 2, fab, 3), routing("a", 0, fab, 1), routing("b", 1, fab, 2)},
			want{route: "a", details: []string{"routes to connector 1", `not applied: rule "a" already routed`, `not applied: rule "a" already routed`}}},
		{"a rule that does not match is passed over", []rules.Rule{routing("a", 0, none, 1), routing("b", 1, fab, 2)},
			want{route: "b", details: []string{"a condition does not hold: sender_domain_is", "routes to connector 2"}}},
		{"stop_processing ends processing", []rules.Rule{stop(routing("a", 0, fab, 1)), rejecting("b", 1, all)},
			want{route: "a", details: []string{"routes to connector 1", `not evaluated: stop_processing of rule "a" ended processing`}}},
		{"stop_processing only when matched", []rules.Rule{stop(routing("a", 0, none, 1)), routing("b", 1, fab, 2)},
			want{route: "b", details: []string{"a condition does not hold", "routes to connector 2"}}},
		{"stop_processing of a rule not applied", []rules.Rule{routing("a", 0, fab, 1), stop(routing("b", 1, fab, 2)), rejecting("c", 2, all)},
			want{route: "a", details: []string{"routes", "not applied", `stop_processing of rule "b"`}}},
		{"a later reject overrides a route", []rules.Rule{routing("a", 0, fab, 1), rejecting("b", 1, all)},
			want{reject: "b", details: []string{"routes to connector 1", `rejects with 550 5.7.1 Delivery not authorized, message refused, overriding the route of rule "a"`}}},
		{"a route after a reject is not applied", []rules.Rule{rejecting("a", 0, all), routing("b", 1, fab, 1), rejecting("c", 2, fab)},
			want{reject: "a", details: []string{"rejects with 550", `not applied: rule "a" already rejected`, `not applied: rule "a" already rejected`}}},
		{"audit records and goes on", []rules.Rule{audit(stop(routing("a", 0, fab, 5))), routing("b", 1, fab, 6), audit(rejecting("c", 2, all))},
			want{route: "b", audit: []string{"a", "c"}, details: []string{"audit: would route to connector 5 and stop processing", "routes to connector 6", "audit: would reject with 550 5.7.1"}}},
		{"audit after stop is not evaluated", []rules.Rule{stop(routing("a", 0, fab, 5)), audit(rejecting("b", 1, all))},
			want{route: "a", details: []string{"routes", "not evaluated"}}},
		{"no priority runs last", []rules.Rule{func() rules.Rule { r := routing("a", 0, fab, 1); r.Priority = nil; return r }(), routing("b", 9, fab, 2)},
			want{route: "b", details: []string{"routes to connector 2", "not applied"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := evaluate(t, compile(t, c.rules...), &rules.Message{Sender: "a@contoso.com", Size: 10}, rules.Recipient{Address: "b@fabrikam.com"})[0]
			got := want{}
			if o.Route != nil {
				got.route = o.Route.Rule
			}
			if o.Reject != nil {
				got.reject = o.Reject.Rule
			}
			for _, h := range o.Audit {
				got.audit = append(got.audit, h.Rule)
			}
			if got.route != c.want.route || got.reject != c.want.reject || strings.Join(got.audit, ",") != strings.Join(c.want.audit, ",") {
				t.Fatalf("got route %q reject %q audit %q, want %q %q %q\n%s", got.route, got.reject, got.audit, c.want.route, c.want.reject, c.want.audit, describe(o))
			}
			for i, part := range c.want.details {
				if !strings.Contains(o.Trace[i].Detail, part) {
					t.Errorf("trace[%d] = %q, want %q\n%s", i, o.Trace[i].Detail, part, describe(o))
				}
			}
		})
	}
}

func TestAuditHit(t *testing.T) {
	r := rejecting("a", 0, rules.Predicates{RecipientDomainIs: []string{"fabrikam.com"}})
	r.Mode, r.ID = rules.Audit, 4
	r.Actions.Reject = &rules.Reject{Code: 554, Text: "No"}
	o := evaluate(t, compile(t, r), &rules.Message{}, rules.Recipient{Address: "b@fabrikam.com"})[0]
	if o.Reject != nil || o.Route != nil || len(o.Audit) != 1 {
		t.Fatalf("%s", describe(o))
	}
	h := o.Audit[0]
	if h.RuleID != 4 || h.Rule != "a" || h.ConnectorID != 0 || h.Reject == nil || *h.Reject != (rules.Reject{554, "5.7.1", "No"}) || h.Would != "would reject with 554 5.7.1 No" {
		t.Fatalf("audit hit = %+v", h)
	}
	if tr := o.Trace[0]; !tr.Matched || tr.Applied || tr.Mode != rules.Audit {
		t.Fatalf("trace = %+v", tr)
	}
}

func TestDates(t *testing.T) {
	at := func(d time.Duration) *time.Time { v := now.Add(d); return &v }
	cases := []struct {
		name       string
		activation *time.Time
		expiry     *time.Time
		want       bool
	}{
		{"no dates", nil, nil, true},
		{"activated", at(-time.Hour), nil, true},
		{"activated now", at(0), nil, true},
		{"not yet active", at(time.Second), nil, false},
		{"not expired", nil, at(time.Second), true},
		{"expires now", nil, at(0), false},
		{"expired", nil, at(-time.Hour), false},
		{"within", at(-time.Hour), at(time.Hour), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := routing("r", 0, rules.Predicates{RecipientDomainIs: []string{"fabrikam.com"}}, 1)
			r.ActivationDate, r.ExpiryDate = c.activation, c.expiry
			o := evaluate(t, compile(t, r), &rules.Message{}, rules.Recipient{Address: "a@fabrikam.com"})[0]
			if (o.Route != nil) != c.want {
				t.Fatalf("routed = %v, want %v: %s", o.Route != nil, c.want, describe(o))
			}
			if !c.want && !strings.HasPrefix(o.Trace[0].Detail, "not evaluated: outside its dates") {
				t.Errorf("detail = %q", o.Trace[0].Detail)
			}
		})
	}
}

func TestPerRecipient(t *testing.T) {
	s := compile(t,
		rejecting("block", 0, rules.Predicates{RecipientAddressIs: []string{"blocked@fabrikam.com"}}),
		routing("fab", 1, rules.Predicates{RecipientDomainIs: []string{"fabrikam.com"}}, 7),
		routing("internal", 2, rules.Predicates{SentToScope: rules.InOrganization}, 8),
	)
	out := evaluate(t, s, &rules.Message{Sender: "a@contoso.com"},
		rules.Recipient{Address: "x@tailspin.example"},
		rules.Recipient{Address: "Blocked@Fabrikam.com"},
		rules.Recipient{Address: "y@sales.fabrikam.com"},
		rules.Recipient{Address: "z@contoso.com", InOrganization: true},
	)
	got := []string{}
	for _, o := range out {
		switch {
		case o.Reject != nil:
			got = append(got, o.Recipient+":reject")
		case o.Route != nil:
			got = append(got, o.Recipient+":"+o.Route.Rule)
		default:
			got = append(got, o.Recipient+":-")
		}
	}
	want := "x@tailspin.example:-,Blocked@Fabrikam.com:reject,y@sales.fabrikam.com:fab,z@contoso.com:internal"
	if strings.Join(got, ",") != want {
		t.Fatalf("got  %s\nwant %s", strings.Join(got, ","), want)
	}
}

func TestCompileSkipsDisabledAndKeepsInvalid(t *testing.T) {
	off := routing("off", 0, rules.Predicates{RecipientDomainIs: []string{"fabrikam.com"}}, 1)
	off.Enabled = false
	bad := routing("bad", 1, rules.Predicates{RecipientDomainIs: []string{"fabrikam"}}, 2)
	good := routing("good", 2, rules.Predicates{RecipientDomainIs: []string{"Fabrikam.COM"}}, 3)
	s := rules.Compile([]rules.Rule{good, off, bad})
	if s.Len() != 2 {
		t.Fatalf("Len = %d, want 2", s.Len())
	}
	rs := s.Rules()
	if rs[0].Name != "bad" || rs[1].Name != "good" || rs[1].Conditions.RecipientDomainIs[0] != "fabrikam.com" {
		t.Fatalf("Rules = %+v", rs)
	}
	if good.Conditions.RecipientDomainIs[0] != "Fabrikam.COM" {
		t.Fatal("Compile modified its input")
	}
	o := evaluate(t, s, &rules.Message{}, rules.Recipient{Address: "a@fabrikam.com"})[0]
	if o.Route == nil || o.Route.Rule != "good" {
		t.Fatalf("%s", describe(o))
	}
	if d := o.Trace[0].Detail; !strings.Contains(d, "not evaluated: the rule is invalid: conditions.recipient_domain_is[0]") {
		t.Fatalf("detail = %q", d)
	}
}

func TestNilAndEmptySet(t *testing.T) {
	var s *rules.Set
	for _, set := range []*rules.Set{s, rules.Compile(nil)} {
		out := set.Evaluate(now, &rules.Message{}, []rules.Recipient{{Address: "a@b.com"}})
		if len(out) != 1 || out[0].Recipient != "a@b.com" || out[0].Route != nil {
			t.Fatalf("%+v", out)
		}
		if set.Len() != 0 || set.NeedsHeaders() || len(set.Rules()) != 0 {
			t.Fatal("an empty set has rules")
		}
	}
	set := compile(t, routing("r", 0, rules.Predicates{SenderDomainIs: []string{"contoso.com"}}, 1))
	if out := set.Evaluate(now, nil, []rules.Recipient{{Address: "a@b.com"}}); out[0].Route != nil {
		t.Fatal("a nil message matched")
	}
}

func TestNeedsHeaders(t *testing.T) {
	plain := routing("p", 0, rules.Predicates{RecipientDomainIs: []string{"fabrikam.com"}}, 1)
	withExc := plain
	withExc.Exceptions = rules.Predicates{HeaderMatches: []rules.HeaderPattern{{Header: "Subject", Pattern: "x"}}}
	disabled := withExc
	disabled.Enabled = false
	if compile(t, plain).NeedsHeaders() || compile(t, plain, disabled).NeedsHeaders() {
		t.Error("NeedsHeaders without header keys")
	}
	if !compile(t, plain, withExc).NeedsHeaders() {
		t.Error("NeedsHeaders false with a header exception")
	}
}

func TestExplainDetails(t *testing.T) {
	r := routing("legal", 0, rules.Predicates{
		RecipientDomainIs: []string{"fabrikam.com"},
		HeaderContains:    []rules.HeaderWords{{Header: "X-Classification", Words: []string{"confidential"}}},
	}, 12)
	s := compile(t, r)
	cases := []struct {
		m      rules.Message
		rcpt   string
		detail string
	}{
		{rules.Message{Header: []byte(hdr)}, "a@sales.fabrikam.com", `routes to connector 12 (recipient_domain_is matched fabrikam.com; header_contains: X-Classification contains "confidential")`},
		{rules.Message{Header: []byte(hdr)}, "a@tailspin.example", `a condition does not hold: recipient_domain_is: the recipient's domain "tailspin.example" is not listed, nor a subdomain of one listed`},
		{rules.Message{Header: []byte("Subject: x\r\n")}, "a@fabrikam.com", "a condition does not hold: header_contains: no X-Classification field contains any of the words"},
		{rules.Message{}, "a@fabrikam.com", "a condition does not hold: header_contains: the message's header section is not available"},
	}
	for _, c := range cases {
		o := evaluate(t, s, &c.m, rules.Recipient{Address: c.rcpt})[0]
		if o.Trace[0].Detail != c.detail {
			t.Errorf("detail = %q\nwant     %q", o.Trace[0].Detail, c.detail)
		}
	}
}

// A Set is used by many sessions at once.
func TestConcurrentEvaluate(t *testing.T) {
	s := compile(t, benchRules(200)...)
	m := benchMessage
	want := s.Explain(now, &m, []rules.Recipient{{Address: "bob@fabrikam.com"}})
	done := make(chan bool)
	for range 8 {
		go func() {
			ok := true
			for range 200 {
				o := s.Evaluate(now, &m, []rules.Recipient{{Address: "bob@fabrikam.com"}})
				ok = ok && sameDecision(o[0], want[0])
			}
			done <- ok
		}()
	}
	for range 8 {
		if !<-done {
			t.Fatal("a concurrent evaluation decided differently")
		}
	}
}
