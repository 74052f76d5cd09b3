package relay_test

import (
	"context"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/testutil"
)

func partner(name string) connector.Common {
	return connector.Common{Name: name, ConnectorType: connector.Partner}
}

// expectRestriction checks a 550 5.7.51 at MAIL FROM naming the failed
// restriction, and a rejected trace that names the connector.
func expectRestriction(t *testing.T, h *harness, r result, restriction, connectorName string) {
	t.Helper()
	if r.mailCode != 550 || !strings.Contains(r.mailText, "5.7.51") || !strings.Contains(r.mailText, restriction) {
		t.Fatalf("MAIL FROM: got %d %q, want 550 5.7.51 naming %q", r.mailCode, r.mailText, restriction)
	}
	tr := h.lastTrace()
	if tr.Status != "rejected" || tr.InboundConnector != connectorName || !strings.Contains(tr.Reply, "5.7.51") {
		t.Fatalf("trace %+v: want rejected by %q", tr, connectorName)
	}
}

func expectAccepted(t *testing.T, h *harness, r result, connectorName string) traceRow {
	t.Helper()
	if !r.accepted() {
		t.Fatalf("message not accepted: MAIL %d %q RCPT %v %q DATA %d %q", r.mailCode, r.mailText, r.rcpt, r.rcptText, r.dataCode, r.dataText)
	}
	tr := h.lastTrace()
	if tr.Status != "queued" || tr.InboundConnector != connectorName || tr.UID != uidOf(t, r.dataText) {
		t.Fatalf("trace %+v: want queued, attributed to %q", tr, connectorName)
	}
	return tr
}

var rcpt = []string{"john@contoso.com"}

func TestSeed003Example1RequireTLS(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			h := newHarness(t, e, nil)
			h.acceptedDomain("contoso.com")
			h.activeConnector(&connector.InboundSpec{Common: partner("Contoso Bank"), SenderDomains: []string{"contosobank.com"}, RequireTLS: true})

			r := send(h.dial(clientOpts{src: "127.0.0.5"}), "alice@contosobank.com", rcpt, "")
			expectRestriction(t, h, r, "TLS required", "Contoso Bank")

			r = send(h.dial(clientOpts{src: "127.0.0.5", tls: true}), "alice@ContosoBank.com", rcpt, "")
			tr := expectAccepted(t, h, r, "Contoso Bank")
			if tr.TLSVersion == "" || tr.TLSCipher == "" || tr.ClientIP != "127.0.0.5" {
				t.Fatalf("trace lacks TLS facts: %+v", tr)
			}
			if b := h.body(tr.UID); !strings.Contains(b, "with ESMTPS") || !strings.Contains(b, "version="+tr.TLSVersion) || !strings.Contains(b, "cipher="+tr.TLSCipher) {
				t.Fatalf("Received header lacks TLS facts:\n%s", b)
			}

			// Another sender domain is not this connector's business.
			r = send(h.dial(clientOpts{src: "127.0.0.5"}), "bob@fabrikam.test", rcpt, "")
			expectAccepted(t, h, r, "")
		})
	}
}

func TestSeed003Example2CertificateName(t *testing.T) {
	h := newHarness(t, testutil.Engines[0], nil)
	h.acceptedDomain("contoso.com")
	h.activeConnector(&connector.InboundSpec{Common: partner("Contoso Bank"), SenderDomains: []string{"contosobank.com"},
		RequireTLS: true, TLSSenderCertificateName: "mail.contosobank.com", RestrictDomainsToCertificate: true})
	good := h.ca.Issue(t, "mail.contosobank.com", "mail.contosobank.com")
	wrong := h.ca.Issue(t, "mail.evil.test", "mail.evil.test")
	untrusted := testutil.NewCA(t, "Someone Else").Issue(t, "mail.contosobank.com", "mail.contosobank.com")

	r := send(h.dial(clientOpts{src: "127.0.0.6", tls: true, cert: &good}), "alice@contosobank.com", rcpt, "")
	tr := expectAccepted(t, h, r, "Contoso Bank")
	if !strings.Contains(tr.ClientCert, "CN=mail.contosobank.com") || !strings.Contains(tr.ClientCert, "(verified)") {
		t.Fatalf("trace client cert %q", tr.ClientCert)
	}
	for _, tc := range []struct {
		name string
		o    clientOpts
	}{
		{"no TLS", clientOpts{src: "127.0.0.6"}},
		{"TLS without a cert", clientOpts{src: "127.0.0.6", tls: true}},
		{"wrong name", clientOpts{src: "127.0.0.6", tls: true, cert: &wrong}},
		{"untrusted right name", clientOpts{src: "127.0.0.6", tls: true, cert: &untrusted}}, // last: checked below
	} {
		o := tc.o
		t.Run(tc.name, func(t *testing.T) {
			r := send(h.dial(o), "alice@contosobank.com", rcpt, "")
			want := "certificate name mismatch"
			if !o.tls {
				want = "TLS required"
			}
			expectRestriction(t, h, r, want, "Contoso Bank")
		})
	}
	if tr := h.lastTrace(); !strings.Contains(tr.ClientCert, "not verified") {
		t.Fatalf("the untrusted certificate is not marked as such: %q", tr.ClientCert)
	}
}

