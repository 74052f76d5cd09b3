package console

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Security is how the console learns about the network in front of it.
type Security struct {
	// SecureCookies marks the session cookie Secure on every request (the
	// console's public URL is https).
	SecureCookies bool
	// TrustedProxies are the reverse proxies whose X-Forwarded-For and
	// X-Forwarded-Proto are believed.
	TrustedProxies []netip.Prefix
	// SetupCode, if not empty, must be entered on the one-time setup page.
	SetupCode string
}

// trusted reports whether ip is one of the trusted proxies.
func (s Security) trusted(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range s.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// remoteIP is the address of the peer of r's connection.
func remoteIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.IPv4Unspecified()
	}
	return ip.WithZone("").Unmap()
}

// clientIP is the address r came from: the connection's peer, or, when
// that is a trusted proxy, the nearest address in X-Forwarded-For that is
// not a trusted proxy (the right-most: the proxies append, so addresses
// further left may have been written by the client itself).
func (s Security) clientIP(r *http.Request) netip.Addr {
	ip := remoteIP(r)
	if !s.trusted(ip) {
		return ip
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return ip // a garbled list: count the proxy itself
		}
		hop = hop.WithZone("").Unmap()
		if !s.trusted(hop) {
			return hop
		}
		ip = hop
	}
	return ip
}

// secure reports whether r reached flowgate over HTTPS: directly, behind
// a trusted proxy that says so in X-Forwarded-Proto, or because the public
// URL is https.
func (s Security) secure(r *http.Request) bool {
	if r.TLS != nil || s.SecureCookies {
		return true
	}
	return s.trusted(remoteIP(r)) && strings.EqualFold(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto")), "https")
}
