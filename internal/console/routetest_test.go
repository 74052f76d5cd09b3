package console_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/rules"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// routeTestConfig is the route tests' configuration: contoso.com is ours
// and goes to the on-premises servers; Contoso Bank sends as
// contosobank.com over TLS; mail marked confidential to fabrikam.com goes
// through the legal gateway by a mail flow rule. It returns the gateway's
// id.
func routeTestConfig(t *testing.T, st *store.Store) int64 {
	t.Helper()
	ctx := context.Background()
	if _, err := st.CreateAcceptedDomain(ctx, testutil.TestActor, "contoso.com", connector.Authoritative); err != nil {
		t.Fatal(err)
	}
	testutil.ActivateConnector(t, st, &connector.OutboundSpec{Common: connector.Common{Name: "Contoso servers", ConnectorType: connector.OnPremises},
		AllAcceptedDomains: true, SmartHosts: []string{"mail.contoso.com"}, TLSSettings: connector.TLSEncryptionOnly})
	testutil.ActivateConnector(t, st, &connector.InboundSpec{Common: connector.Common{Name: "Contoso Bank", ConnectorType: connector.Partner},
		SenderDomains: []string{"contosobank.com"}, RequireTLS: true})
	testutil.ActivateConnector(t, st, &connector.InboundSpec{Common: connector.Common{Name: "Our mail servers", ConnectorType: connector.OnPremises},
		SenderIPAddresses: []string{"10.0.0.0/8"}})
	gw := testutil.ActivateConnector(t, st, &connector.OutboundSpec{Common: connector.Common{Name: "Legal gateway", ConnectorType: connector.Partner},
		IsTransportRuleScoped: true, SmartHosts: []string{"gw.legal.contoso.com:2525"}, TLSSettings: connector.TLSOpportunistic})
	for _, r := range []rules.Rule{
		{Name: "Confidential via legal", Enabled: true, Mode: rules.Enforce,
			Conditions: rules.Predicates{RecipientDomainIs: []string{"fabrikam.com"},
				HeaderContains: []rules.HeaderWords{{Header: "X-Classification", Words: []string{"confidential"}}}},
			Actions: rules.Actions{RouteToOutboundConnector: &gw}},
		{Name: "Big mail watch", Enabled: true, Mode: rules.Audit,
			Conditions: rules.Predicates{MessageSizeOver: ptr(int64(1_000_000))},
			Actions:    rules.Actions{Reject: &rules.Reject{}}},
	} {
		if _, err := st.CreateRule(ctx, testutil.TestActor, r); err != nil {
			t.Fatal(err)
		}
	}
	return gw
}

func ptr[T any](v T) *T { return &v }

func routeTestURL(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return "/route-test?" + v.Encode()
}

// A partner's mail to us: attributed to the partner's inbound connector
// by its sender domain, routed by the connector for all accepted domains;
// a viewer can run the test (it changes nothing).
func TestRouteTestPartnerMail(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		routeTestConfig(t, st)
		createUser(t, st, "viewer@contoso.com", store.RoleViewer)
		b := newBrowser(t, serve(t, st, false))
		b.signIn("viewer@contoso.com")

		form := b.get("/route-test")
		if form.Status != http.StatusOK {
			t.Fatalf("form: %d %s", form.Status, form.Body)
		}
		form.has(t, `<form method="get" action="/route-test"`, `name="sender"`, `name="recipients"`, `name="client_ip"`,
			`name="tls"`, `name="cert_name"`, `name="headers"`, `name="size"`, `aria-current="page">Route test`)
		form.lacks(t, "Answer")

		p := b.get(routeTestURL("sender", "alice@contosobank.com", "recipients", "john@contoso.com\nmary@contoso.com",
			"client_ip", "203.0.113.5", "tls", "on", "cert_name", "mail.contosobank.com"))
		if p.Status != http.StatusOK {
			t.Fatalf("route test: %d %s", p.Status, p.Body)
		}
		p.has(t,
			"Mail from 203.0.113.5 (TLS, certificate mail.contosobank.com) as alice@contosobank.com would be attributed to the inbound connector “Contoso Bank”: sender exact domain match contosobank.com",
			"✓ accepted", "250 2.1.5 every recipient would be accepted",
			"john@contoso.com", "mary@contoso.com",
			"Outbound connector “Contoso servers”", "mail.contoso.com", "Always TLS, any certificate (encryption_only)",
			"connector for all accepted domains (contoso.com is accepted)",
			// The rules: neither matched, and why.
			"Confidential via legal", "Big mail watch", "– not matched")
		p.lacks(t, "chosen by mail flow rule")
		// The form keeps what was typed.
		p.has(t, `value="alice@contosobank.com"`, `value="203.0.113.5"`, "john@contoso.com\nmary@contoso.com</textarea>")
	})
}

