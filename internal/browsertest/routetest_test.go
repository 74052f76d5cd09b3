package browsertest

import (
	"context"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/rules"
	"github.com/flowgate/flowgate/internal/testutil"
)

// TestRouteTestPage: a route test filled in and sent from the page; the
// answer names the inbound connector and why, and per recipient the route
// (one chosen by a mail flow rule on a header), the next hops and the TLS
// setting; bad input shows its errors beside the fields.
func TestRouteTestPage(t *testing.T) {
	srv := startServer(t)
	srv.seedAdmin(t)
	ctx := context.Background()
	st := srv.st
	if _, err := st.CreateAcceptedDomain(ctx, testutil.TestActor, "contoso.com", connector.Authoritative); err != nil {
		t.Fatal(err)
	}
	testutil.ActivateConnector(t, st, &connector.InboundSpec{Common: connector.Common{Name: "Contoso Bank", ConnectorType: connector.Partner},
		SenderDomains: []string{"contosobank.com"}, RequireTLS: true})
	testutil.ActivateConnector(t, st, &connector.OutboundSpec{Common: connector.Common{Name: "Contoso servers", ConnectorType: connector.OnPremises},
		AllAcceptedDomains: true, SmartHosts: []string{"mail1.contoso.com", "mail2.contoso.com"}, TLSSettings: connector.TLSEncryptionOnly})
	gw := testutil.ActivateConnector(t, st, &connector.OutboundSpec{Common: connector.Common{Name: "Secure mail gateway", ConnectorType: connector.Partner},
		IsTransportRuleScoped: true, SmartHosts: []string{"securemail.contoso.com:2525"}, TLSSettings: connector.TLSDomainValidation, TLSDomain: "securemail.contoso.com"})
	if _, err := st.CreateRule(ctx, testutil.TestActor, rules.Rule{Name: "Encrypt confidential mail", Enabled: true, Mode: rules.Enforce,
		Conditions: rules.Predicates{RecipientAddressIs: []string{"legal@contoso.com"},
			HeaderContains: []rules.HeaderWords{{Header: "X-Classification", Words: []string{"confidential"}}}},
		Actions: rules.Actions{RouteToOutboundConnector: &gw}}); err != nil {
		t.Fatal(err)
	}
	size := int64(10_000_000)
	if _, err := st.CreateRule(ctx, testutil.TestActor, rules.Rule{Name: "Watch large mail", Enabled: true, Mode: rules.Audit,
		Conditions: rules.Predicates{MessageSizeOver: &size}, Actions: rules.Actions{Reject: &rules.Reject{}}}); err != nil {
		t.Fatal(err)
	}

	b := newTab(t, srv.url)
	b.signIn(adminEmail, password, "/connectors")
	b.clickOK(`header nav a[href="/route-test"]`, "open the route test")
	b.wantPath(`/route-test`)
	b.wantAbsent(".routetest-answer", "nothing was tested yet")

	b.fill("#f-sender", "alice@contosobank.com")
	b.fill("#f-recipients", "john@contoso.com\nlegal@contoso.com")
	b.fill("#f-client_ip", "203.0.113.5")
	b.tick("tls", true)
	b.fill("#f-cert_name", "mail.contosobank.com")
	b.fill("#f-headers", "X-Classification: Confidential")
	b.fill("#f-size", "25000")
	b.clickOK(`form.routetest-form button[type=submit]`, "run the route test")
	b.wantPath(`/route-test\?.*client_ip=203\.0\.113\.5.*`)
	b.wantText(".routetest-summary", "Mail from 203.0.113.5 (TLS, certificate mail.contosobank.com) as alice@contosobank.com would be attributed to the inbound connector “Contoso Bank”: sender exact domain match contosobank.com.")
	b.wantText(".routetest-verdict", "250 2.1.5 every recipient would be accepted")
	rows := b.rows("table.routetest-routes tbody tr")
	if len(rows) != 2 {
		b.fatalf("recipient rows: %q", rows)
	}
	want := [][]string{
		{"john@contoso.com", "accepted", "Outbound connector “Contoso servers”", "mail1.contoso.com", "encryption_only", "connector for all accepted domains"},
		{"legal@contoso.com", "accepted", "chosen by mail flow rule Encrypt confidential mail", "securemail.contoso.com:2525", "domain_validation", `mail flow rule "Encrypt confidential mail" routes through connector "Secure mail gateway"`},
	}
	for i, w := range want {
		for j, cell := range w {
			if !containsText(rows[i], cell) {
				b.fatalf("recipient row %d %q lacks %q (column %d)", i, rows[i], cell, j)
			}
		}
	}
	rulesRows := b.rows("table.routetest-rules tbody tr")
	if len(rulesRows) != 2 || !containsText(rulesRows[0], "matched, applied") || !containsText(rulesRows[1], "not matched") {
		b.fatalf("rules rows: %q", rulesRows)
	}
	b.wantNoSideScroll()
	b.shot("route-test")
	// On a phone, nothing runs off the page.
	b.phone()
	b.wantNoSideScroll()
	b.shot("route-test phone")
	b.desktop()

	// Bad input: 400, the errors beside their fields.
	b.fill("#f-client_ip", "203.0.113.500")
	b.fill("#f-headers", "X-Classification confidential")
	if st := b.click(`form.routetest-form button[type=submit]`); st != 400 {
		b.fatalf("bad input: HTTP %d, want 400", st)
	}
	b.wantFieldError("client_ip", "#f-client_ip", "is not an IP address")
	b.wantFieldError("headers", "#f-headers", "is not a header line")
	b.wantAbsent(".routetest-answer", "the input is invalid")
	b.shot("route-test bad input")
}

// containsText reports whether some cell of row contains s.
func containsText(row []string, s string) bool {
	for _, c := range row {
		if strings.Contains(c, s) {
			return true
		}
	}
	return false
}
