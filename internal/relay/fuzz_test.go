package relay

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/routing"
)

// ---- FuzzParseMailbox ----

// validAddressLiteral reports whether d is an RFC 5321 4.1.3
// address-literal: "[" IPv4 "]", "[IPv6:" IPv6 "]" or a general literal
// "[" tag ":" dcontent "]".
func validAddressLiteral(d string) bool {
	if len(d) < 3 || d[0] != '[' || d[len(d)-1] != ']' {
		return false
	}
	in := d[1 : len(d)-1]
	if isIPv4Literal(in) {
		return true
	}
	tag, rest, ok := strings.Cut(in, ":")
	if !ok || rest == "" {
		return false
	}
	if strings.EqualFold(tag, "IPv6") {
		return isIPv6Literal(rest)
	}
	// General-address-literal: Standardized-tag is an Ldh-str.
	if !isLdhStr(tag) {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; c < 33 || c > 126 || c == '[' || c == '\\' || c == ']' {
			return false
		}
	}
	return true
}

// isIPv4Literal: Snum 3("." Snum), Snum = 1*3DIGIT with a value of 0-255.
func isIPv4Literal(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return false
	}
	for _, p := range parts {
		if len(p) < 1 || len(p) > 3 {
			return false
		}
		v := 0
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
			v = v*10 + int(p[i]-'0')
		}
		if v > 255 {
			return false
		}
	}
	return true
}

// isIPv6Literal: an IPv6 address (full, compressed, with or without an
// IPv4 tail), without a zone.
func isIPv6Literal(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is6() && a.Zone() == ""
}

