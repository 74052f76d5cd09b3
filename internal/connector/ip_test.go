package connector_test

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
)

func TestParseIPSpec(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     string // canonical String()
		from, to string // inclusive range
		wantErr  string
	}{
		{name: "IPv4 address", in: "192.0.2.1", want: "192.0.2.1", from: "192.0.2.1", to: "192.0.2.1"},
		{name: "IPv4 address with spaces", in: " 192.0.2.1 ", want: "192.0.2.1", from: "192.0.2.1", to: "192.0.2.1"},
		{name: "IPv6 address", in: "2001:db8::1", want: "2001:db8::1", from: "2001:db8::1", to: "2001:db8::1"},
		{name: "IPv6 address in long uppercase form", in: "2001:DB8:0:0::1", want: "2001:db8::1", from: "2001:db8::1", to: "2001:db8::1"},
		{name: "IPv4 CIDR", in: "192.0.2.0/24", want: "192.0.2.0/24", from: "192.0.2.0", to: "192.0.2.255"},
		{name: "IPv4 CIDR with host bits is masked", in: "192.0.2.77/24", want: "192.0.2.0/24", from: "192.0.2.0", to: "192.0.2.255"},
		{name: "IPv4 /32 is one address", in: "192.0.2.77/32", want: "192.0.2.77", from: "192.0.2.77", to: "192.0.2.77"},
		{name: "IPv4 everything", in: "0.0.0.0/0", want: "0.0.0.0/0", from: "0.0.0.0", to: "255.255.255.255"},
		{name: "IPv6 CIDR with host bits is masked", in: "2001:db8::1/64", want: "2001:db8::/64", from: "2001:db8::", to: "2001:db8::ffff:ffff:ffff:ffff"},
		{name: "IPv6 /128 is one address", in: "2001:db8::1/128", want: "2001:db8::1", from: "2001:db8::1", to: "2001:db8::1"},
		{name: "IPv4 range", in: "192.0.2.10-192.0.2.20", want: "192.0.2.10-192.0.2.20", from: "192.0.2.10", to: "192.0.2.20"},
		{name: "IPv4 range with spaces", in: " 192.0.2.10 - 192.0.2.20 ", want: "192.0.2.10-192.0.2.20", from: "192.0.2.10", to: "192.0.2.20"},
		{name: "range of one address", in: "192.0.2.10-192.0.2.10", want: "192.0.2.10", from: "192.0.2.10", to: "192.0.2.10"},
		{name: "IPv6 range", in: "2001:db8::10-2001:db8::20", want: "2001:db8::10-2001:db8::20", from: "2001:db8::10", to: "2001:db8::20"},
		{name: "mapped IPv4 address is IPv4", in: "::ffff:192.0.2.1", want: "192.0.2.1", from: "192.0.2.1", to: "192.0.2.1"},
		{name: "mapped IPv4 CIDR is IPv4", in: "::ffff:192.0.2.0/120", want: "192.0.2.0/24", from: "192.0.2.0", to: "192.0.2.255"},
		{name: "mapped IPv4 range is IPv4", in: "::ffff:192.0.2.1-::ffff:192.0.2.9", want: "192.0.2.1-192.0.2.9", from: "192.0.2.1", to: "192.0.2.9"},
		{name: "range mixing mapped and plain IPv4", in: "::ffff:192.0.2.1-192.0.2.9", want: "192.0.2.1-192.0.2.9", from: "192.0.2.1", to: "192.0.2.9"},

		{name: "empty", in: "", wantErr: "empty"},
		{name: "spaces only", in: "  ", wantErr: "empty"},
		{name: "range ends before it starts", in: "192.0.2.20-192.0.2.10", wantErr: "ends before it starts"},
		{name: "IPv6 range ends before it starts", in: "2001:db8::20-2001:db8::10", wantErr: "ends before it starts"},
		{name: "range across families", in: "192.0.2.1-2001:db8::1", wantErr: "must be IPv4 or both IPv6"},
		{name: "zone", in: "fe80::1%eth0", wantErr: "zones"},
		{name: "zone in a range", in: "fe80::1%eth0-fe80::2", wantErr: "zones"},
		{name: "zone in a CIDR", in: "fe80::1%eth0/64", wantErr: "CIDR"},
		{name: "IPv4 prefix too long", in: "192.0.2.0/33", wantErr: "CIDR"},
		{name: "IPv6 prefix too long", in: "2001:db8::/129", wantErr: "CIDR"},
		{name: "two prefix lengths", in: "192.0.2.1/24/8", wantErr: "CIDR"},
		{name: "octet too large", in: "192.0.2.256", wantErr: "not an IP address"},
		{name: "three octets", in: "192.0.2", wantErr: "not an IP address"},
		{name: "leading zeros", in: "010.0.0.1", wantErr: "not an IP address"},
		{name: "host name", in: "mail.contoso.com", wantErr: "not an IP address"},
		{name: "open range end", in: "192.0.2.1-", wantErr: "not an IP address"},
		{name: "open range start", in: "-192.0.2.1", wantErr: "not an IP address"},
		{name: "three range ends", in: "192.0.2.1-192.0.2.5-192.0.2.9", wantErr: "not an IP address"},
		{name: "CIDR as a range end", in: "192.0.2.0/24-192.0.2.255", wantErr: "not an IP address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := connector.ParseIPSpec(tt.in)
			if !checkErr(t, tt.in, err, tt.wantErr) {
				return
			}
			if s.String() != tt.want {
				t.Errorf("String() = %q, want %q", s.String(), tt.want)
			}
			from, to := netip.MustParseAddr(tt.from), netip.MustParseAddr(tt.to)
			if s.Range.From() != from || s.Range.To() != to {
				t.Errorf("Range = %v-%v, want %v-%v", s.Range.From(), s.Range.To(), from, to)
			}
		})
	}
}

