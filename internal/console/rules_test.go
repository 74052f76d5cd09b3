package console_test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/rules"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// ruleScopedConnector creates a rule-scoped outbound connector.
func ruleScopedConnector(t *testing.T, st *store.Store, name string) int64 {
	t.Helper()
	spec := &connector.OutboundSpec{Common: connector.Common{Name: name, ConnectorType: connector.Partner},
		IsTransportRuleScoped: true, SmartHosts: []string{"gw.fabrikam.com"}, TLSSettings: connector.TLSOpportunistic}
	c, err := st.CreateConnector(context.Background(), testutil.TestActor, spec, true)
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}

// ruleForm is a filled-in rule form as a browser posts it: every field
// of the page, with fields overriding or adding to the defaults (a
// rule that routes recipients of fabrikam.com to connector).
func ruleForm(connectorID int64, fields ...string) []string {
	v := map[string]string{
		"name": "Legal to the gateway", "comment": "", "enabled": "on", "mode": "enforce", "priority": "",
		"activation_date": "", "expiry_date": "", "action": "route", "connector": itoa(connectorID),
		"reject_code": "550", "reject_enhanced": "5.7.1", "reject_text": "Delivery not authorized, message refused",
		"on_error": "defer", "nav": "save", "preview_since": "24h",
		"c_recipient_domain_is": "fabrikam.com",
	}
	for _, p := range []string{"c", "x"} {
		for _, k := range []string{"sender_address_is", "sender_domain_is", "recipient_address_is", "recipient_domain_is",
			"from_scope", "sent_to_scope", "sender_ip_ranges", "message_size_over", "inbound_connector_is"} {
			if _, ok := v[p+"_"+k]; !ok {
				v[p+"_"+k] = ""
			}
		}
		for i := range 3 {
			for _, f := range []string{"hc_header_", "hc_words_", "hm_header_", "hm_pattern_"} {
				v[p+"_"+f+itoa(int64(i))] = ""
			}
		}
	}
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i+1] == "\x00" { // leave the field out, as an unticked checkbox is
			delete(v, fields[i])
			continue
		}
		v[fields[i]] = fields[i+1]
	}
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		out = append(out, k, v[k])
	}
	return out
}

func onlyRule(t *testing.T, st *store.Store) rules.Rule {
	t.Helper()
	list, err := st.ListRules(context.Background())
	if err != nil || len(list) != 1 {
		t.Fatalf("rules: %v, %v; want one", list, err)
	}
	return list[0]
}

