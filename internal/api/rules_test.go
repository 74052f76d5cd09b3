package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

var testActor = store.Actor{Kind: "user", Name: "t"}

// activateConnector creates a connector and activates its first revision.
func activateConnector(t testing.TB, st *store.Store, spec connector.Spec) int64 {
	t.Helper()
	ctx := context.Background()
	c, err := st.CreateConnector(ctx, testActor, spec, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.MarkValidated(ctx, testActor, spec.Direction(), c.ID, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Activate(ctx, testActor, spec.Direction(), c.ID, 1); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

// ruleConnectors makes the rule-scoped outbound connector "Gateway" and
// the inbound connector "Partner in"; it returns their ids.
func ruleConnectors(t testing.TB, st *store.Store) (gateway, inbound int64) {
	t.Helper()
	gateway = activateConnector(t, st, &connector.OutboundSpec{Common: connector.Common{Name: "Gateway", ConnectorType: connector.Partner},
		IsTransportRuleScoped: true, SmartHosts: []string{"enc.example.net"}})
	inbound = activateConnector(t, st, &connector.InboundSpec{Common: connector.Common{Name: "Partner in", ConnectorType: connector.Partner},
		SenderDomains: []string{"partner.test"}, RequireTLS: true})
	return gateway, inbound
}

// ruleBody is a valid rule routing fabrikam.test through the connector,
// with the JSON members of extra (", "key": value, …) added or replacing
// the rule's.
func ruleBody(name string, connectorID int64, extra string) string {
	rule := map[string]json.RawMessage{}
	base := fmt.Sprintf(`{"name": %q, "conditions": {"recipient_domain_is": ["fabrikam.test"]},
		"actions": {"route_to_outbound_connector": %d}}`, name, connectorID)
	if err := json.Unmarshal([]byte(base), &rule); err != nil {
		panic(err)
	}
	if extra != "" {
		if err := json.Unmarshal([]byte("{"+strings.TrimPrefix(strings.TrimSpace(extra), ",")+"}"), &rule); err != nil {
			panic(err)
		}
	}
	b, err := json.Marshal(rule)
	if err != nil {
		panic(err)
	}
	return string(b)
}

type ruleJSON struct {
	ID         int64          `json:"id"`
	Name       string         `json:"name"`
	Priority   *int           `json:"priority"`
	Enabled    bool           `json:"enabled"`
	Mode       string         `json:"mode"`
	OnError    string         `json:"on_error"`
	Conditions map[string]any `json:"conditions"`
	Actions    map[string]any `json:"actions"`
}

func (r reply) rule(t testing.TB) ruleJSON {
	t.Helper()
	var out ruleJSON
	if err := json.Unmarshal(r.Body, &out); err != nil {
		t.Fatalf("not a rule: %v: %s", err, r.Body)
	}
	return out
}

// order lists the rules' names by priority, checking the priorities are
// 0..n-1 in the order the list comes in.
func order(t testing.TB, c *client) []string {
	t.Helper()
	r := c.do("GET", "/rules", "")
	if r.Status != 200 {
		t.Fatalf("GET /rules: %d %s", r.Status, r.Body)
	}
	var list []ruleJSON
	if err := json.Unmarshal(r.Body, &list); err != nil {
		t.Fatalf("GET /rules: %v: %s", err, r.Body)
	}
	names := []string{}
	for i, rl := range list {
		if rl.Priority == nil || *rl.Priority != i {
			t.Fatalf("rule %q at %d has priority %v", rl.Name, i, rl.Priority)
		}
		names = append(names, rl.Name)
	}
	return names
}

func wantRuleOrder(t testing.TB, c *client, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if got := order(t, c); !slices.Equal(got, want) {
		t.Fatalf("rules %q, want %q", got, want)
	}
}

func TestRulesCRUD(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		admin, viewer := newAPI(t, st)
		gw, _ := ruleConnectors(t, st)
		if r := viewer.do("GET", "/rules", ""); r.Status != 200 || strings.TrimSpace(string(r.Body)) != "[]" {
			t.Fatalf("empty list: %d %s", r.Status, r.Body)
		}

		r := admin.do("POST", "/rules", ruleBody("A", gw, `, "comment": "first"`))
		if r.Status != 201 {
			t.Fatalf("create A: %d %s", r.Status, r.Body)
		}
		a := r.rule(t)
		if a.ID == 0 || a.Priority == nil || *a.Priority != 0 || !a.Enabled || a.Mode != "enforce" || a.OnError != "defer" {
			t.Fatalf("created: %s", r.Body)
		}
		var created map[string]any
		_ = json.Unmarshal(r.Body, &created)
		for _, k := range []string{"id", "name", "priority", "enabled", "mode", "comment", "activation_date", "expiry_date", "conditions", "exceptions", "actions", "on_error"} {
			if _, ok := created[k]; !ok {
				t.Errorf("the rule has no %q: %s", k, r.Body)
			}
		}
		path := "/rules/" + itoa(a.ID)
		if r := viewer.do("GET", path, ""); r.Status != 200 || r.rule(t).Name != "A" || r.json(t)["comment"] != "first" {
			t.Fatalf("get: %d %s", r.Status, r.Body)
		}

		r = admin.do("POST", "/rules", ruleBody("B", gw, `, "priority": 0`))
		if r.Status != 201 || *r.rule(t).Priority != 0 {
			t.Fatalf("create B first: %d %s", r.Status, r.Body)
		}
		b := r.rule(t)
		if r := admin.do("POST", "/rules", ruleBody("C", gw, `, "priority": null`)); r.Status != 201 || *r.rule(t).Priority != 2 {
			t.Fatalf("create C last: %d %s", r.Status, r.Body)
		}
		wantRuleOrder(t, viewer, "B", "A", "C")

		// PUT moves A first; the body GET answered can be sent back.
		got := viewer.do("GET", path, "").json(t)
		got["priority"] = 0
		got["conditions"] = map[string]any{"recipient_domain_is": []string{"fabrikam.test", "Contoso.TEST"}}
		body, _ := json.Marshal(got)
		if r := admin.do("PUT", path, string(body)); r.Status != 200 || *r.rule(t).Priority != 0 {
			t.Fatalf("put A first: %d %s", r.Status, r.Body)
		}
		wantRuleOrder(t, viewer, "A", "B", "C")
		if d := viewer.do("GET", path, "").rule(t).Conditions["recipient_domain_is"]; fmt.Sprint(d) != "[fabrikam.test contoso.test]" {
			t.Fatalf("conditions after PUT: %v", d)
		}
		// PUT without a priority keeps the place; it replaces the rule
		// (no comment: the comment is gone; enabled false).
		if r := admin.do("PUT", "/rules/"+itoa(b.ID), ruleBody("B2", gw, `, "enabled": false`)); r.Status != 200 || *r.rule(t).Priority != 1 || r.rule(t).Enabled {
			t.Fatalf("put B: %d %s", r.Status, r.Body)
		}
		if r := admin.do("PUT", path, ruleBody("A", gw, `, "id": 999`)); r.Status != 400 || r.fields(t)["id"] == nil {
			t.Fatalf("put with another id: %d %s", r.Status, r.Body)
		}
		if r := admin.do("PUT", "/rules/999", ruleBody("Z", gw, "")); r.Status != 404 {
			t.Fatalf("put unknown: %d %s", r.Status, r.Body)
		}
		wantRuleOrder(t, viewer, "A", "B2", "C")

		if r := admin.do("DELETE", "/rules/"+itoa(b.ID), ""); r.Status != 204 {
			t.Fatalf("delete: %d %s", r.Status, r.Body)
		}
		wantRuleOrder(t, viewer, "A", "C")
		if r := admin.do("GET", "/rules/"+itoa(b.ID), ""); r.Status != 404 {
			t.Fatalf("get deleted: %d", r.Status)
		}
		if r := admin.do("DELETE", "/rules/"+itoa(b.ID), ""); r.Status != 404 {
			t.Fatalf("delete twice: %d", r.Status)
		}
		for _, p := range []string{"/rules/x", "/rules/0", "/rules/-1"} {
			if r := admin.do("GET", p, ""); r.Status != 404 {
				t.Fatalf("GET %s: %d", p, r.Status)
			}
		}

		// Viewers read, and may not write.
		for _, m := range []struct{ method, path, body string }{
			{"POST", "/rules", ruleBody("V", gw, "")},
			{"PUT", path, ruleBody("A", gw, "")},
			{"DELETE", path, ""},
		} {
			if r := viewer.do(m.method, m.path, m.body); r.Status != 403 {
				t.Fatalf("viewer %s %s: %d %s", m.method, m.path, r.Status, r.Body)
			}
		}
		wantRuleOrder(t, viewer, "A", "C")

		// Every change is in the audit log.
		log, err := st.ListAudit(context.Background(), store.AuditFilter{ObjectType: "rule"})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range log {
			if e.ObjectType == "rule" {
				n++
			}
		}
		if n != 6 { // create A, B, C; update A, B; delete B
			t.Fatalf("%d rule audit entries, want 6", n)
		}
	})
}

// TestRuleFieldErrors sends each invalid rule and expects 400 with a
// message under that field, on POST and on PUT.
func TestRuleFieldErrors(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		admin, _ := newAPI(t, st)
		gw, in := ruleConnectors(t, st)
		existing := admin.do("POST", "/rules", ruleBody("Existing", gw, ""))
		if existing.Status != 201 {
			t.Fatalf("create: %d %s", existing.Status, existing.Body)
		}
		put := "/rules/" + itoa(existing.rule(t).ID)
		ok := func(extra string) string { return ruleBody("R", gw, extra) }
		cases := []struct {
			name, body, field, contains string
			postOnly, putOnly           bool
		}{
			{name: "unknown key", body: ok(`, "colour": "red"`), field: "colour"},
			{name: "unknown condition", body: ok(`, "conditions": {"sender_is": ["a@b.test"]}`), field: "conditions.sender_is"},
			{name: "no condition", body: ok(`, "conditions": {}`), field: "conditions"},
			{name: "both actions", body: ok(`, "actions": {"route_to_outbound_connector": 1, "reject": {}}`), field: "actions"},
			{name: "no action", body: ok(`, "actions": {"stop_processing": true}`), field: "actions"},
			{name: "missing connector", body: ruleBody("R", 9999, ""), field: "actions.route_to_outbound_connector", contains: "9999"},
			{name: "inbound connector", body: ruleBody("R", in, ""), field: "actions.route_to_outbound_connector", contains: "inbound"},
			{name: "bad regex", body: ok(`, "conditions": {"header_matches": [{"header": "Subject", "pattern": "a(b"}]}`),
				field: "conditions.header_matches[0].pattern", contains: "position"},
			{name: "dates reversed", body: ok(`, "activation_date": "2026-02-01T00:00:00Z", "expiry_date": "2026-01-01T00:00:00Z"`), field: "expiry_date"},
			{name: "bad date", body: ok(`, "activation_date": "tomorrow"`), field: "activation_date"},
			{name: "negative priority", body: ok(`, "priority": -1`), field: "priority"},
			{name: "priority past the end on create", body: ok(`, "priority": 2`), field: "priority", postOnly: true},
			{name: "priority past the end on update", body: ok(`, "priority": 1`), field: "priority", putOnly: true},
			{name: "priority not a number", body: ok(`, "priority": "first"`), field: "priority"},
			{name: "no name", body: `{"conditions": {"sender_domain_is": ["x.test"]}, "actions": {"reject": {}}}`, field: "name"},
			{name: "long name", body: ruleBody(strings.Repeat("n", 65), gw, ""), field: "name"},
			{name: "bad mode", body: ok(`, "mode": "loud"`), field: "mode"},
			{name: "bad on_error", body: ok(`, "on_error": "retry"`), field: "on_error"},
			{name: "bad reject code", body: ok(`, "actions": {"reject": {"code": 450}}`), field: "actions.reject.code"},
			{name: "bad ip range", body: ok(`, "conditions": {"sender_ip_ranges": ["10.0.0.9-10.0.0.1"]}`), field: "conditions.sender_ip_ranges[0]"},
			{name: "bad scope", body: ok(`, "conditions": {"from_scope": "outside"}`), field: "conditions.from_scope"},
			{name: "empty words", body: ok(`, "conditions": {"header_contains": [{"header": "Subject", "words": []}]}`), field: "conditions.header_contains[0].words"},
		}
		for _, tc := range cases {
			for _, m := range []struct{ method, path string }{{"POST", "/rules"}, {"PUT", put}} {
				if (tc.postOnly && m.method == "PUT") || (tc.putOnly && m.method == "POST") {
					continue
				}
				t.Run(tc.name+" "+m.method, func(t *testing.T) {
					r := admin.do(m.method, m.path, tc.body)
					if r.Status != 400 {
						t.Fatalf("status %d, want 400: %s", r.Status, r.Body)
					}
					msg, _ := r.fields(t)[tc.field].(string)
					if msg == "" || !strings.Contains(msg, tc.contains) {
						t.Fatalf("no message for field %q containing %q: %s", tc.field, tc.contains, r.Body)
					}
				})
			}
		}
		// Several problems at once are all reported.
		r := admin.do("POST", "/rules", `{"name": "", "mode": "x", "conditions": {}, "actions": {}}`)
		if f := r.fields(t); r.Status != 400 || f["name"] == nil || f["mode"] == nil || f["conditions"] == nil || f["actions"] == nil {
			t.Fatalf("several errors: %d %s", r.Status, r.Body)
		}
		for _, body := range []string{"", "null", "[]", "{", `{"name": "a"} x`, "\x00"} {
			r := admin.do("POST", "/rules", body)
			if r.Status != 400 || r.json(t)["error"] == "" {
				t.Fatalf("body %q: %d %s", body, r.Status, r.Body)
			}
		}
		wantRuleOrder(t, admin, "Existing")
	})
}

