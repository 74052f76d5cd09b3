// Package routing is flowgate's precedence engine. An Index is built once
// from the active revisions of the enabled connectors and the accepted
// domains, and then answers, without I/O and without scanning all
// connectors:
//
//   - inbound attribution (SPEC 3.2): which inbound connector applies to a
//     message, and whether its restrictions hold;
//   - relay authorization (SPEC 3.3): may this recipient be accepted;
//   - outbound route selection (SPEC 3.5): which outbound connector, MX, or
//     deferral carries mail for a recipient domain.
//
// Domain lookups walk the recipient or sender domain and its parent
// suffixes through maps; IP lookups use a longest-prefix-match table. The
// cost of every answer depends on the length of the name, not on the
// number of connectors. An Index is immutable and safe for concurrent use;
// a configuration change builds a new one.
package routing

import (
	"net/netip"
	"sort"
	"strings"

	"github.com/gaissmai/bart"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/rules"
)

// Inbound is one active inbound connector revision.
type Inbound struct {
	ID       int64
	Name     string
	Revision int
	Spec     connector.InboundSpec
	parsed   connector.ParsedInbound
}

// Outbound is one active outbound connector revision.
type Outbound struct {
	ID       int64
	Name     string
	Revision int
	Spec     connector.OutboundSpec
	// Held is set while an admin holds the connector (SPEC 3.6): its mail
	// is routed to it and queued as usual, but not attempted.
	Held   bool
	parsed connector.ParsedOutbound
}

// Parsed returns the typed fields of the connector.
func (o *Outbound) Parsed() connector.ParsedOutbound { return o.parsed }

// Config is everything an Index is built from: the accepted domains and the
// active revisions of the enabled connectors. Disabled connectors and
// revisions that are not active must not be passed in.
type Config struct {
	AcceptedDomains []connector.AcceptedDomain
	Inbound         []Inbound
	Outbound        []Outbound
	Rules           []rules.Rule // the mail flow rules (Build compiles the enabled ones)
}

// domainIndex finds the most specific pattern for a domain.
type domainIndex[T any] struct {
	exact    map[string]T
	wildcard map[string]T // keyed by the domain under the "*."
	any      T
	hasAny   bool
}

func newDomainIndex[T any]() domainIndex[T] {
	return domainIndex[T]{exact: map[string]T{}, wildcard: map[string]T{}}
}

// add keeps the first value for a pattern; callers add in ID order, so the
// oldest connector wins a tie (store refuses overlaps, so ties are rare).
func (d *domainIndex[T]) add(p connector.DomainPattern, v T) {
	switch p.Kind {
	case connector.Exact:
		if _, ok := d.exact[p.Domain]; !ok {
			d.exact[p.Domain] = v
		}
	case connector.Wildcard:
		if _, ok := d.wildcard[p.Domain]; !ok {
			d.wildcard[p.Domain] = v
		}
	case connector.Any:
		if !d.hasAny {
			d.any, d.hasAny = v, true
		}
	}
}

// match is one pattern that matched a domain.
type match[T any] struct {
	pattern connector.DomainPattern
	value   T
}

// matches lists every pattern that matches domain, most specific first:
// exact, then wildcards from the nearest parent outwards, then "*".
func (d *domainIndex[T]) matches(domain string, out []match[T]) []match[T] {
	if v, ok := d.exact[domain]; ok {
		out = append(out, match[T]{connector.DomainPattern{Kind: connector.Exact, Domain: domain}, v})
	}
	rest := domain
	for {
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			break
		}
		rest = rest[i+1:]
		if v, ok := d.wildcard[rest]; ok {
			out = append(out, match[T]{connector.DomainPattern{Kind: connector.Wildcard, Domain: rest}, v})
		}
	}
	if d.hasAny {
		out = append(out, match[T]{connector.DomainPattern{Kind: connector.Any}, d.any})
	}
	return out
}

// Index is an immutable routing index. Build makes one.
type Index struct {
	accepted map[string]connector.AcceptedDomain

	onPremIP       *bart.Table[*Inbound]
	onPremCert     domainIndex[*Inbound]
	onPremByParent map[string][]*Inbound // exact certificate names by parent, for wildcard client certificates
	partnerIP      *bart.Table[*Inbound]
	partnerDomain  domainIndex[*Inbound]

	outDomain      domainIndex[*Outbound]
	outAllAccepted *Outbound
	outByID        map[int64]*Outbound

	rules *rules.Set // the enabled mail flow rules, compiled

	inboundCount, outboundCount int
}

