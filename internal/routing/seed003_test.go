package routing_test

import (
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
)

// Seed 003: the five example security restrictions for mail from a partner.
// Each example gets its own index; each message is attributed, checked, and
// (when it passes) its recipient authorized.

type message struct {
	name      string
	client    clientFacts
	sender    string // envelope sender domain; "" for the null sender
	connector string // attributed connector; "" for none
	violation string // "tls", "certificate", "ip" or "" when accepted
}

type clientFacts struct {
	ip    string
	tls   bool
	certs []string
}

func partner(name string) connector.Common {
	return connector.Common{Name: name, ConnectorType: connector.Partner}
}

func TestSeed003PartnerExamples(t *testing.T) {
	const (
		bankIP     = "198.51.100.20"
		strangerIP = "203.0.113.99"
	)
	examples := []struct {
		name     string
		spec     connector.InboundSpec
		messages []message
	}{
		{
			name: "example 1: contosobank.com must use TLS",
			spec: connector.InboundSpec{Common: partner("ContosoBank TLS"), SenderDomains: []string{"ContosoBank.com"}, RequireTLS: true},
			messages: []message{
				{name: "over TLS", client: clientFacts{ip: bankIP, tls: true}, sender: "contosobank.com", connector: "ContosoBank TLS"},
				{name: "over TLS, sender domain in capitals", client: clientFacts{ip: bankIP, tls: true}, sender: "CONTOSOBANK.COM", connector: "ContosoBank TLS"},
				{name: "without TLS", client: clientFacts{ip: bankIP}, sender: "contosobank.com", connector: "ContosoBank TLS", violation: "tls"},
				{name: "without TLS from anywhere", client: clientFacts{ip: strangerIP}, sender: "contosobank.com", connector: "ContosoBank TLS", violation: "tls"},
				{name: "another sender without TLS is not affected", client: clientFacts{ip: strangerIP}, sender: "fabrikam.com"},
				{name: "a subdomain is not the partner's domain", client: clientFacts{ip: strangerIP}, sender: "mail.contosobank.com"},
			},
		},
		{
			name: "example 2: contosobank.com must use TLS and its certificate",
			spec: connector.InboundSpec{Common: partner("ContosoBank certificate"), SenderDomains: []string{"contosobank.com"}, RequireTLS: true,
				TLSSenderCertificateName: "mail.contosobank.com", RestrictDomainsToCertificate: true},
			messages: []message{
				{name: "TLS and the certificate", client: clientFacts{ip: bankIP, tls: true, certs: []string{"mail.contosobank.com"}}, sender: "contosobank.com", connector: "ContosoBank certificate"},
				{name: "TLS and the name among several", client: clientFacts{ip: bankIP, tls: true, certs: []string{"www.contosobank.com", "MAIL.ContosoBank.com"}}, sender: "contosobank.com", connector: "ContosoBank certificate"},
				{name: "TLS and a wildcard certificate covering the name", client: clientFacts{ip: bankIP, tls: true, certs: []string{"*.contosobank.com"}}, sender: "contosobank.com", connector: "ContosoBank certificate"},
				{name: "without TLS", client: clientFacts{ip: bankIP, certs: []string{"mail.contosobank.com"}}, sender: "contosobank.com", connector: "ContosoBank certificate", violation: "tls"},
				{name: "TLS without a certificate", client: clientFacts{ip: bankIP, tls: true}, sender: "contosobank.com", connector: "ContosoBank certificate", violation: "certificate"},
				{name: "TLS with another name", client: clientFacts{ip: bankIP, tls: true, certs: []string{"mail.fabrikam.com"}}, sender: "contosobank.com", connector: "ContosoBank certificate", violation: "certificate"},
				{name: "TLS with a sibling name", client: clientFacts{ip: bankIP, tls: true, certs: []string{"www.contosobank.com"}}, sender: "contosobank.com", connector: "ContosoBank certificate", violation: "certificate"},
				{name: "TLS with a certificate for the parent domain", client: clientFacts{ip: bankIP, tls: true, certs: []string{"contosobank.com"}}, sender: "contosobank.com", connector: "ContosoBank certificate", violation: "certificate"},
			},
		},
		{
			name: "example 3: contosobank.com must send from its IP range",
			spec: connector.InboundSpec{Common: partner("ContosoBank IP range"), SenderDomains: []string{"contosobank.com"},
				SenderIPAddresses: []string{"198.51.100.0/24", "2001:db8:ba:1::/64"}, RestrictDomainsToIPAddresses: true},
			messages: []message{
				{name: "from inside the range", client: clientFacts{ip: bankIP}, sender: "contosobank.com", connector: "ContosoBank IP range"},
				{name: "from the first address", client: clientFacts{ip: "198.51.100.0"}, sender: "contosobank.com", connector: "ContosoBank IP range"},
				{name: "from the last address", client: clientFacts{ip: "198.51.100.255"}, sender: "contosobank.com", connector: "ContosoBank IP range"},
				{name: "from inside the IPv6 range", client: clientFacts{ip: "2001:db8:ba:1::25"}, sender: "contosobank.com", connector: "ContosoBank IP range"},
				{name: "from a mapped IPv4 address inside the range", client: clientFacts{ip: "::ffff:198.51.100.20"}, sender: "contosobank.com", connector: "ContosoBank IP range"},
				{name: "from outside the range", client: clientFacts{ip: strangerIP, tls: true}, sender: "contosobank.com", connector: "ContosoBank IP range", violation: "ip"},
				{name: "from just past the range", client: clientFacts{ip: "198.51.101.0"}, sender: "contosobank.com", connector: "ContosoBank IP range", violation: "ip"},
				{name: "from outside the IPv6 range", client: clientFacts{ip: "2001:db8:ba:2::25"}, sender: "contosobank.com", connector: "ContosoBank IP range", violation: "ip"},
				{name: "another sender from outside is not affected", client: clientFacts{ip: strangerIP}, sender: "fabrikam.com"},
			},
		},
		{
			name: "example 4: all Internet mail must come from the third-party service",
			spec: connector.InboundSpec{Common: partner("Only via filter service"), SenderDomains: []string{"*"},
				SenderIPAddresses: []string{"192.0.2.10-192.0.2.20"}, RestrictDomainsToIPAddresses: true},
			messages: []message{
				{name: "from the service", client: clientFacts{ip: "192.0.2.15"}, sender: "fabrikam.com", connector: "Only via filter service"},
				{name: "from the service, any sender", client: clientFacts{ip: "192.0.2.10"}, sender: "contosobank.com", connector: "Only via filter service"},
				{name: "directly from the sender", client: clientFacts{ip: strangerIP}, sender: "fabrikam.com", connector: "Only via filter service", violation: "ip"},
				{name: "directly, just past the range", client: clientFacts{ip: "192.0.2.21"}, sender: "fabrikam.com", connector: "Only via filter service", violation: "ip"},
				{name: "directly over IPv6", client: clientFacts{ip: "2001:db8::99", tls: true}, sender: "fabrikam.com", connector: "Only via filter service", violation: "ip"},
				// "Every sender" includes the null sender (MAIL FROM:<>):
				// a bounce-shaped message must not slip past the range.
				{name: "null sender from the service", client: clientFacts{ip: "192.0.2.12"}, connector: "Only via filter service"},
				{name: "null sender directly", client: clientFacts{ip: strangerIP, tls: true}, connector: "Only via filter service", violation: "ip"},
			},
		},
		{
			name: "example 5: mail from the partner's IP range must use TLS",
			spec: connector.InboundSpec{Common: partner("Partner IP TLS"), SenderIPAddresses: []string{"198.51.100.0/28", "2001:db8:ba::/48"}, RequireTLS: true},
			messages: []message{
				{name: "over TLS", client: clientFacts{ip: "198.51.100.5", tls: true}, sender: "contosobank.com", connector: "Partner IP TLS"},
				{name: "over TLS, any sender", client: clientFacts{ip: "198.51.100.5", tls: true}, sender: "fabrikam.com", connector: "Partner IP TLS"},
				{name: "over TLS, null sender", client: clientFacts{ip: "198.51.100.5", tls: true}, connector: "Partner IP TLS"},
				{name: "over TLS from IPv6", client: clientFacts{ip: "2001:db8:ba::25", tls: true}, sender: "contosobank.com", connector: "Partner IP TLS"},
				{name: "without TLS", client: clientFacts{ip: "198.51.100.5"}, sender: "contosobank.com", connector: "Partner IP TLS", violation: "tls"},
				{name: "without TLS from IPv6", client: clientFacts{ip: "2001:db8:ba::25"}, sender: "contosobank.com", connector: "Partner IP TLS", violation: "tls"},
				{name: "without TLS, null sender", client: clientFacts{ip: "198.51.100.5"}, connector: "Partner IP TLS", violation: "tls"},
				{name: "other addresses are not affected", client: clientFacts{ip: "198.51.100.16"}, sender: "contosobank.com"},
			},
		},
	}
	for _, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			ix := build(t, authoritative("contoso.com"), []connector.InboundSpec{ex.spec}, nil)
			for _, m := range ex.messages {
				t.Run(m.name, func(t *testing.T) {
					c := client(m.client.ip, m.client.tls, m.client.certs...)
					a := ix.Attribute(c, m.sender)
					checkAttribution(t, a, m.connector)
					v := a.Check(c)
					checkViolation(t, v, m.violation)
					if v != nil {
						checkContains(t, "violation detail", v.Detail, m.connector)
						return
					}
					// Accepted mail reaches the organization's mailboxes, but
					// a partner may never relay to the Internet.
					if d := ix.AuthorizeRecipient(a, c, m.sender, "contoso.com"); !d.Allowed {
						t.Errorf("recipient in contoso.com refused: %s", d.Reason)
					}
					if d := ix.AuthorizeRecipient(a, c, m.sender, "internet.example"); d.Allowed {
						t.Errorf("relay to internet.example allowed: %s", d.Reason)
					}
				})
			}
		})
	}
}
