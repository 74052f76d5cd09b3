package connector_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
)

// Every inbound connector of the seeds is valid, and Normalize leaves it
// in canonical form.
func TestInboundNormalizeSeedExamples(t *testing.T) {
	tests := []struct {
		name     string
		spec     connector.InboundSpec
		domains  []string
		ips      []string
		cert     string
		identity []connector.Identification
	}{
		{name: "003 example 1: domain and TLS", spec: partnerExample1(),
			domains: []string{"contosobank.com"}, identity: []connector.Identification{connector.ByDomain}},
		{name: "003 example 2: domain, TLS and certificate", spec: partnerExample2(),
			domains: []string{"contosobank.com"}, cert: "mail.contosobank.com", identity: []connector.Identification{connector.ByDomain}},
		{name: "003 example 3: domain and IP range", spec: partnerExample3(),
			domains: []string{"contosobank.com"}, ips: []string{"198.51.100.0/24"}, identity: []connector.Identification{connector.ByDomain}},
		{name: "003 example 4: every sender and IP range", spec: partnerExample4(),
			domains: []string{"*"}, ips: []string{"203.0.113.10-203.0.113.20"}, identity: []connector.Identification{connector.ByDomain}},
		{name: "003 example 5: IP and TLS", spec: partnerExample5(),
			ips: []string{"192.0.2.0/28"}, identity: []connector.Identification{connector.ByIP}},
		{name: "000 own server by certificate", spec: onPremByCertificate(),
			cert: "mail.contoso.com", identity: []connector.Identification{connector.ByCertificate}},
		{name: "000 own server by IP", spec: onPremByIP(),
			ips: []string{"10.1.0.0/24"}, identity: []connector.Identification{connector.ByIP}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.spec
			if errs := s.Normalize(); len(errs) != 0 {
				t.Fatalf("Normalize() = %v, want no errors", errs)
			}
			if !slices.Equal(s.SenderDomains, tt.domains) {
				t.Errorf("SenderDomains = %q, want %q", s.SenderDomains, tt.domains)
			}
			if !slices.Equal(s.SenderIPAddresses, tt.ips) {
				t.Errorf("SenderIPAddresses = %q, want %q", s.SenderIPAddresses, tt.ips)
			}
			if s.TLSSenderCertificateName != tt.cert {
				t.Errorf("TLSSenderCertificateName = %q, want %q", s.TLSSenderCertificateName, tt.cert)
			}
			if got := s.IdentifiedBy(); !slices.Equal(got, tt.identity) {
				t.Errorf("IdentifiedBy() = %v, want %v", got, tt.identity)
			}
		})
	}
}

func TestInboundNormalizeCanonicalizes(t *testing.T) {
	s := connector.InboundSpec{
		Common:                       connector.Common{Name: " ContosoBank ", Comment: "  bank  ", ConnectorType: connector.Partner},
		SenderDomains:                []string{"ContosoBank.com", "contosobank.com.", " ", "*.ContosoBank.COM", "bücher.example"},
		SenderIPAddresses:            []string{"198.51.100.7/24", "198.51.100.0/24", "", "::ffff:203.0.113.5", "2001:DB8::1"},
		RestrictDomainsToIPAddresses: true,
		TLSSenderCertificateName:     "MAIL.ContosoBank.com.",
		RestrictDomainsToCertificate: true,
	}
	if errs := s.Normalize(); len(errs) != 0 {
		t.Fatalf("Normalize() = %v, want no errors", errs)
	}
	checks := []struct{ field, got, want string }{
		{"name", s.Name, "ContosoBank"},
		{"comment", s.Comment, "bank"},
		{"sender_domains", strings.Join(s.SenderDomains, ","), "contosobank.com,*.contosobank.com,xn--bcher-kva.example"},
		{"sender_ip_addresses", strings.Join(s.SenderIPAddresses, ","), "198.51.100.0/24,203.0.113.5,2001:db8::1"},
		{"tls_sender_certificate_name", s.TLSSenderCertificateName, "mail.contosobank.com"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
		}
	}
}

