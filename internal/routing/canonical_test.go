package routing_test

import (
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/routing"
)

func TestCanonicalDomain(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"canonical stays", "contoso.com", "contoso.com"},
		{"capitals", "Contoso.COM", "contoso.com"},
		{"trailing dot", "contoso.com.", "contoso.com"},
		{"capitals and trailing dot", "CONTOSO.COM.", "contoso.com"},
		{"lowercase IDN", "bücher.example", "xn--bcher-kva.example"},
		{"punycode", "xn--bcher-kva.example", "xn--bcher-kva.example"},
		{"fullwidth full stop", "contoso\uff0ecom", "contoso.com"},
		// A capital ASCII letter before the first non-ASCII character
		// must not stop the conversion to punycode.
		{"IDN with a leading capital", "Bücher.example", "xn--bcher-kva.example"},
		{"IDN in capitals", "BÜCHER.EXAMPLE", "xn--bcher-kva.example"},
		{"IDN label after a capitalized label", "Mail.bücher.example", "mail.xn--bcher-kva.example"},
		{"fullwidth full stop after capitals", "CONTOSO\uff0ecom", "contoso.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := routing.CanonicalDomain(tt.in); got != tt.want {
				t.Errorf("CanonicalDomain(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// Every decision canonicalizes its domain the same way: a recipient or
// sender domain written with capitals and an umlaut still finds its
// accepted domain and its connectors (a partner's TLS restriction must not
// be escaped by writing "Bücher.example").
func TestMixedCaseIDNDecisions(t *testing.T) {
	ix := build(t, authoritative("bücher.example"),
		[]connector.InboundSpec{{Common: partner("Book partner"), SenderDomains: []string{"verlag.example", "bücher.example"}, RequireTLS: true}},
		[]connector.OutboundSpec{onPremOutbound("Books", "mail.xn--bcher-kva.example", false, "bücher.example")})

	for _, domain := range []string{"bücher.example", "Bücher.example", "BÜCHER.example"} {
		t.Run(domain, func(t *testing.T) {
			if _, ok := ix.Accepted(domain); !ok {
				t.Errorf("Accepted(%q) = false", domain)
			}
			c := client("203.0.113.1", false)
			if d := ix.AuthorizeRecipient(routing.Attribution{}, c, "", domain); !d.Allowed {
				t.Errorf("AuthorizeRecipient(rcpt domain %q) refused: %s", domain, d.Reason)
			}
			if r := ix.Route(domain); r.Kind != routing.ViaConnector || outboundName(r.Connector) != "Books" {
				t.Errorf("Route(%q) = %v via %s, want via Books (reason: %s)", domain, r.Kind, outboundName(r.Connector), r.Reason)
			}
			if a := ix.Attribute(c, domain); inboundName(a.Connector) != "Book partner" {
				t.Errorf("Attribute(sender domain %q) = %s, want Book partner (reason: %s)", domain, inboundName(a.Connector), a.Reason)
			}
		})
	}
}
