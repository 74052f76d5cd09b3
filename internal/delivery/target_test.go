package delivery

import (
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/routing"
)

// TargetFor is the one place a route becomes next hops and a TLS policy.
func TestTargetFor(t *testing.T) {
	common := func(name string) connector.Common {
		return connector.Common{Name: name, ConnectorType: connector.Partner}
	}
	ix := routing.Build(routing.Config{
		AcceptedDomains: []connector.AcceptedDomain{{Domain: "contoso.com", Type: connector.Authoritative}},
		Outbound: []routing.Outbound{
			{ID: 1, Name: "Smart", Revision: 1, Spec: connector.OutboundSpec{Common: common("Smart"), RecipientDomains: []string{"fabrikam.com"},
				SmartHosts: []string{"mail1.fabrikam.com", "192.0.2.7:2525"}, TLSSettings: connector.TLSDomainValidation, TLSDomain: "*.fabrikam.com"}},
			{ID: 2, Name: "By MX", Revision: 1, Spec: connector.OutboundSpec{Common: common("By MX"), RecipientDomains: []string{"*.tailspin.test"},
				UseMXRecord: true, TLSSettings: connector.TLSEncryptionOnly}},
		},
	})
	for _, tc := range []struct {
		domain, key, via, hosts, mx string
		tls                         connector.TLSSettings
		ok                          bool
	}{
		{"fabrikam.com", "c1", `connector "Smart"`, "mail1.fabrikam.com 192.0.2.7:2525", "", connector.TLSDomainValidation, true},
		{"a.tailspin.test", "c2|a.tailspin.test", `connector "By MX"`, "", "a.tailspin.test", connector.TLSEncryptionOnly, true},
		{"b.tailspin.test", "c2|b.tailspin.test", `connector "By MX"`, "", "b.tailspin.test", connector.TLSEncryptionOnly, true},
		{"example.net", "mx|example.net", "MX of example.net", "", "example.net", connector.TLSOpportunistic, true},
		{"contoso.com", "defer|contoso.com", "", "", "", "", false},
	} {
		tg, ok := TargetFor(ix.Route(tc.domain), tc.domain)
		hosts := ""
		for i, h := range tg.Hosts {
			if i > 0 {
				hosts += " "
			}
			hosts += h.String()
		}
		if ok != tc.ok || tg.Key != tc.key || tg.Via != tc.via || hosts != tc.hosts || tg.MXDomain != tc.mx || tg.TLS != tc.tls {
			t.Errorf("%s: got ok=%v key=%q via=%q hosts=%q mx=%q tls=%q; want ok=%v key=%q via=%q hosts=%q mx=%q tls=%q",
				tc.domain, ok, tg.Key, tg.Via, hosts, tg.MXDomain, tg.TLS, tc.ok, tc.key, tc.via, tc.hosts, tc.mx, tc.tls)
		}
	}
	if tg, _ := TargetFor(ix.Route("fabrikam.com"), "fabrikam.com"); tg.TLSDomain == nil || tg.TLSDomain.String() != "*.fabrikam.com" {
		t.Errorf("tls_domain of the smart host route: %v", tg.TLSDomain)
	}
}

func TestRequiresTLS(t *testing.T) {
	for s, want := range map[connector.TLSSettings]bool{
		"": false, connector.TLSOpportunistic: false, connector.TLSEncryptionOnly: true,
		connector.TLSCertificateValidation: true, connector.TLSDomainValidation: true,
	} {
		if got := s.RequiresTLS(); got != want {
			t.Errorf("%q.RequiresTLS() = %v, want %v", s, got, want)
		}
	}
}