func isLdhStr(s string) bool {
	if s == "" || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func TestAddressLiteralReference(t *testing.T) {
	for _, ok := range []string{"[127.0.0.1]", "[255.255.255.255]", "[001.2.3.4]", "[IPv6:::1]", "[ipv6:2001:db8::1]",
		"[IPv6:1:2:3:4:5:6:7:8]", "[IPv6:::ffff:192.0.2.1]", "[IPv6:1:2:3:4:5:6:1.2.3.4]", "[x-tag:abc]"} {
		if !validAddressLiteral(ok) {
			t.Errorf("reference refuses %q", ok)
		}
	}
	for _, bad := range []string{"[]", "[x]", "[1.2.3]", "[256.1.1.1]", "[1.2.3.4]]", "[[1.2.3.4]", "[IPv6:]", "[IPv6:1::2::3]",
		"[IPv6:1:2:3:4:5:6:7:8:9]", "[IPv6:1:2:3:4:5:6:7]", "[IPv6:zz::1]", "[tag:]", "[-:x]", "[a b]", "[\x00]",
		"[IPv6:1:2:3:4:5:6:7:1.2.3.4]", "[contoso.com]"} {
		if validAddressLiteral(bad) {
			t.Errorf("reference accepts %q", bad)
		}
	}
}

func FuzzParseMailbox(f *testing.F) {
	seeds := []string{
		"john@contoso.com", "John@CONTOSO.COM.", "john@contoso.com..", "a@b", "@contoso.com", "john@", "john",
		"relaytest@nmap.scanme.org", "relaytest%nmap.scanme.org@contoso.com", "nmap.scanme.org!relaytest@contoso.com",
		"relaytest@nmap.scanme.org@contoso.com", "relaytest@@contoso.com", "relaytest@nmap.scanme.org\x00@contoso.com",
		"relaytest:x@contoso.com", "rel\"aytest@contoso.com", "rel aytest@contoso.com", "rel\taytest@contoso.com",
		"antispam@[127.0.0.1]", "antispam@[IPv6:::1]", "antispam@[IPv6:2001:DB8::1]", "antispam@[]", "antispam@[x]",
		"antispam@[1.2.3.4]]", "antispam@[[1.2.3.4]", "antispam@[contoso.com]", "antispam@[1.2.3.4", "antispam@1.2.3.4",
		"antispam@[\x00]", "antispam@[a b]", "antispam@[" + strings.Repeat("1", 70) + "]",
		"user@xn--bcher-kva.example", "user@bücher.example", "user@BÜCHER.example", "user@nmap\u3002scanme\u3002org",
		"user@ｃｏｎｔｏｓｏ.com", "user@contoso.com\u200b", "user@con\u00adtoso.com", "user@xn--.com", "user@xn--a.com",
		"üser@contoso.com", "\u00a0@contoso.com", "a.b@contoso.com", ".a@contoso.com", "a.@contoso.com", "a..b@contoso.com",
		strings.Repeat("a", 64) + "@contoso.com", strings.Repeat("a", 65) + "@contoso.com",
		"a@" + strings.Repeat("b", 63) + ".com", "a@" + strings.Repeat("b", 64) + ".com",
		"a@" + strings.Repeat("abcdefghi.", 25) + "com", "a@-contoso.com", "a@contoso-.com", "a@contoso.123",
		"a@*.contoso.com", "a@contoso.com:25", "a@contoso.com/x", "a@contoso.com\\", "a@ contoso.com", "a@contoso.com ",
	}
	for _, s := range seeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, ipLiteralOK bool) {
		mb, err := parseMailbox(s, ipLiteralOK)
		if err != nil {
			if ipLiteralOK {
				return
			}
			// Refused as a recipient: only an IP literal may still pass as a sender.
			if as, err2 := parseMailbox(s, true); err2 == nil && !strings.HasPrefix(as.Domain, "[") {
				t.Fatalf("parseMailbox(%q) refuses a recipient that it accepts as a sender: %q", s, as.String())
			}
			return
		}
		addr := mb.String()
		if strings.Count(addr, "@") != 1 {
			t.Fatalf("parseMailbox(%q) = %q: not exactly one @", s, addr)
		}
		if mb.Local == "" || strings.ContainsAny(mb.Local, "%!@:\" \t") {
			t.Fatalf("parseMailbox(%q): local part %q is empty or has a routing character", s, mb.Local)
		}
		if strings.HasPrefix(mb.Domain, "[") {
			if !ipLiteralOK {
				t.Fatalf("parseMailbox(%q, false) accepted the IP literal %q", s, mb.Domain)
			}
			if !validAddressLiteral(mb.Domain) {
				t.Fatalf("parseMailbox(%q, true) accepted %q, not an RFC 5321 address literal", s, mb.Domain)
			}
		} else {
			if mb.Domain == "" || mb.Domain != strings.ToLower(mb.Domain) || strings.HasSuffix(mb.Domain, ".") {
				t.Fatalf("parseMailbox(%q): domain %q is not canonical", s, mb.Domain)
			}
			if d, err := connector.NormalizeDomain(mb.Domain); err != nil || d != mb.Domain {
				t.Fatalf("parseMailbox(%q): domain %q re-normalizes to %q, %v", s, mb.Domain, d, err)
			}
			if routing.CanonicalDomain(mb.Domain) != mb.Domain {
				t.Fatalf("parseMailbox(%q): the routing engine sees domain %q as %q", s, mb.Domain, routing.CanonicalDomain(mb.Domain))
			}
		}
		// Parsing the result again changes nothing, and a recipient that
		// parses also parses as a sender.
		again, err := parseMailbox(addr, ipLiteralOK)
		if err != nil || again != mb {
			t.Fatalf("parseMailbox(%q) = %q, but parsing that again gives %q, %v", s, addr, again.String(), err)
		}
		if !ipLiteralOK {
			if as, err := parseMailbox(s, true); err != nil || as != mb {
				t.Fatalf("parseMailbox(%q) differs as a sender: %q, %v", s, as.String(), err)
			}
		}
	})
}

// ---- FuzzReadContent ----

// chunkReader returns at most n bytes per Read, to move read boundaries.
type chunkReader struct {
	r io.Reader
	n int
}

func (c chunkReader) Read(p []byte) (int, error) {
	if len(p) > c.n {
		p = p[:c.n]
	}
	return c.r.Read(p)
}

func checkNormalized(t *testing.T, in, out []byte) {
	t.Helper()
	for i, c := range out {
		if c == '\r' && (i+1 >= len(out) || out[i+1] != '\n') {
			t.Fatalf("bare CR at %d in output %q (input %q)", i, out, in)
		}
		if c == '\n' && (i == 0 || out[i-1] != '\r') {
			t.Fatalf("bare LF at %d in output %q (input %q)", i, out, in)
		}
	}
	if len(out) > 0 && !bytes.HasSuffix(out, []byte("\r\n")) {
		t.Fatalf("output %q (input %q) does not end with CRLF", out, in)
	}
}

