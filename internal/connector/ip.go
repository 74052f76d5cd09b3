package connector

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"go4.org/netipx"
)

// IPSpec is one entry of sender_ip_addresses: a single address, a CIDR block
// or a range "a-b". All three are held as an inclusive range.
type IPSpec struct {
	Range netipx.IPRange
	text  string // canonical text form
}

// String gives the canonical form: "192.0.2.1", "192.0.2.0/24" or
// "192.0.2.10-192.0.2.20".
func (s IPSpec) String() string { return s.text }

// Prefixes returns the smallest set of CIDR prefixes that cover the entry.
func (s IPSpec) Prefixes() []netip.Prefix { return s.Range.Prefixes() }

// Contains reports whether ip falls in the entry.
func (s IPSpec) Contains(ip netip.Addr) bool { return s.Range.Contains(ip.Unmap()) }

// Overlaps reports whether two entries share an address.
func (s IPSpec) Overlaps(o IPSpec) bool { return s.Range.Overlaps(o.Range) }

// mapped4 is the IPv4-mapped IPv6 block; addresses in it are IPv4 clients.
var mapped4 = netip.MustParsePrefix("::ffff:0:0/96")

// fromRange builds the spec for a range, taking an IPv6 range inside the
// IPv4-mapped block as IPv4, and refusing one that only partly covers it
// (its mapped part could never match, since clients are unmapped).
func fromRange(r netipx.IPRange, text string, input string) (IPSpec, error) {
	from, to := r.From(), r.To()
	if from.Is6() {
		m := netipx.RangeOfPrefix(mapped4)
		switch {
		case mapped4.Contains(from) && mapped4.Contains(to):
			r = netipx.IPRangeFrom(from.Unmap(), to.Unmap())
			if p, ok := r.Prefix(); ok {
				if p.IsSingleIP() {
					return IPSpec{Range: r, text: p.Addr().String()}, nil
				}
				return IPSpec{Range: r, text: p.String()}, nil
			}
			return IPSpec{Range: r, text: r.From().String() + "-" + r.To().String()}, nil
		case r.Overlaps(m):
			return IPSpec{}, fmt.Errorf("%q covers part of the IPv4-mapped block ::ffff:0:0/96; write IPv4 addresses as IPv4", input)
		}
	}
	return IPSpec{Range: r, text: text}, nil
}

// ParseIPSpec parses an IPv4 or IPv6 address, a CIDR block, or a range
// "a-b" of one family with a ≤ b. IPv4-mapped IPv6 addresses are taken as
// IPv4. A CIDR with host bits set is taken as its network ("10.0.0.5/24" is
// 10.0.0.0/24).
func ParseIPSpec(s string) (IPSpec, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return IPSpec{}, errors.New("IP address is empty")
	}
	if a, b, ok := strings.Cut(t, "-"); ok {
		from, err := parseAddr(strings.TrimSpace(a))
		if err != nil {
			return IPSpec{}, err
		}
		to, err := parseAddr(strings.TrimSpace(b))
		if err != nil {
			return IPSpec{}, err
		}
		if from.Is4() != to.Is4() {
			return IPSpec{}, fmt.Errorf("%q: both ends of a range must be IPv4 or both IPv6", t)
		}
		if to.Less(from) {
			return IPSpec{}, fmt.Errorf("%q: the range ends before it starts", t)
		}
		r := netipx.IPRangeFrom(from, to)
		if from == to {
			return fromRange(r, from.String(), t)
		}
		return fromRange(r, from.String()+"-"+to.String(), t)
	}
	if strings.Contains(t, "/") {
		p, err := netip.ParsePrefix(t)
		if err != nil {
			return IPSpec{}, fmt.Errorf("%q is not a CIDR block like 192.0.2.0/24", t)
		}
		if p.Addr().Zone() != "" {
			return IPSpec{}, fmt.Errorf("%q: zones are not allowed", t)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		p = p.Masked()
		r := netipx.RangeOfPrefix(p)
		if p.IsSingleIP() {
			return fromRange(r, p.Addr().String(), t)
		}
		return fromRange(r, p.String(), t)
	}
	a, err := parseAddr(t)
	if err != nil {
		return IPSpec{}, err
	}
	return IPSpec{Range: netipx.IPRangeFrom(a, a), text: a.String()}, nil
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q: zones are not allowed", s)
	}
	return a.Unmap(), nil
}
