package routing_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/routing"
)

// authoritative returns accepted domains of type authoritative.
func authoritative(domains ...string) []connector.AcceptedDomain {
	out := make([]connector.AcceptedDomain, len(domains))
	for i, d := range domains {
		out[i] = connector.AcceptedDomain{Domain: d, Type: connector.Authoritative}
	}
	return out
}

// build normalizes every spec (failing the test if one is invalid, so the
// engine is only fed what the store would hold) and builds an index. IDs
// are given in list order, starting at 1 in each direction.
func build(tb testing.TB, accepted []connector.AcceptedDomain, in []connector.InboundSpec, out []connector.OutboundSpec) *routing.Index {
	tb.Helper()
	cfg := routing.Config{AcceptedDomains: accepted}
	for i, s := range in {
		if errs := s.Normalize(); len(errs) != 0 {
			tb.Fatalf("inbound connector %q is invalid: %v", s.Name, errs)
		}
		cfg.Inbound = append(cfg.Inbound, routing.Inbound{ID: int64(i + 1), Name: s.Name, Revision: 1, Spec: s})
	}
	for i, s := range out {
		if errs := s.Normalize(); len(errs) != 0 {
			tb.Fatalf("outbound connector %q is invalid: %v", s.Name, errs)
		}
		cfg.Outbound = append(cfg.Outbound, routing.Outbound{ID: int64(i + 1), Name: s.Name, Revision: 1, Spec: s})
	}
	return routing.Build(cfg)
}

// client describes the sending side: an IP address ("" for none), whether
// STARTTLS was done, and the names of a verified client certificate.
func client(ip string, tls bool, certNames ...string) routing.Client {
	c := routing.Client{TLS: tls, CertNames: certNames}
	if ip != "" {
		c.IP = netip.MustParseAddr(ip)
	}
	return c
}

func inboundName(c *routing.Inbound) string {
	if c == nil {
		return "<none>"
	}
	return c.Name
}

func outboundName(c *routing.Outbound) string {
	if c == nil {
		return "<none>"
	}
	return c.Name
}

// checkAttribution fails unless a names the connector want ("" for none).
func checkAttribution(t *testing.T, a routing.Attribution, want string) {
	t.Helper()
	if want == "" {
		want = "<none>"
	}
	if got := inboundName(a.Connector); got != want {
		t.Fatalf("attributed to %s, want %s (reason: %s)", got, want, a.Reason)
	}
	if a.Reason == "" {
		t.Errorf("attribution has no reason")
	}
}

// checkViolation fails unless v is the restriction want ("" for none).
func checkViolation(t *testing.T, v *routing.Violation, want string) {
	t.Helper()
	switch {
	case want == "" && v != nil:
		t.Fatalf("violation %q (%s), want the message accepted", v.Restriction, v.Detail)
	case want != "" && v == nil:
		t.Fatalf("no violation, want the %q restriction to reject the message", want)
	case want != "" && v.Restriction != want:
		t.Fatalf("violation %q (%s), want %q", v.Restriction, v.Detail, want)
	case v != nil && (v.Reply == "" || v.Detail == ""):
		t.Errorf("violation %+v lacks a reply or detail", v)
	}
}

// checkContains fails unless s contains every part.
func checkContains(t *testing.T, what, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Errorf("%s %q does not mention %q", what, s, p)
		}
	}
}
