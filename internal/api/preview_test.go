package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/api"
	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// dbChecksum digests every row of the tables a preview reads or could
// write, with their counts.
func dbChecksum(t testing.TB, st *store.Store) string {
	t.Helper()
	db := testutil.RawDB(t, st)
	h := sha256.New()
	for _, table := range []string{"messages", "message_recipients", "message_events", "message_headers", "message_bodies",
		"rules", "audit_log", "connectors", "connector_revisions", "accepted_domains", "config_epoch"} {
		rows, err := db.Query("SELECT * FROM " + table + " ORDER BY 1")
		if err != nil {
			t.Fatalf("checksum %s: %v", table, err)
		}
		cols, _ := rows.Columns()
		n := 0
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(h, "%s:%v\n", table, vals)
			n++
		}
		rows.Close()
		fmt.Fprintf(h, "%s=%d\n", table, n)
	}
	return hex.EncodeToString(h.Sum(nil))
}

type previewChange struct {
	MessageID string `json:"message_id"`
	Recipient string `json:"recipient"`
	Before    struct {
		Connector *string `json:"connector"`
		Rule      *string `json:"rule"`
	} `json:"before"`
	After struct {
		Connector *string `json:"connector"`
		Rule      *string `json:"rule"`
		Rejected  *bool   `json:"rejected"`
	} `json:"after"`
}

type previewAnswer struct {
	Considered  *int            `json:"considered"`
	Matched     *int            `json:"matched"`
	Undecidable *int            `json:"undecidable"`
	Changed     []previewChange `json:"changed"`
}

func str(p *string) string {
	if p == nil {
		return "null"
	}
	return *p
}