func FuzzReadContent(f *testing.F) {
	seeds := []string{
		"", "\r", "\n", "\r\n", "\n\r", "\r\r\n", "x", "x\r", "x\n", "x\r\n",
		"A: b\r\n\r\nbody\r\n", "A: b\n\nbody\n", "A: b\r\rbody\r",
		"A: b\r\n\r\nx\n.\nMAIL FROM:<evil@x>\r\nRCPT TO:<victim@contoso.com>\r\nDATA\r\n",
		"A: b\r\n\r\nx\r.\rRCPT\r\n", "A: b\r\n\r\nx\n.\r\ny\r\n", "x\r\n.\n", "x\r\n.\r", ".\r\n", "..\r\n",
		"Received: from a\r\nreceived: from b\r\n\tby c\r\nMessage-ID:\r\n <abc@x.example>\r\nSubject: hi\r\n\r\nReceived: in body\r\n",
		"Message-ID: <a@b>\r\nMessage-ID: <c@d>\r\n\r\n", " continuation first\r\nA: b\r\n\r\n", "Received:x\rReceived:y\nReceived:z\r\n",
		"A: b\r\n" + strings.Repeat("z", 300) + "\r\n", "\x00\r\n\xff\r\n", "a\r\n\r\n\r\n\r\n",
	}
	for i, s := range seeds {
		f.Add([]byte(s), uint16(i*7), uint8(i))
	}
	f.Fuzz(func(t *testing.T, in []byte, maxLine uint16, chunk uint8) {
		const huge = 1 << 30
		var out bytes.Buffer
		info, err := readContent(bytes.NewReader(in), &out, huge, huge, huge, 0, nil)
		if err != nil {
			t.Fatalf("readContent(%q) with no limits: %v", in, err)
		}
		got := out.Bytes()
		checkNormalized(t, in, got)

		// Idempotent: normalized content reads back unchanged.
		var again bytes.Buffer
		info2, err := readContent(bytes.NewReader(got), &again, huge, huge, huge, 0, nil)
		if err != nil || !bytes.Equal(again.Bytes(), got) || info2 != info {
			t.Fatalf("reading %q again gave %q %+v %v, want it unchanged with %+v", got, again.Bytes(), info2, err, info)
		}

		// Read boundaries change nothing, and content already in the
		// buffer (the relay's Received field) is left alone.
		var split bytes.Buffer
		split.WriteString("Received: by relay\r\n")
		info3, err := readContent(chunkReader{bytes.NewReader(in), int(chunk%17) + 1}, &split, huge, huge, huge, 0, nil)
		if err != nil || !bytes.Equal(split.Bytes()[len("Received: by relay\r\n"):], got) || info3 != info {
			t.Fatalf("readContent(%q) in %d-byte reads gave %q %+v %v, want %q %+v", in, chunk%17+1, split.Bytes(), info3, err, got, info)
		}

		// Spilled in pieces (a large message, written to the queue as it
		// arrives): the pieces and what is left make the same content, and
		// every piece ends with a line end.
		var rest bytes.Buffer
		rest.WriteString("Received: by relay\r\n")
		var pieces [][]byte
		spillAt := int(chunk%23) + 1
		info4, err := readContent(chunkReader{bytes.NewReader(in), int(chunk%13) + 1}, &rest, huge, huge, huge, spillAt, func(p []byte) error {
			pieces = append(pieces, bytes.Clone(p))
			return nil
		})
		whole := append(bytes.Join(pieces, nil), rest.Bytes()...)
		if err != nil || !bytes.Equal(whole[len("Received: by relay\r\n"):], got) || info4 != info {
			t.Fatalf("readContent(%q) spilling at %d gave %q + %q %+v %v, want %q %+v", in, spillAt, pieces, rest.Bytes(), info4, err, got, info)
		}
		for _, p := range pieces {
			if !bytes.HasSuffix(p, []byte("\r\n")) || len(p) < spillAt {
				t.Fatalf("readContent(%q) spilling at %d gave the piece %q", in, spillAt, p)
			}
		}

		// A line limit refuses exactly the content with a longer line, and
		// changes nothing else.
		limit := int(maxLine%100) + 1
		longest := 0
		for _, line := range bytes.Split(bytes.TrimSuffix(got, []byte("\r\n")), []byte("\r\n")) {
			longest = max(longest, len(line))
		}
		var lim bytes.Buffer
		_, err = readContent(chunkReader{bytes.NewReader(in), int(chunk%5) + 1}, &lim, limit, huge, huge, 0, nil)
		switch {
		case err != nil && !errors.Is(err, errLineTooLong):
			t.Fatalf("readContent(%q, maxLine %d): %v", in, limit, err)
		case err != nil && longest <= limit:
			t.Fatalf("readContent(%q, maxLine %d) refused content whose longest line is %d", in, limit, longest)
		case err == nil && longest > limit:
			t.Fatalf("readContent(%q, maxLine %d) accepted a %d-byte line", in, limit, longest)
		case err == nil && !bytes.Equal(lim.Bytes(), got):
			t.Fatalf("readContent(%q, maxLine %d) gave %q, want %q", in, limit, lim.Bytes(), got)
		}
		if err == nil {
			for _, line := range bytes.Split(bytes.TrimSuffix(lim.Bytes(), []byte("\r\n")), []byte("\r\n")) {
				if len(line) > limit {
					t.Fatalf("readContent(%q, maxLine %d) let a %d-byte line through", in, limit, len(line))
				}
			}
		}

		// The hop limit refuses exactly the content with more Received fields.
		hops := int(chunk % 4)
		_, err = readContent(bytes.NewReader(in), &bytes.Buffer{}, huge, hops, huge, 0, nil)
		if (err != nil) != (info.Hops > hops) || err != nil && !errors.Is(err, errTooManyHops) {
			t.Fatalf("readContent(%q) with %d Received fields and maxHops %d: %v", in, info.Hops, hops, err)
		}
	})
}

