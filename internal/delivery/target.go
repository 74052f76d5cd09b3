package delivery

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/routing"
)

// Host is one candidate next hop.
type Host struct {
	Name string     // host name or IP text, for the trace and TLS
	IP   netip.Addr // set when the host was given as an address
	Port int        // 0: the Client's port for MX hosts (25)
	Pref int        // the MX preference; -1 for a smart host
}

// String names the host as an admin reads it: "mail.contoso.com:2525"
// for a smart host, "mx1.fabrikam.com (preference 10)" for an MX host.
func (h Host) String() string {
	if h.Pref >= 0 {
		return fmt.Sprintf("%s (preference %d)", h.Name, h.Pref)
	}
	if h.Port == 0 {
		return h.Name
	}
	return net.JoinHostPort(h.Name, strconv.Itoa(h.Port))
}

// Target is where a group of recipients goes and how.
type Target struct {
	// Key is the same for recipients that go out together, in one
	// transaction: the same connector (and, by MX, the same domain).
	Key       string
	Via       string // "connector \"X\"" or "MX of example.com", for the trace
	Hosts     []Host // smart hosts in order; empty with MXDomain set
	MXDomain  string // resolve these MX hosts when Hosts is empty
	TLS       connector.TLSSettings
	TLSDomain *connector.DomainPattern
}

// mxTLS is the TLS policy of Internet mail that no connector routes
// (SPEC 3.5).
const mxTLS = connector.TLSOpportunistic

// TargetFor is where mail for a recipient domain goes under its route, and
// how: the one place a route becomes next hops and a TLS policy, for the
// delivery workers, the route test and validation alike. ok is false when
// the route defers the mail (an accepted domain with no route).
func TargetFor(route routing.Route, domain string) (t Target, ok bool) {
	switch route.Kind {
	case routing.ViaConnector:
		c := route.Connector
		t = ConnectorTarget(c.Name, &c.Spec, c.Parsed(), domain)
		t.Key = fmt.Sprintf("c%d", c.ID)
		if t.MXDomain != "" {
			t.Key += "|" + domain
		}
		return t, true
	case routing.ViaMX:
		return Target{Key: "mx|" + domain, Via: "MX of " + domain, MXDomain: domain, TLS: mxTLS}, true
	}
	return Target{Key: "defer|" + domain}, false
}

// ConnectorTarget is where an outbound connector (one revision's settings,
// parsed) sends mail for a recipient domain: its smart hosts in order, or
// the domain's MX hosts, under its TLS settings.
func ConnectorTarget(name string, spec *connector.OutboundSpec, p connector.ParsedOutbound, domain string) Target {
	t := Target{Via: fmt.Sprintf("connector %q", name), TLS: spec.TLSSettings, TLSDomain: p.TLSDomain}
	if t.TLS == "" {
		t.TLS = connector.TLSOpportunistic
	}
	if spec.UseMXRecord {
		t.MXDomain = domain
		return t
	}
	for _, h := range p.SmartHosts {
		t.Hosts = append(t.Hosts, Host{Name: h.Host, IP: h.IP, Port: h.Port, Pref: -1})
	}
	return t
}

// MXHosts looks up a domain's MX hosts, by preference, as next hops on
// port (0: the Client's default). An empty list with no error is a null
// MX (RFC 7505): the domain accepts no mail.
func (r *Resolver) MXHosts(ctx context.Context, domain string, port int) ([]Host, error) {
	mxs, err := r.LookupMX(ctx, domain)
	if err != nil {
		return nil, err
	}
	hosts := make([]Host, len(mxs))
	for i, m := range mxs {
		hosts[i] = Host{Name: m.Host, Port: port, Pref: int(m.Pref)}
	}
	return hosts, nil
}
