package api_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

type routeTestAnswer struct {
	Accepted bool   `json:"accepted"`
	Reply    string `json:"reply"`
	Routes   []struct {
		Recipient string  `json:"recipient"`
		Accepted  bool    `json:"accepted"`
		Rejected  bool    `json:"rejected"`
		Reply     string  `json:"reply"`
		Connector string  `json:"connector"`
		Rule      *string `json:"rule"`
		Reason    string  `json:"reason"`
		Rules     []struct {
			Name    string `json:"name"`
			Matched bool   `json:"matched"`
		} `json:"rules"`
	} `json:"routes"`
	Rules []struct {
		Name    string `json:"name"`
		Mode    string `json:"mode"`
		Matched *bool  `json:"matched"`
		Applied bool   `json:"applied"`
		Detail  string `json:"detail"`
	} `json:"rules"`
}

// The route test applies the mail flow rules to the headers and size it
// is given, and says which rule chose each route (SPEC 5).
func TestRouteTestRules(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		admin, viewer := newAPI(t, st)
		ctx := context.Background()
		if _, err := st.CreateAcceptedDomain(ctx, testActor, "contoso.com", connector.Authoritative); err != nil {
			t.Fatal(err)
		}
		gw, _ := ruleConnectors(t, st)
		activateConnector(t, st, &connector.OutboundSpec{Common: connector.Common{Name: "Fabrikam", ConnectorType: connector.Partner},
			RecipientDomains: []string{"fabrikam.test"}, SmartHosts: []string{"mx.fabrikam.test"}})
		activateConnector(t, st, &connector.OutboundSpec{Common: connector.Common{Name: "On-prem", ConnectorType: connector.OnPremises},
			AllAcceptedDomains: true, SmartHosts: []string{"mail.contoso.com"}})
		activateConnector(t, st, &connector.InboundSpec{Common: connector.Common{Name: "Contoso servers", ConnectorType: connector.OnPremises},
			SenderIPAddresses: []string{"10.0.0.0/8"}})
		for _, body := range []string{
			ruleBody("Block", gw, `, "conditions": {"recipient_address_is": ["blocked@fabrikam.test"]}, "actions": {"reject": {"text": "Not to that one"}}`),
			ruleBody("Confidential", gw, `, "conditions": {"recipient_domain_is": ["fabrikam.test"],
				"header_contains": [{"header": "X-Classification", "words": ["confidential"]}], "from_scope": "in_organization"}`),
			ruleBody("Big", gw, `, "mode": "audit", "conditions": {"message_size_over": 1000}, "actions": {"reject": {}}`),
		} {
			if r := admin.do("POST", "/rules", body); r.Status != 201 {
				t.Fatalf("create rule: %d %s", r.Status, r.Body)
			}
		}
		test := func(body string) routeTestAnswer {
			t.Helper()
			r := viewer.do("POST", "/route-test", body)
			if r.Status != 200 {
				t.Fatalf("route test: %d %s", r.Status, r.Body)
			}
			var a routeTestAnswer
			if err := json.Unmarshal(r.Body, &a); err != nil {
				t.Fatal(err)
			}
			return a
		}
		full := `{"client_ip": "10.0.0.5", "sender": "a@contoso.com", "recipients": ["x@fabrikam.test", "blocked@fabrikam.test", "y@contoso.com"],
			"headers": {"X-Classification": "=?UTF-8?Q?Confidential?=", "Subject": "Q3"}, "size": 5000}`
		// The live index follows the store within a second.
		var a routeTestAnswer
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if a = test(full); len(a.Rules) == 3 && len(a.Routes) == 3 && a.Routes[2].Connector == "On-prem" {
				break
			}
		}
		if len(a.Routes) != 3 || len(a.Rules) != 3 {
			t.Fatalf("route test: %+v", a)
		}
		// The last recipient matches neither Block nor Confidential: the
		// list says what the rules did for any recipient.
		x, b, y := a.Routes[0], a.Routes[1], a.Routes[2]
		if !x.Accepted || x.Connector != "Gateway" || x.Rule == nil || *x.Rule != "Confidential" || !strings.Contains(x.Reason, `"Confidential"`) {
			t.Errorf("x: %+v", x)
		}
		if !y.Accepted || y.Connector != "On-prem" || y.Rule != nil {
			t.Errorf("y: %+v", y)
		}
		if b.Accepted || !b.Rejected || b.Rule == nil || *b.Rule != "Block" || !strings.Contains(b.Reply, "550 5.7.1 Not to that one") ||
			!strings.Contains(b.Reason, `rejected by mail flow rule "Block"`) || b.Connector != "" {
			t.Errorf("blocked: %+v", b)
		}
		if !a.Accepted || !strings.Contains(a.Reply, "1 recipient(s) rejected") {
			t.Errorf("answer: accepted %v, reply %q", a.Accepted, a.Reply)
		}
		// The rules list: every rule in priority order; matched for some
		// recipient; per recipient, each route's own trace.
		for i, want := range []struct {
			name, mode       string
			matched, applied bool
		}{{"Block", "enforce", true, true}, {"Confidential", "enforce", true, true}, {"Big", "audit", true, false}} {
			got := a.Rules[i]
			if got.Name != want.name || got.Mode != want.mode || got.Matched == nil || *got.Matched != want.matched || got.Applied != want.applied || got.Detail == "" {
				t.Errorf("rules[%d] = %+v, want %+v", i, got, want)
			}
		}
		if !strings.Contains(a.Rules[2].Detail, "would reject") {
			t.Errorf("audit detail: %q", a.Rules[2].Detail)
		}
		if !strings.Contains(a.Rules[0].Detail, "blocked@fabrikam.test: ") {
			t.Errorf("Block's detail should name the recipients, as theirs differ: %q", a.Rules[0].Detail)
		}
		if len(y.Rules) != 3 || y.Rules[1].Name != "Confidential" || y.Rules[1].Matched || !y.Rules[2].Matched {
			t.Errorf("y's trace: %+v", y.Rules)
		}

		// Without the header (or from outside the organization) the
		// Confidential rule does not hold; a small message is not Big.
		a = test(`{"client_ip": "10.0.0.5", "sender": "a@contoso.com", "recipients": ["x@fabrikam.test"], "size": 10}`)
		if r := a.Routes[0]; r.Connector != "Fabrikam" || r.Rule != nil {
			t.Errorf("without headers: %+v", r)
		}
		for _, rl := range a.Rules {
			if *rl.Matched {
				t.Errorf("without headers and small, %q matched: %+v", rl.Name, rl)
			}
		}
		// Every recipient rejected: the message is refused with the rule's reply.
		a = test(`{"client_ip": "10.0.0.5", "sender": "a@contoso.com", "recipients": ["blocked@fabrikam.test"]}`)
		if a.Accepted || a.Reply != "550 5.7.1 Not to that one" || !a.Routes[0].Rejected {
			t.Errorf("all rejected: %+v", a)
		}

		for _, tc := range []struct{ body, field string }{
			{`{"client_ip": "10.0.0.5", "sender": "a@contoso.com", "recipients": ["x@fabrikam.test"], "headers": {"Bad Name": "x"}}`, "headers"},
			{`{"client_ip": "10.0.0.5", "sender": "a@contoso.com", "recipients": ["x@fabrikam.test"], "headers": {"X-A": "a\r\nX-B: b"}}`, "headers"},
			{`{"client_ip": "10.0.0.5", "sender": "a@contoso.com", "recipients": ["x@fabrikam.test"], "headers": {"X-A": 1}}`, "headers"},
			{`{"client_ip": "10.0.0.5", "sender": "a@contoso.com", "recipients": ["x@fabrikam.test"], "size": -1}`, "size"},
			{`{"client_ip": "10.0.0.5", "sender": "a@contoso.com", "recipients": ["x@fabrikam.test"], "size": "big"}`, "size"},
		} {
			if r := admin.do("POST", "/route-test", tc.body); r.Status != 400 || r.fields(t)[tc.field] == nil {
				t.Errorf("%s: %d %s", tc.body, r.Status, r.Body)
			}
		}
	})
}

