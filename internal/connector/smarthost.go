package connector

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// DefaultSMTPPort is used for a smart host written without a port.
const DefaultSMTPPort = 25

// SmartHost is one entry of smart_hosts: a host name or an IP address, with
// an optional port.
type SmartHost struct {
	Host string // canonical host name, or the IP address in text form
	IP   netip.Addr
	Port int // 0 when none was written; Addr then uses DefaultSMTPPort
}

// IsIP reports whether the smart host was given as an address.
func (h SmartHost) IsIP() bool { return h.IP.IsValid() }

// Addr returns host:port for dialling.
func (h SmartHost) Addr() string {
	p := h.Port
	if p == 0 {
		p = DefaultSMTPPort
	}
	return net.JoinHostPort(h.Host, strconv.Itoa(p))
}

// String gives the canonical text: "mail.contoso.com", "mail.contoso.com:587",
// "192.0.2.1", "[2001:db8::1]:2525".
func (h SmartHost) String() string {
	if h.Port == 0 {
		return h.Host
	}
	return net.JoinHostPort(h.Host, strconv.Itoa(h.Port))
}

// ParseSmartHost parses "host", "host:port", "192.0.2.1", "192.0.2.1:25",
// "2001:db8::1" or "[2001:db8::1]:25".
func ParseSmartHost(s string) (SmartHost, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return SmartHost{}, errors.New("smart host is empty")
	}
	host, portText, hasPort := t, "", false
	if strings.HasPrefix(t, "[") {
		h, p, err := net.SplitHostPort(t)
		if err != nil {
			if !strings.HasSuffix(t, "]") {
				return SmartHost{}, fmt.Errorf("%q is not a host[:port]", t)
			}
			h = strings.TrimSuffix(strings.TrimPrefix(t, "["), "]")
		}
		host, portText, hasPort = h, p, err == nil
		if _, err := netip.ParseAddr(host); err != nil {
			return SmartHost{}, fmt.Errorf("%q: only an IPv6 address may stand in brackets", t)
		}
	} else if strings.Count(t, ":") == 1 {
		host, portText, hasPort = strings.Cut(t, ":")
	}
	out := SmartHost{}
	if hasPort {
		p, err := strconv.Atoi(portText)
		if err != nil || p < 1 || p > 65535 || portText[0] < '1' || portText[0] > '9' {
			return SmartHost{}, fmt.Errorf("%q: the port must be a number from 1 to 65535", t)
		}
		out.Port = p
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return SmartHost{}, fmt.Errorf("%q: zones are not allowed", t)
		}
		a = a.Unmap()
		if a.IsUnspecified() || a.IsMulticast() {
			return SmartHost{}, fmt.Errorf("%q is not a usable host address", t)
		}
		out.IP, out.Host = a, a.String()
		return out, nil
	}
	d, err := NormalizeDomain(host)
	if err != nil {
		return SmartHost{}, err
	}
	out.Host = d
	return out, nil
}
