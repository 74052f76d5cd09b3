// Package config loads flowgate's configuration from flags and environment
// variables (SPEC section 6). A flag wins over its variable; the variable
// wins over the default. The Config is passed to the parts that need it;
// nothing reads it from a global.
package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is flowgate's configuration.
type Config struct {
	DatabaseURL    string
	DataDir        string
	HTTPAddr       string
	SMTPAddr       string
	Hostname       string
	TLSCert        string
	TLSKey         string
	ClientCA       string
	OutboundCA     string
	DNSServer      string
	RetrySchedule  []time.Duration
	QueueLifetime  time.Duration
	TraceRetention time.Duration // finished messages are deleted this long after they were received
	TraceHeaders   bool          // keep each message's header section with its trace, for rule previews
	MaxMessageSize int64
	AdminEmail     string
	AdminPassword  string

	SMTPMaxConnections      int
	SMTPMaxConnectionsPerIP int
	SMTPMaxRecipients       int
	SMTPDataDeadline        time.Duration
	SMTPSessionDeadline     time.Duration

	DeliveryConcurrency            int
	DeliveryDestinationConcurrency int // deliveries at once to one destination; 0: a quarter of DeliveryConcurrency (as Postfix, 20 of 100)
	DeliveryLease                  time.Duration

	PprofAddr string // net/http/pprof listener; empty: off

	// The console and API's network (README, "Security").
	PublicURL      string         // https://gw.example.com: the name the console is reached by; empty: none
	HTTPTLSCert    string         // serve the console and API over HTTPS with this certificate (PEM)
	HTTPTLSKey     string         // its key (PEM)
	TrustedProxies []netip.Prefix // reverse proxies whose X-Forwarded-For/-Proto are believed
	MetricsAddr    string         // listen address for /metrics; empty: on the HTTP address if that is loopback only
}

// PublicHost is the host name of PublicURL, or "".
func (c *Config) PublicHost() string {
	if c.PublicURL == "" {
		return ""
	}
	u, err := url.Parse(c.PublicURL)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// PublicHTTPS reports whether the console is reached over HTTPS by its
// public URL.
func (c *Config) PublicHTTPS() bool {
	return strings.HasPrefix(c.PublicURL, "https://")
}

// Defaults, written once. The settings below take theirs from here, and
// the relay and the queue fill a zero value in their own configuration
// (tests leave most of it zero) from here too.
const (
	DefaultQueueLifetime       = 48 * time.Hour
	DefaultMaxMessageSize      = 36700160 // 35 MiB, Exchange Online's limit
	DefaultMaxRecipients       = 500
	DefaultMaxConnections      = 1000
	DefaultMaxConnectionsPerIP = 50
	DefaultDeliveryConcurrency = 32
	DefaultDeliveryLease       = 5 * time.Minute

	// Relay limits that are not settings.
	DefaultCommandTimeout = 5 * time.Minute  // idle time allowed between commands (RFC 5321 4.5.3.2)
	DefaultDataTimeout    = 10 * time.Minute // idle time allowed while reading DATA
	DefaultMaxLineLength  = 64 << 10         // bytes in a line, without CRLF
	DefaultMaxHops        = 50               // Received: fields before a loop is declared
)

// Deadlines that bound slow relay clients (internal/relay/deadline.go).
const (
	// DefaultDataDeadline bounds a whole DATA, which DataTimeout does not:
	// a client sending a byte every few minutes is never idle. Postfix has
	// no such total (smtpd_timeout is per read); Exchange Server ends a
	// whole inbound connection after 10 minutes (receive connector
	// ConnectionTimeout) even while data flows. 10 minutes carry the
	// largest default message (35 MiB) at about 0.5 Mbit/s, far slower
	// than any mail server sends, while a trickling client holds its slot
	// for 10 minutes at most.
	DefaultDataDeadline = 10 * time.Minute
	// DefaultSessionDeadline bounds a whole connection: enough for several
	// messages of the largest size, or thousands of small ones; a client
	// with more to send reconnects, as it does after any 421.
	DefaultSessionDeadline = 30 * time.Minute
	// DefaultStressTimeout is Postfix's smtpd_timeout under stress.
	DefaultStressTimeout = 10 * time.Second
)

// DefaultRetrySchedule is the delay before each retry; the last repeats.
func DefaultRetrySchedule() []time.Duration {
	return []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour}
}

