package routing

import (
	"fmt"
	"strings"

	"github.com/flowgate/flowgate/internal/connector"
)

// RouteKind says how a recipient's mail leaves flowgate.
type RouteKind int

const (
	// ViaConnector delivers through an outbound connector.
	ViaConnector RouteKind = iota
	// ViaMX delivers to the recipient domain's MX hosts with opportunistic TLS.
	ViaMX
	// Defer holds the message: an accepted domain with no route is never
	// looped back to flowgate itself (451 4.4.0).
	Defer
)

func (k RouteKind) String() string {
	switch k {
	case ViaConnector:
		return "connector"
	case ViaMX:
		return "mx"
	}
	return "defer"
}

// Route is the outbound decision for one recipient domain.
type Route struct {
	Kind      RouteKind
	Connector *Outbound // set for ViaConnector
	Reason    string
}

// Route picks the outbound route for a recipient domain (SPEC 3.5): the
// exact domain, then the most specific wildcard, then "*", then the
// connector for all accepted domains (only for an accepted domain); with no
// connector, MX for an Internet domain and deferral for an accepted one.
// Rule-scoped connectors are used only through RouteVia.
func (ix *Index) Route(rcptDomain string) Route {
	d := CanonicalDomain(rcptDomain)
	var buf [8]match[*Outbound]
	ms := ix.outDomain.matches(d, buf[:0])
	accepted, isAccepted := ix.accepted[d]
	if isAccepted && ix.outAllAccepted != nil {
		ms = append(ms, match[*Outbound]{pattern: connector.DomainPattern{Kind: connector.Exact, Domain: allAcceptedKey}, value: ix.outAllAccepted})
	}
	if len(ms) > 0 {
		w := ms[0]
		return Route{Kind: ViaConnector, Connector: w.value,
			Reason: fmt.Sprintf("%s%s: connector %q", describePattern(w.pattern, d), beats(ms[1:]), w.value.Name)}
	}
	if isAccepted {
		return Route{Kind: Defer, Reason: fmt.Sprintf("%s is an accepted domain (%s) and no outbound connector routes it; deferred rather than looped back", d, accepted.Type)}
	}
	return Route{Kind: ViaMX, Reason: fmt.Sprintf("no outbound connector matches %s; delivered by MX lookup with opportunistic TLS", d)}
}

// RouteVia routes through a connector chosen by a mail flow rule.
func (ix *Index) RouteVia(connectorID int64, rule string) (Route, bool) {
	c, ok := ix.outByID[connectorID]
	if !ok {
		return Route{}, false
	}
	return Route{Kind: ViaConnector, Connector: c, Reason: fmt.Sprintf("mail flow rule %q routes through connector %q", rule, c.Name)}, true
}

// allAcceptedKey marks the all-accepted-domains candidate in a match list;
// it cannot collide with a real domain (those never contain spaces).
const allAcceptedKey = "all accepted domains"

func describePattern(p connector.DomainPattern, domain string) string {
	switch {
	case p.Kind == connector.Exact && p.Domain == allAcceptedKey:
		return fmt.Sprintf("connector for all accepted domains (%s is accepted)", domain)
	case p.Kind == connector.Exact:
		return "exact domain match " + domain
	case p.Kind == connector.Wildcard:
		return fmt.Sprintf("wildcard %s matches %s", p, domain)
	}
	return fmt.Sprintf("catch-all * matches %s", domain)
}

func shortPattern(p connector.DomainPattern) string {
	switch {
	case p.Kind == connector.Exact && p.Domain == allAcceptedKey:
		return "all accepted domains"
	case p.Kind == connector.Wildcard:
		return "wildcard " + p.String()
	case p.Kind == connector.Any:
		return "catch-all *"
	}
	return "exact " + p.Domain
}

// beats names the candidates the winner beat: " (beats wildcard *.contoso.com, all accepted domains)".
func beats[T any](rest []match[T]) string {
	if len(rest) == 0 {
		return ""
	}
	parts := make([]string, len(rest))
	for i, m := range rest {
		parts[i] = shortPattern(m.pattern)
	}
	return " beats " + strings.Join(parts, ", ")
}
