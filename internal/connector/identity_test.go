package connector_test

import (
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
)

// inSpec and outSpec wrap a spec value as a Spec; tests normalize it before
// use, so they only see specs the store would accept.
func inSpec(s connector.InboundSpec) connector.Spec   { return &s }
func outSpec(s connector.OutboundSpec) connector.Spec { return &s }

// normalized runs Normalize and fails the test when the spec is invalid.
func normalized(t *testing.T, s connector.Spec) connector.Spec {
	t.Helper()
	if errs := s.Normalize(); len(errs) != 0 {
		t.Fatalf("%s spec %q is invalid: %v", s.Direction(), s.Base().Name, errs)
	}
	return s
}

func TestOverlap(t *testing.T) {
	withDomains := func(s connector.InboundSpec, d ...string) connector.InboundSpec { s.SenderDomains = d; return s }
	withIPs := func(s connector.InboundSpec, ips ...string) connector.InboundSpec {
		s.SenderIPAddresses = ips
		return s
	}
	withRecipients := func(s connector.OutboundSpec, d ...string) connector.OutboundSpec {
		s.RecipientDomains = d
		return s
	}
	ruleScoped := func() connector.OutboundSpec {
		s := partnerOutbound()
		s.RecipientDomains = nil
		s.IsTransportRuleScoped = true
		return s
	}
	withCert := func(s connector.InboundSpec, name string) connector.InboundSpec {
		s.TLSSenderCertificateName = name
		return s
	}

	tests := []struct {
		name  string
		a, b  connector.Spec // normalized by the test
		field string         // "" when they must not overlap
		what  []string
	}{
		{name: "same sender domain",
			a:     inSpec(partnerExample1()),
			b:     inSpec(partnerExample3()),
			field: "sender_domains", what: []string{"contosobank.com"}},
		{name: "same sender domain written differently",
			a:     inSpec(withDomains(partnerExample1(), "ContosoBank.COM.")),
			b:     inSpec(withDomains(partnerExample1(), "contosobank.com")),
			field: "sender_domains", what: []string{"contosobank.com"}},
		{name: "same wildcard sender domain",
			a:     inSpec(withDomains(partnerExample1(), "*.contosobank.com")),
			b:     inSpec(withDomains(partnerExample1(), "fabrikam.com", "*.contosobank.com")),
			field: "sender_domains", what: []string{"*.contosobank.com"}},
		{name: "two catch-all sender connectors",
			a:     inSpec(partnerExample4()),
			b:     inSpec(withDomains(partnerExample1(), "*")),
			field: "sender_domains", what: []string{"*"}},
		{name: "exact and wildcard sender domains are different keys",
			a: inSpec(partnerExample1()),
			b: inSpec(withDomains(partnerExample1(), "*.contosobank.com"))},
		{name: "different sender domains",
			a: inSpec(partnerExample1()),
			b: inSpec(withDomains(partnerExample1(), "fabrikam.com"))},

		{name: "same partner IP",
			a:     inSpec(withIPs(partnerExample5(), "192.0.2.7")),
			b:     inSpec(withIPs(partnerExample5(), "192.0.2.7")),
			field: "sender_ip_addresses", what: []string{"192.0.2.7"}},
		{name: "overlapping IP ranges",
			a:     inSpec(withIPs(partnerExample5(), "192.0.2.0/24")),
			b:     inSpec(withIPs(partnerExample5(), "192.0.2.100-192.0.2.200")),
			field: "sender_ip_addresses", what: []string{"192.0.2.0/24", "overlaps", "192.0.2.100-192.0.2.200"}},
		{name: "overlapping IPv6 ranges",
			a:     inSpec(withIPs(partnerExample5(), "2001:db8::/48")),
			b:     inSpec(withIPs(partnerExample5(), "2001:db8:0:1::25")),
			field: "sender_ip_addresses", what: []string{"2001:db8::/48"}},
		{name: "own server IP overlaps a partner IP",
			a:     inSpec(onPremByIP()),
			b:     inSpec(withIPs(partnerExample5(), "10.1.0.128/25")),
			field: "sender_ip_addresses", what: []string{"10.1.0.0/24"}},
		{name: "adjacent IP ranges",
			a: inSpec(withIPs(partnerExample5(), "192.0.2.0/25")),
			b: inSpec(withIPs(partnerExample5(), "192.0.2.128/25"))},
		{name: "restriction IPs are not identity",
			a: inSpec(partnerExample3()),
			b: inSpec(withIPs(partnerExample5(), "198.51.100.0/24"))},
		{name: "two partners restricted to the same IPs",
			a: inSpec(partnerExample3()),
			b: inSpec(withDomains(partnerExample3(), "fabrikam.com"))},

		{name: "same certificate name",
			a:     inSpec(onPremByCertificate()),
			b:     inSpec(withCert(onPremByCertificate(), "Mail.Contoso.com")),
			field: "tls_sender_certificate_name", what: []string{"mail.contoso.com"}},
		{name: "same wildcard certificate name",
			a:     inSpec(withCert(onPremByCertificate(), "*.contoso.com")),
			b:     inSpec(withCert(onPremByCertificate(), "*.contoso.com")),
			field: "tls_sender_certificate_name", what: []string{"*.contoso.com"}},
		{name: "different certificate names",
			a: inSpec(onPremByCertificate()),
			b: inSpec(withCert(onPremByCertificate(), "mail2.contoso.com"))},
		{name: "partner certificate restriction is not identity",
			a: inSpec(partnerExample2()),
			b: inSpec(withDomains(partnerExample2(), "fabrikam.com"))},
		{name: "own servers by certificate and by IP",
			a: inSpec(onPremByCertificate()),
			b: inSpec(onPremByIP())},

		{name: "same recipient domain",
			a:     outSpec(onPremContoso()),
			b:     outSpec(withRecipients(partnerOutbound(), "fabrikam.com", "contoso.com")),
			field: "recipient_domains", what: []string{"contoso.com"}},
		{name: "two catch-all recipient connectors",
			a:     outSpec(withRecipients(partnerOutbound(), "*")),
			b:     outSpec(withRecipients(onPremContoso(), "*")),
			field: "recipient_domains", what: []string{"*"}},
		{name: "two connectors for all accepted domains",
			a:     outSpec(onPremAllAccepted()),
			b:     outSpec(onPremAllAccepted()),
			field: "all_accepted_domains", what: []string{"all accepted domains"}},
		{name: "precedence example: connectors 1 and 2 coexist",
			a: outSpec(onPremAllAccepted()),
			b: outSpec(onPremContoso())},
		{name: "precedence example: connectors 2 and 3 coexist",
			a: outSpec(onPremContoso()),
			b: outSpec(onPremWildcardContoso())},
		{name: "precedence example: connectors 1 and 3 coexist",
			a: outSpec(onPremAllAccepted()),
			b: outSpec(onPremWildcardContoso())},
		{name: "rule scoped connectors never overlap",
			a: outSpec(ruleScoped()),
			b: outSpec(ruleScoped())},

		{name: "inbound and outbound for one domain never overlap",
			a: inSpec(partnerExample1()),
			b: outSpec(partnerOutbound())},
		{name: "inbound and outbound catch-alls never overlap",
			a: inSpec(partnerExample4()),
			b: outSpec(withRecipients(partnerOutbound(), "*"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, s := range []connector.Spec{tt.a, tt.b} {
				if errs := s.Normalize(); len(errs) != 0 {
					t.Fatalf("%s spec %q is invalid: %v", s.Direction(), s.Base().Name, errs)
				}
			}
			a, b := connector.IdentityOf(tt.a), connector.IdentityOf(tt.b)
			field, what := connector.Overlap(a, b)
			if field != tt.field {
				t.Fatalf("Overlap() field = %q (%q), want %q", field, what, tt.field)
			}
			if tt.field == "" && what != "" {
				t.Errorf("Overlap() what = %q with no field", what)
			}
			for _, w := range tt.what {
				if !strings.Contains(what, w) {
					t.Errorf("Overlap() what = %q, want it to mention %q", what, w)
				}
			}
			// Either connector may be the one being created.
			if rfield, _ := connector.Overlap(b, a); rfield != field {
				t.Errorf("Overlap(b, a) field = %q, Overlap(a, b) field = %q; want the same", rfield, field)
			}
		})
	}
}

func TestIdentityOf(t *testing.T) {
	t.Run("partner by domain keeps restriction IPs out", func(t *testing.T) {
		id := connector.IdentityOf(normalized(t, inSpec(partnerExample3())))
		if id.Direction != connector.Inbound || len(id.Domains) != 1 || id.Domains[0].String() != "contosobank.com" {
			t.Errorf("identity = %+v, want inbound with domain contosobank.com", id)
		}
		if len(id.IPs) != 0 || id.CertificateName != nil {
			t.Errorf("identity IPs = %v, certificate = %v; want none", id.IPs, id.CertificateName)
		}
	})
	t.Run("partner by IP", func(t *testing.T) {
		id := connector.IdentityOf(normalized(t, inSpec(partnerExample5())))
		if len(id.IPs) != 1 || id.IPs[0].String() != "192.0.2.0/28" || len(id.Domains) != 0 {
			t.Errorf("identity = %+v, want IPs [192.0.2.0/28]", id)
		}
	})
	t.Run("own server by certificate and IP", func(t *testing.T) {
		s := onPremByCertificate()
		s.SenderIPAddresses = []string{"10.1.0.5"}
		id := connector.IdentityOf(normalized(t, inSpec(s)))
		if id.CertificateName == nil || id.CertificateName.String() != "mail.contoso.com" {
			t.Errorf("certificate = %v, want mail.contoso.com", id.CertificateName)
		}
		if len(id.IPs) != 1 || id.IPs[0].String() != "10.1.0.5" {
			t.Errorf("IPs = %v, want [10.1.0.5]", id.IPs)
		}
	})
	t.Run("outbound", func(t *testing.T) {
		id := connector.IdentityOf(normalized(t, outSpec(onPremAllAccepted())))
		if id.Direction != connector.Outbound || !id.AllAcceptedDomains || len(id.Domains) != 0 {
			t.Errorf("identity = %+v, want outbound for all accepted domains", id)
		}
	})
}