// TestRulesCreateAndEdit: the list, the new form (with a connector
// preselected from the connector page), a save, the summary in plain
// words, the edit form prefilled and a save over it.
func TestRulesCreateAndEdit(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		b := adminBrowser(t, st)
		gw := ruleScopedConnector(t, st, "Legal gateway")

		b.get("/rules").has(t, "No mail flow rules yet", `href="/rules/new"`, `aria-current="page">Mail flow rules`)
		// The connector is rule-scoped and no rule routes to it: unused.
		b.get("/connectors").has(t, `class="badge unused"`, "no mail flow rule routes to it")
		cp := b.get("/connectors/outbound/" + itoa(gw))
		cp.has(t, `class="badge unused"`, "No mail flow rule routes to it", `href="/rules/new?connector=`+itoa(gw)+`"`, "Create a rule for it")

		form := b.get("/rules/new?connector=" + itoa(gw))
		form.has(t, `<option value="`+itoa(gw)+`" selected>Legal gateway — rule-scoped`, `value="550"`, `value="5.7.1"`,
			`value="Delivery not authorized, message refused"`, "(UTC, optional)", `name="c_hc_header_2"`, `name="x_hm_pattern_2"`)

		r := b.post("/rules/new", ruleForm(gw,
			"c_hc_header_0", "X-Classification", "c_hc_words_0", "confidential, secret",
			"x_sender_address_is", "ceo@contoso.com", "stop_processing", "on")...)
		if r.Status != http.StatusSeeOther || !strings.HasPrefix(r.Location, "/rules") {
			t.Fatalf("create: %d %q %s", r.Status, r.Location, r.Body)
		}
		rule := onlyRule(t, st)
		if rule.Name != "Legal to the gateway" || *rule.Priority != 0 || !rule.Enabled || rule.Mode != rules.Enforce ||
			*rule.Actions.RouteToOutboundConnector != gw || !rule.Actions.StopProcessing ||
			len(rule.Conditions.HeaderContains) != 1 || strings.Join(rule.Conditions.HeaderContains[0].Words, "|") != "confidential|secret" ||
			strings.Join(rule.Exceptions.SenderAddressIs, "|") != "ceo@contoso.com" || rule.Exceptions.RecipientDomainIs != nil {
			t.Fatalf("stored rule: %+v", rule)
		}
		list := b.follow(r)
		list.has(t, "Created the mail flow rule “Legal to the gateway” at priority 0.",
			"the recipient domain is fabrikam.com and the header X-Classification contains confidential or secret → route to “Legal gateway”, and stop processing more rules; except when the sender is ceo@contoso.com",
			`id="rule-`+itoa(rule.ID)+`"`, `class="badge mode-enforce"`)
		b.get("/connectors").lacks(t, `class="badge unused"`)
		b.get("/connectors/outbound/"+itoa(gw)).has(t, "“Legal to the gateway”", "priority 0, enforce, on")

		edit := b.get("/rules/" + itoa(rule.ID) + "/edit")
		edit.has(t, "Edit Legal to the gateway", `value="Legal to the gateway"`, `value="X-Classification"`, `value="confidential, secret"`,
			"ceo@contoso.com</textarea>", "It runs at priority 0 now", `<details class="card rule-exceptions" open`)

		r = b.post("/rules/"+itoa(rule.ID)+"/edit", ruleForm(gw,
			"name", "Legal, audited", "mode", "audit", "enabled", "\x00", "action", "reject", "reject_text", "Not here",
			"c_recipient_domain_is", "fabrikam.com\n\nlegal.fabrikam.com", "activation_date", "2030-01-02T09:30")...)
		if r.Status != http.StatusSeeOther {
			t.Fatalf("edit: %d %s", r.Status, r.Body)
		}
		b.follow(r).has(t, "Saved the mail flow rule “Legal, audited” at priority 0. It is turned off",
			"→ reject with “550 5.7.1 Not here”", "from 2030-01-02 09:30 UTC", "not active yet", `class="badge mode-audit"`)
		got, _ := st.GetRule(ctx, rule.ID)
		if got.Name != "Legal, audited" || got.Enabled || got.Mode != rules.Audit || got.Actions.Reject == nil ||
			got.Actions.RouteToOutboundConnector != nil || got.ActivationDate.Format("2006-01-02 15:04 MST") != "2030-01-02 09:30 UTC" ||
			strings.Join(got.Conditions.RecipientDomainIs, "|") != "fabrikam.com|legal.fabrikam.com" {
			t.Fatalf("edited rule: %+v", got)
		}
		// The rule no longer routes to the connector: unused again.
		b.get("/connectors").has(t, `class="badge unused"`)

		if p := b.get("/rules/9999/edit"); p.Status != http.StatusNotFound {
			t.Fatalf("edit a missing rule: %d", p.Status)
		}
	})
}

