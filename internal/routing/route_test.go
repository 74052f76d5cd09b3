package routing_test

import (
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/routing"
)

func partnerOutbound(name string, domains ...string) connector.OutboundSpec {
	return connector.OutboundSpec{
		Common:           connector.Common{Name: name, ConnectorType: connector.Partner},
		RecipientDomains: domains,
		UseMXRecord:      true,
		TLSSettings:      connector.TLSEncryptionOnly,
	}
}

func ruleScoped(name string) connector.OutboundSpec {
	return connector.OutboundSpec{
		Common:                connector.Common{Name: name, ConnectorType: connector.Partner},
		IsTransportRuleScoped: true,
		SmartHosts:            []string{"archive.partner.example:2525"},
	}
}

type routeCase struct {
	domain    string
	kind      routing.RouteKind
	connector string   // "" unless kind is ViaConnector
	reason    []string // parts the reason must mention
}

func checkRoutes(t *testing.T, ix *routing.Index, tests []routeCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			r := ix.Route(tt.domain)
			if r.Kind != tt.kind || outboundName(r.Connector) != orNone(tt.connector) {
				t.Fatalf("Route(%q) = %v via %s, want %v via %s (reason: %s)",
					tt.domain, r.Kind, outboundName(r.Connector), tt.kind, orNone(tt.connector), r.Reason)
			}
			if r.Reason == "" {
				t.Fatal("route has no reason")
			}
			checkContains(t, "reason", r.Reason, tt.reason...)
			if tt.connector != "" {
				checkContains(t, "reason", r.Reason, `"`+tt.connector+`"`)
			}
		})
	}
}

// SPEC 3.5: exact, then the most specific wildcard, then *, then the
// connector for all accepted domains.
func TestRouteSpecificity(t *testing.T) {
	ix := build(t,
		authoritative("contoso.com", "sales.contoso.com", "fabrikam.com"),
		nil,
		[]connector.OutboundSpec{
			onPremOutbound("All accepted", "mail.contoso.com", true),
			partnerOutbound("Catch-all", "*"),
			onPremOutbound("Contoso wildcard", "mail.contoso.com", false, "*.contoso.com"),
			onPremOutbound("Sales wildcard", "sales-mail.contoso.com", false, "*.sales.contoso.com"),
			onPremOutbound("One sales host", "a-mail.contoso.com", false, "a.sales.contoso.com"),
		})
	checkRoutes(t, ix, []routeCase{
		{domain: "a.sales.contoso.com", kind: routing.ViaConnector, connector: "One sales host",
			reason: []string{"exact domain match a.sales.contoso.com", "wildcard *.sales.contoso.com", "wildcard *.contoso.com", "catch-all *"}},
		{domain: "b.sales.contoso.com", kind: routing.ViaConnector, connector: "Sales wildcard",
			reason: []string{"wildcard *.sales.contoso.com matches b.sales.contoso.com", "wildcard *.contoso.com", "catch-all *"}},
		{domain: "x.y.sales.contoso.com", kind: routing.ViaConnector, connector: "Sales wildcard",
			reason: []string{"wildcard *.sales.contoso.com"}},
		// The apex of *.sales.contoso.com is accepted: the wider wildcard
		// wins, and beats the all-accepted-domains connector.
		{domain: "sales.contoso.com", kind: routing.ViaConnector, connector: "Contoso wildcard",
			reason: []string{"wildcard *.contoso.com matches sales.contoso.com", "catch-all *", "all accepted domains"}},
		{domain: "mail.contoso.com", kind: routing.ViaConnector, connector: "Contoso wildcard",
			reason: []string{"wildcard *.contoso.com"}},
		// No wildcard matches its apex, so contoso.com falls to *, which
		// comes before all accepted domains.
		{domain: "contoso.com", kind: routing.ViaConnector, connector: "Catch-all",
			reason: []string{"catch-all * matches contoso.com", "all accepted domains"}},
		{domain: "fabrikam.com", kind: routing.ViaConnector, connector: "Catch-all",
			reason: []string{"catch-all *", "all accepted domains"}},
		{domain: "internet.example", kind: routing.ViaConnector, connector: "Catch-all",
			reason: []string{"catch-all * matches internet.example"}},
	})
}

func TestRouteWildcardDoesNotMatchApex(t *testing.T) {
	ix := build(t, authoritative("contoso.com"), nil, []connector.OutboundSpec{
		onPremOutbound("Contoso subdomains", "mail.contoso.com", false, "*.contoso.com"),
		partnerOutbound("Bank subdomains", "*.contosobank.com"),
	})
	checkRoutes(t, ix, []routeCase{
		{domain: "contoso.com", kind: routing.Defer, reason: []string{"contoso.com", "accepted domain", "deferred"}},
		{domain: "contosobank.com", kind: routing.ViaMX, reason: []string{"contosobank.com", "MX"}},
		{domain: "eu.contosobank.com", kind: routing.ViaConnector, connector: "Bank subdomains"},
		{domain: "notcontosobank.com", kind: routing.ViaMX},
	})
}