// The trace says which rule chose each recipient's route, and shows the
// audit rules' events.
func TestMessageTraceRules(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		_, viewer := newAPI(t, st)
		w := queue.NewWriter(st, slog.New(slog.DiscardHandler))
		defer w.Close()
		at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
		gw := int64(7)
		m := &queue.Message{UID: "r1", ReceivedAt: at, Status: queue.Queued, ClientIP: "10.0.0.5", Sender: "a@contoso.com", Body: []byte("x\r\n"),
			Recipients: []queue.Recipient{
				{Address: "x@fabrikam.test", Status: queue.Queued, Connector: "Gateway", RouteReason: `mail flow rule "Confidential" routes through connector "Gateway"`,
					Rule: queue.RuleRoute{Rule: "Confidential", ConnectorID: &gw, OnError: "defer"}},
				{Address: "y@contoso.com", Status: queue.Queued, Connector: "On-prem"},
				{Address: "blocked@fabrikam.test", Status: queue.Rejected, LastReply: "550 5.7.1 no", Rule: queue.RuleRoute{Rule: "Block", OnError: queue.RuleRejects}},
			},
			Events: []queue.Event{
				{At: at, Type: "received", Detail: "3 recipients"},
				{At: at, Type: "rule_audit", Detail: `y@contoso.com: mail flow rule "Big" (audit mode) matched: it would reject with 550 5.7.1 x`},
			}}
		if err := w.Enqueue(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		type recipient struct {
			Address string  `json:"address"`
			Rule    *string `json:"rule"`
		}
		check := func(rcpts []recipient) {
			t.Helper()
			want := map[string]string{"x@fabrikam.test": "Confidential", "y@contoso.com": "", "blocked@fabrikam.test": "Block"}
			if len(rcpts) != 3 {
				t.Fatalf("recipients: %+v", rcpts)
			}
			for _, rc := range rcpts {
				got := ""
				if rc.Rule != nil {
					got = *rc.Rule
					if got == "" {
						t.Errorf("%s: rule is an empty string, want null", rc.Address)
					}
				}
				if got != want[rc.Address] {
					t.Errorf("%s: rule %q, want %q", rc.Address, got, want[rc.Address])
				}
			}
		}
		r := viewer.do("GET", "/messages/r1", "")
		var one struct {
			Recipients []recipient `json:"recipients"`
			Events     []struct {
				Type   string `json:"type"`
				Detail string `json:"detail"`
			} `json:"events"`
			Sender string `json:"sender"`
		}
		if err := json.Unmarshal(r.Body, &one); err != nil || r.Status != 200 || one.Sender != "a@contoso.com" {
			t.Fatalf("GET /messages/r1: %d %s", r.Status, r.Body)
		}
		if !strings.Contains(string(r.Body), `"rule": null`) {
			t.Errorf("a recipient no rule routed has no \"rule\": null: %s", r.Body)
		}
		check(one.Recipients)
		if len(one.Events) != 2 || one.Events[1].Type != "rule_audit" || !strings.Contains(one.Events[1].Detail, `"Big"`) {
			t.Errorf("events: %+v", one.Events)
		}
		r = viewer.do("GET", "/messages?sender=a@contoso.com", "")
		var list struct {
			Messages []struct {
				Recipients []recipient `json:"recipients"`
			} `json:"messages"`
		}
		if err := json.Unmarshal(r.Body, &list); err != nil || len(list.Messages) != 1 {
			t.Fatalf("GET /messages: %d %s", r.Status, r.Body)
		}
		check(list.Messages[0].Recipients)
	})
}