// TestRuleFormErrors: each problem is shown next to its field, with what
// was typed kept; a refused post redirects to the form, which shows it
// once.
func TestRuleFormErrors(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	b := adminBrowser(t, st)
	gw := ruleScopedConnector(t, st, "Legal gateway")

	r := b.post("/rules/new", ruleForm(gw, "name", "", "c_recipient_domain_is", "fabrikam.com\nnot a domain!",
		"c_sender_ip_ranges", "10.0.0.0/8\n\n300.1.1.1", "c_hm_header_1", "Subject", "c_hm_pattern_1", "([a-z",
		"c_hc_words_0", "secret", "priority", "first", "x_message_size_over", "big", "expiry_date", "tomorrow")...)
	if r.Status != http.StatusSeeOther || r.Location != "/rules/new" {
		t.Fatalf("refused post: %d %q", r.Status, r.Location)
	}
	p := r.wantFieldError(t, "name", "Enter a name")
	errs := p.fieldErrors()
	for field, want := range map[string]string{
		"c_recipient_domain_is": "Line 2:",
		"c_sender_ip_ranges":    "Line 3:",
		"c_hm_pattern_1":        "Missing closing ]",
		"c_hc_header_0":         "Enter a header name",
		"priority":              "whole number",
		"x_message_size_over":   "number of bytes",
		"expiry_date":           "UTC",
	} {
		if !strings.Contains(errs[field], want) {
			t.Errorf("error next to %s = %q, want %q; all: %v", field, errs[field], want, errs)
		}
	}
	p.has(t, "Fix the fields marked below", `value="first"`, "not a domain!</textarea>", `value="([a-z"`, `value="Subject"`, `value="secret"`, `value="tomorrow"`)
	// Shown once: the next visit is a fresh form.
	b.get("/rules/new").lacks(t, "not a domain!", "Fix the fields marked below")

	// No condition at all; route without a connector; a reject code that
	// is not permanent.
	b.post("/rules/new", ruleForm(gw, "c_recipient_domain_is", "")...).wantFieldError(t, "conditions", "at least one condition")
	b.post("/rules/new", ruleForm(gw, "connector", "")...).wantFieldError(t, "connector", "Choose the outbound connector")
	b.post("/rules/new", ruleForm(gw, "action", "reject", "reject_code", "450")...).wantFieldError(t, "reject_code", "500 to 599")
	b.post("/rules/new", ruleForm(gw, "action", "reject", "reject_enhanced", "4.7.1")...).wantFieldError(t, "reject_enhanced", "5.7.1")
	b.post("/rules/new", ruleForm(gw, "action", "")...).wantFieldError(t, "action", "Choose what the rule does")
	// A connector deleted meanwhile, found by the store.
	b.post("/rules/new", ruleForm(gw, "connector", "9999")...).wantFieldError(t, "connector", "No outbound connector has id 9999").
		has(t, "Connector 9999 (deleted)")
	// The store's priority range.
	b.post("/rules/new", ruleForm(gw, "priority", "5")...).wantFieldError(t, "priority", "At most 0")
	// A word with a line break cannot be typed; header words out of
	// bounds are the same path: Word 2 of row 1.
	b.post("/rules/new", ruleForm(gw, "c_hc_header_1", "X-Tag", "c_hc_words_1", "ok, "+strings.Repeat("w", 300))...).
		wantFieldError(t, "c_hc_words_1", "Word 2:")

	// An exception's entry, and a header row of the exceptions.
	p = b.post("/rules/new", ruleForm(gw, "x_sender_domain_is", "contoso.com\n*.contoso.com", "x_hm_header_2", "Bad Header:", "x_hm_pattern_2", "x")...).
		wantFieldError(t, "x_sender_domain_is", `Line 2: "*.contoso.com": leave out "*."`)
	p.has(t, `<details class="card rule-exceptions" open`)
	if got := p.fieldErrors()["x_hm_header_2"]; !strings.Contains(got, "is not a header name") {
		t.Fatalf("exception header row error: %q", got)
	}

	// A duplicate name, next to the name, whatever its case.
	if r := b.post("/rules/new", ruleForm(gw)...); r.Status != http.StatusSeeOther || r.Location == "/rules/new" {
		t.Fatalf("first rule: %d %q", r.Status, r.Location)
	}
	b.post("/rules/new", ruleForm(gw, "name", "LEGAL to the gateway")...).wantFieldError(t, "name", "already exists").
		has(t, `value="LEGAL to the gateway"`)
	if n, _ := st.ListRules(context.Background()); len(n) != 1 {
		t.Fatalf("%d rules stored, want 1", len(n))
	}
}

