package connector_test

import (
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
)

func TestParseAddress(t *testing.T) {
	local64 := strings.Repeat("j", 64)
	longDomain := label63 + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + ".com" // 195 characters
	tests := []struct {
		name    string
		in      string
		local   string
		domain  string
		wantErr string
	}{
		{name: "plain", in: "john@contoso.com", local: "john", domain: "contoso.com"},
		{name: "local case kept, domain lowered", in: "John.Doe@Contoso.COM", local: "John.Doe", domain: "contoso.com"},
		{name: "angle brackets", in: "<john@contoso.com>", local: "john", domain: "contoso.com"},
		{name: "surrounding space", in: "  john@contoso.com\t", local: "john", domain: "contoso.com"},
		{name: "plus tag", in: "john+tag@contoso.com", local: "john+tag", domain: "contoso.com"},
		{name: "apostrophe", in: "o'brien@contoso.com", local: "o'brien", domain: "contoso.com"},
		{name: "UTF-8 local part and IDN domain", in: "jöhn@bücher.example", local: "jöhn", domain: "xn--bcher-kva.example"},
		{name: "64 character local part", in: local64 + "@contoso.com", local: local64, domain: "contoso.com"},

		{name: "empty", in: "", wantErr: "empty"},
		{name: "null sender brackets", in: "<>", wantErr: "empty"},
		{name: "no at sign", in: "john", wantErr: "not an address"},
		{name: "empty local part", in: "@contoso.com", wantErr: "before @ is empty"},
		{name: "empty domain", in: "john@", wantErr: "empty"},
		{name: "double at", in: "a@b@contoso.com", wantErr: "'@'"},
		{name: "percent hack", in: "john%internet.example@contoso.com", wantErr: "'%'"},
		{name: "bang path", in: "internet.example!john@contoso.com", wantErr: "'!'"},
		{name: "source route", in: "@relay.example:john@contoso.com", wantErr: "before @"},
		{name: "quoted local with at sign", in: `"john@internet.example"@contoso.com`, wantErr: `'"'`},
		{name: "trailing dot on the domain", in: "john@contoso.com.", wantErr: "ends with a dot"},
		{name: "IPv4 literal", in: "john@[192.0.2.1]", wantErr: "IP-literal"},
		{name: "IPv6 literal", in: "john@[IPv6:2001:db8::1]", wantErr: "IP-literal"},
		{name: "bare IP domain", in: "john@192.0.2.1", wantErr: "IP address"},
		{name: "single label domain", in: "john@localhost", wantErr: "two labels"},
		{name: "leading dot", in: ".john@contoso.com", wantErr: "misplaced dot"},
		{name: "trailing dot in local", in: "john.@contoso.com", wantErr: "misplaced dot"},
		{name: "double dot in local", in: "jo..hn@contoso.com", wantErr: "misplaced dot"},
		{name: "space in local", in: "jo hn@contoso.com", wantErr: "' '"},
		{name: "comma in local", in: "john,bob@contoso.com", wantErr: "','"},
		{name: "control character below 0xA0", in: "jo\u0085hn@contoso.com", wantErr: "not valid UTF-8 text"},
		{name: "invalid UTF-8", in: "jo\xffhn@contoso.com", wantErr: "not valid UTF-8 text"},
		{name: "65 character local part", in: local64 + "j@contoso.com", wantErr: "longer than 64"},
		{name: "longer than 254", in: local64 + "@" + longDomain, wantErr: "longer than 254"},
		{name: "wildcard domain", in: "john@*.contoso.com", wantErr: "wildcard"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := connector.ParseAddress(tt.in)
			if !checkErr(t, tt.in, err, tt.wantErr) {
				return
			}
			if a.Local != tt.local || a.Domain != tt.domain {
				t.Errorf("ParseAddress(%q) = {%q, %q}, want {%q, %q}", tt.in, a.Local, a.Domain, tt.local, tt.domain)
			}
			if want := tt.local + "@" + tt.domain; a.String() != want {
				t.Errorf("String() = %q, want %q", a.String(), want)
			}
		})
	}
}

func TestCheckLocalPart(t *testing.T) {
	tests := []struct {
		local string
		ok    bool
	}{
		{"john", true},
		{"John.Doe", true},
		{"a!b", false},
		{"a%b", false},
		{"a:b", false},
		{"a@b", false},
		{`"a"`, false},
		{"a\\b", false},
		{"a<b", false},
		{"#$&'*+-/=?^_`{|}~", true},
		{"ü", true},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.local, func(t *testing.T) {
			err := connector.CheckLocalPart(tt.local)
			if (err == nil) != tt.ok {
				t.Errorf("CheckLocalPart(%q) = %v, want ok=%v", tt.local, err, tt.ok)
			}
		})
	}
}
