package routing_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/routing"
)

// The routing decisions at growing configuration sizes. Each size has as
// many accepted domains as connectors of each direction. The index is built
// once per size, outside the timed loop; the cost per decision should not
// grow with the size. Run:
//
//	go test -run='^$' -bench=. -benchmem -count=3 ./internal/routing

var benchSizes = []int{10, 1000, 10000}

type benchFixture struct {
	ix *routing.Index
	n  int
}

var benchFixtures = map[int]*benchFixture{}

// benchFixture builds (once per size) an index with n accepted domains,
// n outbound connectors and n inbound connectors:
//   - outbound: connector 0 for all accepted domains; odd i for the exact
//     domain d<i>.example; even i for the wildcard *.w<i>.example;
//   - inbound: connector 0 the organization's server (10.255.0.0/24); odd
//     i a partner identified by 100.64.0.0/10 + 8i/29; even i a partner
//     identified by sender domain p<i>.example (every fourth by the
//     wildcard *.p<i>.example).
func fixtureOf(b *testing.B, n int) *benchFixture {
	b.Helper()
	if f, ok := benchFixtures[n]; ok {
		return f
	}
	accepted := make([]connector.AcceptedDomain, n)
	var in []connector.InboundSpec
	var out []connector.OutboundSpec
	for i := range n {
		accepted[i] = connector.AcceptedDomain{Domain: fmt.Sprintf("acc%d.example", i), Type: connector.Authoritative}
		name := fmt.Sprintf("c%d", i)
		switch {
		case i == 0:
			out = append(out, onPremOutbound(name, "mail.contoso.com", true))
			in = append(in, connector.InboundSpec{Common: connector.Common{Name: name, ConnectorType: connector.OnPremises},
				SenderIPAddresses: []string{"10.255.0.0/24"}})
		case i%2 == 1:
			out = append(out, partnerOutbound(name, fmt.Sprintf("d%d.example", i)))
			in = append(in, connector.InboundSpec{Common: partner(name), RequireTLS: true,
				SenderIPAddresses: []string{partnerPrefix(i).String()}})
		default:
			out = append(out, partnerOutbound(name, fmt.Sprintf("*.w%d.example", i)))
			domain := fmt.Sprintf("p%d.example", i)
			if i%4 == 0 {
				domain = "*." + domain
			}
			in = append(in, connector.InboundSpec{Common: partner(name), RequireTLS: true, SenderDomains: []string{domain}})
		}
	}
	f := &benchFixture{ix: build(b, accepted, in, out), n: n}
	benchFixtures[n] = f
	return f
}

// partnerPrefix is the /29 of the partner connector i.
func partnerPrefix(i int) netip.Prefix {
	v := uint32(100)<<24 | uint32(64)<<16 + uint32(i)*8
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), 29)
}

// pick returns an index near the middle of the fixture with i%m == r, so
// lookups hit an entry that is neither the first nor the last added.
func (f *benchFixture) pick(m, r int) int {
	i := f.n / 2
	for i%m != r {
		i++
	}
	if i >= f.n {
		i -= m
	}
	return i
}

var (
	sinkRoute    routing.Route
	sinkAttrib   routing.Attribution
	sinkDecision routing.RelayDecision
)

func BenchmarkRoute(b *testing.B) {
	cases := []struct {
		name      string
		domain    func(f *benchFixture) string
		kind      routing.RouteKind
		connector func(f *benchFixture) string
	}{
		{"exact",
			func(f *benchFixture) string { return fmt.Sprintf("d%d.example", f.pick(2, 1)) },
			routing.ViaConnector, func(f *benchFixture) string { return fmt.Sprintf("c%d", f.pick(2, 1)) }},
		{"wildcard",
			func(f *benchFixture) string { return fmt.Sprintf("mail.w%d.example", f.pick(2, 0)) },
			routing.ViaConnector, func(f *benchFixture) string { return fmt.Sprintf("c%d", f.pick(2, 0)) }},
		{"all-accepted",
			func(f *benchFixture) string { return fmt.Sprintf("acc%d.example", f.pick(1, 0)) },
			routing.ViaConnector, func(*benchFixture) string { return "c0" }},
		{"no-match",
			func(*benchFixture) string { return "mail.internet.example" },
			routing.ViaMX, func(*benchFixture) string { return "<none>" }},
	}
	for _, c := range cases {
		for _, n := range benchSizes {
			f := fixtureOf(b, n)
			domain := c.domain(f)
			if r := f.ix.Route(domain); r.Kind != c.kind || outboundName(r.Connector) != c.connector(f) {
				b.Fatalf("Route(%s) = %v via %s, want %v via %s", domain, r.Kind, outboundName(r.Connector), c.kind, c.connector(f))
			}
			b.Run(fmt.Sprintf("%s/connectors=%d", c.name, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					sinkRoute = f.ix.Route(domain)
				}
			})
		}
	}
}

