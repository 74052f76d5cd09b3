package connector_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
)

var (
	label63 = strings.Repeat("a", 63)
	label64 = strings.Repeat("a", 64)
	// domain253 is exactly as long as DNS allows; domain254 one more.
	domain253 = label63 + "." + label63 + "." + label63 + "." + strings.Repeat("b", 61)
	domain254 = label63 + "." + label63 + "." + label63 + "." + strings.Repeat("b", 62)
)

func TestNormalizeDomain(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr string
	}{
		{name: "plain", in: "contoso.com", want: "contoso.com"},
		{name: "uppercase is lowered", in: "Contoso.COM", want: "contoso.com"},
		{name: "trailing dot is stripped", in: "contoso.com.", want: "contoso.com"},
		{name: "surrounding space is trimmed", in: "  contoso.com\t", want: "contoso.com"},
		{name: "subdomain", in: "mail.sales.contoso.com", want: "mail.sales.contoso.com"},
		{name: "hyphen inside a label", in: "contoso-bank.com", want: "contoso-bank.com"},
		{name: "numeric label that is not the last", in: "123.contoso.com", want: "123.contoso.com"},
		{name: "IDN to punycode", in: "bücher.example", want: "xn--bcher-kva.example"},
		{name: "uppercase IDN to punycode", in: "BÜCHER.example", want: "xn--bcher-kva.example"},
		{name: "punycode stays", in: "xn--bcher-kva.example", want: "xn--bcher-kva.example"},
		{name: "uppercase punycode is lowered", in: "XN--BCHER-KVA.EXAMPLE", want: "xn--bcher-kva.example"},
		{name: "sharp s is not transitional", in: "straße.de", want: "xn--strae-oqa.de"},
		{name: "cyrillic TLD", in: "пример.рф", want: "xn--e1afmkfd.xn--p1ai"},
		{name: "fullwidth full stop separates labels", in: "contoso\uff0ecom", want: "contoso.com"},
		{name: "63 character label", in: label63 + ".com", want: label63 + ".com"},
		{name: "253 characters", in: domain253, want: domain253},

		{name: "empty", in: "", wantErr: "empty"},
		{name: "only spaces", in: "   ", wantErr: "empty"},
		{name: "only a dot", in: ".", wantErr: "empty"},
		{name: "wildcard refused", in: "*.contoso.com", wantErr: "wildcard"},
		{name: "trailing wildcard", in: "contoso.*", wantErr: "wildcard"},
		{name: "single label", in: "localhost", wantErr: "two labels"},
		{name: "bare TLD", in: "com", wantErr: "two labels"},
		{name: "IPv4 address", in: "192.0.2.1", wantErr: "IP address"},
		{name: "numeric TLD", in: "contoso.123", wantErr: "IP address"},
		{name: "an address", in: "john@contoso.com", wantErr: "not a domain name"},
		{name: "with a port", in: "contoso.com:25", wantErr: "not a domain name"},
		{name: "IP literal", in: "[192.0.2.1]", wantErr: "not a domain name"},
		{name: "inner space", in: "con toso.com", wantErr: "not a domain name"},
		{name: "slash", in: "contoso.com/x", wantErr: "not a domain name"},
		{name: "underscore", in: "a_b.contoso.com", wantErr: "not a valid domain name"},
		{name: "leading hyphen", in: "-contoso.com", wantErr: "not a valid domain name"},
		{name: "trailing hyphen", in: "contoso-.com", wantErr: "not a valid domain name"},
		{name: "NUL byte", in: "contoso.com\x00", wantErr: "not a valid domain name"},
		{name: "invalid punycode", in: "xn--abc.com", wantErr: "not a valid domain name"},
		{name: "empty label", in: "contoso..com", wantErr: "empty label"},
		{name: "two trailing dots", in: "contoso.com..", wantErr: "empty label"},
		{name: "64 character label", in: label64 + ".com", wantErr: "longer than 63"},
		{name: "254 characters", in: domain254, wantErr: "longer than 253"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := connector.NormalizeDomain(tt.in)
			if checkErr(t, tt.in, err, tt.wantErr) && got != tt.want {
				t.Errorf("NormalizeDomain(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseDomainPattern(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		kind    connector.PatternKind
		domain  string
		str     string
		wantErr string
	}{
		{name: "exact", in: "contoso.com", kind: connector.Exact, domain: "contoso.com", str: "contoso.com"},
		{name: "exact is lowercased without trailing dot", in: "ContosoBank.COM.", kind: connector.Exact, domain: "contosobank.com", str: "contosobank.com"},
		{name: "exact IDN", in: "bücher.example", kind: connector.Exact, domain: "xn--bcher-kva.example", str: "xn--bcher-kva.example"},
		{name: "wildcard", in: "*.contoso.com", kind: connector.Wildcard, domain: "contoso.com", str: "*.contoso.com"},
		{name: "wildcard is canonicalized", in: " *.Contoso.COM. ", kind: connector.Wildcard, domain: "contoso.com", str: "*.contoso.com"},
		{name: "wildcard over IDN", in: "*.Bücher.example", kind: connector.Wildcard, domain: "xn--bcher-kva.example", str: "*.xn--bcher-kva.example"},
		{name: "deep wildcard", in: "*.sales.contoso.com", kind: connector.Wildcard, domain: "sales.contoso.com", str: "*.sales.contoso.com"},
		{name: "lone star", in: "*", kind: connector.Any, domain: "", str: "*"},
		{name: "lone star with spaces", in: "  *  ", kind: connector.Any, domain: "", str: "*"},

		{name: "two wildcard labels", in: "*.*.contoso.com", wantErr: "wildcard"},
		{name: "double star", in: "**.contoso.com", wantErr: "wildcard"},
		{name: "star glued to a label", in: "*contoso.com", wantErr: "wildcard"},
		{name: "star in the middle", in: "mail.*.contoso.com", wantErr: "leading"},
		{name: "star at the end", in: "contoso.*", wantErr: "leading"},
		{name: "star label with nothing under it", in: "*.", wantErr: "empty"},
		{name: "wildcard over a TLD", in: "*.com", wantErr: "two labels"},
		{name: "wildcard over a bad name", in: "*.-x.com", wantErr: "not a valid domain name"},
		{name: "empty", in: "", wantErr: "empty"},
		{name: "an address", in: "john@contoso.com", wantErr: "not a domain name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := connector.ParseDomainPattern(tt.in)
			if !checkErr(t, tt.in, err, tt.wantErr) {
				return
			}
			if p.Kind != tt.kind || p.Domain != tt.domain {
				t.Errorf("ParseDomainPattern(%q) = {Kind %v, Domain %q}, want {Kind %v, Domain %q}", tt.in, p.Kind, p.Domain, tt.kind, tt.domain)
			}
			if p.String() != tt.str {
				t.Errorf("String() = %q, want %q", p.String(), tt.str)
			}
		})
	}
}

func TestDomainPatternMatches(t *testing.T) {
	tests := []struct {
		pattern string
		domain  string
		want    bool
	}{
		{"contoso.com", "contoso.com", true},
		{"contoso.com", "mail.contoso.com", false},
		{"contoso.com", "notcontoso.com", false},
		{"*.contoso.com", "mail.contoso.com", true},
		{"*.contoso.com", "sales.contoso.com", true},
		{"*.contoso.com", "a.b.sales.contoso.com", true},
		{"*.contoso.com", "contoso.com", false}, // the apex is not a subdomain
		{"*.contoso.com", "notcontoso.com", false},
		{"*.contoso.com", "contoso.com.evil.example", false},
		{"*.sales.contoso.com", "mail.contoso.com", false},
		{"*", "contoso.com", true},
		{"*", "anything.example", true},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" vs "+tt.domain, func(t *testing.T) {
			p, err := connector.ParseDomainPattern(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Matches(tt.domain); got != tt.want {
				t.Errorf("%s.Matches(%q) = %v, want %v", p, tt.domain, got, tt.want)
			}
		})
	}
}

func TestParseCertificateName(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		kind    connector.PatternKind
		wantErr string
	}{
		{name: "host name", in: "mail.contoso.com", want: "mail.contoso.com", kind: connector.Exact},
		{name: "canonicalized", in: "MAIL.ContosoBank.com.", want: "mail.contosobank.com", kind: connector.Exact},
		{name: "wildcard", in: "*.contoso.com", want: "*.contoso.com", kind: connector.Wildcard},
		{name: "IDN", in: "mail.bücher.example", want: "mail.xn--bcher-kva.example", kind: connector.Exact},
		{name: "lone star trusts everything", in: "*", wantErr: `cannot be "*"`},
		{name: "empty", in: "", wantErr: "empty"},
		{name: "inner wildcard", in: "mail.*.contoso.com", wantErr: "wildcard"},
		{name: "IP address", in: "192.0.2.1", wantErr: "IP address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := connector.ParseCertificateName(tt.in)
			if !checkErr(t, tt.in, err, tt.wantErr) {
				return
			}
			if p.String() != tt.want || p.Kind != tt.kind {
				t.Errorf("ParseCertificateName(%q) = %s (kind %v), want %s (kind %v)", tt.in, p, p.Kind, tt.want, tt.kind)
			}
		})
	}
}

