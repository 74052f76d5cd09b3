package connector_test

import (
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
)

func TestParseSmartHost(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		host    string
		isIP    bool
		port    int
		str     string // canonical String()
		addr    string // Addr() for dialling
		wantErr string
	}{
		{name: "host name", in: "mail.contoso.com", host: "mail.contoso.com", str: "mail.contoso.com", addr: "mail.contoso.com:25"},
		{name: "host name is canonicalized", in: " Mail.Contoso.COM. ", host: "mail.contoso.com", str: "mail.contoso.com", addr: "mail.contoso.com:25"},
		{name: "Exchange Online smart host", in: "contoso-com.mail.protection.outlook.com", host: "contoso-com.mail.protection.outlook.com", str: "contoso-com.mail.protection.outlook.com", addr: "contoso-com.mail.protection.outlook.com:25"},
		{name: "IDN host", in: "mx.bücher.example", host: "mx.xn--bcher-kva.example", str: "mx.xn--bcher-kva.example", addr: "mx.xn--bcher-kva.example:25"},
		{name: "host and port", in: "mail.contoso.com:587", host: "mail.contoso.com", port: 587, str: "mail.contoso.com:587", addr: "mail.contoso.com:587"},
		{name: "lowest port", in: "mail.contoso.com:1", host: "mail.contoso.com", port: 1, str: "mail.contoso.com:1", addr: "mail.contoso.com:1"},
		{name: "highest port", in: "mail.contoso.com:65535", host: "mail.contoso.com", port: 65535, str: "mail.contoso.com:65535", addr: "mail.contoso.com:65535"},
		{name: "IPv4", in: "192.0.2.25", host: "192.0.2.25", isIP: true, str: "192.0.2.25", addr: "192.0.2.25:25"},
		{name: "IPv4 and port", in: "192.0.2.25:2525", host: "192.0.2.25", isIP: true, port: 2525, str: "192.0.2.25:2525", addr: "192.0.2.25:2525"},
		{name: "bare IPv6", in: "2001:db8::25", host: "2001:db8::25", isIP: true, str: "2001:db8::25", addr: "[2001:db8::25]:25"},
		{name: "bare IPv6 in long form", in: "2001:DB8:0::25", host: "2001:db8::25", isIP: true, str: "2001:db8::25", addr: "[2001:db8::25]:25"},
		{name: "bracketed IPv6 and port", in: "[2001:db8::25]:2525", host: "2001:db8::25", isIP: true, port: 2525, str: "[2001:db8::25]:2525", addr: "[2001:db8::25]:2525"},
		{name: "bracketed IPv6 without port", in: "[2001:db8::25]", host: "2001:db8::25", isIP: true, str: "2001:db8::25", addr: "[2001:db8::25]:25"},
		{name: "IPv6 loopback", in: "[::1]:2525", host: "::1", isIP: true, port: 2525, str: "[::1]:2525", addr: "[::1]:2525"},
		{name: "mapped IPv4 is IPv4", in: "::ffff:192.0.2.25", host: "192.0.2.25", isIP: true, str: "192.0.2.25", addr: "192.0.2.25:25"},
		{name: "bracketed mapped IPv4 with port", in: "[::ffff:192.0.2.25]:587", host: "192.0.2.25", isIP: true, port: 587, str: "192.0.2.25:587", addr: "192.0.2.25:587"},

		{name: "empty", in: "", wantErr: "empty"},
		{name: "spaces", in: "   ", wantErr: "empty"},
		{name: "port zero", in: "mail.contoso.com:0", wantErr: "port"},
		{name: "port too large", in: "mail.contoso.com:65536", wantErr: "port"},
		{name: "negative port", in: "mail.contoso.com:-1", wantErr: "port"},
		{name: "port not a number", in: "mail.contoso.com:smtp", wantErr: "port"},
		{name: "empty port", in: "mail.contoso.com:", wantErr: "port"},
		{name: "IPv4 with empty port", in: "192.0.2.25:", wantErr: "port"},
		{name: "bracketed IPv6 with empty port", in: "[2001:db8::25]:", wantErr: "port"},
		{name: "bracketed IPv6 with port too large", in: "[2001:db8::25]:99999", wantErr: "port"},
		{name: "host name in brackets", in: "[mail.contoso.com]:25", wantErr: "brackets"},
		{name: "unclosed bracket", in: "[2001:db8::25", wantErr: "host[:port]"},
		{name: "garbage after bracket", in: "[2001:db8::25]x", wantErr: "host[:port]"},
		{name: "zone in brackets", in: "[fe80::1%eth0]:25", wantErr: "zones"},
		{name: "bare zone", in: "fe80::1%eth0", wantErr: "zones"},
		{name: "unspecified IPv4", in: "0.0.0.0", wantErr: "usable"},
		{name: "unspecified IPv6", in: "[::]:25", wantErr: "usable"},
		{name: "multicast IPv4", in: "224.0.0.1:25", wantErr: "usable"},
		{name: "multicast IPv6", in: "ff02::1", wantErr: "usable"},
		{name: "two ports", in: "mail.contoso.com:25:25", wantErr: "not a domain name"},
		{name: "an address", in: "john@contoso.com", wantErr: "not a domain name"},
		{name: "wildcard", in: "*.contoso.com", wantErr: "wildcard"},
		{name: "single label", in: "mailhost", wantErr: "two labels"},
		{name: "port without host", in: ":25", wantErr: "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := connector.ParseSmartHost(tt.in)
			if !checkErr(t, tt.in, err, tt.wantErr) {
				return
			}
			if h.Host != tt.host || h.IsIP() != tt.isIP || h.Port != tt.port {
				t.Errorf("ParseSmartHost(%q) = {Host %q, IsIP %v, Port %d}, want {Host %q, IsIP %v, Port %d}",
					tt.in, h.Host, h.IsIP(), h.Port, tt.host, tt.isIP, tt.port)
			}
			if h.String() != tt.str {
				t.Errorf("String() = %q, want %q", h.String(), tt.str)
			}
			if h.Addr() != tt.addr {
				t.Errorf("Addr() = %q, want %q", h.Addr(), tt.addr)
			}
		})
	}
}

// An IPv6 address whose text ends in "::" is a valid unicast address, and
// a smart host may be given as any IPv6 address (SPEC 1: "FQDN or IP"):
// its trailing colon is not an empty port (fixed in 2b1dd99).
func TestParseSmartHostIPv6EndingInDoubleColon(t *testing.T) {
	for _, in := range []string{"2001:db8::", "[2001:db8::]", "[2001:db8::]:2525"} {
		t.Run(in, func(t *testing.T) {
			h, err := connector.ParseSmartHost(in)
			if err != nil {
				t.Fatalf("ParseSmartHost(%q): %v", in, err)
			}
			if h.Host != "2001:db8::" || !h.IsIP() {
				t.Fatalf("ParseSmartHost(%q) = {Host %q, IsIP %v}, want {Host 2001:db8::, IsIP true}", in, h.Host, h.IsIP())
			}
			// The canonical form must parse back to the same smart host.
			again, err := connector.ParseSmartHost(h.String())
			if err != nil {
				t.Fatalf("canonical form %q does not parse again: %v", h.String(), err)
			}
			if again != h {
				t.Fatalf("re-parse of %q = %+v, want %+v", h.String(), again, h)
			}
		})
	}
}
