package routing_test

import (
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/routing"
)

// SPEC 3.3: a recipient is accepted when its domain is accepted, or when the
// message comes from an on_premises connector and the sender's (or the
// certificate's) domain is accepted. Nothing else relays.
func TestAuthorizeRecipient(t *testing.T) {
	ix := build(t,
		[]connector.AcceptedDomain{
			{Domain: "contoso.com", Type: connector.Authoritative},
			{Domain: "Fabrikam.COM", Type: connector.InternalRelay},
		},
		[]connector.InboundSpec{
			{Common: connector.Common{Name: "Own server IPs", ConnectorType: connector.OnPremises}, SenderIPAddresses: []string{"10.1.0.0/24"}},
			{Common: connector.Common{Name: "Own server certificate", ConnectorType: connector.OnPremises}, TLSSenderCertificateName: "*.contoso.com"},
			{Common: partner("Bank"), SenderDomains: []string{"contosobank.com"}, RequireTLS: true},
			{Common: partner("Partner IPs"), SenderIPAddresses: []string{"192.0.2.0/24"}, RequireTLS: true},
		}, nil)

	tests := []struct {
		name      string
		client    routing.Client
		sender    string
		recipient string
		attrib    string // expected attribution, to make sure the case tests what it says
		allowed   bool
		reason    []string
	}{
		// accepted domains: always
		{name: "unattributed to an accepted domain", client: client("203.0.113.1", false), recipient: "contoso.com",
			allowed: true, reason: []string{"contoso.com", "accepted"}},
		{name: "unattributed to an accepted domain in capitals with a trailing dot", client: client("203.0.113.1", false), recipient: "CONTOSO.com.",
			allowed: true},
		{name: "unattributed to an internal relay domain", client: client("203.0.113.1", false), recipient: "fabrikam.com",
			allowed: true, reason: []string{"internal_relay"}},
		{name: "partner to an accepted domain", client: client("203.0.113.1", true), sender: "contosobank.com", recipient: "contoso.com",
			attrib: "Bank", allowed: true},

		// Internet recipients: only the organization's own server
		{name: "unattributed to the Internet", client: client("203.0.113.1", true), sender: "internet.example", recipient: "internet.example",
			allowed: false, reason: []string{"internet.example", "not an accepted domain"}},
		{name: "unattributed with a forged organization sender", client: client("203.0.113.1", true), sender: "contoso.com", recipient: "internet.example",
			allowed: false},
		{name: "null sender from an unknown client", client: client("203.0.113.1", true), recipient: "internet.example", allowed: false},
		{name: "subdomain of an accepted domain is not accepted", client: client("203.0.113.1", true), recipient: "mail.contoso.com",
			allowed: false},
		{name: "partner to the Internet", client: client("203.0.113.1", true), sender: "contosobank.com", recipient: "internet.example",
			attrib: "Bank", allowed: false},
		{name: "partner by IP with an accepted sender domain to the Internet", client: client("192.0.2.9", true), sender: "contoso.com", recipient: "internet.example",
			attrib: "Partner IPs", allowed: false},
		{name: "partner by IP presenting a certificate in an accepted domain", client: client("192.0.2.9", true, "relay.fabrikam.com"), sender: "", recipient: "internet.example",
			attrib: "Partner IPs", allowed: false},
		{name: "own server by IP with an accepted sender domain", client: client("10.1.0.5", false), sender: "contoso.com", recipient: "internet.example",
			attrib: "Own server IPs", allowed: true, reason: []string{"Own server IPs", "contoso.com"}},
		{name: "own server by IP with an internal relay sender domain", client: client("10.1.0.5", false), sender: "fabrikam.com", recipient: "internet.example",
			attrib: "Own server IPs", allowed: true},
		{name: "own server by IP with a sender domain in capitals", client: client("10.1.0.5", false), sender: "Contoso.COM", recipient: "internet.example",
			attrib: "Own server IPs", allowed: true},
		{name: "own server by IP with a foreign sender domain", client: client("10.1.0.5", false), sender: "internet.example", recipient: "internet.example",
			attrib: "Own server IPs", allowed: false, reason: []string{"Own server IPs", "internet.example"}},
		{name: "own server by IP with a subdomain sender", client: client("10.1.0.5", false), sender: "sales.contoso.com", recipient: "internet.example",
			attrib: "Own server IPs", allowed: false},
		{name: "own server by IP with the null sender", client: client("10.1.0.5", false), sender: "", recipient: "internet.example",
			attrib: "Own server IPs", allowed: false},
		{name: "own server by certificate with the null sender", client: client("203.0.113.7", true, "mail.contoso.com"), sender: "", recipient: "internet.example",
			attrib: "Own server certificate", allowed: true, reason: []string{"certificate", "mail.contoso.com", "contoso.com"}},
		{name: "own server by certificate with a foreign sender", client: client("203.0.113.7", true, "mail.contoso.com"), sender: "internet.example", recipient: "internet.example",
			attrib: "Own server certificate", allowed: true},
		{name: "own server by IP presenting a certificate in an accepted domain", client: client("10.1.0.5", true, "relay.fabrikam.com"), sender: "", recipient: "internet.example",
			attrib: "Own server IPs", allowed: true, reason: []string{"fabrikam.com"}},
		{name: "own server by IP presenting a foreign certificate", client: client("10.1.0.5", true, "mail.internet.example"), sender: "", recipient: "internet.example",
			attrib: "Own server IPs", allowed: false},
		{name: "a certificate in an accepted domain does not help an unknown client", client: client("203.0.113.7", true, "mail.fabrikam.com"), sender: "", recipient: "internet.example",
			allowed: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := ix.Attribute(tt.client, tt.sender)
			checkAttribution(t, a, tt.attrib)
			d := ix.AuthorizeRecipient(a, tt.client, tt.sender, tt.recipient)
			if d.Allowed != tt.allowed {
				t.Fatalf("AuthorizeRecipient(%s -> %s) allowed = %v, want %v (reason: %s)", orNone(tt.sender), tt.recipient, d.Allowed, tt.allowed, d.Reason)
			}
			if d.Reason == "" {
				t.Errorf("decision has no reason")
			}
			checkContains(t, "reason", d.Reason, tt.reason...)
		})
	}
}

