package connector_test

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"go4.org/netipx"

	"github.com/flowgate/flowgate/internal/connector"
)

// The fuzzers check properties of every successful parse: the canonical
// text parses back to the same value, and the value obeys the invariants
// the routing engine relies on. Their seed corpus runs in every `go test`.

var domainSeeds = []string{
	"contoso.com", "Contoso.COM.", "  mail.sales.contoso.com ", "bücher.example", "BÜCHER.example",
	"xn--bcher-kva.example", "XN--BCHER-KVA.example", "straße.de", "пример.рф", "contoso\uff0ecom",
	"contoso\u3002com", "\u200bcontoso.com", "*.contoso.com", "*", "*.", "*.*.contoso.com", "mail.*.contoso.com",
	"contoso.*", "com", "192.0.2.1", "contoso.123", "a_b.com", "-a.com", "a-.com", "contoso..com", "contoso.com..",
	"xn--abc.com", "xn--.com", label63 + ".com", label64 + ".com", domain253, domain254, "john@contoso.com",
	"[192.0.2.1]", "contoso.com:25", "",
}

// checkCanonicalDomain fails unless d is what NormalizeDomain may return:
// lowercase ASCII LDH labels, at least two, no trailing dot, at most 253
// characters, a non-numeric last label.
func checkCanonicalDomain(t *testing.T, input, d string) {
	t.Helper()
	if d == "" || len(d) > 253 || strings.HasSuffix(d, ".") || strings.HasPrefix(d, ".") {
		t.Fatalf("%q: canonical domain %q is empty, too long or has an outer dot", input, d)
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		t.Fatalf("%q: canonical domain %q has fewer than two labels", input, d)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			t.Fatalf("%q: canonical domain %q has a bad label %q", input, d, l)
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				t.Fatalf("%q: canonical domain %q has the byte %q", input, d, c)
			}
		}
	}
	if _, err := strconv.Atoi(labels[len(labels)-1]); err == nil {
		t.Fatalf("%q: canonical domain %q ends in a numeric label", input, d)
	}
}

func FuzzNormalizeDomain(f *testing.F) {
	for _, s := range domainSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := connector.NormalizeDomain(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("%q: empty error message", s)
			}
			return
		}
		checkCanonicalDomain(t, s, d)
		again, err := connector.NormalizeDomain(d)
		if err != nil || again != d {
			t.Fatalf("NormalizeDomain(%q) = %q, but NormalizeDomain(%q) = %q, %v", s, d, d, again, err)
		}
		// A domain is also an exact pattern, with the same canonical form.
		p, err := connector.ParseDomainPattern(s)
		if err != nil || p.Kind != connector.Exact || p.Domain != d {
			t.Fatalf("ParseDomainPattern(%q) = %+v, %v; want exact %q", s, p, err, d)
		}
	})
}

func FuzzParseDomainPattern(f *testing.F) {
	for _, s := range domainSeeds {
		f.Add(s)
		f.Add("*." + s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := connector.ParseDomainPattern(s)
		if err != nil {
			return
		}
		switch p.Kind {
		case connector.Any:
			if p.Domain != "" || p.String() != "*" {
				t.Fatalf("%q: Any pattern %+v has a domain or String %q", s, p, p.String())
			}
			if !p.Matches("contoso.com") {
				t.Fatalf("%q: * does not match contoso.com", s)
			}
		case connector.Exact, connector.Wildcard:
			checkCanonicalDomain(t, s, p.Domain)
			if p.Kind == connector.Exact && (!p.Matches(p.Domain) || p.Matches("x."+p.Domain)) {
				t.Fatalf("%q: exact %s must match only itself", s, p)
			}
			if p.Kind == connector.Wildcard && (p.Matches(p.Domain) || !p.Matches("x."+p.Domain) || !p.Matches("a.b."+p.Domain)) {
				t.Fatalf("%q: wildcard %s must match every subdomain and not the apex", s, p)
			}
		default:
			t.Fatalf("%q: unknown kind %v", s, p.Kind)
		}
		again, err := connector.ParseDomainPattern(p.String())
		if err != nil || again != p {
			t.Fatalf("ParseDomainPattern(%q) = %+v, but its String %q parses to %+v, %v", s, p, p.String(), again, err)
		}
		// A certificate name is a pattern without "*".
		c, err := connector.ParseCertificateName(s)
		if (err == nil) != (p.Kind != connector.Any) || (err == nil && c != p) {
			t.Fatalf("ParseCertificateName(%q) = %+v, %v; pattern %+v", s, c, err, p)
		}
	})
}