// ---- FuzzClientCertNames ----

// certConnectorNames are the connector certificate names the fuzzer
// chooses from.
var certConnectorNames = []string{"mail.contoso.com", "*.contoso.com", "smtp.mail.contoso.com", "*.relay.contoso.com"}

// presentedName puts a certificate name in the form the relay compares:
// like verifyClientCert (trimmed, one trailing dot dropped) with ASCII
// lowercased; an internationalized name in its A-label form. ok is false
// for a name that is not a DNS name (RFC 6125 6.4.1: LDH labels, 1-63
// bytes, 253 in total), optionally with a complete "*" left-most label.
func presentedName(raw string) (string, bool) {
	n := strings.TrimSuffix(strings.TrimSpace(raw), ".")
	wild := strings.HasPrefix(n, "*.")
	base := strings.TrimPrefix(n, "*.")
	ascii := true
	for i := 0; i < len(base); i++ {
		if base[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		base = strings.ToLower(base)
	} else {
		d, err := connector.NormalizeDomain(base)
		if err != nil {
			return "", false
		}
		base = d
	}
	if base == "" || len(base) > 253 {
		return "", false
	}
	for _, l := range strings.Split(base, ".") {
		if len(l) < 1 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return "", false
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", false
			}
		}
	}
	if wild {
		return "*." + base, true
	}
	return base, true
}

// refCertMatch is the reference: a certificate matches the connector's
// name when one of its names equals it, lies under the connector's
// wildcard, or is a wildcard that covers the connector's exact name by
// exactly one label. Names that are not DNS names are judged only when
// they fall outside the connector's scope (they must never match then);
// inside it (such as "a_b.relay.contoso.com" for "*.relay.contoso.com" or
// "mail.contoso.com.." for "mail.contoso.com") the outcome is left open:
// decided is false when only such a name could make the difference.
func refCertMatch(connectorName string, names []string) (match, decided bool) {
	wildConn := strings.HasPrefix(connectorName, "*.")
	connBase := strings.TrimPrefix(connectorName, "*.")
	_, parent, _ := strings.Cut(connectorName, ".")
	undecided := false
	for _, raw := range names {
		if w := strings.TrimSpace(raw); strings.HasPrefix(w, "*.") && strings.IndexFunc(w, func(r rune) bool { return r >= 0x80 }) >= 0 {
			// A wildcard with U-labels: whether it is read as its A-label
			// form (like other names) is left open; real certificates
			// carry A-labels.
			undecided = true
			continue
		}
		n, ok := presentedName(raw)
		if !ok {
			m := strings.ToLower(strings.TrimRight(strings.TrimSpace(raw), "."))
			switch {
			case m == connectorName:
				undecided = true
			case wildConn && strings.HasSuffix(m, "."+connBase):
				undecided = true
			case !wildConn && m == "*."+parent:
				undecided = true
			}
			continue
		}
		if n == connectorName {
			return true, true
		}
		certBase, wildCert := strings.CutPrefix(n, "*.")
		switch {
		case wildConn && !wildCert:
			if strings.HasSuffix(n, "."+connBase) {
				return true, true
			}
		case !wildConn && wildCert:
			if parent == certBase {
				return true, true
			}
		}
	}
	return false, !undecided
}

// relayCertNames reproduces what verifyClientCert hands to routing.
func relayCertNames(names []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		n = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(n), "."))
		if n != "" && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

