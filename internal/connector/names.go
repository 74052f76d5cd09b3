package connector

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// maxDomainLen is the longest domain name DNS allows (RFC 1035, in presentation form).
const maxDomainLen = 253

var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.Transitional(false),
	idna.BidiRule(),
	idna.ValidateLabels(true),
	idna.StrictDomainName(true),
)

// NormalizeDomain returns the canonical form of a domain name: lowercase,
// internationalized labels as punycode, no trailing dot. It refuses wildcards;
// see ParseDomainPattern for those.
func NormalizeDomain(s string) (string, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return "", errors.New("domain is empty")
	}
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%q is not valid UTF-8 text", s)
	}
	if strings.Contains(s, "*") {
		return "", fmt.Errorf("%q: a wildcard is only allowed as a leading \"*.\"", s)
	}
	if strings.ContainsAny(s, " \t\r\n@[]:/\\") {
		return "", fmt.Errorf("%q is not a domain name", s)
	}
	ascii, err := idnaProfile.ToASCII(s)
	if err != nil {
		return "", fmt.Errorf("%q is not a valid domain name", s)
	}
	ascii = strings.ToLower(ascii)
	if len(ascii) > maxDomainLen {
		return "", fmt.Errorf("%q is longer than %d characters", s, maxDomainLen)
	}
	labels := strings.Split(ascii, ".")
	if len(labels) < 2 {
		return "", fmt.Errorf("%q needs at least two labels, like contoso.com", s)
	}
	for _, l := range labels {
		if err := checkLabel(l); err != nil {
			return "", fmt.Errorf("%q: %w", s, err)
		}
	}
	if _, err := strconv.Atoi(labels[len(labels)-1]); err == nil {
		return "", fmt.Errorf("%q looks like an IP address, not a domain name", s)
	}
	return ascii, nil
}

func checkLabel(l string) error {
	if l == "" {
		return errors.New("empty label")
	}
	if len(l) > 63 {
		return errors.New("a label is longer than 63 characters")
	}
	if l[0] == '-' || l[len(l)-1] == '-' {
		return fmt.Errorf("label %q starts or ends with a hyphen", l)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("label %q has the character %q", l, c)
		}
	}
	return nil
}

// PatternKind tells how a DomainPattern matches.
type PatternKind uint8

const (
	// Exact matches the domain itself only.
	Exact PatternKind = iota
	// Wildcard ("*.contoso.com") matches every subdomain of Domain, at any
	// depth, but not Domain itself.
	Wildcard
	// Any ("*") matches every domain.
	Any
)

// DomainPattern is a parsed domain entry: "contoso.com", "*.contoso.com" or "*".
type DomainPattern struct {
	Kind   PatternKind
	Domain string // canonical; empty for Any
}

// String gives the canonical text form.
func (p DomainPattern) String() string {
	switch p.Kind {
	case Wildcard:
		return "*." + p.Domain
	case Any:
		return "*"
	}
	return p.Domain
}

// Matches reports whether a canonical domain falls under the pattern.
func (p DomainPattern) Matches(domain string) bool {
	switch p.Kind {
	case Any:
		return true
	case Wildcard:
		return strings.HasSuffix(domain, "."+p.Domain)
	}
	return domain == p.Domain
}

// ParseDomainPattern parses a domain entry. The wildcard may only be a lone
// "*" or a leading "*." label.
func ParseDomainPattern(s string) (DomainPattern, error) {
	t := strings.TrimSpace(s)
	if t == "*" {
		return DomainPattern{Kind: Any}, nil
	}
	if rest, ok := strings.CutPrefix(t, "*."); ok {
		if strings.TrimSpace(rest) != rest {
			return DomainPattern{}, fmt.Errorf("%q: no spaces are allowed after \"*.\"", t)
		}
		d, err := NormalizeDomain(rest)
		if err != nil {
			return DomainPattern{}, err
		}
		return DomainPattern{Kind: Wildcard, Domain: d}, nil
	}
	d, err := NormalizeDomain(t)
	if err != nil {
		return DomainPattern{}, err
	}
	return DomainPattern{Kind: Exact, Domain: d}, nil
}

// ParseCertificateName parses a certificate subject name as written in a
// connector: a host or domain name, or a leading-wildcard name such as
// "*.contoso.com". A lone "*" is refused: it would trust every certificate.
func ParseCertificateName(s string) (DomainPattern, error) {
	p, err := ParseDomainPattern(s)
	if err != nil {
		return DomainPattern{}, err
	}
	if p.Kind == Any {
		return DomainPattern{}, errors.New("a certificate name cannot be \"*\"; use a name like mail.contoso.com or *.contoso.com")
	}
	return p, nil
}

// ParentDomains returns domain and every suffix of it, nearest first:
// "a.sales.contoso.com" → [a.sales.contoso.com, sales.contoso.com,
// contoso.com, com]. The walk is bounded by the label count.
func ParentDomains(domain string) []string {
	out := []string{domain}
	for {
		i := strings.IndexByte(domain, '.')
		if i < 0 {
			break
		}
		domain = domain[i+1:]
		out = append(out, domain)
	}
	return out
}
