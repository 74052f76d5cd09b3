package app

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/flowgate/flowgate/internal/config"
)

// allowedHosts are the names the console and API answer to, besides IP
// literals (see hostCheck): the host of FLOWGATE_HTTP_ADDR when it is a
// name, "localhost" when that address is loopback or all interfaces, and
// the host of FLOWGATE_PUBLIC_URL.
func allowedHosts(cfg *config.Config) []string {
	var out []string
	host, _, _ := net.SplitHostPort(cfg.HTTPAddr)
	ip, err := netip.ParseAddr(host)
	switch {
	case host == "" || (err == nil && (ip.IsUnspecified() || ip.IsLoopback())):
		out = append(out, "localhost")
	case err != nil:
		out = append(out, strings.ToLower(host))
	}
	if h := cfg.PublicHost(); h != "" {
		out = append(out, strings.ToLower(h))
	}
	return out
}

// loopbackOnly reports whether addr listens on loopback only.
func loopbackOnly(addr string) bool {
	host, _, _ := net.SplitHostPort(addr)
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// hostCheck refuses requests whose Host is not one of allowed, with 421
// Misdirected Request: a page of another site whose name resolves to this
// server (DNS rebinding) then cannot use the console or the API, even on
// a fresh install. A Host that is an IP address is always accepted: a
// browser only sends one when the page's own origin is that address, which
// no other site controls. /healthz and /readyz answer every Host. allowed
// nil turns the check off (tests).
func hostCheck(allowed []string, next http.Handler) http.Handler {
	if allowed == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || hostAllowed(r.Host, allowed) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusMisdirectedRequest)
		fmt.Fprintf(w, "flowgate does not answer to the name %q. Open the console by the address it listens on, "+
			"or set FLOWGATE_PUBLIC_URL to the URL you use (allowed names now: %s, and IP addresses).\n",
			truncate(r.Host, 100), strings.Join(allowed, ", "))
	})
}

func hostAllowed(hostport string, allowed []string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "" {
		return false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	for _, a := range allowed {
		if host == a {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// newSetupCode makes the one-time code the first-admin page asks for
// when flowgate starts without any user: 60 random bits, as XXXX-XXXX-XXXX.
func newSetupCode() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	s := base32.StdEncoding.EncodeToString(b)[:12]
	return s[:4] + "-" + s[4:8] + "-" + s[8:], nil
}