// summary is "considered/matched/undecidable" and the changes as
// "message recipient: connector,rule -> connector,rule[,rejected]".
func (a previewAnswer) summary(t testing.TB) (string, []string) {
	t.Helper()
	if a.Considered == nil || a.Matched == nil || a.Undecidable == nil || a.Changed == nil {
		t.Fatalf("an answer without considered, matched, undecidable or changed: %+v", a)
	}
	var out []string
	for _, c := range a.Changed {
		if c.After.Rejected == nil {
			t.Fatalf("a change without after.rejected: %+v", c)
		}
		s := fmt.Sprintf("%s %s: %s,%s -> %s,%s", c.MessageID, c.Recipient, str(c.Before.Connector), str(c.Before.Rule), str(c.After.Connector), str(c.After.Rule))
		if *c.After.Rejected {
			s += ",rejected"
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return fmt.Sprintf("%d/%d/%d", *a.Considered, *a.Matched, *a.Undecidable), out
}

func TestRulePreviewAPI(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		admin, viewer := newAPIWith(t, st, func(s *api.Server) { s.WithTraceRetention(72 * time.Hour) })
		ctx := context.Background()
		if _, err := st.CreateAcceptedDomain(ctx, testActor, "contoso.com", connector.Authoritative); err != nil {
			t.Fatal(err)
		}
		gw, in := ruleConnectors(t, st)
		activateConnector(t, st, &connector.OutboundSpec{Common: connector.Common{Name: "Fabrikam", ConnectorType: connector.Partner},
			RecipientDomains: []string{"fabrikam.test"}, SmartHosts: []string{"mx.fabrikam.test"}})
		audit := admin.do("POST", "/rules", ruleBody("Tailspin audit", gw, `, "mode": "audit",
			"conditions": {"recipient_domain_is": ["tailspin.test"]}`)).rule(t)

		// The trace: received 1 to 30 hours ago.
		w := queue.NewWriter(st, slog.New(slog.DiscardHandler))
		now := time.Now().UTC()
		conf := "X-Classification: Confidential\r\nSubject: q3\r\n"
		for _, m := range []struct {
			uid    string
			age    time.Duration
			rcpts  []string
			header string
		}{
			{"c1", time.Hour, []string{"a@fabrikam.test", "b@contoso.com"}, conf},
			{"c2", 2 * time.Hour, []string{"c@mail.fabrikam.test"}, conf},
			{"p1", time.Hour, []string{"d@fabrikam.test"}, "X-Classification: public\r\n"},
			{"t1", 3 * time.Hour, []string{"e@tailspin.test"}, conf},
			{"n1", time.Hour, []string{"f@fabrikam.test"}, ""},
			{"old", 30 * time.Hour, []string{"g@fabrikam.test"}, conf},
		} {
			msg := &queue.Message{UID: m.uid, ReceivedAt: now.Add(-m.age), Status: queue.Queued, ClientIP: "198.51.100.7",
				Sender: "s@partner.test", Body: []byte(m.header + "\r\nhi\r\n")}
			if m.header != "" {
				msg.Header = queue.HeaderSection(msg.Body) // as the relay keeps it
			}
			for _, a := range m.rcpts {
				msg.Recipients = append(msg.Recipients, queue.Recipient{Address: a, Status: queue.Queued})
			}
			if err := w.Enqueue(ctx, msg); err != nil {
				t.Fatal(err)
			}
		}
		w.Close()
		sum := dbChecksum(t, st)

		draft := fmt.Sprintf(`{"name": "Confidential", "conditions": {"recipient_domain_is": ["fabrikam.test"],
			"header_contains": [{"header": "X-Classification", "words": ["confidential"]}]},
			"actions": {"route_to_outbound_connector": %d}}`, gw)
		preview := func(c *client, body string) previewAnswer {
			t.Helper()
			r := c.do("POST", "/rules/preview", body)
			if r.Status != 200 {
				t.Fatalf("preview %s: %d %s", body, r.Status, r.Body)
			}
			var a previewAnswer
			if err := json.Unmarshal(r.Body, &a); err != nil {
				t.Fatal(err)
			}
			return a
		}
		for _, tc := range []struct {
			name, body, counts string
			changes            []string
		}{
			{"draft", `{"rule": ` + draft + `}`, "5/2/1", []string{
				"c1 a@fabrikam.test: Fabrikam,null -> Gateway,Confidential",
				"c2 c@mail.fabrikam.test: null,null -> Gateway,Confidential"}},
			{"draft over two days", `{"rule": ` + draft + `, "since": "2d"}`, "6/3/1", []string{
				"c1 a@fabrikam.test: Fabrikam,null -> Gateway,Confidential",
				"c2 c@mail.fabrikam.test: null,null -> Gateway,Confidential",
				"old g@fabrikam.test: Fabrikam,null -> Gateway,Confidential"}},
			{"draft over 90 minutes", `{"rule": ` + draft + `, "since": "90m"}`, "3/1/1", []string{
				"c1 a@fabrikam.test: Fabrikam,null -> Gateway,Confidential"}},
			{"rule_id of an audit rule", fmt.Sprintf(`{"rule_id": %d}`, audit.ID), "5/1/0", []string{
				"t1 e@tailspin.test: null,null -> Gateway,Tailspin audit"}},
			{"draft standing in for the audit rule, rejecting", fmt.Sprintf(`{"rule": {"id": %d, "name": "Tailspin audit",
				"conditions": {"recipient_domain_is": ["tailspin.test"]}, "actions": {"reject": {}}}}`, audit.ID), "5/1/0", []string{
				"t1 e@tailspin.test: null,null -> null,Tailspin audit,rejected"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				counts, changes := preview(viewer, tc.body).summary(t)
				if counts != tc.counts || !slices.Equal(changes, tc.changes) {
					t.Fatalf("considered/matched/undecidable %s, changes:\n  %s\nwant %s:\n  %s", counts, strings.Join(changes, "\n  "), tc.counts, strings.Join(tc.changes, "\n  "))
				}
			})
		}

		for _, tc := range []struct{ name, body, field string }{
			{"nothing", `{}`, "rule"},
			{"both", fmt.Sprintf(`{"rule": %s, "rule_id": %d}`, draft, audit.ID), "rule"},
			{"unknown rule", `{"rule_id": 999}`, "rule_id"},
			{"rule_id not a number", `{"rule_id": "x"}`, "rule_id"},
			{"invalid draft", `{"rule": {"name": "x", "conditions": {}, "actions": {"reject": {}}}}`, "rule.conditions"},
			{"draft not an object", `{"rule": [1]}`, "rule"},
			{"draft routes to an inbound connector", fmt.Sprintf(`{"rule": {"name": "x", "conditions": {"sender_domain_is": ["a.test"]},
				"actions": {"route_to_outbound_connector": %d}}}`, in), "rule.actions.route_to_outbound_connector"},
			{"draft with an unknown id", `{"rule": {"id": 999, "name": "x", "conditions": {"sender_domain_is": ["a.test"]}, "actions": {"reject": {}}}}`, "rule.id"},
			{"bad regex", `{"rule": {"name": "x", "conditions": {"header_matches": [{"header": "Subject", "pattern": "("}]}, "actions": {"reject": {}}}}`,
				"rule.conditions.header_matches[0].pattern"},
			{"since longer than the retention", `{"rule": ` + draft + `, "since": "4d"}`, "since"},
			{"since not a duration", `{"rule": ` + draft + `, "since": "yesterday"}`, "since"},
			{"since zero", `{"rule": ` + draft + `, "since": "0s"}`, "since"},
			{"since a number", `{"rule": ` + draft + `, "since": 24}`, "since"},
			{"unknown field", `{"rule": ` + draft + `, "until": "1h"}`, "until"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := admin.do("POST", "/rules/preview", tc.body)
				if r.Status != 400 || r.fields(t)[tc.field] == nil {
					t.Fatalf("status %d, want 400 with %q: %s", r.Status, tc.field, r.Body)
				}
			})
		}
		if r := admin.do("POST", "/rules/preview", `{"rule": `+draft+`, "since": "3d"}`); r.Status != 200 {
			t.Fatalf("since at the retention: %d %s", r.Status, r.Body)
		}
		if got := dbChecksum(t, st); got != sum {
			t.Fatal("previews changed the database")
		}
	})
}

// Without a configured retention, the default (90 days) bounds the window.
func TestRulePreviewDefaultRetention(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	admin, _ := newAPI(t, st)
	gw, _ := ruleConnectors(t, st)
	body := func(since string) string {
		return fmt.Sprintf(`{"rule": %s, "since": %q}`, ruleBody("R", gw, ""), since)
	}
	if r := admin.do("POST", "/rules/preview", body("90d")); r.Status != 200 || r.json(t)["considered"] != 0.0 {
		t.Fatalf("90d: %d %s", r.Status, r.Body)
	}
	if r := admin.do("POST", "/rules/preview", body("91d")); r.Status != 400 || !strings.Contains(fmt.Sprint(r.fields(t)["since"]), "90d") {
		t.Fatalf("91d: %d %s", r.Status, r.Body)
	}
}