func TestSeed003Example3IPRange(t *testing.T) {
	h := newHarness(t, testutil.Engines[0], nil)
	h.acceptedDomain("contoso.com")
	h.activeConnector(&connector.InboundSpec{Common: partner("Contoso Bank IPs"), SenderDomains: []string{"contosobank.com"},
		SenderIPAddresses: []string{"127.0.0.10-127.0.0.20"}, RestrictDomainsToIPAddresses: true})
	expectAccepted(t, h, send(h.dial(clientOpts{src: "127.0.0.15"}), "alice@contosobank.com", rcpt, ""), "Contoso Bank IPs")
	expectRestriction(t, h, send(h.dial(clientOpts{src: "127.0.0.30"}), "alice@contosobank.com", rcpt, ""), "IP address not allowed", "Contoso Bank IPs")
}

func TestSeed003Example4AllSendersFromOneService(t *testing.T) {
	h := newHarness(t, testutil.Engines[0], nil)
	h.acceptedDomain("contoso.com")
	h.activeConnector(&connector.InboundSpec{Common: partner("Filtering service"), SenderDomains: []string{"*"},
		SenderIPAddresses: []string{"127.0.0.40/30"}, RestrictDomainsToIPAddresses: true})
	expectAccepted(t, h, send(h.dial(clientOpts{src: "127.0.0.41"}), "anyone@anywhere.test", rcpt, ""), "Filtering service")
	expectAccepted(t, h, send(h.dial(clientOpts{src: "127.0.0.42"}), "", rcpt, ""), "Filtering service")
	expectRestriction(t, h, send(h.dial(clientOpts{src: "127.0.0.50"}), "anyone@anywhere.test", rcpt, ""), "IP address not allowed", "Filtering service")
	expectRestriction(t, h, send(h.dial(clientOpts{src: "127.0.0.50"}), "", rcpt, ""), "IP address not allowed", "Filtering service")
}

func TestSeed003Example5PartnerIPRequiresTLS(t *testing.T) {
	h := newHarness(t, testutil.Engines[0], nil)
	h.acceptedDomain("contoso.com")
	h.activeConnector(&connector.InboundSpec{Common: partner("Partner by IP"), SenderIPAddresses: []string{"127.0.0.60"}, RequireTLS: true})
	expectRestriction(t, h, send(h.dial(clientOpts{src: "127.0.0.60"}), "alice@partner.test", rcpt, ""), "TLS required", "Partner by IP")
	expectAccepted(t, h, send(h.dial(clientOpts{src: "127.0.0.60", tls: true}), "alice@partner.test", rcpt, ""), "Partner by IP")
	expectAccepted(t, h, send(h.dial(clientOpts{src: "127.0.0.61"}), "alice@partner.test", rcpt, ""), "")
}

func TestDisabledConnectorDoesNotApply(t *testing.T) {
	h := newHarness(t, testutil.Engines[0], nil)
	h.acceptedDomain("contoso.com")
	id := h.activeConnector(&connector.InboundSpec{Common: partner("Contoso Bank"), SenderDomains: []string{"contosobank.com"}, RequireTLS: true})
	expectRestriction(t, h, send(h.dial(clientOpts{src: "127.0.0.5"}), "alice@contosobank.com", rcpt, ""), "TLS required", "Contoso Bank")
	h.change(func() {
		if _, err := h.st.SetConnectorEnabled(context.Background(), admin, connector.Inbound, id, false); err != nil {
			t.Fatal(err)
		}
	})
	expectAccepted(t, h, send(h.dial(clientOpts{src: "127.0.0.5"}), "alice@contosobank.com", rcpt, ""), "")
}

