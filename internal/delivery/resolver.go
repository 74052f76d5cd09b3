package delivery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// DNSError is a failed lookup; Permanent means the name does not exist or
// says it takes no mail (null MX), so retrying will not help.
type DNSError struct {
	Name      string
	Permanent bool
	Err       error
}

func (e *DNSError) Error() string { return fmt.Sprintf("DNS lookup for %s: %v", e.Name, e.Err) }
func (e *DNSError) Unwrap() error { return e.Err }

// MX is one mail exchanger.
type MX struct {
	Host string
	Pref uint16
}

// Resolver looks up MX and address records, through a configured DNS
// server (FLOWGATE_DNS_SERVER) or the system resolver.
type Resolver struct {
	Server  string // host:port; empty: the system resolver
	Timeout time.Duration
}

// LookupMX returns the domain's mail exchangers by preference (RFC 5321
// 5.1): with no MX record, the domain itself is the implicit MX; a null MX
// (RFC 7505) is a permanent failure.
func (r *Resolver) LookupMX(ctx context.Context, domain string) ([]MX, error) {
	var mxs []MX
	if r.Server == "" {
		recs, err := net.DefaultResolver.LookupMX(ctx, domain)
		var dnsErr *net.DNSError
		switch {
		case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
			// No MX records: fall through to the implicit MX below,
			// provided the name has addresses.
		case err != nil:
			return nil, &DNSError{Name: domain, Err: err}
		}
		for _, m := range recs {
			mxs = append(mxs, MX{Host: strings.TrimSuffix(strings.ToLower(m.Host), "."), Pref: m.Pref})
		}
	} else {
		msg, err := r.query(ctx, domain, dns.TypeMX)
		if err != nil {
			return nil, err
		}
		for _, rr := range msg.Answer {
			if m, ok := rr.(*dns.MX); ok {
				mxs = append(mxs, MX{Host: strings.TrimSuffix(strings.ToLower(m.Mx), "."), Pref: m.Preference})
			}
		}
	}
	if len(mxs) == 1 && mxs[0].Host == "" {
		return nil, &DNSError{Name: domain, Permanent: true, Err: errors.New("the domain publishes a null MX: it accepts no mail")}
	}
	if len(mxs) == 0 {
		if _, err := r.LookupAddrs(ctx, domain); err != nil {
			return nil, err
		}
		return []MX{{Host: domain}}, nil
	}
	sort.SliceStable(mxs, func(i, j int) bool {
		if mxs[i].Pref != mxs[j].Pref {
			return mxs[i].Pref < mxs[j].Pref
		}
		return mxs[i].Host < mxs[j].Host
	})
	return mxs, nil
}

// LookupAddrs returns the IPv4 and IPv6 addresses of a host.
func (r *Resolver) LookupAddrs(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	var out []netip.Addr
	if r.Server == "" {
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			var dnsErr *net.DNSError
			return nil, &DNSError{Name: host, Permanent: errors.As(err, &dnsErr) && dnsErr.IsNotFound, Err: err}
		}
		for _, ip := range ips {
			out = append(out, ip.Unmap())
		}
		return out, nil
	}
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		msg, err := r.query(ctx, host, t)
		if err != nil {
			var de *DNSError
			if errors.As(err, &de) && de.Permanent {
				return nil, err
			}
			if t == dns.TypeA {
				return nil, err
			}
			continue
		}
		for _, rr := range msg.Answer {
			switch v := rr.(type) {
			case *dns.A:
				if a, ok := netip.AddrFromSlice(v.A.To4()); ok {
					out = append(out, a)
				}
			case *dns.AAAA:
				if a, ok := netip.AddrFromSlice(v.AAAA); ok {
					out = append(out, a.Unmap())
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, &DNSError{Name: host, Permanent: true, Err: errors.New("no A or AAAA records")}
	}
	return out, nil
}

func (r *Resolver) query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	timeout := r.Timeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	c := &dns.Client{Timeout: timeout}
	in, _, err := c.ExchangeContext(ctx, m, r.Server)
	if err == nil && in.Truncated {
		c.Net = "tcp"
		in, _, err = c.ExchangeContext(ctx, m, r.Server)
	}
	if err != nil {
		return nil, &DNSError{Name: name, Err: err}
	}
	switch in.Rcode {
	case dns.RcodeSuccess:
		return in, nil
	case dns.RcodeNameError:
		return nil, &DNSError{Name: name, Permanent: true, Err: errors.New("no such domain (NXDOMAIN)")}
	}
	return nil, &DNSError{Name: name, Err: fmt.Errorf("server answered %s", dns.RcodeToString[in.Rcode])}
}
