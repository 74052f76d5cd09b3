package preview_test

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/preview"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/rules"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

var now = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

const confidential = "X-Classification: confidential\r\nSubject: plans\r\n"

// traceSeeds is the trace the tests replay. The comments say what the
// draft "Confidential to the gateway" (recipient_domain_is fabrikam.test,
// header_contains X-Classification: confidential, route to the gateway)
// does to each.
var traceSeeds = []seed{
	// Changed: from Fabrikam partner (exact fabrikam.test) to the gateway;
	// the contoso.com recipient keeps On-prem.
	{uid: "conf1", age: 2 * time.Hour, ip: "10.0.0.5", sender: "a@contoso.com", inbound: true,
		rcpts: []string{"x@fabrikam.test", "y@contoso.com"}, header: confidential},
	// Changed: a subdomain, encoded word "Confidential": from MX to the gateway.
	{uid: "conf2", age: 30 * time.Minute, ip: "198.51.100.1", sender: "b@tailspin.test",
		rcpts: []string{"z@sub.fabrikam.test"}, header: "Subject: x\r\nX-Classification: =?UTF-8?B?Q29uZmlkZW50aWFs?=\r\n"},
	// Unchanged: another classification; the word in another field; another domain.
	{uid: "public", age: time.Hour, ip: "198.51.100.2", sender: "c@tailspin.test",
		rcpts: []string{"p@fabrikam.test"}, header: "X-Classification: public\r\n"},
	{uid: "noclass", age: time.Hour, ip: "198.51.100.2", sender: "c@tailspin.test",
		rcpts: []string{"q@fabrikam.test"}, header: "Subject: confidential\r\n"},
	{uid: "contoso", age: time.Hour, ip: "198.51.100.2", sender: "c@tailspin.test",
		rcpts: []string{"c@contoso.com"}, header: confidential},
	// Undecidable: no header kept, or a section cut at MaxKeptHeader,
	// and a fabrikam.test recipient.
	{uid: "nohdr", age: time.Hour, ip: "198.51.100.3", sender: "d@tailspin.test", rcpts: []string{"n@fabrikam.test"}},
	{uid: "cut", age: time.Hour, ip: "198.51.100.3", sender: "d@tailspin.test", rcpts: []string{"k@fabrikam.test"},
		header: cutSection(confidential)},
	// Decidable without headers: no recipient the rule could match.
	{uid: "nohdr-contoso", age: time.Hour, ip: "198.51.100.3", sender: "d@tailspin.test", rcpts: []string{"m@contoso.com"}},
	// Outside the default 24h window, then after now: not considered.
	{uid: "old", age: 25 * time.Hour, ip: "198.51.100.4", sender: "e@tailspin.test", rcpts: []string{"o@fabrikam.test"}, header: confidential},
	{uid: "future", age: -time.Minute, ip: "198.51.100.4", sender: "e@tailspin.test", rcpts: []string{"f@fabrikam.test"}, header: confidential},
	// A DSN flowgate wrote, and a message refused before the rules ran: not considered.
	{uid: "dsn", age: time.Hour, ip: "local", sender: "", rcpts: []string{"bounce@fabrikam.test"}, header: confidential},
	{uid: "toobig", age: time.Hour, ip: "198.51.100.5", sender: "g@tailspin.test", status: queue.Rejected,
		rcpts: []string{"t@fabrikam.test"}, header: confidential},
	// Refused by the rule "Block" when received: considered; Block still
	// rejects it after the draft (added last).
	{uid: "blocked", age: time.Hour, ip: "198.51.100.6", sender: "h@tailspin.test", status: queue.Rejected, rule: "Block",
		rcpts: []string{"blocked@fabrikam.test"}, header: confidential},
	// For the rule_id previews: Legal audit and Tailspin off match it.
	{uid: "legal", age: 3 * time.Hour, ip: "10.0.0.9", sender: "legal@contoso.com", inbound: true,
		rcpts: []string{"l@tailspin.test"}, header: "Subject: contract\r\n"},
}

func draft(f fixture) *rules.Rule {
	gw := f.gateway
	return &rules.Rule{
		Name: "Confidential to the gateway", Enabled: true,
		Conditions: rules.Predicates{
			RecipientDomainIs: []string{"fabrikam.test"},
			HeaderContains:    []rules.HeaderWords{{Header: "X-Classification", Words: []string{"confidential"}}},
		},
		Actions: rules.Actions{RouteToOutboundConnector: &gw},
	}
}

