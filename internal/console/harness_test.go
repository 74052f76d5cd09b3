package console_test

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil/webtest"
)

// adminPassword is every test user's password.
const adminPassword = "correct horse battery staple"

// serve runs flowgate's whole HTTP surface over st, as `flowgate serve`
// does.
func serve(t testing.TB, st *store.Store, tlsOn bool) *httptest.Server {
	t.Helper()
	return webtest.Serve(t, st, webtest.Options{TLS: tlsOn})
}

// browser is a cookie-keeping client that does not follow redirects and
// sends the headers a browser sends on a same-origin form POST.
type browser struct {
	t    testing.TB
	srv  *httptest.Server
	jar  *cookiejar.Jar
	hc   *http.Client
	site string // Sec-Fetch-Site for POSTs
}

func newBrowser(t testing.TB, srv *httptest.Server) *browser {
	jar, _ := cookiejar.New(nil)
	hc := srv.Client()
	c := *hc
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{t: t, srv: srv, jar: jar, hc: &c, site: "same-origin"}
}

// page is one response.
type page struct {
	Status   int
	Body     string
	Location string
	Header   http.Header
	from     *browser // the browser that got it
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	loc := resp.Header.Get("Location")
	if u, err := url.Parse(loc); err == nil && loc != "" {
		loc = u.RequestURI()
	}
	if resp.StatusCode >= 500 {
		b.t.Fatalf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, body)
	}
	return page{Status: resp.StatusCode, Body: string(body), Location: loc, Header: resp.Header, from: b}
}

func (b *browser) get(path string) page {
	b.t.Helper()
	req, err := http.NewRequest("GET", b.srv.URL+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

// post sends a form; kv are name, value pairs.
func (b *browser) post(path string, kv ...string) page {
	b.t.Helper()
	form := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		form.Add(kv[i], kv[i+1])
	}
	req, err := http.NewRequest("POST", b.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if b.site != "" {
		req.Header.Set("Sec-Fetch-Site", b.site)
	}
	if b.site == "same-origin" {
		req.Header.Set("Origin", b.srv.URL)
	}
	return b.do(req)
}

// follow GETs the redirect target of p.
func (b *browser) follow(p page) page {
	b.t.Helper()
	if p.Status != http.StatusSeeOther || p.Location == "" {
		b.t.Fatalf("want a 303 redirect, got %d %q: %s", p.Status, p.Location, p.Body)
	}
	return b.get(p.Location)
}

func (b *browser) cookie(name string) *http.Cookie {
	u, _ := url.Parse(b.srv.URL)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (p page) has(t testing.TB, want ...string) {
	t.Helper()
	text := html.UnescapeString(p.Body)
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Fatalf("page (%d) lacks %q:\n%s", p.Status, w, p.Body)
		}
	}
}

func (p page) lacks(t testing.TB, unwanted ...string) {
	t.Helper()
	text := html.UnescapeString(p.Body)
	for _, w := range unwanted {
		if strings.Contains(text, w) {
			t.Fatalf("page (%d) has %q:\n%s", p.Status, w, p.Body)
		}
	}
}

var errRE = regexp.MustCompile(`<p class="error" id="err-([a-z0-9_-]+)">([^<]*)</p>`)

// fieldErrors returns the errors shown next to fields.
func (p page) fieldErrors() map[string]string {
	out := map[string]string{}
	for _, m := range errRE.FindAllStringSubmatch(p.Body, -1) {
		out[m[1]] = html.UnescapeString(m[2])
	}
	return out
}

// wantFieldError checks that p shows an error next to field that contains
// want: p is a refused post, which redirects to the form's page (followed
// here, as a browser does), the form's page it led to, or a 400 page (a
// GET with bad values). It
// returns the page that shows the error.
func (p page) wantFieldError(t testing.TB, field, want string) page {
	t.Helper()
	switch {
	case p.Status == http.StatusSeeOther && p.from != nil:
		p = p.from.follow(p)
		if p.Status != http.StatusOK {
			t.Fatalf("the refused form's page answered %d: %s", p.Status, p.Body)
		}
	case p.Status != http.StatusBadRequest && p.Status != http.StatusOK:
		t.Fatalf("want a refused post (303 to the form) or a 400 with an error next to %s, got %d: %s", field, p.Status, p.Body)
	}
	got, ok := p.fieldErrors()[field]
	if !ok || !strings.Contains(got, want) {
		t.Fatalf("error next to %s = %q (present %v), want it to contain %q; all: %v", field, got, ok, want, p.fieldErrors())
	}
	return p
}

// createUser adds a user directly in the store.
func createUser(t testing.TB, st *store.Store, email string, role store.Role) {
	t.Helper()
	if _, err := st.CreateUser(context.Background(), store.System("test"), email, adminPassword, role); err != nil {
		t.Fatal(err)
	}
}

// signIn signs b in as email.
func (b *browser) signIn(email string) {
	b.t.Helper()
	p := b.post("/signin", "email", email, "password", adminPassword)
	if p.Status != http.StatusSeeOther {
		b.t.Fatalf("sign in as %s: %d %s", email, p.Status, p.Body)
	}
}

// adminBrowser returns a server with one admin, signed in.
func adminBrowser(t testing.TB, st *store.Store) *browser {
	t.Helper()
	createUser(t, st, "admin@contoso.com", store.RoleAdmin)
	b := newBrowser(t, serve(t, st, false))
	b.signIn("admin@contoso.com")
	return b
}