func BenchmarkAttribute(b *testing.B) {
	cases := []struct {
		name      string
		client    func(f *benchFixture) routing.Client
		sender    func(f *benchFixture) string
		connector func(f *benchFixture) string
	}{
		{"by-ip",
			func(f *benchFixture) routing.Client {
				return routing.Client{IP: partnerPrefix(f.pick(2, 1)).Addr().Next(), TLS: true}
			},
			func(*benchFixture) string { return "fabrikam.com" },
			func(f *benchFixture) string { return fmt.Sprintf("c%d", f.pick(2, 1)) }},
		{"by-sender-domain",
			func(*benchFixture) routing.Client { return client("192.0.2.1", true) },
			func(f *benchFixture) string { return fmt.Sprintf("p%d.example", f.pick(4, 2)) },
			func(f *benchFixture) string { return fmt.Sprintf("c%d", f.pick(4, 2)) }},
		{"by-sender-wildcard",
			func(*benchFixture) routing.Client { return client("192.0.2.1", true) },
			func(f *benchFixture) string { return fmt.Sprintf("mail.p%d.example", f.pick(4, 0)) },
			func(f *benchFixture) string { return fmt.Sprintf("c%d", f.pick(4, 0)) }},
		{"no-match",
			func(*benchFixture) routing.Client { return client("192.0.2.1", true) },
			func(*benchFixture) string { return "internet.example" },
			func(*benchFixture) string { return "<none>" }},
	}
	for _, c := range cases {
		for _, n := range benchSizes {
			f := fixtureOf(b, n)
			cl, sender := c.client(f), c.sender(f)
			if a := f.ix.Attribute(cl, sender); inboundName(a.Connector) != c.connector(f) {
				b.Fatalf("Attribute(%v, %s) = %s, want %s", cl.IP, sender, inboundName(a.Connector), c.connector(f))
			}
			b.Run(fmt.Sprintf("%s/connectors=%d", c.name, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					sinkAttrib = f.ix.Attribute(cl, sender)
				}
			})
		}
	}
}

func BenchmarkAuthorizeRecipient(b *testing.B) {
	cases := []struct {
		name      string
		client    routing.Client
		sender    func(f *benchFixture) string
		recipient func(f *benchFixture) string
		allowed   bool
	}{
		{"accepted-recipient", client("192.0.2.1", true),
			func(*benchFixture) string { return "internet.example" },
			func(f *benchFixture) string { return fmt.Sprintf("acc%d.example", f.pick(1, 0)) }, true},
		{"on-premises-relay", client("10.255.0.7", false),
			func(f *benchFixture) string { return fmt.Sprintf("acc%d.example", f.pick(1, 0)) },
			func(*benchFixture) string { return "internet.example" }, true},
		{"relay-denied", client("192.0.2.1", true),
			func(*benchFixture) string { return "internet.example" },
			func(*benchFixture) string { return "internet.example" }, false},
	}
	for _, c := range cases {
		for _, n := range benchSizes {
			f := fixtureOf(b, n)
			sender, rcpt := c.sender(f), c.recipient(f)
			a := f.ix.Attribute(c.client, sender)
			if d := f.ix.AuthorizeRecipient(a, c.client, sender, rcpt); d.Allowed != c.allowed {
				b.Fatalf("AuthorizeRecipient(%s -> %s) = %v, want %v: %s", sender, rcpt, d.Allowed, c.allowed, d.Reason)
			}
			b.Run(fmt.Sprintf("%s/connectors=%d", c.name, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					sinkDecision = f.ix.AuthorizeRecipient(a, c.client, sender, rcpt)
				}
			})
		}
	}
}