// describe writes a route as "connector|rule|rejected|deferred", "-" for none.
func describe(r preview.Route) string {
	s := []string{"-", "-", "", ""}
	if r.Connector != nil {
		s[0] = *r.Connector
	}
	if r.Rule != nil {
		s[1] = *r.Rule
	}
	if r.Rejected {
		s[2] = "rejected"
	}
	if r.Deferred {
		s[3] = "deferred"
	}
	return strings.Join(s, "|")
}

func changes(res *preview.Result) []string {
	var out []string
	for _, c := range res.Changed {
		out = append(out, c.MessageID+" "+c.Recipient+": "+describe(c.Before)+" -> "+describe(c.After))
	}
	sort.Strings(out)
	return out
}

func run(t *testing.T, st *store.Store, req preview.Request) *preview.Result {
	t.Helper()
	if req.Now.IsZero() {
		req.Now = now
	}
	res, err := preview.Run(context.Background(), st, req)
	if err != nil {
		t.Fatalf("preview: %v", err)
	}
	return res
}

type counts struct{ considered, matched, undecidable int }

func check(t *testing.T, res *preview.Result, want counts, wantChanges ...string) {
	t.Helper()
	sort.Strings(wantChanges)
	if got := changes(res); !slices.Equal(got, wantChanges) {
		t.Errorf("changed:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(wantChanges, "\n  "))
	}
	if got := (counts{res.Considered, res.Matched, res.Undecidable}); got != want {
		t.Errorf("considered, matched, undecidable = %+v, want %+v", got, want)
	}
	if res.ChangedTotal != len(res.Changed) || res.Truncated {
		t.Errorf("changed_total %d, truncated %v for %d changes", res.ChangedTotal, res.Truncated, len(res.Changed))
	}
}

func TestPreview(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		f := setup(t, st)
		seedTrace(t, st, f, now, traceSeeds)
		sum := checksum(t, st)
		const (
			partner  = "Fabrikam partner|-||"
			mx       = "-|-||"
			gateway  = "Encryption gateway|Confidential to the gateway||"
			blocked  = "-|Block|rejected|"
			inWindow = 10 // conf1 conf2 public noclass contoso nohdr cut nohdr-contoso blocked legal
		)

		t.Run("draft", func(t *testing.T) {
			res := run(t, st, preview.Request{Rule: draft(f)})
			// Matched: conf1, conf2 and blocked (Block rejects it first, but
			// the rule's conditions hold).
			check(t, res, counts{inWindow, 3, 2},
				"conf1 x@fabrikam.test: "+partner+" -> "+gateway,
				"conf2 z@sub.fabrikam.test: "+mx+" -> "+gateway)
			if res.Rule != "Confidential to the gateway" || !res.From.Equal(now.Add(-24*time.Hour)) || !res.To.Equal(now) {
				t.Errorf("rule %q, window %s to %s", res.Rule, res.From, res.To)
			}
		})

		t.Run("draft first with stop_processing", func(t *testing.T) {
			d := draft(f)
			d.Priority, d.Actions.StopProcessing = new(int), true
			res := run(t, st, preview.Request{Rule: d})
			check(t, res, counts{inWindow, 3, 2},
				"conf1 x@fabrikam.test: "+partner+" -> "+gateway,
				"conf2 z@sub.fabrikam.test: "+mx+" -> "+gateway,
				"blocked blocked@fabrikam.test: "+blocked+" -> "+gateway)
		})

		t.Run("draft disabled or audit changes nothing", func(t *testing.T) {
			d := draft(f)
			d.Enabled = false
			check(t, run(t, st, preview.Request{Rule: d}), counts{inWindow, 3, 2})
			d = draft(f)
			d.Mode = rules.Audit
			check(t, run(t, st, preview.Request{Rule: d}), counts{inWindow, 3, 2})
		})

		t.Run("dates at received_at", func(t *testing.T) {
			d := draft(f)
			from := now.Add(-90 * time.Minute) // after conf1 (2h ago), before conf2 (30m ago)
			d.ActivationDate = &from
			// Matched and undecidable: conf2, and blocked, nohdr and cut,
			// received an hour ago; not conf1.
			check(t, run(t, st, preview.Request{Rule: d}), counts{inWindow, 2, 2},
				"conf2 z@sub.fabrikam.test: "+mx+" -> "+gateway)
		})

		t.Run("since", func(t *testing.T) {
			check(t, run(t, st, preview.Request{Rule: draft(f), Since: 48 * time.Hour}), counts{inWindow + 1, 4, 2},
				"conf1 x@fabrikam.test: "+partner+" -> "+gateway,
				"conf2 z@sub.fabrikam.test: "+mx+" -> "+gateway,
				"old o@fabrikam.test: "+partner+" -> "+gateway)
			check(t, run(t, st, preview.Request{Rule: draft(f), Since: 45 * time.Minute}), counts{1, 1, 0},
				"conf2 z@sub.fabrikam.test: "+mx+" -> "+gateway)
			res := run(t, st, preview.Request{Rule: draft(f), Since: time.Minute})
			check(t, res, counts{0, 0, 0})
			if res.Changed == nil {
				t.Error("changed is nil; want an empty list")
			}
			// The window ends at Now, inclusive: it holds conf2 (received
			// 30 minutes ago), not the messages of an hour ago.
			check(t, run(t, st, preview.Request{Rule: draft(f), Now: now.Add(-30 * time.Minute), Since: 20 * time.Minute}), counts{1, 1, 0},
				"conf2 z@sub.fabrikam.test: "+mx+" -> "+gateway)
		})

		t.Run("a draft few messages could match", func(t *testing.T) {
			// Only conf1 has a recipient the draft could match: its header
			// section alone is read (by id, not by range).
			d := draft(f)
			d.Conditions.RecipientDomainIs, d.Conditions.RecipientAddressIs = nil, []string{"x@fabrikam.test"}
			check(t, run(t, st, preview.Request{Rule: d}), counts{inWindow, 1, 0},
				"conf1 x@fabrikam.test: "+partner+" -> "+gateway)
		})

		t.Run("rule_id of an audit rule", func(t *testing.T) {
			check(t, run(t, st, preview.Request{RuleID: f.legal}), counts{inWindow, 1, 0},
				"legal l@tailspin.test: "+mx+" -> Encryption gateway|Legal audit||")
		})

		t.Run("rule_id of a disabled rule", func(t *testing.T) {
			check(t, run(t, st, preview.Request{RuleID: f.tailspin}), counts{inWindow, 1, 0},
				"legal l@tailspin.test: "+mx+" -> -|Tailspin off|rejected|")
		})

		t.Run("draft standing in for a rule", func(t *testing.T) {
			// Block now rejects p@fabrikam.test instead of blocked@fabrikam.test.
			d := rules.Rule{ID: f.block, Name: "Block", Enabled: true,
				Conditions: rules.Predicates{RecipientAddressIs: []string{"p@fabrikam.test"}},
				Actions:    rules.Actions{Reject: &rules.Reject{}}}
			check(t, run(t, st, preview.Request{Rule: &d}), counts{inWindow, 1, 0},
				"blocked blocked@fabrikam.test: "+blocked+" -> "+partner,
				"public p@fabrikam.test: "+partner+" -> "+blocked)
		})

		if got := checksum(t, st); got != sum {
			t.Fatal("a preview changed the database")
		}

		t.Run("header condition of the replaced rule", func(t *testing.T) {
			// A rule with a header key, then a draft without one standing
			// in for it: the header still decides the "before" side.
			gw := f.gateway
			hr, err := st.CreateRule(context.Background(), admin, rules.Rule{Name: "Secret", Enabled: true,
				Conditions: rules.Predicates{HeaderMatches: []rules.HeaderPattern{{Header: "Subject", Pattern: "(?i)^plans$"}}},
				Actions:    rules.Actions{RouteToOutboundConnector: &gw}})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := st.DeleteRule(context.Background(), admin, hr.ID); err != nil {
					t.Fatal(err)
				}
			}()
			d := rules.Rule{ID: hr.ID, Name: "Secret", Enabled: true,
				Conditions: rules.Predicates{SenderDomainIs: []string{"nowhere.test"}},
				Actions:    rules.Actions{RouteToOutboundConnector: &gw}}
			// "Secret" routes conf1's (Subject: plans) recipients and those of
			// contoso; blocked is rejected by Block whatever routes it. The
			// messages without a kept header (nohdr, nohdr-contoso, cut: its
			// Subject is kept but may be followed by more) are undecidable.
			sec := "Encryption gateway|Secret||"
			sum := checksum(t, st)
			check(t, run(t, st, preview.Request{Rule: &d}), counts{inWindow, 0, 3},
				"conf1 x@fabrikam.test: "+sec+" -> "+partner,
				"conf1 y@contoso.com: "+sec+" -> On-prem|-||",
				"contoso c@contoso.com: "+sec+" -> On-prem|-||")
			if got := checksum(t, st); got != sum {
				t.Fatal("a preview changed the database")
			}
		})
	})
}

