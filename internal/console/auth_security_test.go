package console_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowgate/flowgate/internal/app"
	"github.com/flowgate/flowgate/internal/console"
	"github.com/flowgate/flowgate/internal/liveconfig"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// lockedBuffer is a log destination safe for parallel requests.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// handlerWith is flowgate's HTTP surface over st with sec, logging to
// logs (may be nil).
func handlerWith(t testing.TB, st *store.Store, sec console.Security, logs *lockedBuffer) http.Handler {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	if logs != nil {
		log = slog.New(slog.NewTextHandler(logs, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	live, err := liveconfig.Load(ctx, st, log)
	if err != nil {
		t.Fatal(err)
	}
	return app.NewHandler(app.HTTPDeps{Store: st, Live: live, Metrics: prometheus.NewRegistry(), Log: log, Security: sec})
}

// signInFrom posts a sign-in to h as if from the client address from
// (a same-origin form POST, as a browser sends it).
func signInFrom(h http.Handler, from, email, password string, header ...string) *http.Response {
	form := url.Values{"email": {email}, "password": {password}}
	req := httptest.NewRequest("POST", "http://127.0.0.1:8080/signin", strings.NewReader(form.Encode()))
	req.RemoteAddr = from + ":40000"
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

// Item 1: parallel guesses are counted before their passwords are checked,
// so no more of them are evaluated than the allowance.
func TestParallelSignInsCannotOutrunThrottle(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	createUser(t, st, "admin@contoso.com", store.RoleAdmin)
	b := newBrowser(t, serve(t, st, false))
	const n = 100
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pw := "wrong guess " + strconv.Itoa(i)
			if i == n/2 {
				pw = adminPassword
			}
			form := url.Values{"email": {"admin@contoso.com"}, "password": {pw}}
			req, _ := http.NewRequest("POST", b.srv.URL+"/signin", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Sec-Fetch-Site", "same-origin")
			resp, err := b.hc.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	evaluated := 0
	for _, c := range codes {
		if c != http.StatusTooManyRequests {
			evaluated++
		}
	}
	if evaluated > 10 {
		t.Fatalf("%d of %d parallel sign-ins were evaluated, want at most 10: %v", evaluated, n, codes)
	}
}

// Item 2: values longer than any valid one are refused next to their
// field before throttling or logging; a huge body is not read.
func TestSignInRefusesOverlongInputs(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	createUser(t, st, "admin@contoso.com", store.RoleAdmin)
	logs := &lockedBuffer{}
	srv := httptest.NewServer(handlerWith(t, st, console.Security{}, logs))
	t.Cleanup(srv.Close)
	b := newBrowser(t, srv)
	long := strings.Repeat("a", 10000) + "@contoso.com"
	for range 30 {
		b.post("/signin", "email", long, "password", "wrong guess").wantFieldError(t, "email", "at most 254 characters")
	}
	b.post("/signin", "email", "admin@contoso.com", "password", strings.Repeat("p", 2000)).
		wantFieldError(t, "password", "at most 1024 characters")
	if r := b.post("/signin", "email", "admin@contoso.com", "password", strings.Repeat("p", 1<<20)); r.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("1 MB form: %d", r.Status)
	}
	if r := b.post("/setup", "email", long, "password", "x", "password2", "x"); r.Status != http.StatusSeeOther {
		t.Fatalf("setup after setup with a long e-mail: %d", r.Status)
	}
	if strings.Contains(logs.String(), strings.Repeat("a", 300)) {
		t.Fatalf("the log holds the overlong value: %d bytes of log", len(logs.String()))
	}
	// None of that counted as a guess.
	if r := b.post("/signin", "email", "admin@contoso.com", "password", adminPassword); r.Status != http.StatusSeeOther {
		t.Fatalf("sign-in after overlong attempts: %d", r.Status)
	}
}

// Item 3: guesses for an account from many addresses slow it down but do
// not lock its owner out: the owner's usual address is not affected, and
// a new address waits at most a minute.
func TestGuessesFromManyAddressesDoNotLockOutOwner(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	createUser(t, st, "admin@contoso.com", store.RoleAdmin)
	h := handlerWith(t, st, console.Security{}, nil)
	const owner = "192.0.2.10"
	if r := signInFrom(h, owner, "admin@contoso.com", adminPassword); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("owner's first sign-in: %d", r.StatusCode)
	}
	for i := range 10 {
		if r := signInFrom(h, "198.51.100."+strconv.Itoa(i+1), "admin@contoso.com", "wrong guess"); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, r.StatusCode)
		}
	}
	for range 3 {
		if r := signInFrom(h, owner, "admin@contoso.com", adminPassword); r.StatusCode != http.StatusSeeOther {
			t.Fatalf("owner's address after guesses from 10 others: %d (Retry-After %q)", r.StatusCode, r.Header.Get("Retry-After"))
		}
	}
	// From addresses new to the account, attempts are spaced out — a
	// slow-down of seconds, not a lock-out of minutes.
	if r := signInFrom(h, "198.51.100.50", "admin@contoso.com", "wrong guess"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("first guess from a new address: %d", r.StatusCode)
	}
	r := signInFrom(h, "203.0.113.7", "admin@contoso.com", adminPassword)
	if r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second attempt within the account's delay: %d", r.StatusCode)
	}
	if wait, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || wait > 60 {
		t.Fatalf("Retry-After %q, want at most 60 s", r.Header.Get("Retry-After"))
	}
}