func TestRouteWithoutConnector(t *testing.T) {
	ix := build(t,
		[]connector.AcceptedDomain{{Domain: "contoso.com", Type: connector.Authoritative}, {Domain: "fabrikam.com", Type: connector.InternalRelay}},
		nil,
		[]connector.OutboundSpec{partnerOutbound("Bank", "contosobank.com")})
	checkRoutes(t, ix, []routeCase{
		// SPEC 3.5: never looped back to flowgate.
		{domain: "contoso.com", kind: routing.Defer, reason: []string{"contoso.com", "authoritative", "deferred"}},
		{domain: "fabrikam.com", kind: routing.Defer, reason: []string{"fabrikam.com", "internal_relay", "deferred"}},
		{domain: "internet.example", kind: routing.ViaMX, reason: []string{"internet.example", "MX", "opportunistic"}},
		{domain: "mail.contoso.com", kind: routing.ViaMX},
	})
}

func TestRouteCanonicalizesTheDomain(t *testing.T) {
	ix := build(t, authoritative("bücher.example"), nil, []connector.OutboundSpec{
		onPremOutbound("Contoso", "mail.contoso.com", false, "contoso.com"),
		onPremOutbound("Books", "mail.contoso.com", false, "Bücher.example"),
	})
	checkRoutes(t, ix, []routeCase{
		{domain: "CONTOSO.COM", kind: routing.ViaConnector, connector: "Contoso", reason: []string{"exact domain match contoso.com"}},
		{domain: "contoso.com.", kind: routing.ViaConnector, connector: "Contoso"},
		{domain: "bücher.example", kind: routing.ViaConnector, connector: "Books", reason: []string{"xn--bcher-kva.example"}},
		{domain: "xn--bcher-kva.example", kind: routing.ViaConnector, connector: "Books"},
		{domain: "XN--BCHER-KVA.example", kind: routing.ViaConnector, connector: "Books"},
	})
}

// Rule-scoped connectors are only used through a mail flow rule.
func TestRuleScopedConnectors(t *testing.T) {
	ix := build(t, authoritative("contoso.com"), nil, []connector.OutboundSpec{
		ruleScoped("Archive by rule"),
		partnerOutbound("Bank", "contosobank.com"),
	})
	t.Run("Route never picks it", func(t *testing.T) {
		checkRoutes(t, ix, []routeCase{
			{domain: "contoso.com", kind: routing.Defer},
			{domain: "internet.example", kind: routing.ViaMX},
			{domain: "contosobank.com", kind: routing.ViaConnector, connector: "Bank"},
		})
	})
	t.Run("RouteVia uses it", func(t *testing.T) {
		r, ok := ix.RouteVia(1, "Archive finance mail")
		if !ok {
			t.Fatal("RouteVia(1) found no connector")
		}
		if r.Kind != routing.ViaConnector || outboundName(r.Connector) != "Archive by rule" {
			t.Fatalf("RouteVia(1) = %v via %s, want the rule-scoped connector", r.Kind, outboundName(r.Connector))
		}
		checkContains(t, "reason", r.Reason, "Archive finance mail", "Archive by rule")
		if hosts := r.Connector.Parsed().SmartHosts; len(hosts) != 1 || hosts[0].Addr() != "archive.partner.example:2525" {
			t.Errorf("smart hosts = %+v, want archive.partner.example:2525", hosts)
		}
	})
	t.Run("RouteVia may name a domain connector too", func(t *testing.T) {
		r, ok := ix.RouteVia(2, "Bank rule")
		if !ok || outboundName(r.Connector) != "Bank" {
			t.Fatalf("RouteVia(2) = %+v, %v; want Bank", r, ok)
		}
	})
	t.Run("RouteVia with an unknown connector", func(t *testing.T) {
		if r, ok := ix.RouteVia(99, "Stale rule"); ok {
			t.Fatalf("RouteVia(99) = %+v, want not found", r)
		}
	})
	t.Run("OutboundByID", func(t *testing.T) {
		c, ok := ix.OutboundByID(1)
		if !ok || c.Name != "Archive by rule" {
			t.Fatalf("OutboundByID(1) = %v, %v", outboundName(c), ok)
		}
		if _, ok := ix.OutboundByID(3); ok {
			t.Error("OutboundByID(3) found a connector that does not exist")
		}
	})
}

// With two connectors for one pattern (the store refuses this, but an
// index must still decide), the older connector wins.
func TestRouteTieGoesToTheOlderConnector(t *testing.T) {
	cfg := routing.Config{AcceptedDomains: authoritative("contoso.com")}
	for _, c := range []struct {
		id   int64
		spec connector.OutboundSpec
	}{
		{7, onPremOutbound("Newer all accepted", "b.contoso.com", true)},
		{3, onPremOutbound("Older all accepted", "a.contoso.com", true)},
		{9, partnerOutbound("Newer bank", "contosobank.com")},
		{4, partnerOutbound("Older bank", "contosobank.com")},
	} {
		if errs := c.spec.Normalize(); len(errs) != 0 {
			t.Fatal(errs)
		}
		cfg.Outbound = append(cfg.Outbound, routing.Outbound{ID: c.id, Name: c.spec.Name, Spec: c.spec})
	}
	ix := routing.Build(cfg)
	checkRoutes(t, ix, []routeCase{
		{domain: "contoso.com", kind: routing.ViaConnector, connector: "Older all accepted"},
		{domain: "contosobank.com", kind: routing.ViaConnector, connector: "Older bank"},
	})
}

func TestRouteKindString(t *testing.T) {
	for k, want := range map[routing.RouteKind]string{routing.ViaConnector: "connector", routing.ViaMX: "mx", routing.Defer: "defer"} {
		if got := k.String(); got != want {
			t.Errorf("RouteKind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}
