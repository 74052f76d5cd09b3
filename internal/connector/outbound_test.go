package connector_test

import (
	"slices"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
)

func TestOutboundNormalizeSeedExamples(t *testing.T) {
	tests := []struct {
		name       string
		spec       connector.OutboundSpec
		domains    []string
		smartHosts []string
		tls        connector.TLSSettings
		tlsDomain  string
	}{
		{name: "000 connector 1: all accepted domains by smart host", spec: onPremAllAccepted(),
			smartHosts: []string{"mail.contoso.com"}, tls: connector.TLSOpportunistic},
		{name: "000 connector 2: contoso.com", spec: onPremContoso(),
			domains: []string{"contoso.com"}, smartHosts: []string{"mail2.contoso.com"}, tls: connector.TLSOpportunistic},
		{name: "000 connector 3: *.contoso.com", spec: onPremWildcardContoso(),
			domains: []string{"*.contoso.com"}, smartHosts: []string{"mail3.contoso.com"}, tls: connector.TLSOpportunistic},
		{name: "003 to the partner with domain validation", spec: partnerOutbound(),
			domains: []string{"contosobank.com"}, tls: connector.TLSDomainValidation, tlsDomain: "*.contosobank.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.spec
			if errs := s.Normalize(); len(errs) != 0 {
				t.Fatalf("Normalize() = %v, want no errors", errs)
			}
			if !slices.Equal(s.RecipientDomains, tt.domains) {
				t.Errorf("RecipientDomains = %q, want %q", s.RecipientDomains, tt.domains)
			}
			if !slices.Equal(s.SmartHosts, tt.smartHosts) {
				t.Errorf("SmartHosts = %q, want %q", s.SmartHosts, tt.smartHosts)
			}
			if s.TLSSettings != tt.tls {
				t.Errorf("TLSSettings = %q, want %q", s.TLSSettings, tt.tls)
			}
			if s.TLSDomain != tt.tlsDomain {
				t.Errorf("TLSDomain = %q, want %q", s.TLSDomain, tt.tlsDomain)
			}
		})
	}
}

func TestOutboundNormalizeCanonicalizes(t *testing.T) {
	s := connector.OutboundSpec{
		Common:               connector.Common{Name: "Hybrid", ConnectorType: connector.OnPremises},
		RecipientDomains:     []string{"Contoso.com", "contoso.com.", "*.Sales.Contoso.com", " "},
		SmartHosts:           []string{"Mail.Contoso.com", "mail.contoso.com", "[2001:DB8::25]:2525", "192.0.2.25:25"},
		TLSSettings:          connector.TLSDomainValidation,
		TLSDomain:            "MAIL.Contoso.com.",
		ValidationRecipients: []string{"<John@Contoso.COM>", "John@contoso.com"},
	}
	if errs := s.Normalize(); len(errs) != 0 {
		t.Fatalf("Normalize() = %v, want no errors", errs)
	}
	if want := []string{"contoso.com", "*.sales.contoso.com"}; !slices.Equal(s.RecipientDomains, want) {
		t.Errorf("RecipientDomains = %q, want %q", s.RecipientDomains, want)
	}
	if want := []string{"mail.contoso.com", "[2001:db8::25]:2525", "192.0.2.25:25"}; !slices.Equal(s.SmartHosts, want) {
		t.Errorf("SmartHosts = %q, want %q (order kept, duplicates removed)", s.SmartHosts, want)
	}
	if s.TLSDomain != "mail.contoso.com" {
		t.Errorf("TLSDomain = %q, want mail.contoso.com", s.TLSDomain)
	}
	if want := []string{"John@contoso.com"}; !slices.Equal(s.ValidationRecipients, want) {
		t.Errorf("ValidationRecipients = %q, want %q", s.ValidationRecipients, want)
	}
	p := s.Parse()
	if len(p.SmartHosts) != 3 || p.SmartHosts[1].Port != 2525 || !p.SmartHosts[1].IsIP() {
		t.Errorf("Parse().SmartHosts = %+v, want three with the IPv6 one on port 2525", p.SmartHosts)
	}
	if p.TLSDomain == nil || p.TLSDomain.String() != "mail.contoso.com" {
		t.Errorf("Parse().TLSDomain = %v, want mail.contoso.com", p.TLSDomain)
	}
}