// Item 6: behind a trusted proxy, X-Forwarded-Proto: https makes the
// cookie Secure and X-Forwarded-For is the client the throttle counts;
// the same headers from anyone else change nothing.
func TestTrustedProxyHeaders(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	createUser(t, st, "admin@contoso.com", store.RoleAdmin)
	proxy := console.Security{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	h := handlerWith(t, st, proxy, nil)
	r := signInFrom(h, "10.1.2.3", "admin@contoso.com", adminPassword, "X-Forwarded-Proto", "https", "X-Forwarded-For", "203.0.113.1")
	if set := r.Header.Get("Set-Cookie"); r.StatusCode != http.StatusSeeOther || !strings.Contains(set, "; Secure") {
		t.Fatalf("through a trusted proxy with https: %d %q", r.StatusCode, set)
	}
	r = signInFrom(h, "192.0.2.1", "admin@contoso.com", adminPassword, "X-Forwarded-Proto", "https")
	if set := r.Header.Get("Set-Cookie"); r.StatusCode != http.StatusSeeOther || strings.Contains(set, "Secure") {
		t.Fatalf("X-Forwarded-Proto from an untrusted peer: %d %q", r.StatusCode, set)
	}
	// Ten failures from one client behind the proxy throttle that client,
	// not the proxy's other clients.
	for range 10 {
		signInFrom(h, "10.1.2.3", "admin@contoso.com", "wrong guess", "X-Forwarded-For", "198.51.100.1")
	}
	if r := signInFrom(h, "10.1.2.3", "admin@contoso.com", adminPassword, "X-Forwarded-For", "198.51.100.1"); r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the guessing client behind the proxy: %d", r.StatusCode)
	}
	if r := signInFrom(h, "10.1.2.3", "admin@contoso.com", adminPassword, "X-Forwarded-For", "203.0.113.1"); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("another client behind the same proxy: %d", r.StatusCode)
	}
	// An untrusted peer cannot choose its address by X-Forwarded-For.
	for range 10 {
		signInFrom(h, "192.0.2.99", "admin@contoso.com", "wrong guess", "X-Forwarded-For", "198.51.100.77")
	}
	if r := signInFrom(h, "192.0.2.99", "admin@contoso.com", adminPassword, "X-Forwarded-For", "198.51.100.78"); r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("an untrusted peer changing X-Forwarded-For: %d", r.StatusCode)
	}
}

// Item 5: with a setup code, the first admin can be created only by whoever
// can read flowgate's log.
func TestSetupNeedsTheSetupCode(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	srv := httptest.NewServer(handlerWith(t, st, console.Security{SetupCode: "ABCD-EFGH-IJKL"}, nil))
	t.Cleanup(srv.Close)
	b := newBrowser(t, srv)
	b.get("/setup").has(t, `name="code"`, "Setup code")
	b.post("/setup", "email", "admin@contoso.com", "password", adminPassword, "password2", adminPassword).
		wantFieldError(t, "code", "setup code")
	b.post("/setup", "code", "ABCD-EFGH-IJKX", "email", "admin@contoso.com", "password", adminPassword, "password2", adminPassword).
		wantFieldError(t, "code", "setup code")
	if n, _ := st.CountUsers(context.Background()); n != 0 {
		t.Fatalf("setup without the code created %d users", n)
	}
	r := b.post("/setup", "code", "abcd efgh ijkl", "email", "admin@contoso.com", "password", adminPassword, "password2", adminPassword)
	if r.Status != http.StatusSeeOther || r.Location != "/connectors" {
		t.Fatalf("setup with the code: %d %q %s", r.Status, r.Location, r.Body)
	}
}