// Each case breaks one rule of a valid spec; the error must sit on the
// field the admin has to change, and on no other.
func TestInboundNormalizeRules(t *testing.T) {
	tests := []struct {
		name   string
		base   func() connector.InboundSpec
		mutate func(s *connector.InboundSpec)
		fields []string // empty: still valid
	}{
		// partner
		{name: "partner by IP with certificate restriction is valid", base: partnerExample5, mutate: func(s *connector.InboundSpec) {
			s.RequireTLS = false
			s.TLSSenderCertificateName = "mail.partner.example"
			s.RestrictDomainsToCertificate = true
		}},
		{name: "partner by wildcard domain is valid", base: partnerExample1, mutate: func(s *connector.InboundSpec) {
			s.SenderDomains = []string{"*.contosobank.com", "contosobank.com"}
		}},
		{name: "partner with neither domains nor IPs", base: partnerExample1, mutate: func(s *connector.InboundSpec) {
			s.SenderDomains = nil
		}, fields: []string{"sender_domains"}},
		{name: "partner with only blank entries", base: partnerExample1, mutate: func(s *connector.InboundSpec) {
			s.SenderDomains = []string{" ", ""}
		}, fields: []string{"sender_domains"}},
		{name: "partner without any restriction", base: partnerExample1, mutate: func(s *connector.InboundSpec) {
			s.RequireTLS = false
		}, fields: []string{"require_tls"}},
		{name: "partner by IP without any restriction", base: partnerExample5, mutate: func(s *connector.InboundSpec) {
			s.RequireTLS = false
		}, fields: []string{"require_tls"}},
		{name: "partner domains with IPs but no IP restriction", base: partnerExample3, mutate: func(s *connector.InboundSpec) {
			s.RestrictDomainsToIPAddresses = false
			s.RequireTLS = true
		}, fields: []string{"restrict_domains_to_ip_addresses"}},
		{name: "IP restriction without IPs", base: partnerExample3, mutate: func(s *connector.InboundSpec) {
			s.SenderIPAddresses = nil
		}, fields: []string{"sender_ip_addresses"}},
		{name: "IP restriction on a partner identified by IP", base: partnerExample5, mutate: func(s *connector.InboundSpec) {
			s.RestrictDomainsToIPAddresses = true
		}, fields: []string{"restrict_domains_to_ip_addresses"}},
		{name: "certificate name without the restriction", base: partnerExample2, mutate: func(s *connector.InboundSpec) {
			s.RestrictDomainsToCertificate = false
		}, fields: []string{"restrict_domains_to_certificate"}},
		{name: "certificate restriction without a name", base: partnerExample2, mutate: func(s *connector.InboundSpec) {
			s.TLSSenderCertificateName = ""
		}, fields: []string{"tls_sender_certificate_name"}},
		{name: "certificate name * is refused", base: partnerExample2, mutate: func(s *connector.InboundSpec) {
			s.TLSSenderCertificateName = "*"
		}, fields: []string{"tls_sender_certificate_name"}},
		{name: "bad sender domain", base: partnerExample1, mutate: func(s *connector.InboundSpec) {
			s.SenderDomains = []string{"contosobank.com", "mail.*.contosobank.com"}
		}, fields: []string{"sender_domains"}},
		{name: "bad sender IP", base: partnerExample3, mutate: func(s *connector.InboundSpec) {
			s.SenderIPAddresses = []string{"198.51.100.0/24", "198.51.100.300"}
		}, fields: []string{"sender_ip_addresses"}},
		{name: "too many sender domains", base: partnerExample1, mutate: func(s *connector.InboundSpec) {
			s.SenderDomains = numberedDomains(connector.MaxListLen + 1)
		}, fields: []string{"sender_domains"}},
		{name: "as many sender domains as allowed", base: partnerExample1, mutate: func(s *connector.InboundSpec) {
			s.SenderDomains = numberedDomains(connector.MaxListLen)
		}},

		// on_premises
		{name: "own server by certificate and IP is valid", base: onPremByCertificate, mutate: func(s *connector.InboundSpec) {
			s.SenderIPAddresses = []string{"10.1.0.5"}
		}},
		{name: "own server certificate with restriction is valid", base: onPremByCertificate, mutate: func(s *connector.InboundSpec) {
			s.RestrictDomainsToCertificate = true
		}},
		{name: "own server without TLS by IP is valid", base: onPremByIP, mutate: func(s *connector.InboundSpec) {
			s.RequireTLS = false
		}},
		{name: "own server with sender domains", base: onPremByIP, mutate: func(s *connector.InboundSpec) {
			s.SenderDomains = []string{"contoso.com"}
		}, fields: []string{"sender_domains"}},
		{name: "own server with neither IPs nor certificate", base: onPremByIP, mutate: func(s *connector.InboundSpec) {
			s.SenderIPAddresses = nil
		}, fields: []string{"sender_ip_addresses"}},
		{name: "own server with IP restriction", base: onPremByIP, mutate: func(s *connector.InboundSpec) {
			s.RestrictDomainsToIPAddresses = true
		}, fields: []string{"restrict_domains_to_ip_addresses"}},
		{name: "own server certificate restriction without a name", base: onPremByIP, mutate: func(s *connector.InboundSpec) {
			s.RestrictDomainsToCertificate = true
		}, fields: []string{"tls_sender_certificate_name"}},
		{name: "own server with a bad certificate name", base: onPremByCertificate, mutate: func(s *connector.InboundSpec) {
			s.TLSSenderCertificateName = "mail..contoso.com"
		}, fields: []string{"tls_sender_certificate_name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.base()
			tt.mutate(&s)
			checkFields(t, s.Normalize(), tt.fields...)
		})
	}
}

// An error message names the bad entry, so the admin can find it.
func TestInboundNormalizeNamesBadEntry(t *testing.T) {
	s := partnerExample3()
	s.SenderIPAddresses = []string{"198.51.100.9-198.51.100.1"}
	errs := s.Normalize()
	if msg := errs["sender_ip_addresses"]; !strings.Contains(msg, "198.51.100.9-198.51.100.1") {
		t.Errorf("sender_ip_addresses error = %q, want it to quote the entry", msg)
	}
}

func TestInboundParse(t *testing.T) {
	s := partnerExample2()
	s.SenderDomains = append(s.SenderDomains, "*.contosobank.com")
	if errs := s.Normalize(); len(errs) != 0 {
		t.Fatal(errs)
	}
	p := s.Parse()
	if len(p.SenderDomains) != 2 || p.SenderDomains[0].Kind != connector.Exact || p.SenderDomains[1].Kind != connector.Wildcard {
		t.Errorf("SenderDomains = %v, want [contosobank.com *.contosobank.com]", p.SenderDomains)
	}
	if p.CertificateName == nil || p.CertificateName.String() != "mail.contosobank.com" {
		t.Errorf("CertificateName = %v, want mail.contosobank.com", p.CertificateName)
	}
	if len(p.SenderIPs) != 0 {
		t.Errorf("SenderIPs = %v, want none", p.SenderIPs)
	}
}

func numberedDomains(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("d%d.example", i)
	}
	return out
}