// Build makes an Index from cfg. Entries that fail to parse are skipped
// (the store only holds valid specs); connectors are considered in ID order.
func Build(cfg Config) *Index {
	ix := &Index{
		accepted:       make(map[string]connector.AcceptedDomain, len(cfg.AcceptedDomains)),
		onPremIP:       new(bart.Table[*Inbound]),
		onPremCert:     newDomainIndex[*Inbound](),
		onPremByParent: map[string][]*Inbound{},
		partnerIP:      new(bart.Table[*Inbound]),
		partnerDomain:  newDomainIndex[*Inbound](),
		outDomain:      newDomainIndex[*Outbound](),
		outByID:        make(map[int64]*Outbound, len(cfg.Outbound)),
	}
	for _, d := range cfg.AcceptedDomains {
		if n, err := connector.NormalizeDomain(d.Domain); err == nil {
			d.Domain = n
			ix.accepted[n] = d
		}
	}

	in := make([]*Inbound, len(cfg.Inbound))
	for i := range cfg.Inbound {
		c := cfg.Inbound[i]
		c.parsed = c.Spec.Parse()
		in[i] = &c
	}
	sort.SliceStable(in, func(i, j int) bool { return in[i].ID < in[j].ID })
	for _, c := range in {
		for _, by := range c.Spec.IdentifiedBy() {
			switch {
			case by == connector.ByCertificate && c.parsed.CertificateName != nil:
				p := *c.parsed.CertificateName
				ix.onPremCert.add(p, c)
				if p.Kind == connector.Exact {
					if i := strings.IndexByte(p.Domain, '.'); i >= 0 {
						parent := p.Domain[i+1:]
						ix.onPremByParent[parent] = append(ix.onPremByParent[parent], c)
					}
				}
			case by == connector.ByIP && c.Spec.ConnectorType == connector.OnPremises:
				insertIPs(ix.onPremIP, c)
			case by == connector.ByIP:
				insertIPs(ix.partnerIP, c)
			case by == connector.ByDomain:
				for _, p := range c.parsed.SenderDomains {
					ix.partnerDomain.add(p, c)
				}
			}
		}
	}
	ix.inboundCount = len(in)

	out := make([]*Outbound, len(cfg.Outbound))
	for i := range cfg.Outbound {
		c := cfg.Outbound[i]
		c.parsed = c.Spec.Parse()
		out[i] = &c
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	for _, c := range out {
		ix.outByID[c.ID] = c
		if c.Spec.IsTransportRuleScoped {
			continue
		}
		if c.Spec.AllAcceptedDomains && ix.outAllAccepted == nil {
			ix.outAllAccepted = c
		}
		for _, p := range c.parsed.RecipientDomains {
			ix.outDomain.add(p, c)
		}
	}
	ix.outboundCount = len(out)
	ix.rules = rules.Compile(cfg.Rules)
	return ix
}

// Rules returns the compiled mail flow rules (SPEC 7); a Set with no rules
// when there are none.
func (ix *Index) Rules() *rules.Set { return ix.rules }

func insertIPs(t *bart.Table[*Inbound], c *Inbound) {
	for _, spec := range c.parsed.SenderIPs {
		for _, p := range spec.Prefixes() {
			if _, taken := t.Get(p); !taken {
				t.Insert(p, c)
			}
		}
	}
}

// Counts returns how many connectors of each direction the index holds.
func (ix *Index) Counts() (inbound, outbound int) { return ix.inboundCount, ix.outboundCount }

// Accepted returns the accepted domain entry for a domain.
func (ix *Index) Accepted(domain string) (connector.AcceptedDomain, bool) {
	d, ok := ix.accepted[CanonicalDomain(domain)]
	return d, ok
}

// PostmasterDomain is the accepted domain the domainless "<Postmaster>"
// recipient stands for: hostname itself or its nearest parent that is an
// accepted domain, else the first accepted domain by name; false when
// there is none.
func (ix *Index) PostmasterDomain(hostname string) (string, bool) {
	for _, p := range connector.ParentDomains(CanonicalDomain(hostname)) {
		if _, ok := ix.accepted[p]; ok {
			return p, true
		}
	}
	first := ""
	for d := range ix.accepted {
		if first == "" || d < first {
			first = d
		}
	}
	return first, first != ""
}

// OutboundByID returns an active outbound connector, for mail flow rules.
func (ix *Index) OutboundByID(id int64) (*Outbound, bool) {
	c, ok := ix.outByID[id]
	return c, ok
}

// CanonicalDomain lowercases a domain and drops a trailing dot; non-ASCII
// names are converted to punycode. An invalid name is returned lowercased,
// so it matches nothing but an identical invalid entry (which the model
// never stores).
func CanonicalDomain(d string) string {
	d = strings.TrimSuffix(d, ".")
	upper := false
	for i := 0; i < len(d); i++ {
		c := d[i]
		if c >= 0x80 {
			if n, err := connector.NormalizeDomain(d); err == nil {
				return n
			}
			return strings.ToLower(d)
		}
		upper = upper || c >= 'A' && c <= 'Z'
	}
	if upper {
		return strings.ToLower(d)
	}
	return d
}

func addrOf(ip netip.Addr) netip.Addr { return ip.Unmap() }
