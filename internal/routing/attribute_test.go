package routing_test

import (
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/routing"
)

// One index with a connector of every kind, for SPEC 3.2's order:
// on_premises by certificate, on_premises by IP, partner by IP, partner by
// sender domain (exact, most specific wildcard, then *).
func attributionIndex(t *testing.T) *routing.Index {
	t.Helper()
	return build(t, authoritative("contoso.com"), []connector.InboundSpec{
		{Common: partner("Catch-all"), SenderDomains: []string{"*"}, RequireTLS: true},
		{Common: partner("Bank wildcard"), SenderDomains: []string{"*.contosobank.com"}, RequireTLS: true},
		{Common: partner("Bank sales wildcard"), SenderDomains: []string{"*.sales.contosobank.com"}, RequireTLS: true},
		{Common: partner("Bank exact"), SenderDomains: []string{"contosobank.com"}, RequireTLS: true},
		{Common: partner("Partner IPs"), SenderIPAddresses: []string{"10.0.0.0/16", "2001:db8:2::10-2001:db8:2::20"}, RequireTLS: true},
		{Common: connector.Common{Name: "Own server IPs", ConnectorType: connector.OnPremises}, SenderIPAddresses: []string{"10.0.1.0/24", "2001:db8:1::/48"}},
		{Common: connector.Common{Name: "Own server certificate", ConnectorType: connector.OnPremises}, TLSSenderCertificateName: "mail.contoso.com"},
		{Common: connector.Common{Name: "Own relay wildcard certificate", ConnectorType: connector.OnPremises}, TLSSenderCertificateName: "*.relay.contoso.com"},
	}, nil)
}

func TestAttributionOrder(t *testing.T) {
	ix := attributionIndex(t)
	tests := []struct {
		name   string
		client routing.Client
		sender string
		want   string
		by     connector.Identification
		reason []string
	}{
		{name: "certificate beats own server IP, partner IP and domain",
			client: client("10.0.1.5", true, "mail.contoso.com"), sender: "contosobank.com",
			want: "Own server certificate", by: connector.ByCertificate, reason: []string{"certificate", "mail.contoso.com"}},
		{name: "own server IP beats partner IP and domain",
			client: client("10.0.1.5", true), sender: "contosobank.com",
			want: "Own server IPs", by: connector.ByIP, reason: []string{"10.0.1.5", "10.0.1.0/24"}},
		{name: "partner IP beats partner domain",
			client: client("10.0.2.5", true), sender: "contosobank.com",
			want: "Partner IPs", by: connector.ByIP, reason: []string{"10.0.2.5"}},
		{name: "exact domain beats wildcard and *",
			client: client("192.0.2.1", true), sender: "contosobank.com",
			want: "Bank exact", by: connector.ByDomain, reason: []string{"exact domain match contosobank.com", "catch-all *"}},
		{name: "most specific wildcard beats the wider one and *",
			client: client("192.0.2.1", true), sender: "eu.sales.contosobank.com",
			want: "Bank sales wildcard", by: connector.ByDomain,
			reason: []string{"wildcard *.sales.contosobank.com", "wildcard *.contosobank.com", "catch-all *"}},
		{name: "wildcard covers the apex of the narrower wildcard",
			client: client("192.0.2.1", true), sender: "sales.contosobank.com",
			want: "Bank wildcard", by: connector.ByDomain, reason: []string{"wildcard *.contosobank.com", "catch-all *"}},
		{name: "* catches every other sender",
			client: client("192.0.2.1", true), sender: "fabrikam.com",
			want: "Catch-all", by: connector.ByDomain, reason: []string{"catch-all *", "fabrikam.com"}},
		{name: "the null sender from an unknown client falls to *",
			client: client("192.0.2.1", true), sender: "",
			want: "Catch-all", by: connector.ByDomain, reason: []string{"catch-all *", "null sender"}},
		{name: "certificate name that matches no connector falls through to IP",
			client: client("10.0.1.5", true, "mail.fabrikam.com"), sender: "contosobank.com",
			want: "Own server IPs", by: connector.ByIP},

		// IPv6 clients
		{name: "own server by IPv6",
			client: client("2001:db8:1::25", true), sender: "contosobank.com", want: "Own server IPs", by: connector.ByIP},
		{name: "partner by IPv6 range",
			client: client("2001:db8:2::15", true), sender: "contosobank.com", want: "Partner IPs", by: connector.ByIP},
		{name: "IPv6 just past the partner range",
			client: client("2001:db8:2::21", true), sender: "contosobank.com", want: "Bank exact", by: connector.ByDomain},
		{name: "mapped IPv4 client is the IPv4 host",
			client: client("::ffff:10.0.1.5", true), sender: "contosobank.com", want: "Own server IPs", by: connector.ByIP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := ix.Attribute(tt.client, tt.sender)
			checkAttribution(t, a, tt.want)
			if tt.want == "" {
				return
			}
			if a.By != tt.by {
				t.Errorf("By = %q, want %q", a.By, tt.by)
			}
			if a.Matched == "" {
				t.Errorf("Matched is empty")
			}
			checkContains(t, "reason", a.Reason, append(tt.reason, tt.want)...)
		})
	}
}