// AuthorizeRecipient trusts only the attribution's connector type, so an
// empty attribution never relays, whatever the client presents.
func TestAuthorizeRecipientWithoutAttribution(t *testing.T) {
	ix := build(t, authoritative("contoso.com"), nil, nil)
	d := ix.AuthorizeRecipient(routing.Attribution{}, client("10.1.0.5", true, "mail.contoso.com"), "contoso.com", "internet.example")
	if d.Allowed {
		t.Fatalf("relay without a connector allowed: %s", d.Reason)
	}
}

func TestAccepted(t *testing.T) {
	ix := build(t, []connector.AcceptedDomain{
		{Domain: "Contoso.com.", Type: connector.Authoritative},
		{Domain: "bücher.example", Type: connector.InternalRelay},
		{Domain: "not a domain", Type: connector.Authoritative},
	}, nil, nil)
	tests := []struct {
		domain string
		ok     bool
		typ    connector.DomainType
		canon  string
	}{
		{"contoso.com", true, connector.Authoritative, "contoso.com"},
		{"CONTOSO.COM.", true, connector.Authoritative, "contoso.com"},
		{"xn--bcher-kva.example", true, connector.InternalRelay, "xn--bcher-kva.example"},
		{"bücher.example", true, connector.InternalRelay, "xn--bcher-kva.example"},
		{"sales.contoso.com", false, "", ""},
		{"not a domain", false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			d, ok := ix.Accepted(tt.domain)
			if ok != tt.ok || d.Type != tt.typ || d.Domain != tt.canon {
				t.Errorf("Accepted(%q) = %+v, %v; want {%s %s}, %v", tt.domain, d, ok, tt.canon, tt.typ, tt.ok)
			}
		})
	}
}

// The domainless "<Postmaster>" (RFC 5321 4.5.1) stands for the postmaster
// of the relay hostname's accepted domain, else of the first by name.
func TestPostmasterDomain(t *testing.T) {
	ix := routing.Build(routing.Config{AcceptedDomains: []connector.AcceptedDomain{{Domain: "fabrikam.test"}, {Domain: "contoso.com"}, {Domain: "flowgate.test"}}})
	for host, want := range map[string]string{"gw.flowgate.test": "flowgate.test", "flowgate.test": "flowgate.test", "mx.example.net": "contoso.com"} {
		if got, ok := ix.PostmasterDomain(host); !ok || got != want {
			t.Errorf("PostmasterDomain(%q) = %q, %v; want %q", host, got, ok, want)
		}
	}
	if _, ok := routing.Build(routing.Config{}).PostmasterDomain("gw.flowgate.test"); ok {
		t.Error("a postmaster domain without accepted domains")
	}
}