func TestPreviewRefusals(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		f := setup(t, st)
		sum := checksum(t, st)
		in := f.inbound
		missing := int64(9999)
		cases := []struct {
			name  string
			req   func() preview.Request
			field string
		}{
			{"nothing", func() preview.Request { return preview.Request{} }, "rule"},
			{"both", func() preview.Request { return preview.Request{Rule: draft(f), RuleID: f.block} }, "rule"},
			{"unknown rule_id", func() preview.Request { return preview.Request{RuleID: 9999} }, "rule_id"},
			{"unknown draft id", func() preview.Request { d := draft(f); d.ID = 9999; return preview.Request{Rule: d} }, "rule.id"},
			{"inbound connector", func() preview.Request {
				d := draft(f)
				d.Actions.RouteToOutboundConnector = &in
				return preview.Request{Rule: d}
			}, "rule.actions.route_to_outbound_connector"},
			{"no such connector", func() preview.Request {
				d := draft(f)
				d.Actions.RouteToOutboundConnector = &missing
				return preview.Request{Rule: d}
			}, "rule.actions.route_to_outbound_connector"},
			{"new rule past the end", func() preview.Request { d := draft(f); p := 4; d.Priority = &p; return preview.Request{Rule: d} }, "rule.priority"},
			{"moved past the end", func() preview.Request {
				d := draft(f)
				d.ID, d.Priority = f.block, new(int)
				*d.Priority = 3
				return preview.Request{Rule: d}
			}, "rule.priority"},
			{"invalid draft", func() preview.Request {
				d := draft(f)
				d.Conditions = rules.Predicates{}
				return preview.Request{Rule: d}
			}, "rule.conditions"},
			{"negative window", func() preview.Request { return preview.Request{Rule: draft(f), Since: -time.Hour} }, "since"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				_, err := preview.Run(context.Background(), st, tc.req())
				var fe rules.FieldErrors
				if !errors.As(err, &fe) || fe[tc.field] == "" {
					t.Fatalf("got %v, want a field error on %q", err, tc.field)
				}
			})
		}
		// The edges of the ranges are fine.
		d := draft(f)
		d.Priority = new(int)
		*d.Priority = 3
		run(t, st, preview.Request{Rule: d})
		d.ID, *d.Priority = f.block, 2
		run(t, st, preview.Request{Rule: d})
		if got := checksum(t, st); got != sum {
			t.Fatal("a preview changed the database")
		}
	})
}

// More changed recipients than MaxChanged: the list stops, the total
// counts on. The trace spans several batches, read at the same time and
// decided in order: the list is in message order.
func TestPreviewTruncates(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		f := setup(t, st)
		n := preview.MaxChanged + 5
		seedBulk(t, st, now.Add(-time.Hour), n, bulkOptions{domain: "fabrikam.test", header: confidential})
		res := run(t, st, preview.Request{Rule: draft(f)})
		if res.Considered != n || res.Matched != n || res.ChangedTotal != n || len(res.Changed) != preview.MaxChanged || !res.Truncated {
			t.Fatalf("considered %d, matched %d, changed %d of %d, truncated %v", res.Considered, res.Matched, len(res.Changed), res.ChangedTotal, res.Truncated)
		}
		last := int64(0)
		for _, c := range res.Changed {
			id, err := strconv.ParseInt(strings.TrimPrefix(c.MessageID, "bulk"), 10, 64)
			if err != nil || id <= last {
				t.Fatalf("changes out of message order: %s after bulk%d", c.MessageID, last)
			}
			last = id
		}
	})
}