func TestParentDomains(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"a.sales.contoso.com", []string{"a.sales.contoso.com", "sales.contoso.com", "contoso.com", "com"}},
		{"contoso.com", []string{"contoso.com", "com"}},
		{"com", []string{"com"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := connector.ParentDomains(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("ParentDomains(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

// golang.org/x/net/idna turns each invalid UTF-8 byte into U+FFFD and
// encodes it ("xn--zn7c"), so NormalizeDomain accepts bytes that are not
// text: distinct inputs collide ("contoso.\xff" and "contoso.\xfe" both give
// "contoso.xn--zn7c"), and the result does not normalize again. Every
// parser built on NormalizeDomain inherits this.
func TestInvalidUTF8IsRefused(t *testing.T) {
	parsers := []struct {
		name  string
		parse func(string) error
	}{
		{"NormalizeDomain", func(s string) error { _, err := connector.NormalizeDomain(s); return err }},
		{"ParseDomainPattern", func(s string) error { _, err := connector.ParseDomainPattern(s); return err }},
		{"ParseCertificateName", func(s string) error { _, err := connector.ParseCertificateName(s); return err }},
		{"ParseSmartHost", func(s string) error { _, err := connector.ParseSmartHost(s); return err }},
		{"ParseAddress", func(s string) error { _, err := connector.ParseAddress("john@" + s); return err }},
	}
	for _, in := range []string{"contoso.\xff", "cont\xfeoso.com", "\xc3.contoso.com", "mail.contoso.com\x80"} {
		for _, p := range parsers {
			t.Run(fmt.Sprintf("%s/%q", p.name, in), func(t *testing.T) {
				if err := p.parse(in); err == nil {
					t.Errorf("%s accepted the invalid UTF-8 domain %q", p.name, in)
				}
			})
		}
	}
}
