package config

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, env map[string]string, args ...string) (*Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	build := Flags(fs, func(k string) string { return env[k] })
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return build()
}

func TestDefaults(t *testing.T) {
	c, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:8080" || c.SMTPAddr != ":2525" || c.DatabaseURL != "" || !strings.HasSuffix(c.DataDir, "/data") {
		t.Fatalf("defaults: %+v", c)
	}
	want := []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour}
	if len(c.RetrySchedule) != len(want) {
		t.Fatalf("retry schedule %v", c.RetrySchedule)
	}
	for i := range want {
		if c.RetrySchedule[i] != want[i] {
			t.Fatalf("retry schedule %v", c.RetrySchedule)
		}
	}
	if c.QueueLifetime != 48*time.Hour || c.TraceRetention != 90*24*time.Hour || c.MaxMessageSize != 36700160 || c.Hostname == "" ||
		c.DeliveryConcurrency != 32 || c.DeliveryDestinationConcurrency != 0 || c.DeliveryLease != 5*time.Minute ||
		c.SMTPDataDeadline != 10*time.Minute || c.SMTPSessionDeadline != 30*time.Minute {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestFlagBeatsEnvBeatsDefault(t *testing.T) {
	env := map[string]string{"FLOWGATE_HTTP_ADDR": "127.0.0.1:9000", "FLOWGATE_SMTP_ADDR": "127.0.0.1:2600", "DATABASE_URL": "postgres://db/flowgate"}
	c, err := load(t, env, "-http-addr", "127.0.0.1:9100")
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:9100" || c.SMTPAddr != "127.0.0.1:2600" || c.DatabaseURL != "postgres://db/flowgate" {
		t.Fatalf("precedence: %+v", c)
	}
}

func TestInvalid(t *testing.T) {
	cases := map[string]map[string]string{
		"DATABASE_URL":                              {"DATABASE_URL": "mysql://x"},
		"FLOWGATE_HTTP_ADDR":                        {"FLOWGATE_HTTP_ADDR": "8080"},
		"FLOWGATE_RETRY_SCHEDULE":                   {"FLOWGATE_RETRY_SCHEDULE": "1m,soon"},
		"FLOWGATE_QUEUE_LIFETIME":                   {"FLOWGATE_QUEUE_LIFETIME": "-1h"},
		"FLOWGATE_MAX_MESSAGE_SIZE":                 {"FLOWGATE_MAX_MESSAGE_SIZE": "big"},
		"FLOWGATE_TLS_KEY":                          {"FLOWGATE_TLS_CERT": "/x.pem"},
		"FLOWGATE_ADMIN_PASSWORD":                   {"FLOWGATE_ADMIN_EMAIL": "a@b.example"},
		"FLOWGATE_DNS_SERVER":                       {"FLOWGATE_DNS_SERVER": "127.0.0.1"},
		"FLOWGATE_TRACE_RETENTION":                  {"FLOWGATE_TRACE_RETENTION": "ninety days"},
		"FLOWGATE_DELIVERY_DESTINATION_CONCURRENCY": {"FLOWGATE_DELIVERY_DESTINATION_CONCURRENCY": "0"},
		"FLOWGATE_SMTP_DATA_DEADLINE":               {"FLOWGATE_SMTP_DATA_DEADLINE": "0s"},
		"FLOWGATE_SMTP_SESSION_DEADLINE":            {"FLOWGATE_SMTP_SESSION_DEADLINE": "forever"},
		"FLOWGATE_TRACE_RETENTION 1d is shorter than FLOWGATE_QUEUE_LIFETIME": {"FLOWGATE_TRACE_RETENTION": "1d"},
	}
	for name, env := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := load(t, env)
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("got %v, want an error naming %s", err, name)
			}
		})
	}
}

func TestTraceRetention(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "720h": 720 * time.Hour, " 2d ": 48 * time.Hour} {
		c, err := load(t, map[string]string{"FLOWGATE_TRACE_RETENTION": in})
		if err != nil || c.TraceRetention != want {
			t.Errorf("FLOWGATE_TRACE_RETENTION=%q: %v, %v; want %v", in, c, err, want)
		}
	}
	for _, in := range []string{"-1d", "0d", "0h", "d", "1.5d", "1000000d"} {
		if _, err := load(t, map[string]string{"FLOWGATE_TRACE_RETENTION": in}); err == nil || !strings.Contains(err.Error(), "FLOWGATE_TRACE_RETENTION") {
			t.Errorf("FLOWGATE_TRACE_RETENTION=%q: %v, want an error", in, err)
		}
	}
}

func TestSecuritySettings(t *testing.T) {
	c, err := load(t, map[string]string{
		"FLOWGATE_PUBLIC_URL":      "https://GW.Example.com/",
		"FLOWGATE_HTTP_TLS_CERT":   "/etc/flowgate/http.pem",
		"FLOWGATE_HTTP_TLS_KEY":    "/etc/flowgate/http.key",
		"FLOWGATE_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7 ,::1,2001:db8::/32",
		"FLOWGATE_METRICS_ADDR":    "127.0.0.1:9090",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.PublicURL != "https://gw.example.com" || c.PublicHost() != "gw.example.com" || !c.PublicHTTPS() {
		t.Errorf("public URL %q host %q https %v", c.PublicURL, c.PublicHost(), c.PublicHTTPS())
	}
	if c.HTTPTLSCert != "/etc/flowgate/http.pem" || c.HTTPTLSKey != "/etc/flowgate/http.key" || c.MetricsAddr != "127.0.0.1:9090" {
		t.Errorf("settings: %+v", c)
	}
	var got []string
	for _, p := range c.TrustedProxies {
		got = append(got, p.String())
	}
	if strings.Join(got, " ") != "10.0.0.0/8 192.0.2.7/32 ::1/128 2001:db8::/32" {
		t.Errorf("trusted proxies %v", got)
	}

	d, err := load(t, nil)
	if err != nil || d.PublicURL != "" || d.PublicHost() != "" || d.PublicHTTPS() || d.TrustedProxies != nil || d.MetricsAddr != "" || d.HTTPTLSCert != "" {
		t.Fatalf("security defaults: %+v %v", d, err)
	}

	for name, env := range map[string]map[string]string{
		"FLOWGATE_PUBLIC_URL":      {"FLOWGATE_PUBLIC_URL": "gw.example.com"},
		"FLOWGATE_PUBLIC_URL path": {"FLOWGATE_PUBLIC_URL": "https://gw.example.com/console"},
		"FLOWGATE_PUBLIC_URL ftp":  {"FLOWGATE_PUBLIC_URL": "ftp://gw.example.com"},
		"FLOWGATE_HTTP_TLS_KEY":    {"FLOWGATE_HTTP_TLS_CERT": "/x.pem"},
		"FLOWGATE_HTTP_TLS_CERT":   {"FLOWGATE_HTTP_TLS_KEY": "/x.key"},
		"FLOWGATE_TRUSTED_PROXIES": {"FLOWGATE_TRUSTED_PROXIES": "10.0.0.0/8,proxy.local"},
		"FLOWGATE_METRICS_ADDR":    {"FLOWGATE_METRICS_ADDR": "9090"},
	} {
		t.Run(name, func(t *testing.T) {
			want, _, _ := strings.Cut(name, " ")
			if _, err := load(t, env); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("got %v, want an error naming %s", err, want)
			}
		})
	}
}
