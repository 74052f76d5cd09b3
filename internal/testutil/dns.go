package testutil

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// DNS is a real authoritative DNS server on 127.0.0.1 (UDP) for tests,
// answering MX, A and AAAA from records the test sets.
type DNS struct {
	Addr string
	mu   sync.Mutex
	mx   map[string][]*dns.MX
	a    map[string][]net.IP
}

// NewDNS starts the server.
func NewDNS(t testing.TB) *DNS {
	t.Helper()
	d := &DNS{mx: map[string][]*dns.MX{}, a: map[string][]net.IP{}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d.Addr = pc.LocalAddr().String()
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(d.serve)}
	go srv.ActivateAndServe()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return d
}

// MX adds an MX record.
func (d *DNS) MX(domain, host string, pref uint16) {
	d.mu.Lock()
	defer d.mu.Unlock()
	name := dns.Fqdn(strings.ToLower(domain))
	d.mx[name] = append(d.mx[name], &dns.MX{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeMX, Class: dns.ClassINET, Ttl: 60}, Preference: pref, Mx: dns.Fqdn(host)})
}

// A adds an address record (IPv4 or IPv6).
func (d *DNS) A(host, ip string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	name := dns.Fqdn(strings.ToLower(host))
	d.a[name] = append(d.a[name], net.ParseIP(ip))
}

func (d *DNS) serve(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	d.mu.Lock()
	defer d.mu.Unlock()
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	_, hasMX := d.mx[name]
	_, hasA := d.a[name]
	switch q.Qtype {
	case dns.TypeMX:
		for _, rr := range d.mx[name] {
			m.Answer = append(m.Answer, rr)
		}
	case dns.TypeA, dns.TypeAAAA:
		for _, ip := range d.a[name] {
			if v4 := ip.To4(); v4 != nil && q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: v4})
			} else if ip.To4() == nil && q.Qtype == dns.TypeAAAA {
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: 60}, AAAA: ip})
			}
		}
	}
	if !hasMX && !hasA {
		m.Rcode = dns.RcodeNameError
	}
	_ = w.WriteMsg(m)
}