// The partner's restriction (TLS required) and relay authorization, in
// the relay's exact replies.
func TestRouteTestRefusals(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	routeTestConfig(t, st)
	b := adminBrowser(t, st)

	p := b.get(routeTestURL("sender", "alice@contosobank.com", "recipients", "john@contoso.com", "client_ip", "203.0.113.5"))
	if p.Status != http.StatusOK {
		t.Fatalf("route test: %d %s", p.Status, p.Body)
	}
	p.has(t, "Mail from 203.0.113.5 (no TLS) as alice@contosobank.com would be attributed to the inbound connector “Contoso Bank” and would be refused: 550 5.7.51",
		"✗ refused", "The relay would refuse the message at MAIL FROM", "a message refused at MAIL FROM never reaches them")

	// A stranger relaying to the Internet: 550 5.7.64 for that recipient,
	// ours accepted.
	p = b.get(routeTestURL("sender", "x@internet.test", "recipients", "sun@elsewhere.test\njohn@contoso.com", "client_ip", "192.0.2.10", "tls", "on"))
	if p.Status != http.StatusOK {
		t.Fatalf("route test: %d %s", p.Status, p.Body)
	}
	p.has(t, "would come through no inbound connector: no inbound connector matches client IP 192.0.2.10",
		"partly refused", "550 5.7.64", "✗ refused", "sun@elsewhere.test", "Outbound connector “Contoso servers”")
}

// Bad input: a 400 page with the errors next to the fields, the form as
// typed.
func TestRouteTestBadInput(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	b := adminBrowser(t, st)
	p := b.get(routeTestURL("sender", "not an address", "recipients", "john@contoso.com\nnobody", "client_ip", "300.1.2.3",
		"cert_name", "mail.contosobank.com", "headers", "X-Classification confidential", "size", "big"))
	if p.Status != http.StatusBadRequest {
		t.Fatalf("bad input: %d %s", p.Status, p.Body)
	}
	p.wantFieldError(t, "client_ip", `"300.1.2.3" is not an IP address`)
	p.wantFieldError(t, "sender", `"not an address" is not an email address`)
	p.wantFieldError(t, "recipients", `"nobody" is not an email address`)
	p.wantFieldError(t, "cert_name", "only presented over TLS")
	p.wantFieldError(t, "headers", "is not a header line")
	p.wantFieldError(t, "size", `"big" is not a size`)
	p.has(t, `value="300.1.2.3"`, "Fix the fields marked above")
	p.lacks(t, "Answer")

	p = b.get(routeTestURL("client_ip", "192.0.2.1", "recipients", "", "size", "-5"))
	if p.Status != http.StatusBadRequest {
		t.Fatalf("bad input: %d %s", p.Status, p.Body)
	}
	p.wantFieldError(t, "recipients", "at least one recipient")
	p.wantFieldError(t, "size", `"-5" is not a size`)
}

// A rule that routes by a header: the recipient's route names the rule and
// the rule-scoped connector; the rules list says it matched and was
// applied, and the audit rule matched on the size.
func TestRouteTestRuleByHeader(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		routeTestConfig(t, st)
		b := adminBrowser(t, st)
		p := b.get(routeTestURL("sender", "ceo@contoso.com", "recipients", "legal@fabrikam.com\njohn@contoso.com", "client_ip", "10.1.2.3",
			"tls", "on", "headers", "X-Classification: Confidential\nSubject: merger", "size", "2000000"))
		if p.Status != http.StatusOK {
			t.Fatalf("route test: %d %s", p.Status, p.Body)
		}
		p.has(t, "would be attributed to the inbound connector “Our mail servers”: on_premises connector \"Our mail servers\" matched by client IP 10.1.2.3",
			"chosen by mail flow rule <strong>Confidential via legal</strong>", "Outbound connector “Legal gateway”",
			"gw.legal.contoso.com:2525", `mail flow rule "Confidential via legal" routes through connector "Legal gateway"`,
			"✓ matched, applied", "✓ matched (audit: recorded only)", "legal@fabrikam.com: ", "john@contoso.com: ")

		// Without the header, the usual route: MX for fabrikam.com.
		p = b.get(routeTestURL("sender", "ceo@contoso.com", "recipients", "legal@fabrikam.com", "client_ip", "10.1.2.3"))
		p.has(t, "MX lookup (no connector)", "the MX hosts of fabrikam.com", "no outbound connector matches fabrikam.com")
		p.lacks(t, "chosen by mail flow rule")
	})
}
