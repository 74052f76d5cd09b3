package relay

import (
	"errors"
	"net/netip"
	"strings"

	"github.com/flowgate/flowgate/internal/connector"
)

// mailbox is an envelope address as the relay uses it.
type mailbox struct {
	Local  string
	Domain string // canonical domain, or an IP literal "[192.0.2.1]" (senders only)
}

func (m mailbox) String() string { return m.Local + "@" + m.Domain }

var (
	errMultipleAt = errors.New("more than one @")
	errIPLiteral  = errors.New("IP-literal domain")
)

// parseMailbox checks an address as go-smtp hands it over: source routes
// already stripped (RFC 5321 says to ignore them) and quoted local parts
// unquoted. It refuses what relay tricks are made of — a second "@" (from
// a quoted local part), "%" and "!" routing, ":" — so that an address is
// exactly one mailbox at one domain. A trailing dot on the domain is
// dropped. IP-literal domains are allowed only when ipLiteralOK (senders).
func parseMailbox(s string, ipLiteralOK bool) (mailbox, error) {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 {
		return mailbox{}, errors.New("no local part or domain")
	}
	local, domain := s[:at], s[at+1:]
	if strings.IndexByte(local, '@') >= 0 {
		return mailbox{}, errMultipleAt
	}
	if err := connector.CheckLocalPart(local); err != nil {
		return mailbox{}, err
	}
	if strings.HasPrefix(domain, "[") {
		if !ipLiteralOK {
			return mailbox{}, errIPLiteral
		}
		lit, ok := parseAddressLiteral(domain)
		if !ok {
			return mailbox{}, errors.New("malformed IP literal")
		}
		return mailbox{Local: local, Domain: lit}, nil
	}
	d, err := connector.NormalizeDomain(domain)
	if err != nil {
		return mailbox{}, err
	}
	return mailbox{Local: local, Domain: d}, nil
}

// parseAddressLiteral accepts the RFC 5321 address literals "[192.0.2.1]"
// and "[IPv6:2001:db8::1]" and returns their canonical form.
func parseAddressLiteral(s string) (string, bool) {
	if len(s) < 3 || s[0] != '[' || s[len(s)-1] != ']' {
		return "", false
	}
	inner := s[1 : len(s)-1]
	if v6, ok := strings.CutPrefix(inner, "IPv6:"); ok {
		a, err := netip.ParseAddr(v6)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return "", false
		}
		return "[IPv6:" + a.String() + "]", true
	}
	a, err := netip.ParseAddr(inner)
	if err != nil || !a.Is4() {
		return "", false
	}
	return "[" + a.String() + "]", true
}