// TestRulesMoveEnableDelete: move up and down, turn off and on, delete
// after a confirmation that says what the rule does; every change is in
// the audit log as a sentence.
func TestRulesMoveEnableDelete(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		b := adminBrowser(t, st)
		gw := ruleScopedConnector(t, st, "Legal gateway")
		for _, name := range []string{"First", "Second", "Third"} {
			if r := b.post("/rules/new", ruleForm(gw, "name", name)...); r.Status != http.StatusSeeOther {
				t.Fatalf("create %s: %d", name, r.Status)
			}
		}
		names := func() string {
			list, _ := st.ListRules(ctx)
			var out []string
			for _, r := range list {
				out = append(out, r.Name)
			}
			return strings.Join(out, ",")
		}
		list, _ := st.ListRules(ctx)
		first, third := list[0], list[2]
		page := b.get("/rules")
		page.has(t, `disabled aria-label="Move First up"`, `disabled aria-label="Move Third down"`)
		page.lacks(t, `disabled aria-label="Move Second`)

		r := b.post("/rules/"+itoa(third.ID)+"/move", "direction", "up")
		if r.Status != http.StatusSeeOther || r.Location != "/rules" {
			t.Fatalf("move up: %d %q", r.Status, r.Location)
		}
		b.follow(r).has(t, "Moved “Third” up: it runs at priority 1 now.")
		if got := names(); got != "First,Third,Second" {
			t.Fatalf("after move up: %s", got)
		}
		b.post("/rules/"+itoa(first.ID)+"/move", "direction", "down")
		if got := names(); got != "Third,First,Second" {
			t.Fatalf("after move down: %s", got)
		}
		b.follow(b.post("/rules/"+itoa(third.ID)+"/move", "direction", "up")).has(t, "“Third” runs first already.")

		b.follow(b.post("/rules/"+itoa(first.ID)+"/disable")).has(t, "Turned off “First”: it no longer acts on mail.")
		if got, _ := st.GetRule(ctx, first.ID); got.Enabled {
			t.Fatal("still on")
		}
		b.follow(b.post("/rules/"+itoa(first.ID)+"/enable")).has(t, "Turned on “First”")

		confirm := b.get("/rules/" + itoa(first.ID) + "/delete")
		confirm.has(t, "Delete the mail flow rule “First”?", "It runs at priority 1.",
			"Conditions: the recipient domain is fabrikam.com", "Action: route to “Legal gateway”",
			"This rule is turned on and enforced", `action="/rules/`+itoa(first.ID)+`/delete"`)
		if got := names(); got != "Third,First,Second" {
			t.Fatal("the confirmation page changed the rules")
		}
		r = b.post("/rules/" + itoa(first.ID) + "/delete")
		if r.Status != http.StatusSeeOther || r.Location != "/rules" {
			t.Fatalf("delete: %d %q", r.Status, r.Location)
		}
		b.follow(r).has(t, "Deleted the mail flow rule “First”.")
		if got := names(); got != "Third,Second" {
			t.Fatalf("after delete: %s", got)
		}
		if p := b.post("/rules/" + itoa(first.ID) + "/delete"); p.Status != http.StatusNotFound {
			t.Fatalf("delete twice: %d", p.Status)
		}

		wantNewestRows(t, b.get("/audit"),
			"admin@contoso.com deleted the mail flow rule “First” (priority 1, enforce) Settings Name: First",
			"admin@contoso.com turned on the mail flow rule “First”: it acts on mail",
			"admin@contoso.com turned off the mail flow rule “First”: it no longer acts on mail",
			"admin@contoso.com moved the mail flow rule “First” from priority 0 to 1",
			"admin@contoso.com moved the mail flow rule “Third” from priority 2 to 1",
			"admin@contoso.com created the mail flow rule “Third” (priority 2, enforce) Settings Name: Third",
			"admin@contoso.com created the mail flow rule “Second” (priority 1, enforce)",
			"admin@contoso.com created the mail flow rule “First” (priority 0, enforce) Settings Name: First Priority: 0 Turned on: yes Mode: enforce If the recipient domain is: fabrikam.com Action: route to “Legal gateway”",
		)
		// The log filters by rules, and by moves.
		wantNewestRows(t, b.get("/audit?object=rule&action=move"),
			"admin@contoso.com moved the mail flow rule “First” from priority 0 to 1",
			"admin@contoso.com moved the mail flow rule “Third” from priority 2 to 1",
		)
		if rows := auditRows(b.get("/audit?object=rule")); len(rows) != 8 {
			t.Fatalf("the rules' audit rows: %d, want 8: %q", len(rows), rows)
		}
	})
}