func FuzzParseIPSpec(f *testing.F) {
	for _, s := range []string{
		"192.0.2.1", " 192.0.2.1 ", "2001:db8::1", "2001:DB8:0:0::1", "192.0.2.0/24", "192.0.2.77/24", "192.0.2.77/32",
		"0.0.0.0/0", "2001:db8::1/64", "2001:db8::1/128", "::/0", "192.0.2.10-192.0.2.20", " 192.0.2.10 - 192.0.2.20 ",
		"192.0.2.10-192.0.2.10", "2001:db8::10-2001:db8::20", "::ffff:192.0.2.1", "::ffff:192.0.2.0/120",
		"::ffff:192.0.2.1-::ffff:192.0.2.9", "::ffff:192.0.2.1-192.0.2.9", "192.0.2.20-192.0.2.10",
		"192.0.2.1-2001:db8::1", "fe80::1%eth0", "fe80::1%eth0/64", "192.0.2.0/33", "192.0.2.256", "010.0.0.1",
		"192.0.2.1-", "-", "192.0.2.0/24-192.0.2.255", "mail.contoso.com", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := connector.ParseIPSpec(s)
		if err != nil {
			return
		}
		r := v.Range
		from, to := r.From(), r.To()
		if !r.IsValid() || to.Less(from) || from.Is4() != to.Is4() {
			t.Fatalf("ParseIPSpec(%q): bad range %v-%v", s, from, to)
		}
		if from.Zone() != "" || to.Zone() != "" {
			t.Fatalf("ParseIPSpec(%q): range %v-%v has a zone", s, from, to)
		}
		// The entry holds its own ends and nothing just outside them.
		if !v.Contains(from) || !v.Contains(to) {
			t.Fatalf("ParseIPSpec(%q) = %s does not contain its own ends %v (%v) and %v (%v)",
				s, v, from, v.Contains(from), to, v.Contains(to))
		}
		if p := from.Prev(); p.IsValid() && v.Contains(p) {
			t.Fatalf("ParseIPSpec(%q) = %s contains %v, before its start", s, v, p)
		}
		if n := to.Next(); n.IsValid() && v.Contains(n) {
			t.Fatalf("ParseIPSpec(%q) = %s contains %v, after its end", s, v, n)
		}
		if !v.Overlaps(v) {
			t.Fatalf("ParseIPSpec(%q) = %s does not overlap itself", s, v)
		}
		// The prefixes cover exactly the range.
		ps := v.Prefixes()
		if len(ps) == 0 || ps[0].Addr() != from || netipx.PrefixLastIP(ps[len(ps)-1]) != to {
			t.Fatalf("ParseIPSpec(%q) = %s: prefixes %v do not span %v-%v", s, v, ps, from, to)
		}
		// The canonical text is stable.
		again, err := connector.ParseIPSpec(v.String())
		if err != nil || again.Range != r || again.String() != v.String() {
			t.Fatalf("ParseIPSpec(%q) = %s (%v), but it parses again as %s (%v), %v", s, v, r, again, again.Range, err)
		}
	})
}

func FuzzParseSmartHost(f *testing.F) {
	for _, s := range []string{
		"mail.contoso.com", " Mail.Contoso.COM. ", "mail.contoso.com:587", "mail.contoso.com:65535", "mx.bücher.example",
		"192.0.2.25", "192.0.2.25:2525", "2001:db8::25", "[2001:db8::25]:2525", "[2001:db8::25]", "[::1]:25",
		"::ffff:192.0.2.25", "[::ffff:192.0.2.25]:587", "mail.contoso.com:0", "mail.contoso.com:65536",
		"mail.contoso.com:", "[2001:db8::25]:", "[mail.contoso.com]:25", "[2001:db8::25", "[fe80::1%eth0]:25",
		"0.0.0.0", "[::]:25", "224.0.0.1", "mail.contoso.com:25:25", "*.contoso.com", ":25", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := connector.ParseSmartHost(s)
		if err != nil {
			return
		}
		if h.Port < 0 || h.Port > 65535 {
			t.Fatalf("ParseSmartHost(%q): port %d", s, h.Port)
		}
		if h.IsIP() {
			if h.IP.String() != h.Host || h.IP.Zone() != "" || h.IP.Is4In6() || h.IP.IsUnspecified() || h.IP.IsMulticast() {
				t.Fatalf("ParseSmartHost(%q): unusable or non-canonical IP %v (host %q)", s, h.IP, h.Host)
			}
		} else {
			if _, err := netip.ParseAddr(h.Host); err == nil {
				t.Fatalf("ParseSmartHost(%q): host %q is an address but IsIP is false", s, h.Host)
			}
			checkCanonicalDomain(t, s, h.Host)
		}
		// Addr is always dialable host:port.
		host, port, err := net.SplitHostPort(h.Addr())
		wantPort := h.Port
		if wantPort == 0 {
			wantPort = connector.DefaultSMTPPort
		}
		if err != nil || host != h.Host || port != strconv.Itoa(wantPort) {
			t.Fatalf("ParseSmartHost(%q).Addr() = %q (%q, %q, %v); want host %q port %d", s, h.Addr(), host, port, err, h.Host, wantPort)
		}
		again, err := connector.ParseSmartHost(h.String())
		if err != nil || again != h {
			t.Fatalf("ParseSmartHost(%q) = %+v, but its String %q parses to %+v, %v", s, h, h.String(), again, err)
		}
	})
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{
		"john@contoso.com", "John.Doe@Contoso.COM", "<john@contoso.com>", "  john@contoso.com\t", "john+tag@contoso.com",
		"o'brien@contoso.com", "jöhn@bücher.example", "<>", "john", "@contoso.com", "john@", "a@b@contoso.com",
		"john%internet.example@contoso.com", "internet.example!john@contoso.com", "@relay.example:john@contoso.com",
		`"john@internet.example"@contoso.com`, "john@contoso.com.", "john@[192.0.2.1]", "john@192.0.2.1",
		".john@contoso.com", "jo..hn@contoso.com", "jo hn@contoso.com", "jo\xffhn@contoso.com", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := connector.ParseAddress(s)
		if err != nil {
			return
		}
		checkCanonicalDomain(t, s, a.Domain)
		if err := connector.CheckLocalPart(a.Local); err != nil {
			t.Fatalf("ParseAddress(%q): local part %q fails CheckLocalPart: %v", s, a.Local, err)
		}
		str := a.String()
		if strings.Count(str, "@") != 1 || strings.ContainsAny(str, "%!:\"<> \t\r\n") || !utf8.ValidString(str) || len(str) > 254 {
			t.Fatalf("ParseAddress(%q) = %q: more than one mailbox, a relay character, or too long", s, str)
		}
		again, err := connector.ParseAddress(str)
		if err != nil || again != a {
			t.Fatalf("ParseAddress(%q) = %+v, but %q parses to %+v, %v", s, a, str, again, err)
		}
	})
}
