package connector

import (
	"errors"
	"fmt"
	"strings"
)

// Address is a mailbox address "local@domain" with a canonical domain.
type Address struct {
	Local  string
	Domain string
}

// String gives local@domain.
func (a Address) String() string { return a.Local + "@" + a.Domain }

// Limits from RFC 5321 section 4.5.3.1.
const (
	maxLocalLen   = 64
	maxAddressLen = 254
)

// ParseAddress parses a plain mailbox address as an admin types it
// ("john@contoso.com"). The local part must be a dot-atom: quoted local
// parts, source routes and IP-literal domains are refused, so that an
// address is never more than one mailbox at one domain.
func ParseAddress(s string) (Address, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "<") && strings.HasSuffix(t, ">") {
		t = t[1 : len(t)-1]
	}
	if t == "" {
		return Address{}, errors.New("address is empty")
	}
	if strings.ContainsAny(t, "<>") {
		return Address{}, fmt.Errorf("%q is not an address like john@contoso.com", t)
	}
	at := strings.LastIndexByte(t, '@')
	if at < 0 {
		return Address{}, fmt.Errorf("%q is not an address like john@contoso.com", t)
	}
	local, domain := t[:at], t[at+1:]
	if err := CheckLocalPart(local); err != nil {
		return Address{}, fmt.Errorf("%q: %w", t, err)
	}
	if strings.TrimSpace(domain) != domain {
		return Address{}, fmt.Errorf("%q: the domain has a space", t)
	}
	if strings.HasPrefix(domain, "[") {
		return Address{}, fmt.Errorf("%q: an IP-literal domain is not allowed", t)
	}
	d, err := NormalizeDomain(domain)
	if err != nil {
		return Address{}, err
	}
	if strings.HasSuffix(domain, ".") {
		return Address{}, fmt.Errorf("%q: the domain ends with a dot", t)
	}
	a := Address{Local: local, Domain: d}
	if len(a.String()) > maxAddressLen {
		return Address{}, fmt.Errorf("%q is longer than %d characters", t, maxAddressLen)
	}
	return a, nil
}

// CheckLocalPart accepts an RFC 5322 dot-atom local part (UTF-8 allowed, as
// SMTPUTF8 permits) and refuses the characters of relay tricks: '@', '%',
// '!', ':' and quotes.
func CheckLocalPart(local string) error {
	if local == "" {
		return errors.New("the part before @ is empty")
	}
	if len(local) > maxLocalLen {
		return fmt.Errorf("the part before @ is longer than %d characters", maxLocalLen)
	}
	if local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, "..") {
		return errors.New("the part before @ has a misplaced dot")
	}
	for _, r := range local {
		if r < 0x80 {
			c := byte(r)
			if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
				continue
			}
			if strings.IndexByte(".#$&'*+-/=?^_`{|}~", c) >= 0 {
				continue
			}
			return fmt.Errorf("the part before @ has the character %q", c)
		}
		if r == 0xFFFD || r < 0xA0 {
			return errors.New("the part before @ is not valid UTF-8 text")
		}
	}
	return nil
}