// TestRuleAuditUpdate: an edit is told as the settings it changed.
func TestRuleAuditUpdate(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	b := adminBrowser(t, st)
	gw := ruleScopedConnector(t, st, "Legal gateway")
	b.post("/rules/new", ruleForm(gw, "c_recipient_domain_is", "fabrikam.com\ncontoso.com")...)
	rule := onlyRule(t, st)
	b.post("/rules/"+itoa(rule.ID)+"/edit", ruleForm(gw, "c_recipient_domain_is", "fabrikam.com\nnorthwind.com", "mode", "audit",
		"x_sender_domain_is", "ceo.contoso.com", "stop_processing", "on")...)
	all := auditRows(b.get("/audit"))
	if len(all) == 0 || !strings.Contains(all[0], "admin@contoso.com changed the mail flow rule “Legal to the gateway”: Mode: enforce → audit If the recipient domain is: removed contoso.com; added northwind.com Except if the sender domain is: (none) → ceo.contoso.com Stop processing more rules: no → yes") {
		t.Fatalf("update row: %q", all[0])
	}
}

// TestRulesViewerAndForgery: a viewer reads the list without buttons and
// is refused every change; a cross-site post is refused.
func TestRulesViewerAndForgery(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	b := adminBrowser(t, st)
	gw := ruleScopedConnector(t, st, "Legal gateway")
	b.post("/rules/new", ruleForm(gw)...)
	rule := onlyRule(t, st)
	id := itoa(rule.ID)

	createUser(t, st, "viewer@contoso.com", store.RoleViewer)
	v := newBrowser(t, b.srv)
	v.signIn("viewer@contoso.com")
	list := v.get("/rules")
	list.has(t, "Legal to the gateway", "→ route to “Legal gateway”")
	list.lacks(t, `href="/rules/new"`, "/move", "/edit", "/delete", "Turn off")
	for _, path := range []string{"/rules/new", "/rules/" + id + "/edit", "/rules/" + id + "/delete"} {
		if p := v.get(path); p.Status != http.StatusForbidden {
			t.Fatalf("viewer GET %s: %d", path, p.Status)
		}
	}
	for _, path := range []string{"/rules/new", "/rules/" + id + "/edit", "/rules/" + id + "/move", "/rules/" + id + "/disable", "/rules/" + id + "/delete"} {
		if p := v.post(path, ruleForm(gw, "name", "Viewer's")...); p.Status != http.StatusForbidden || !strings.Contains(p.Body, "viewer role") {
			t.Fatalf("viewer POST %s: %d", path, p.Status)
		}
	}

	for _, site := range []string{"cross-site", "same-site"} {
		b.site = site
		for _, path := range []string{"/rules/new", "/rules/" + id + "/edit", "/rules/" + id + "/disable", "/rules/" + id + "/delete", "/rules/" + id + "/move"} {
			p := b.post(path, ruleForm(gw, "name", "Forged")...)
			if p.Status != http.StatusForbidden {
				t.Fatalf("%s POST %s: %d", site, path, p.Status)
			}
			p.has(t, "cross-site request forgery")
		}
	}
	b.site = "same-origin"
	if got := onlyRule(t, st); got.Name != "Legal to the gateway" || !got.Enabled {
		t.Fatalf("a refused post changed the rule: %+v", got)
	}
}

// TestRulePreview: Preview keeps the draft, redirects to the form, and
// the form shows the preview with the draft still filled in; nothing is
// saved. A draft with errors shows them instead.
func TestRulePreview(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	b := adminBrowser(t, st)
	gw := ruleScopedConnector(t, st, "Legal gateway")

	r := b.post("/rules/new", ruleForm(gw, "nav", "preview", "preview_since", "7d", "name", "Draft rule")...)
	if r.Status != http.StatusSeeOther || r.Location != "/rules/new" {
		t.Fatalf("preview: %d %q", r.Status, r.Location)
	}
	if loc := r.Header.Get("Location"); !strings.HasSuffix(loc, "#preview") {
		t.Fatalf("preview redirect %q lacks #preview", loc)
	}
	p := b.follow(r)
	p.has(t, "Preview over the last 7 days", `id="preview-considered">0<`, `id="preview-matched">0<`,
		"No recipient's route would have changed.", `value="Draft rule"`, `<option value="7d" selected>`)
	if list, _ := st.ListRules(context.Background()); len(list) != 0 {
		t.Fatal("the preview saved the rule")
	}
	// A draft that is off says why it would change nothing.
	b.follow(b.post("/rules/new", ruleForm(gw, "nav", "preview", "enabled", "\x00")...)).has(t, "The rule is turned off in this form")

	// Errors first.
	p = b.post("/rules/new", ruleForm(gw, "nav", "preview", "c_recipient_domain_is", "bad domain!")...).
		wantFieldError(t, "c_recipient_domain_is", "Line 1:")
	p.has(t, "The preview runs once the rule has no errors.")
	p.lacks(t, `id="preview"`)

	// An edit previews the draft in the rule's place.
	b.post("/rules/new", ruleForm(gw)...)
	rule := onlyRule(t, st)
	r = b.post("/rules/"+itoa(rule.ID)+"/edit", ruleForm(gw, "nav", "preview", "name", "Renamed draft")...)
	if r.Location != "/rules/"+itoa(rule.ID)+"/edit" {
		t.Fatalf("edit preview: %q", r.Location)
	}
	b.follow(r).has(t, "Preview over the last 24 hours", `value="Renamed draft"`)
	if got := onlyRule(t, st); got.Name != "Legal to the gateway" {
		t.Fatal("the preview saved the edit")
	}
}