// The seed's hybrid setup: the organization's own server may relay to the
// Internet through flowgate, identified by IP or certificate, and only for
// accepted sender domains (or a certificate in an accepted domain).
func TestOnPremisesRelay(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			h := newHarness(t, e, nil)
			h.acceptedDomain("contoso.com", "sales.contoso.com")
			h.activeConnector(&connector.InboundSpec{Common: connector.Common{Name: "Our server by IP", ConnectorType: connector.OnPremises},
				SenderIPAddresses: []string{"127.0.0.70"}})
			h.activeConnector(&connector.InboundSpec{Common: connector.Common{Name: "Our server by cert", ConnectorType: connector.OnPremises},
				TLSSenderCertificateName: "mail.contoso.com"})
			internet := []string{"sun@internet.test"}

			expectAccepted(t, h, send(h.dial(clientOpts{src: "127.0.0.70"}), "john@contoso.com", internet, ""), "Our server by IP")
			expectAccepted(t, h, send(h.dial(clientOpts{src: "127.0.0.70"}), "john@sales.contoso.com", internet, ""), "Our server by IP")

			r := send(h.dial(clientOpts{src: "127.0.0.70"}), "john@other.test", []string{"sun@internet.test", "bob@contoso.com"}, "")
			if r.rcpt[0] != 550 || !strings.Contains(r.rcptText[0], "5.7.64") || r.rcpt[1] != 250 || !r.accepted() {
				t.Fatalf("on-prem with a foreign sender domain: %v %q data %d", r.rcpt, r.rcptText, r.dataCode)
			}
			r = send(h.dial(clientOpts{src: "127.0.0.70"}), "", internet, "")
			if r.accepted() || r.rcpt[0] != 550 {
				t.Fatalf("null sender relayed from an IP-identified server: %+v", r)
			}

			// The same sender from an unidentified address may not relay:
			// it may not even send as our domain (SPEC 3.3), and a foreign
			// sender may not relay.
			r = send(h.dial(clientOpts{src: "127.0.0.71"}), "john@contoso.com", internet, "")
			if r.accepted() || r.mailCode != 550 || !strings.Contains(r.mailText, "5.7.1") {
				t.Fatalf("our domain from an unidentified client: %+v", r)
			}
			if tr := h.lastTrace(); tr.Status != "rejected" || !strings.Contains(tr.Reply, "5.7.1") {
				t.Fatalf("attempt not traced as rejected: %+v", tr)
			}
			r = send(h.dial(clientOpts{src: "127.0.0.71"}), "john@other.test", internet, "")
			if r.accepted() || r.rcpt[0] != 550 || !strings.Contains(r.rcptText[0], "5.7.64") {
				t.Fatalf("relay from an unidentified client: %+v", r)
			}
			if tr := h.lastTrace(); tr.Status != "rejected" || !strings.Contains(tr.Reply, "5.7.64") {
				t.Fatalf("relay attempt not traced as rejected: %+v", tr)
			}

			cert := h.ca.Issue(t, "mail.contoso.com", "mail.contoso.com")
			expectAccepted(t, h, send(h.dial(clientOpts{src: "127.0.0.72", tls: true, cert: &cert}), "", internet, ""), "Our server by cert")
			expectAccepted(t, h, send(h.dial(clientOpts{src: "127.0.0.72", tls: true, cert: &cert}), "x@other.test", internet, ""), "Our server by cert")
			untrusted := testutil.NewCA(t, "Rogue").Issue(t, "mail.contoso.com", "mail.contoso.com")
			r = send(h.dial(clientOpts{src: "127.0.0.72", tls: true, cert: &untrusted}), "john@contoso.com", internet, "")
			if r.accepted() {
				t.Fatal("an untrusted certificate opened the relay")
			}
		})
	}
}

// TestConnectEventNamesTLSAndCertificate reads the connect event of the
// trace for a plain session, a TLS session without a client certificate
// and one with a verified certificate.
func TestConnectEventNamesTLSAndCertificate(t *testing.T) {
	h := newHarness(t, testutil.Engines[0], nil)
	h.acceptedDomain("contoso.com")
	h.activeConnector(&connector.InboundSpec{Common: partner("Contoso Bank"), SenderDomains: []string{"contosobank.com"}, SenderIPAddresses: []string{"127.0.0.7"},
		RestrictDomainsToIPAddresses: true})
	good := h.ca.Issue(t, "mail.contosobank.com", "mail.contosobank.com")
	for _, tc := range []struct {
		name string
		o    clientOpts
		want string
	}{
		{"no TLS", clientOpts{src: "127.0.0.7"}, `client 127.0.0.7 helo "client.test", no TLS`},
		{"TLS without a certificate", clientOpts{src: "127.0.0.7", tls: true}, `client 127.0.0.7 helo "client.test", TLS 1.3 TLS_AES_128_GCM_SHA256, no client certificate`},
		{"verified certificate", clientOpts{src: "127.0.0.7", tls: true, cert: &good},
			`client 127.0.0.7 helo "client.test", TLS 1.3 TLS_AES_128_GCM_SHA256, client certificate CN=mail.contosobank.com (verified)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := send(h.dial(tc.o), "alice@contosobank.com", []string{"bob@contoso.com"}, "")
			if !r.accepted() {
				t.Fatalf("not accepted: %+v", r)
			}
			if got := h.event(uidOf(t, r.dataText), "connect"); got != tc.want {
				t.Fatalf("connect event\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}