func TestRuleDuplicateName(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		admin, _ := newAPI(t, st)
		gw, _ := ruleConnectors(t, st)
		if r := admin.do("POST", "/rules", ruleBody("Legal", gw, "")); r.Status != 201 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		r := admin.do("POST", "/rules", ruleBody("LEGAL", gw, ""))
		if r.Status != 409 || !strings.Contains(r.json(t)["error"].(string), "Legal") || r.fields(t)["name"] == nil {
			t.Fatalf("duplicate on create: %d %s", r.Status, r.Body)
		}
		other := admin.do("POST", "/rules", ruleBody("Other", gw, ""))
		r = admin.do("PUT", "/rules/"+itoa(other.rule(t).ID), ruleBody("legal", gw, ""))
		if r.Status != 409 || r.fields(t)["name"] == nil {
			t.Fatalf("duplicate on update: %d %s", r.Status, r.Body)
		}
	})
}

// A connector that an enabled enforce rule routes to cannot be deleted or
// turned off: 409 naming the rule (SPEC 7).
func TestConnectorRoutedByRule(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		admin, _ := newAPI(t, st)
		gw, _ := ruleConnectors(t, st)
		rl := admin.do("POST", "/rules", ruleBody("Legal to the gateway", gw, ""))
		if rl.Status != 201 {
			t.Fatalf("create: %d %s", rl.Status, rl.Body)
		}
		path := "/outbound-connectors/" + itoa(gw)
		r := admin.do("DELETE", path, "")
		if r.Status != 409 || !strings.Contains(r.json(t)["error"].(string), `"Legal to the gateway"`) ||
			!strings.Contains(fmt.Sprint(r.fields(t)["connector"]), "Legal to the gateway") {
			t.Fatalf("delete: %d %s", r.Status, r.Body)
		}
		c := admin.do("GET", path, "").json(t)
		c["enabled"] = false
		body, _ := json.Marshal(c)
		r = admin.do("PUT", path, string(body))
		if r.Status != 409 || !strings.Contains(r.json(t)["error"].(string), `"Legal to the gateway"`) {
			t.Fatalf("disable: %d %s", r.Status, r.Body)
		}
		if got := admin.do("GET", path, "").json(t); got["enabled"] != true || got["revision"] != 1.0 {
			t.Fatalf("the refused change changed the connector: %v", got)
		}
		// In audit mode the rule does not hold the connector.
		if r := admin.do("PUT", "/rules/"+itoa(rl.rule(t).ID), ruleBody("Legal to the gateway", gw, `, "mode": "audit"`)); r.Status != 200 {
			t.Fatalf("audit: %d %s", r.Status, r.Body)
		}
		if r := admin.do("DELETE", path, ""); r.Status != 204 {
			t.Fatalf("delete after the rule went to audit: %d %s", r.Status, r.Body)
		}
	})
}
