package routing_test

import (
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/routing"
)

// Seed 000: connectors between flowgate and the organization's own email
// server.

// onPremOutbound is an outbound connector to the organization's server
// through a smart host.
func onPremOutbound(name, smartHost string, allAccepted bool, domains ...string) connector.OutboundSpec {
	return connector.OutboundSpec{
		Common:             connector.Common{Name: name, ConnectorType: connector.OnPremises},
		AllAcceptedDomains: allAccepted,
		RecipientDomains:   domains,
		SmartHosts:         []string{smartHost},
	}
}

// The precedence example of seed 000 ("what happens when I have several
// connectors"), with SPEC 3.5's order: exact, most specific wildcard, *,
// then the connector for all accepted domains.
func TestSeed000PrecedenceExample(t *testing.T) {
	ix := build(t,
		authoritative("contoso.com", "sales.contoso.com", "fabrikam.com", "contoso.onmicrosoft.com"),
		nil,
		[]connector.OutboundSpec{
			onPremOutbound("Connector 1", "mail1.contoso.com", true),
			onPremOutbound("Connector 2", "mail2.contoso.com", false, "contoso.com"),
			onPremOutbound("Connector 3", "mail3.contoso.com", false, "*.contoso.com"),
		})
	tests := []struct {
		recipient string
		kind      routing.RouteKind
		connector string
		reason    []string
	}{
		// The three cases the seed spells out.
		{"john@fabrikam.com", routing.ViaConnector, "Connector 1", []string{"all accepted domains", "fabrikam.com"}},
		{"john@contoso.com", routing.ViaConnector, "Connector 2", []string{"exact domain match contoso.com", "all accepted domains"}},
		{"john@sales.contoso.com", routing.ViaConnector, "Connector 3", []string{"wildcard *.contoso.com", "sales.contoso.com", "all accepted domains"}},
		// The fourth accepted domain.
		{"john@contoso.onmicrosoft.com", routing.ViaConnector, "Connector 1", []string{"all accepted domains"}},
		// A subdomain that is not accepted still matches the wildcard.
		{"john@mail.contoso.com", routing.ViaConnector, "Connector 3", []string{"wildcard *.contoso.com"}},
		// Connector 1 is only for accepted domains: Internet mail goes by MX.
		{"sun@internet.example", routing.ViaMX, "", []string{"internet.example", "MX"}},
	}
	for _, tt := range tests {
		t.Run(tt.recipient, func(t *testing.T) {
			domain := tt.recipient[strings.LastIndexByte(tt.recipient, '@')+1:]
			r := ix.Route(domain)
			if r.Kind != tt.kind || outboundName(r.Connector) != orNone(tt.connector) {
				t.Fatalf("Route(%s) = %v via %s, want %v via %s (reason: %s)",
					domain, r.Kind, outboundName(r.Connector), tt.kind, orNone(tt.connector), r.Reason)
			}
			checkContains(t, "reason", r.Reason, tt.reason...)
			if tt.connector != "" {
				checkContains(t, "reason", r.Reason, tt.connector)
			}
		})
	}
}

// The hybrid setup of seed 000: mail from the Internet for accepted
// domains goes to the organization's server by smart host; the server's
// mail to the Internet is relayed only for the organization's domains.
func TestSeed000Hybrid(t *testing.T) {
	const (
		internetIP = "203.0.113.50"
		serverIP   = "10.1.0.25"
		serverCert = "mail.contoso.com"
	)
	fromServer := map[string]connector.InboundSpec{
		"identified by certificate": {
			Common:                   connector.Common{Name: "From my email server", ConnectorType: connector.OnPremises},
			TLSSenderCertificateName: serverCert,
		},
		"identified by IP": {
			Common:            connector.Common{Name: "From my email server", ConnectorType: connector.OnPremises},
			SenderIPAddresses: []string{"10.1.0.0/24"},
		},
	}
	toServer := onPremOutbound("To my email server", "Mail.Contoso.com", true)

	for how, inbound := range fromServer {
		t.Run(how, func(t *testing.T) {
			ix := build(t, authoritative("contoso.com"), []connector.InboundSpec{inbound}, []connector.OutboundSpec{toServer})
			byCert := inbound.TLSSenderCertificateName != ""
			server := client(serverIP, byCert)
			if byCert {
				server = client(internetIP, true, serverCert)
			}

			t.Run("Sun on the Internet writes to John on the server", func(t *testing.T) {
				c := client(internetIP, false)
				a := ix.Attribute(c, "internet.example")
				checkAttribution(t, a, "")
				checkViolation(t, a.Check(c), "")
				if d := ix.AuthorizeRecipient(a, c, "internet.example", "contoso.com"); !d.Allowed {
					t.Fatalf("recipient john@contoso.com refused: %s", d.Reason)
				}
				r := ix.Route("contoso.com")
				if r.Kind != routing.ViaConnector || outboundName(r.Connector) != "To my email server" {
					t.Fatalf("Route(contoso.com) = %v via %s, want the connector to the server", r.Kind, outboundName(r.Connector))
				}
				hosts := r.Connector.Parsed().SmartHosts
				if len(hosts) != 1 || hosts[0].Addr() != "mail.contoso.com:25" {
					t.Errorf("smart hosts = %+v, want mail.contoso.com:25", hosts)
				}
			})
			t.Run("John on the server writes to Sun on the Internet", func(t *testing.T) {
				a := ix.Attribute(server, "contoso.com")
				checkAttribution(t, a, "From my email server")
				if !a.OnPremises() {
					t.Fatalf("attribution is not on_premises")
				}
				checkViolation(t, a.Check(server), "")
				d := ix.AuthorizeRecipient(a, server, "contoso.com", "internet.example")
				if !d.Allowed {
					t.Fatalf("relay to internet.example refused: %s", d.Reason)
				}
				checkContains(t, "relay reason", d.Reason, "From my email server")
				if r := ix.Route("internet.example"); r.Kind != routing.ViaMX {
					t.Errorf("Route(internet.example) = %v, want MX", r.Kind)
				}
			})
			t.Run("the server relays for a domain that is not accepted", func(t *testing.T) {
				a := ix.Attribute(server, "other.example")
				checkAttribution(t, a, "From my email server")
				d := ix.AuthorizeRecipient(a, server, "other.example", "internet.example")
				if byCert {
					// SPEC 3.3: the certificate's domain is accepted.
					if !d.Allowed {
						t.Fatalf("relay refused although the certificate %s is in an accepted domain: %s", serverCert, d.Reason)
					}
					checkContains(t, "relay reason", d.Reason, "certificate", "contoso.com")
					return
				}
				if d.Allowed {
					t.Fatalf("relay for sender domain other.example allowed: %s", d.Reason)
				}
			})
			t.Run("an Internet host may not relay", func(t *testing.T) {
				c := client(internetIP, true)
				a := ix.Attribute(c, "contoso.com") // a forged organization sender
				checkAttribution(t, a, "")
				if d := ix.AuthorizeRecipient(a, c, "contoso.com", "internet.example"); d.Allowed {
					t.Fatalf("open relay: %s", d.Reason)
				}
			})
			if byCert {
				t.Run("the server's certificate without TLS is refused", func(t *testing.T) {
					c := client(internetIP, false, serverCert)
					a := ix.Attribute(c, "contoso.com")
					checkAttribution(t, a, "From my email server")
					checkViolation(t, a.Check(c), "tls")
				})
			}
		})
	}
}

func orNone(name string) string {
	if name == "" {
		return "<none>"
	}
	return name
}