func TestOutboundNormalizeRules(t *testing.T) {
	tests := []struct {
		name   string
		base   func() connector.OutboundSpec
		mutate func(s *connector.OutboundSpec)
		fields []string // empty: still valid
	}{
		// when to use it: exactly one choice
		{name: "rule scoped only is valid", base: onPremContoso, mutate: func(s *connector.OutboundSpec) {
			s.RecipientDomains = nil
			s.IsTransportRuleScoped = true
		}},
		{name: "partner for every domain is valid", base: partnerOutbound, mutate: func(s *connector.OutboundSpec) {
			s.RecipientDomains = []string{"*"}
		}},
		{name: "no choice of when to use it", base: onPremContoso, mutate: func(s *connector.OutboundSpec) {
			s.RecipientDomains = nil
		}, fields: []string{"recipient_domains"}},
		{name: "only blank recipient domains", base: onPremContoso, mutate: func(s *connector.OutboundSpec) {
			s.RecipientDomains = []string{"", "  "}
		}, fields: []string{"recipient_domains"}},
		{name: "rule scoped and all accepted domains", base: onPremAllAccepted, mutate: func(s *connector.OutboundSpec) {
			s.IsTransportRuleScoped = true
		}, fields: []string{"recipient_domains"}},
		{name: "rule scoped and recipient domains", base: onPremContoso, mutate: func(s *connector.OutboundSpec) {
			s.IsTransportRuleScoped = true
		}, fields: []string{"recipient_domains"}},
		{name: "all accepted domains and recipient domains", base: onPremContoso, mutate: func(s *connector.OutboundSpec) {
			s.AllAcceptedDomains = true
		}, fields: []string{"recipient_domains"}},
		{name: "all three choices", base: onPremContoso, mutate: func(s *connector.OutboundSpec) {
			s.AllAcceptedDomains = true
			s.IsTransportRuleScoped = true
		}, fields: []string{"recipient_domains"}},
		{name: "all accepted domains on a partner connector", base: onPremAllAccepted, mutate: func(s *connector.OutboundSpec) {
			s.ConnectorType = connector.Partner
		}, fields: []string{"all_accepted_domains"}},
		{name: "bad recipient domain", base: onPremContoso, mutate: func(s *connector.OutboundSpec) {
			s.RecipientDomains = []string{"contoso..com"}
		}, fields: []string{"recipient_domains"}},

		// how it routes: MX xor smart hosts
		{name: "MX record is valid", base: onPremContoso, mutate: func(s *connector.OutboundSpec) {
			s.SmartHosts = nil
			s.UseMXRecord = true
		}},
		{name: "several smart hosts are valid", base: onPremContoso, mutate: func(s *connector.OutboundSpec) {
			s.SmartHosts = []string{"mail1.contoso.com", "192.0.2.25:2525", "[2001:db8::25]:25"}
		}},
		{name: "both MX and smart hosts", base: onPremContoso, mutate: func(s *connector.OutboundSpec) {
			s.UseMXRecord = true
		}, fields: []string{"smart_hosts"}},
		{name: "neither MX nor smart hosts", base: onPremContoso, mutate: func(s *connector.OutboundSpec) {
			s.SmartHosts = nil
		}, fields: []string{"smart_hosts"}},
		{name: "bad smart host", base: onPremContoso, mutate: func(s *connector.OutboundSpec) {
			s.SmartHosts = []string{"mail.contoso.com:70000"}
		}, fields: []string{"smart_hosts"}},

		// TLS
		{name: "empty tls_settings is valid", base: onPremContoso, mutate: func(s *connector.OutboundSpec) {
			s.TLSSettings = ""
		}},
		{name: "encryption only is valid", base: onPremContoso, mutate: func(s *connector.OutboundSpec) {
			s.TLSSettings = connector.TLSEncryptionOnly
		}},
		{name: "certificate validation is valid", base: onPremContoso, mutate: func(s *connector.OutboundSpec) {
			s.TLSSettings = connector.TLSCertificateValidation
		}},
		{name: "unknown tls_settings", base: onPremContoso, mutate: func(s *connector.OutboundSpec) {
			s.TLSSettings = "strict"
		}, fields: []string{"tls_settings"}},
		{name: "domain validation without tls_domain", base: partnerOutbound, mutate: func(s *connector.OutboundSpec) {
			s.TLSDomain = ""
		}, fields: []string{"tls_domain"}},
		{name: "tls_domain with certificate validation", base: partnerOutbound, mutate: func(s *connector.OutboundSpec) {
			s.TLSSettings = connector.TLSCertificateValidation
		}, fields: []string{"tls_domain"}},
		{name: "tls_domain with the default tls_settings", base: partnerOutbound, mutate: func(s *connector.OutboundSpec) {
			s.TLSSettings = ""
		}, fields: []string{"tls_domain"}},
		{name: "tls_domain *", base: partnerOutbound, mutate: func(s *connector.OutboundSpec) {
			s.TLSDomain = "*"
		}, fields: []string{"tls_domain"}},
		{name: "tls_domain not a domain", base: partnerOutbound, mutate: func(s *connector.OutboundSpec) {
			s.TLSDomain = "mail contoso"
		}, fields: []string{"tls_domain"}},

		// validation recipients
		{name: "bad validation recipient", base: partnerOutbound, mutate: func(s *connector.OutboundSpec) {
			s.ValidationRecipients = []string{"postmaster@contosobank.com", "john%evil.example@contosobank.com"}
		}, fields: []string{"validation_recipients"}},
		{name: "too many smart hosts", base: onPremContoso, mutate: func(s *connector.OutboundSpec) {
			s.SmartHosts = numberedDomains(connector.MaxListLen + 1)
		}, fields: []string{"smart_hosts"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.base()
			tt.mutate(&s)
			checkFields(t, s.Normalize(), tt.fields...)
		})
	}
}

func TestOutboundNormalizeDefaultsTLS(t *testing.T) {
	s := onPremContoso()
	s.TLSSettings = ""
	if errs := s.Normalize(); len(errs) != 0 {
		t.Fatal(errs)
	}
	if s.TLSSettings != connector.TLSOpportunistic {
		t.Errorf("TLSSettings = %q, want %q", s.TLSSettings, connector.TLSOpportunistic)
	}
}