// Attribution happens at the earliest command where the facts are known:
// AttributeClient attributes an identified client at connect, before MAIL
// FROM, and never by sender domain.
func TestAttributeClient(t *testing.T) {
	ix := attributionIndex(t)
	tests := []struct {
		name   string
		client routing.Client
		want   string
		by     connector.Identification
	}{
		{"own server certificate", client("192.0.2.1", true, "mail.contoso.com"), "Own server certificate", connector.ByCertificate},
		{"certificate beats own server IP", client("10.0.1.9", true, "mail.contoso.com"), "Own server certificate", connector.ByCertificate},
		{"own server IP", client("10.0.1.9", false), "Own server IPs", connector.ByIP},
		{"own server IP beats partner IP", client("10.0.1.9", false, "mail.fabrikam.com"), "Own server IPs", connector.ByIP},
		{"partner IP", client("10.0.9.9", false), "Partner IPs", connector.ByIP},
		{"unknown client: the * connector needs MAIL FROM", client("192.0.2.1", false), "", ""},
		{"no client address", client("", false), "", ""},

		// certificate names
		{"certificate name in capitals", client("192.0.2.1", true, "MAIL.CONTOSO.COM"), "Own server certificate", connector.ByCertificate},
		{"certificate name among several", client("192.0.2.1", true, "www.fabrikam.com", "mail.contoso.com"), "Own server certificate", connector.ByCertificate},
		{"wildcard certificate covers the connector's name", client("192.0.2.1", true, "*.contoso.com"), "Own server certificate", connector.ByCertificate},
		{"name under the connector's wildcard", client("192.0.2.1", true, "smtp.relay.contoso.com"), "Own relay wildcard certificate", connector.ByCertificate},
		{"same wildcard as the connector", client("192.0.2.1", true, "*.relay.contoso.com"), "Own relay wildcard certificate", connector.ByCertificate},
		{"apex is not under the connector's wildcard", client("192.0.2.1", true, "relay.contoso.com"), "", ""},
		{"a wildcard certificate for a TLD covers nothing", client("192.0.2.1", true, "*.com"), "", ""},
		{"a name that merely ends like the connector's", client("192.0.2.1", true, "evilmail.contoso.com.attacker.example"), "", ""},
		{"a name that merely starts like the connector's", client("192.0.2.1", true, "mail.contoso.com.attacker.example"), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, ok := ix.AttributeClient(tt.client)
			if ok != (tt.want != "") || inboundName(a.Connector) != orNone(tt.want) {
				t.Fatalf("AttributeClient() = %s, %v; want %s (reason: %s)", inboundName(a.Connector), ok, orNone(tt.want), a.Reason)
			}
			if !ok {
				return
			}
			if a.By != tt.by || a.Reason == "" || a.Matched == "" {
				t.Errorf("AttributeClient() = {By %q, Matched %q, Reason %q}, want By %q with a match and a reason", a.By, a.Matched, a.Reason, tt.by)
			}
			checkContains(t, "reason", a.Reason, tt.want)
			// Attribute answers the same for any sender once the client is known.
			if b := ix.Attribute(tt.client, "fabrikam.com"); b.Connector != a.Connector {
				t.Errorf("Attribute(client, fabrikam.com) = %s, want %s as AttributeClient", inboundName(b.Connector), tt.want)
			}
		})
	}
}

// The IP restriction of a domain-identified partner is no identity: a
// client in its range with another sender domain is not attributed to it.
func TestRestrictionIPsDoNotIdentify(t *testing.T) {
	ix := build(t, nil, []connector.InboundSpec{{
		Common: partner("Bank IP range"), SenderDomains: []string{"contosobank.com"},
		SenderIPAddresses: []string{"198.51.100.0/24"}, RestrictDomainsToIPAddresses: true,
	}}, nil)
	checkAttribution(t, ix.Attribute(client("198.51.100.7", false), "fabrikam.com"), "")
	checkAttribution(t, ix.Attribute(client("198.51.100.7", false), ""), "")
	if a, ok := ix.AttributeClient(client("198.51.100.7", false)); ok {
		t.Errorf("AttributeClient() = %s, want none: restriction IPs identify nobody", inboundName(a.Connector))
	}
}

func TestNoConnectorsAttributesNothing(t *testing.T) {
	ix := build(t, authoritative("contoso.com"), nil, nil)
	c := client("192.0.2.1", true, "mail.contoso.com")
	a := ix.Attribute(c, "contosobank.com")
	checkAttribution(t, a, "")
	if a.OnPremises() {
		t.Error("OnPremises() = true without a connector")
	}
	if v := a.Check(c); v != nil {
		t.Errorf("Check() = %+v without a connector, want nil", v)
	}
	if in, out := ix.Counts(); in != 0 || out != 0 {
		t.Errorf("Counts() = %d, %d; want 0, 0", in, out)
	}
}

func TestCounts(t *testing.T) {
	ix := build(t, nil,
		[]connector.InboundSpec{{Common: partner("A"), SenderDomains: []string{"a.example"}, RequireTLS: true}},
		[]connector.OutboundSpec{
			onPremOutbound("One", "mail.contoso.com", false, "one.example"),
			onPremOutbound("Two", "mail.contoso.com", false, "two.example"),
		})
	if in, out := ix.Counts(); in != 1 || out != 2 {
		t.Errorf("Counts() = %d, %d; want 1, 2", in, out)
	}
}