func TestIPSpecContains(t *testing.T) {
	tests := []struct {
		spec string
		ip   string
		want bool
	}{
		{"192.0.2.0/24", "192.0.2.0", true},
		{"192.0.2.0/24", "192.0.2.255", true},
		{"192.0.2.0/24", "192.0.3.0", false},
		{"192.0.2.0/24", "::ffff:192.0.2.7", true}, // a mapped client address is the IPv4 host
		{"192.0.2.0/24", "2001:db8::1", false},
		{"192.0.2.10-192.0.2.20", "192.0.2.10", true},
		{"192.0.2.10-192.0.2.20", "192.0.2.20", true},
		{"192.0.2.10-192.0.2.20", "192.0.2.9", false},
		{"192.0.2.10-192.0.2.20", "192.0.2.21", false},
		{"192.0.2.7", "192.0.2.7", true},
		{"192.0.2.7", "192.0.2.8", false},
		{"2001:db8::/64", "2001:db8::abcd", true},
		{"2001:db8::/64", "2001:db8:0:1::", false},
		{"2001:db8::/64", "192.0.2.1", false},
		{"2001:db8::10-2001:db8::20", "2001:db8::1f", true},
		{"2001:db8::10-2001:db8::20", "2001:db8::21", false},
	}
	for _, tt := range tests {
		t.Run(tt.spec+" contains "+tt.ip, func(t *testing.T) {
			s, err := connector.ParseIPSpec(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Contains(netip.MustParseAddr(tt.ip)); got != tt.want {
				t.Errorf("%s.Contains(%s) = %v, want %v", s, tt.ip, got, tt.want)
			}
		})
	}
}

func TestIPSpecOverlaps(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"192.0.2.0/24", "192.0.2.128/25", true},
		{"192.0.2.0/24", "192.0.2.100-192.0.2.200", true},
		{"192.0.2.0/24", "192.0.2.255-192.0.3.10", true},
		{"192.0.2.0/24", "192.0.3.0/24", false},
		{"192.0.2.7", "192.0.2.7", true},
		{"192.0.2.7", "192.0.2.8", false},
		{"192.0.2.0/24", "2001:db8::/32", false},
		{"2001:db8::/32", "2001:db8:1::1", true},
	}
	for _, tt := range tests {
		t.Run(tt.a+" and "+tt.b, func(t *testing.T) {
			a, err := connector.ParseIPSpec(tt.a)
			if err != nil {
				t.Fatal(err)
			}
			b, err := connector.ParseIPSpec(tt.b)
			if err != nil {
				t.Fatal(err)
			}
			if got := a.Overlaps(b); got != tt.want {
				t.Errorf("%s.Overlaps(%s) = %v, want %v", a, b, got, tt.want)
			}
			if got := b.Overlaps(a); got != tt.want {
				t.Errorf("%s.Overlaps(%s) = %v, want %v (not symmetric)", b, a, got, tt.want)
			}
		})
	}
}

func TestIPSpecPrefixes(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"192.0.2.7", []string{"192.0.2.7/32"}},
		{"192.0.2.77/24", []string{"192.0.2.0/24"}},
		{"192.0.2.10-192.0.2.20", []string{"192.0.2.10/31", "192.0.2.12/30", "192.0.2.16/30", "192.0.2.20/32"}},
		{"2001:db8::1", []string{"2001:db8::1/128"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := connector.ParseIPSpec(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range s.Prefixes() {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Prefixes() = %v, want %v", got, tt.want)
			}
		})
	}
}

// An entry must contain the ends of its own range. IPv4-mapped addresses
// are taken as IPv4 (Contains unmaps the client address), but an IPv6
// prefix or range that covers part of ::ffff:0:0/96 without being inside
// it is accepted unchanged; its mapped part can then never match, and the
// entry does not contain its own last address. Refusing such entries
// satisfies this test as well as converting them.
func TestIPSpecContainsItsOwnEnds(t *testing.T) {
	for _, in := range []string{
		"192.0.2.0/24", "2001:db8::/64", "::ffff:192.0.2.0/120", "::/96", "::/64",
		"::/80",         // ends at ::ffff:255.255.255.255
		"::ffff:0:0/95", // masked to ::fffe:0:0/95, ends at ::ffff:255.255.255.255
	} {
		t.Run(in, func(t *testing.T) {
			s, err := connector.ParseIPSpec(in)
			if err != nil {
				return // refusing the entry is fine
			}
			from, to := s.Range.From(), s.Range.To()
			if !s.Contains(from) || !s.Contains(to) {
				t.Errorf("ParseIPSpec(%q) = %s: Contains(%v) = %v, Contains(%v) = %v; want both true",
					in, s, from, s.Contains(from), to, s.Contains(to))
			}
		})
	}
}