// durationText writes a duration as an admin types it: 48h, 5m, 1m30s.
func durationText(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func scheduleText(sched []time.Duration) string {
	parts := make([]string, len(sched))
	for i, d := range sched {
		parts[i] = durationText(d)
	}
	return strings.Join(parts, ",")
}

// setting is one configuration entry: its flag, its variable, its default.
type setting struct {
	flag, env, def, usage string
	value                 *string
}

// Settings names every setting, for flags and for documentation.
func settings() []setting {
	return []setting{
		{"database-url", "DATABASE_URL", "", "postgres://… for PostgreSQL; empty means embedded SQLite in the data dir", nil},
		{"data-dir", "FLOWGATE_DATA_DIR", "./data", "SQLite file, generated certificate, other state", nil},
		{"http-addr", "FLOWGATE_HTTP_ADDR", "127.0.0.1:8080", "admin console and API listen address", nil},
		{"smtp-addr", "FLOWGATE_SMTP_ADDR", ":2525", "relay listen address", nil},
		{"hostname", "FLOWGATE_HOSTNAME", "", "name in the greeting, EHLO and Received: (default: OS hostname)", nil},
		{"tls-cert", "FLOWGATE_TLS_CERT", "", "relay's server certificate (PEM); default: generated, self-signed", nil},
		{"tls-key", "FLOWGATE_TLS_KEY", "", "relay's server certificate key (PEM)", nil},
		{"client-ca", "FLOWGATE_CLIENT_CA", "", "PEM bundle of CAs trusted for client certificates, besides the system roots", nil},
		{"outbound-ca", "FLOWGATE_OUTBOUND_CA", "", "PEM bundle of CAs trusted for smart host / MX certificates, besides the system roots", nil},
		{"dns-server", "FLOWGATE_DNS_SERVER", "", "host:port of the DNS server for MX lookups (default: system resolver)", nil},
		{"retry-schedule", "FLOWGATE_RETRY_SCHEDULE", scheduleText(DefaultRetrySchedule()), "comma list of retry delays; the last one repeats", nil},
		{"queue-lifetime", "FLOWGATE_QUEUE_LIFETIME", durationText(DefaultQueueLifetime), "how long a message may stay queued before it bounces", nil},
		{"trace-retention", "FLOWGATE_TRACE_RETENTION", "90d", "how long the trace of a delivered, bounced or rejected message is kept after it was received (e.g. 90d, 720h); at least the queue lifetime", nil},
		{"trace-headers", "FLOWGATE_TRACE_HEADERS", "on", "on: keep each message's header section (at most 32 KiB) with its trace, for the trace's retention, so that a mail flow rule's preview can replay header conditions; off: keep none (previews then count header conditions as undecidable)", nil},
		{"max-message-size", "FLOWGATE_MAX_MESSAGE_SIZE", strconv.Itoa(DefaultMaxMessageSize), "largest message accepted, in bytes", nil},
		{"admin-email", "FLOWGATE_ADMIN_EMAIL", "", "create this admin on start when no user exists", nil},
		{"admin-password", "FLOWGATE_ADMIN_PASSWORD", "", "password for -admin-email", nil},
		{"smtp-max-connections", "FLOWGATE_SMTP_MAX_CONNECTIONS", strconv.Itoa(DefaultMaxConnections), "relay connections at once, in total", nil},
		{"smtp-max-connections-per-ip", "FLOWGATE_SMTP_MAX_CONNECTIONS_PER_IP", strconv.Itoa(DefaultMaxConnectionsPerIP), "relay connections at once from one client IP", nil},
		{"smtp-max-recipients", "FLOWGATE_SMTP_MAX_RECIPIENTS", strconv.Itoa(DefaultMaxRecipients), "recipients per message", nil},
		{"smtp-data-deadline", "FLOWGATE_SMTP_DATA_DEADLINE", durationText(DefaultDataDeadline), "time allowed for a message's whole content (DATA/BDAT), however slowly it arrives", nil},
		{"smtp-session-deadline", "FLOWGATE_SMTP_SESSION_DEADLINE", durationText(DefaultSessionDeadline), "time allowed for a whole relay connection", nil},
		{"delivery-concurrency", "FLOWGATE_DELIVERY_CONCURRENCY", strconv.Itoa(DefaultDeliveryConcurrency), "messages this process delivers at once", nil},
		{"delivery-destination-concurrency", "FLOWGATE_DELIVERY_DESTINATION_CONCURRENCY", "", "deliveries this process makes at once to one destination (an outbound connector, or one domain's MX hosts); default a quarter of FLOWGATE_DELIVERY_CONCURRENCY", nil},
		{"delivery-lease", "FLOWGATE_DELIVERY_LEASE", durationText(DefaultDeliveryLease), "how long a process's claim on a queued message holds; a crashed process's claims expire after it", nil},
		{"pprof-addr", "FLOWGATE_PPROF_ADDR", "", "listen address for Go's net/http/pprof profiling endpoints (e.g. 127.0.0.1:6060); empty: off", nil},
		{"public-url", "FLOWGATE_PUBLIC_URL", "", "URL the console is reached by (e.g. https://gw.example.com); its host is accepted in Host, https makes cookies Secure", nil},
		{"http-tls-cert", "FLOWGATE_HTTP_TLS_CERT", "", "serve the console and API over HTTPS with this certificate (PEM)", nil},
		{"http-tls-key", "FLOWGATE_HTTP_TLS_KEY", "", "key of FLOWGATE_HTTP_TLS_CERT (PEM)", nil},
		{"trusted-proxies", "FLOWGATE_TRUSTED_PROXIES", "", "comma list of reverse proxy addresses or CIDRs whose X-Forwarded-For and X-Forwarded-Proto are believed", nil},
		{"metrics-addr", "FLOWGATE_METRICS_ADDR", "", "listen address for /metrics (e.g. 127.0.0.1:9090); empty: /metrics on the HTTP address when that listens on loopback only, else nowhere", nil},
	}
}

// Flags registers every setting on fs and returns a function that builds
// the Config after fs.Parse. getenv is os.Getenv outside tests.
func Flags(fs *flag.FlagSet, getenv func(string) string) func() (*Config, error) {
	all := settings()
	for i := range all {
		s := &all[i]
		def := s.def
		if v := getenv(s.env); v != "" {
			def = v
		}
		s.value = fs.String(s.flag, def, fmt.Sprintf("%s (env %s)", s.usage, s.env))
	}
	return func() (*Config, error) {
		v := map[string]string{}
		for _, s := range all {
			v[s.flag] = strings.TrimSpace(*s.value)
		}
		return build(v)
	}
}

func build(v map[string]string) (*Config, error) {
	c := &Config{
		DatabaseURL: v["database-url"], DataDir: v["data-dir"], HTTPAddr: v["http-addr"], SMTPAddr: v["smtp-addr"],
		Hostname: v["hostname"], TLSCert: v["tls-cert"], TLSKey: v["tls-key"], ClientCA: v["client-ca"],
		OutboundCA: v["outbound-ca"], DNSServer: v["dns-server"], AdminEmail: v["admin-email"], AdminPassword: v["admin-password"],
		PprofAddr: v["pprof-addr"], HTTPTLSCert: v["http-tls-cert"], HTTPTLSKey: v["http-tls-key"], MetricsAddr: v["metrics-addr"],
	}
	var errs []error
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		errs = append(errs, errors.New("DATABASE_URL must start with postgres:// (or be empty for embedded SQLite)"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("FLOWGATE_DATA_DIR must not be empty"))
	} else if abs, err := filepath.Abs(c.DataDir); err == nil {
		c.DataDir = abs
	}
	for name, addr := range map[string]string{"FLOWGATE_HTTP_ADDR": c.HTTPAddr, "FLOWGATE_SMTP_ADDR": c.SMTPAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q is not host:port", name, addr))
		}
	}
	for name, addr := range map[string]string{"FLOWGATE_PPROF_ADDR": c.PprofAddr, "FLOWGATE_METRICS_ADDR": c.MetricsAddr} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q is not host:port", name, addr))
		}
	}
	if (c.HTTPTLSCert == "") != (c.HTTPTLSKey == "") {
		errs = append(errs, errors.New("set both FLOWGATE_HTTP_TLS_CERT and FLOWGATE_HTTP_TLS_KEY, or neither"))
	}
	if raw := v["public-url"]; raw != "" {
		u, err := url.Parse(raw)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil:
			errs = append(errs, fmt.Errorf("FLOWGATE_PUBLIC_URL %q is not a URL like https://gw.example.com", raw))
		case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "":
			errs = append(errs, fmt.Errorf("FLOWGATE_PUBLIC_URL %q must have no path, query or fragment: flowgate is served at the root", raw))
		default:
			c.PublicURL = u.Scheme + "://" + strings.ToLower(u.Host)
		}
	}
	if raw := v["trusted-proxies"]; raw != "" {
		for _, part := range strings.Split(raw, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			p, err := netip.ParsePrefix(part)
			if err != nil {
				ip, ierr := netip.ParseAddr(part)
				if ierr != nil {
					errs = append(errs, fmt.Errorf("FLOWGATE_TRUSTED_PROXIES: %q is not an IP address or CIDR like 10.0.0.0/8", part))
					continue
				}
				p = netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen())
			}
			c.TrustedProxies = append(c.TrustedProxies, p.Masked())
		}
	}
	if c.DNSServer != "" {
		if _, _, err := net.SplitHostPort(c.DNSServer); err != nil {
			errs = append(errs, fmt.Errorf("FLOWGATE_DNS_SERVER %q is not host:port", c.DNSServer))
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("set both FLOWGATE_TLS_CERT and FLOWGATE_TLS_KEY, or neither"))
	}
	if c.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		c.Hostname = h
	}
	sched, err := ParseRetrySchedule(v["retry-schedule"])
	if err != nil {
		errs = append(errs, fmt.Errorf("FLOWGATE_RETRY_SCHEDULE: %w", err))
	}
	c.RetrySchedule = sched
	if d, err := time.ParseDuration(v["queue-lifetime"]); err != nil || d <= 0 {
		errs = append(errs, fmt.Errorf("FLOWGATE_QUEUE_LIFETIME %q is not a positive duration like 48h", v["queue-lifetime"]))
	} else {
		c.QueueLifetime = d
	}
	if d, err := ParseDays(v["trace-retention"]); err != nil || d <= 0 {
		errs = append(errs, fmt.Errorf("FLOWGATE_TRACE_RETENTION %q is not a positive duration like 90d or 720h", v["trace-retention"]))
	} else if c.QueueLifetime > 0 && d < c.QueueLifetime {
		errs = append(errs, fmt.Errorf("FLOWGATE_TRACE_RETENTION %s is shorter than FLOWGATE_QUEUE_LIFETIME %s: a message's trace would go before the message", v["trace-retention"], v["queue-lifetime"]))
	} else {
		c.TraceRetention = d
	}
	switch v["trace-headers"] {
	case "on":
		c.TraceHeaders = true
	case "off":
	default:
		errs = append(errs, fmt.Errorf("FLOWGATE_TRACE_HEADERS %q is neither on nor off", v["trace-headers"]))
	}
	if n, err := strconv.ParseInt(v["max-message-size"], 10, 64); err != nil || n < 1024 {
		errs = append(errs, fmt.Errorf("FLOWGATE_MAX_MESSAGE_SIZE %q is not a number of bytes ≥ 1024", v["max-message-size"]))
	} else {
		c.MaxMessageSize = n
	}
	for _, lim := range []struct {
		env  string
		flag string
		dst  *int
	}{
		{"FLOWGATE_SMTP_MAX_CONNECTIONS", "smtp-max-connections", &c.SMTPMaxConnections},
		{"FLOWGATE_SMTP_MAX_CONNECTIONS_PER_IP", "smtp-max-connections-per-ip", &c.SMTPMaxConnectionsPerIP},
		{"FLOWGATE_SMTP_MAX_RECIPIENTS", "smtp-max-recipients", &c.SMTPMaxRecipients},
		{"FLOWGATE_DELIVERY_CONCURRENCY", "delivery-concurrency", &c.DeliveryConcurrency},
	} {
		n, err := strconv.Atoi(v[lim.flag])
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("%s %q is not a whole number ≥ 1", lim.env, v[lim.flag]))
		}
		*lim.dst = n
	}
	if v := v["delivery-destination-concurrency"]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("FLOWGATE_DELIVERY_DESTINATION_CONCURRENCY %q is not a whole number ≥ 1", v))
		}
		c.DeliveryDestinationConcurrency = n
	}
	for _, dl := range []struct {
		env, flag string
		dst       *time.Duration
	}{
		{"FLOWGATE_SMTP_DATA_DEADLINE", "smtp-data-deadline", &c.SMTPDataDeadline},
		{"FLOWGATE_SMTP_SESSION_DEADLINE", "smtp-session-deadline", &c.SMTPSessionDeadline},
	} {
		if d, err := time.ParseDuration(v[dl.flag]); err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s %q is not a positive duration like 10m", dl.env, v[dl.flag]))
		} else {
			*dl.dst = d
		}
	}
	if d, err := time.ParseDuration(v["delivery-lease"]); err != nil || d < time.Second {
		errs = append(errs, fmt.Errorf("FLOWGATE_DELIVERY_LEASE %q is not a duration ≥ 1s like 5m", v["delivery-lease"]))
	} else {
		c.DeliveryLease = d
	}
	if (c.AdminEmail == "") != (c.AdminPassword == "") {
		errs = append(errs, errors.New("set both FLOWGATE_ADMIN_EMAIL and FLOWGATE_ADMIN_PASSWORD, or neither"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	return c, nil
}

// ParseRetrySchedule parses "1m,5m,15m,30m,1h".
func ParseRetrySchedule(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		d, err := time.ParseDuration(part)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%q is not a positive duration like 5m", part)
		}
		out = append(out, d)
	}
	return out, nil
}

// ParseDays parses a Go duration ("720h") or a whole number of days ("90d").
func ParseDays(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*365 {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}