func certIndexes(t testing.TB, name string) (onPrem, partner *routing.Index) {
	accepted := []connector.AcceptedDomain{{Domain: "contoso.com", Type: connector.Authoritative}}
	op := connector.InboundSpec{Common: connector.Common{Name: "own server", ConnectorType: connector.OnPremises}, TLSSenderCertificateName: name}
	pa := connector.InboundSpec{Common: connector.Common{Name: "partner", ConnectorType: connector.Partner}, SenderDomains: []string{"partner.test"},
		RequireTLS: true, TLSSenderCertificateName: name, RestrictDomainsToCertificate: true}
	for _, s := range []*connector.InboundSpec{&op, &pa} {
		if errs := s.Normalize(); len(errs) != 0 {
			t.Fatalf("connector %q: %v", s.Name, errs)
		}
	}
	onPrem = routing.Build(routing.Config{AcceptedDomains: accepted, Inbound: []routing.Inbound{{ID: 1, Name: op.Name, Revision: 1, Spec: op}}})
	partner = routing.Build(routing.Config{AcceptedDomains: accepted, Inbound: []routing.Inbound{{ID: 2, Name: pa.Name, Revision: 1, Spec: pa}}})
	return onPrem, partner
}

func FuzzClientCertNames(f *testing.F) {
	indexes := map[string][2]*routing.Index{}
	for _, n := range certConnectorNames {
		op, pa := certIndexes(f, n)
		indexes[n] = [2]*routing.Index{op, pa}
	}
	seeds := []string{
		"mail.contoso.com", "MAIL.CONTOSO.COM.", "*.contoso.com", "*.CONTOSO.com", "contoso.com", "*.com", "*", "*.",
		"smtp.mail.contoso.com", "*.mail.contoso.com", "x.relay.contoso.com", "a.b.relay.contoso.com", "*.relay.contoso.com",
		"relay.contoso.com", "*.*.contoso.com", "x.*.contoso.com", "a*.contoso.com", "*a.contoso.com",
		"mail.contoso.com.attacker.example", "evilmail.contoso.com", "mail.contoso.com\x00.attacker.example",
		"mail.contoso.comx", "xmail.contoso.com", "mail-contoso.com", "mail.contoso.co", "mail.contoso.com..",
		".contoso.com", "a..contoso.com", "x.relay.contoso.com.", " x.relay.contoso.com ", "x .relay.contoso.com",
		"a_b.relay.contoso.com", "a b.contoso.com", "a/b.contoso.com", "*.contoso.com\nmail.evil.test",
		"mail.evil.test\nmail.contoso.com", "ｍａｉｌ.contoso.com", "mail\uff0econtoso\uff0ecom", "mail.contoſo.com",
		"mail.\u212aontoso.com", "xn--mail.contoso.com", "evilcontoso.com", "xrelay.contoso.com", "*.xrelay.contoso.com",
		"*.evilcontoso.com", "mail.contoso.com.evil.test", "*.contoso.com.evil.test", "x.relay.contoso.com.evil.test", "mäil.contoso.com", "*.ｃｏｎｔｏｓｏ.com", "smtp.mail.contoso.com\n*.contoso.com",
	}
	for i, s := range seeds {
		f.Add(uint8(i), s)
	}
	f.Fuzz(func(t *testing.T, which uint8, namesText string) {
		connName := certConnectorNames[int(which)%len(certConnectorNames)]
		names := strings.Split(namesText, "\n")
		if len(names) > 4 {
			names = names[:4]
		}
		want, decided := refCertMatch(connName, names)
		client := routing.Client{TLS: true, CertNames: relayCertNames(names)}
		ix := indexes[connName]
		if !decided {
			return
		}

		// An on_premises connector identified by the certificate.
		a := ix[0].Attribute(client, "partner.test")
		got := a.Connector != nil
		if got != want {
			t.Fatalf("on_premises connector %q, certificate names %q: attributed %v (%s), want %v", connName, names, got, a.Reason, want)
		}
		if got && a.Check(client) != nil {
			t.Fatalf("on_premises connector %q attributed by certificate %q fails its own check: %+v", connName, names, a.Check(client))
		}

		// A partner connector that restricts its domain to the certificate.
		p := ix[1].Attribute(client, "partner.test")
		if p.Connector == nil || p.Connector.Name != "partner" {
			t.Fatalf("partner connector not attributed by sender domain: %s", p.Reason)
		}
		v := p.Check(client)
		if (v == nil) != want {
			t.Fatalf("partner connector requiring %q, certificate names %q: violation %+v, want match %v", connName, names, v, want)
		}
	})
}
