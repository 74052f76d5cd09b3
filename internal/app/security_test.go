package app

import (
	"context"
	"crypto/tls"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/testutil"
)

// Item 5: the console and the API answer only to their own names (and IP
// addresses), so a page of another site that resolves to this server
// cannot use them.
func TestHostCheck(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	cfg := &config.Config{HTTPAddr: "127.0.0.1:8080", PublicURL: "https://gw.example.com"}
	h := NewHandler(HTTPDeps{Store: st, Metrics: prometheus.NewRegistry(), Log: slog.New(slog.DiscardHandler), AllowedHosts: allowedHosts(cfg)})
	for host, want := range map[string]int{
		"127.0.0.1:8080":      http.StatusSeeOther,
		"[::1]:8080":          http.StatusSeeOther,
		"localhost:8080":      http.StatusSeeOther,
		"LOCALHOST.:8080":     http.StatusSeeOther,
		"gw.example.com":      http.StatusSeeOther,
		"evil.test:8080":      http.StatusMisdirectedRequest,
		"localhost.evil.test": http.StatusMisdirectedRequest,
		"":                    http.StatusMisdirectedRequest,
	} {
		for _, path := range []string{"/setup", "/api/v1/accepted-domains", "/metrics", "/healthz"} {
			req := httptest.NewRequest("GET", "/", nil)
			req.URL.Path = path
			req.Host = host
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			got := rec.Code
			switch {
			case path == "/healthz":
				if got != http.StatusOK {
					t.Errorf("Host %q %s: %d, want 200 for every Host", host, path, got)
				}
			case want == http.StatusMisdirectedRequest:
				if got != want || !strings.Contains(rec.Body.String(), "FLOWGATE_PUBLIC_URL") {
					t.Errorf("Host %q %s: %d %q, want 421 naming FLOWGATE_PUBLIC_URL", host, path, got, rec.Body.String())
				}
			case got == http.StatusMisdirectedRequest:
				t.Errorf("Host %q %s: refused", host, path)
			}
		}
	}
	if got := allowedHosts(&config.Config{HTTPAddr: "gw.internal:8080"}); strings.Join(got, ",") != "gw.internal" {
		t.Errorf("allowed hosts for a named address: %v", got)
	}
	if got := allowedHosts(&config.Config{HTTPAddr: ":8080"}); strings.Join(got, ",") != "localhost" {
		t.Errorf("allowed hosts for all interfaces: %v", got)
	}
}

// serveConfig builds the configuration of `flowgate serve` from env.
func serveConfig(t *testing.T, env map[string]string) *config.Config {
	t.Helper()
	base := map[string]string{
		"FLOWGATE_DATA_DIR": t.TempDir(), "FLOWGATE_HTTP_ADDR": "127.0.0.1:0", "FLOWGATE_SMTP_ADDR": "127.0.0.1:0",
		"FLOWGATE_HOSTNAME": "gw.test",
	}
	for k, v := range env {
		base[k] = v
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	build := config.Flags(fs, func(k string) string { return base[k] })
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	cfg, err := build()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// syncBuffer is a log destination for a server running in the background.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe runs Serve with cfg until the test ends.
func startServe(t *testing.T, cfg *config.Config) (Addrs, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan Addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, cfg, slog.New(slog.NewTextHandler(logs, nil)), func(a Addrs) { addrs <- a })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case a := <-addrs:
		return a, logs
	case err := <-done:
		t.Fatalf("serve: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not start\n%s", logs)
	}
	return Addrs{}, nil
}

// Item 6: with FLOWGATE_HTTP_TLS_CERT/KEY the console is served over
// HTTPS and its session cookie is Secure. Item 5: a fresh install prints
// a setup code, and the setup page asks for it.
func TestConsoleOverTLSWithSetupCode(t *testing.T) {
	ca := testutil.NewCA(t, "flowgate test CA")
	certFile, keyFile := testutil.WritePEM(t, ca.Issue(t, "gw.test", "gw.test", "127.0.0.1"))
	cfg := serveConfig(t, map[string]string{"FLOWGATE_HTTP_TLS_CERT": certFile, "FLOWGATE_HTTP_TLS_KEY": keyFile})
	addrs, logs := startServe(t, cfg)

	m := regexp.MustCompile(`setup_code=([A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4})`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no setup code in the log:\n%s", logs)
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{
		Jar:           jar,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
	base := "https://" + addrs.HTTP
	post := func(form url.Values) *http.Response {
		req, _ := http.NewRequest("POST", base+"/setup", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	form := url.Values{"email": {"admin@contoso.com"}, "password": {"correct horse battery staple"}, "password2": {"correct horse battery staple"}}
	if resp := post(form); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("setup without the code: %d", resp.StatusCode)
	}
	form.Set("code", m[1])
	resp := post(form)
	if set := resp.Header.Get("Set-Cookie"); resp.StatusCode != http.StatusSeeOther || !strings.Contains(set, "; Secure") || !strings.Contains(set, "HttpOnly") {
		t.Fatalf("setup over HTTPS: %d %q", resp.StatusCode, set)
	}
	// Plain HTTP on the HTTPS port gets nowhere.
	if resp, err := http.Get("http://" + addrs.HTTP + "/signin"); err == nil && resp.StatusCode < 400 {
		t.Fatalf("plain HTTP answered %d", resp.StatusCode)
	}
}

// Item 7: /metrics is served on FLOWGATE_METRICS_ADDR when set, and then
// not on the console's address; by default only on a loopback console
// address.
func TestMetricsAddress(t *testing.T) {
	cfg := serveConfig(t, map[string]string{"FLOWGATE_METRICS_ADDR": "127.0.0.1:0",
		"FLOWGATE_ADMIN_EMAIL": "admin@contoso.com", "FLOWGATE_ADMIN_PASSWORD": "correct horse battery staple"})
	addrs, logs := startServe(t, cfg)
	if strings.Contains(logs.String(), "setup_code") {
		t.Fatalf("a setup code although FLOWGATE_ADMIN_EMAIL made the first admin:\n%s", logs)
	}
	get := func(u string) int {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if addrs.Metrics == "" || get("http://"+addrs.Metrics+"/metrics") != http.StatusOK {
		t.Fatalf("metrics address %q", addrs.Metrics)
	}
	if code := get("http://" + addrs.HTTP + "/metrics"); code == http.StatusOK {
		t.Fatal("/metrics also served on the console's address")
	}
	if !loopbackOnly("127.0.0.1:8080") || !loopbackOnly("[::1]:8080") || !loopbackOnly("localhost:8080") || loopbackOnly(":8080") || loopbackOnly("0.0.0.0:8080") || loopbackOnly("192.0.2.1:8080") {
		t.Fatal("loopbackOnly")
	}
}