// wantNewestRows checks that the newest rows of the audit log contain
// want, in order, one a row.
func wantNewestRows(t *testing.T, p page, want ...string) {
	t.Helper()
	rows := auditRows(p)
	if len(rows) < len(want) {
		t.Fatalf("%d rows, want at least %d:\n%s", len(rows), len(want), strings.Join(rows, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(rows[i], w) {
			t.Fatalf("row %d = %q\nwant it to contain %q", i, rows[i], w)
		}
	}
}

// The outbound wizard's "only with a rule" choice leads to creating the
// rule for that connector: its Validate step links to the rule form with
// the connector chosen.
func TestRuleScopedWizardLinksToANewRule(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	createUser(t, st, "admin@contoso.com", store.RoleAdmin)
	b := newBrowser(t, serveWithValidation(t, st))
	b.signIn("admin@contoso.com")
	w := startWizard(t, b, "/connectors/new")
	w.next("1", "2", "from", "flowgate", "to", "partner")
	w.next("2", "3", "name", "Encryption gateway")
	w.page("3").has(t, "it then carries mail only through a rule")
	w.next("3", "4", "use", "rule")
	w.next("4", "5", "route_by", "smarthosts", "smart_hosts", "127.0.0.1:2525")
	w.next("5", "6", "tls_settings", "opportunistic")
	r := b.post(w.base+"/6", "nav", "save")
	conn := onlyOutbound(t, st)
	validate := b.follow(r)
	link := "/rules/new?connector=" + itoa(conn.ID)
	validate.has(t, "This connector carries mail only when a mail flow rule routes messages to it.", `href="`+link+`"`)
	b.get(link).has(t, fmt.Sprintf(`<option value="%d" selected>Encryption gateway`, conn.ID))
}

func onlyOutbound(t *testing.T, st *store.Store) *store.Connector {
	t.Helper()
	list, err := st.ListConnectors(context.Background(), connector.Outbound)
	if err != nil || len(list) != 1 {
		t.Fatalf("outbound connectors: %d, %v", len(list), err)
	}
	return list[0]
}

// A connector an enabled enforce rule routes to is neither turned off
// nor deleted from the console: the page it came from warns, naming the
// rule, and the connector stays (SPEC 7).
func TestRoutedConnectorCannotBeTurnedOffOrDeleted(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	b := adminBrowser(t, st)
	gw := ruleScopedConnector(t, st, "Legal gateway")
	if r := b.post("/rules/new", ruleForm(gw)...); r.Status != http.StatusSeeOther {
		t.Fatalf("create the rule: %d", r.Status)
	}
	href := "/connectors/outbound/" + itoa(gw)
	for _, action := range []string{"/disable", "/delete"} {
		r := b.post(href + action)
		if r.Status != http.StatusSeeOther {
			t.Fatalf("%s: %d", action, r.Status)
		}
		b.follow(r).has(t, `rules route to this connector: "Legal to the gateway"; change or disable those rules first`)
	}
	c, err := st.GetConnector(context.Background(), connector.Outbound, gw)
	if err != nil || !c.Enabled {
		t.Fatalf("the routed-to connector after the refusals: %+v, %v", c, err)
	}
}
