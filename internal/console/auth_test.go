package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// pages lists every page behind sign-in (GET).
var pages = []string{"/", "/connectors", "/connectors/new", "/domains", "/audit", "/users", "/connectors/inbound/1", "/wizard/x/1"}

// posts lists every state-changing route.
var posts = []string{
	"/connectors/inbound/1/enable", "/connectors/inbound/1/disable", "/connectors/inbound/1/delete",
	"/wizard/x/1", "/domains", "/domains/1/delete", "/users", "/users/1/delete", "/tokens", "/tokens/1/revoke",
}

func TestSetupCreatesFirstAdminOnce(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		b := newBrowser(t, serve(t, st, false))
		// With no user at all, every page leads to the one-time setup page.
		for _, p := range []string{"/connectors", "/signin"} {
			if r := b.get(p); r.Status != http.StatusSeeOther || r.Location != "/setup" {
				t.Fatalf("GET %s with no users: %d %q", p, r.Status, r.Location)
			}
		}
		b.get("/setup").has(t, "Create the first admin", `name="password2"`)

		r := b.post("/setup", "email", "not an address", "password", "short", "password2", "short")
		r.wantFieldError(t, "email", "enter an e-mail address")
		r.wantFieldError(t, "password", "at least 12 characters")
		r.has(t, `value="not an address"`)
		b.post("/setup", "email", "admin@contoso.com", "password", adminPassword, "password2", adminPassword+"x").
			wantFieldError(t, "password2", "the two passwords differ")
		if n, _ := st.CountUsers(context.Background()); n != 0 {
			t.Fatalf("invalid setup created %d users", n)
		}

		r = b.post("/setup", "email", "Admin@Contoso.com", "password", adminPassword, "password2", adminPassword)
		if r.Status != http.StatusSeeOther || r.Location != "/connectors" {
			t.Fatalf("setup: %d %q %s", r.Status, r.Location, r.Body)
		}
		b.get("/connectors").has(t, "admin@contoso.com (admin)", "No connectors yet")

		// The page is gone once a user exists, for everyone.
		other := newBrowser(t, b.srv)
		if r := other.get("/setup"); r.Status != http.StatusSeeOther || r.Location != "/signin" {
			t.Fatalf("GET /setup after setup: %d %q", r.Status, r.Location)
		}
		other.post("/setup", "email", "evil@fabrikam.com", "password", adminPassword, "password2", adminPassword)
		if _, err := st.Authenticate(context.Background(), "evil@fabrikam.com", adminPassword); err == nil {
			t.Fatal("a second setup created a user")
		}
	})
}

func TestSignInSessionsAndSignOut(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		createUser(t, st, "admin@contoso.com", store.RoleAdmin)
		srv := serve(t, st, false)
		b := newBrowser(t, srv)

		// Unauthenticated: every page redirects to sign-in with a way back;
		// every POST is refused.
		for _, p := range pages {
			r := b.get(p)
			if r.Status != http.StatusSeeOther || !strings.HasPrefix(r.Location, "/signin") {
				t.Fatalf("GET %s signed out: %d %q", p, r.Status, r.Location)
			}
		}
		if r := b.get("/domains"); r.Location != "/signin?next="+url.QueryEscape("/domains") {
			t.Fatalf("next parameter: %q", r.Location)
		}
		for _, p := range posts {
			if r := b.post(p, "x", "y"); r.Status != http.StatusUnauthorized {
				t.Fatalf("POST %s signed out: %d", p, r.Status)
			}
		}

		r := b.post("/signin", "email", "admin@contoso.com", "password", "wrong password!!", "next", "/domains")
		if r.Status != http.StatusUnauthorized {
			t.Fatalf("wrong password: %d", r.Status)
		}
		r.has(t, "Wrong e-mail address or password.", `value="admin@contoso.com"`)
		if b.cookie("flowgate_session") != nil {
			t.Fatal("a failed sign-in set a session cookie")
		}
		b.post("/signin", "email", "nobody@contoso.com", "password", adminPassword).has(t, "Wrong e-mail address or password.")

		r = b.post("/signin", "email", "ADMIN@contoso.com", "password", adminPassword, "next", "/domains")
		if r.Status != http.StatusSeeOther || r.Location != "/domains" {
			t.Fatalf("sign in: %d %q", r.Status, r.Location)
		}
		set := r.Header.Values("Set-Cookie")
		if len(set) != 1 || !strings.Contains(set[0], "HttpOnly") || !strings.Contains(set[0], "SameSite=Lax") || strings.Contains(set[0], "Secure") {
			t.Fatalf("session cookie over plain HTTP: %q", set)
		}
		first := b.cookie("flowgate_session").Value
		b.get("/domains").has(t, "Accepted domains")

		// Signing in again rotates the session id; the old id is dead.
		b.signIn("admin@contoso.com")
		second := b.cookie("flowgate_session").Value
		if second == first {
			t.Fatal("sign-in did not rotate the session id")
		}
		stale := newBrowser(t, srv)
		u, _ := url.Parse(srv.URL)
		stale.jar.SetCookies(u, []*http.Cookie{{Name: "flowgate_session", Value: first}})
		if r := stale.get("/connectors"); r.Status != http.StatusSeeOther {
			t.Fatalf("old session id still works: %d", r.Status)
		}

		// An open redirect through next is refused.
		for _, next := range []string{"https://evil.example/", "//evil.example/", "/\\evil.example", "/\t/evil.example/", "/%2F/evil.example"} {
			r := b.post("/signin", "email", "admin@contoso.com", "password", adminPassword, "next", next)
			if r.Location != "/" {
				t.Fatalf("next=%q redirected to %q", next, r.Location)
			}
		}

		// Sign-out ends the session on the server, not just the cookie.
		cur := b.cookie("flowgate_session").Value
		r = b.post("/signout")
		if r.Status != http.StatusSeeOther || r.Location != "/signin" {
			t.Fatalf("sign out: %d %q", r.Status, r.Location)
		}
		replay := newBrowser(t, srv)
		replay.jar.SetCookies(u, []*http.Cookie{{Name: "flowgate_session", Value: cur}})
		if r := replay.get("/connectors"); r.Status != http.StatusSeeOther {
			t.Fatalf("signed-out session id still works: %d", r.Status)
		}
		if _, _, err := st.GetSession(context.Background(), cur); err == nil {
			t.Fatal("signed-out session is still stored")
		}
	})
}

func TestSecureCookieOverTLS(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	createUser(t, st, "admin@contoso.com", store.RoleAdmin)
	b := newBrowser(t, serve(t, st, true))
	r := b.post("/signin", "email", "admin@contoso.com", "password", adminPassword)
	set := r.Header.Get("Set-Cookie")
	if r.Status != http.StatusSeeOther || !strings.Contains(set, "Secure") || !strings.Contains(set, "HttpOnly") {
		t.Fatalf("sign-in over TLS: %d %q", r.Status, set)
	}
}

func TestSecurityHeaders(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	b := adminBrowser(t, st)
	h := b.get("/connectors").Header
	for k, want := range map[string]string{
		"Content-Security-Policy": "frame-ancestors 'none'",
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
		"Cache-Control":           "no-store",
	} {
		if !strings.Contains(h.Get(k), want) {
			t.Fatalf("%s = %q, want %q", k, h.Get(k), want)
		}
	}
	css := b.get("/static/flowgate.css")
	if css.Status != 200 || !strings.HasPrefix(css.Header.Get("Content-Type"), "text/css") {
		t.Fatalf("stylesheet: %d %q", css.Status, css.Header.Get("Content-Type"))
	}
}

func TestCrossSitePostsAreRefused(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	b := adminBrowser(t, st)
	for _, site := range []string{"cross-site", "same-site"} {
		b.site = site
		for _, p := range append(posts, "/signout", "/signin", "/setup") {
			r := b.post(p, "domain", "evil.example", "domain_type", "authoritative")
			if r.Status != http.StatusForbidden {
				t.Fatalf("%s POST %s: %d", site, p, r.Status)
			}
			r.has(t, "cross-site request forgery")
		}
	}
	// A browser without Sec-Fetch-Site still sends Origin: a foreign one
	// is refused too.
	b.site = ""
	form := url.Values{"domain": {"evil.example"}, "domain_type": {"authoritative"}}
	req, _ := http.NewRequest("POST", b.srv.URL+"/domains", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	if r := b.do(req); r.Status != http.StatusForbidden {
		t.Fatalf("foreign Origin: %d", r.Status)
	}
	if list, _ := st.ListAcceptedDomains(context.Background()); len(list) != 0 {
		t.Fatalf("a cross-site POST added %v", list)
	}
	b.site = "same-origin"
	if r := b.post("/domains", "domain", "contoso.com", "domain_type", "authoritative"); r.Status != http.StatusSeeOther {
		t.Fatalf("same-origin POST: %d %s", r.Status, r.Body)
	}
}

func TestViewerReadsButCannotChange(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		createUser(t, st, "viewer@contoso.com", store.RoleViewer)
		createUser(t, st, "admin@contoso.com", store.RoleAdmin)
		conn, err := st.CreateConnector(ctx, store.System("test"), &connector.InboundSpec{
			Common: connector.Common{Name: "Contoso Bank", ConnectorType: connector.Partner}, SenderDomains: []string{"contosobank.com"}, RequireTLS: true,
		}, true)
		if err != nil {
			t.Fatal(err)
		}
		d, err := st.CreateAcceptedDomain(ctx, store.System("test"), "contoso.com", "authoritative")
		if err != nil {
			t.Fatal(err)
		}
		b := newBrowser(t, serve(t, st, false))
		b.signIn("viewer@contoso.com")
		list := b.get("/connectors")
		list.has(t, "Contoso Bank", "viewer@contoso.com (viewer)")
		list.lacks(t, "Add a connector", "/edit", "Turn off", "/delete")
		detail := b.get("/connectors/inbound/" + itoa(conn.ID))
		detail.has(t, "Reject mail from contosobank.com that is not sent over TLS.")
		detail.lacks(t, "✎ Edit", "Turn off")
		b.get("/domains").lacks(t, "Add an accepted domain", "Remove")
		b.get("/users").lacks(t, "Add a user", "Create an API token", "Revoke")
		b.get("/audit").has(t, "Contoso Bank")

		forbidden := []string{"/connectors/new", "/connectors/inbound/" + itoa(conn.ID) + "/edit", "/connectors/inbound/" + itoa(conn.ID) + "/delete", "/domains/" + itoa(d.ID) + "/delete"}
		for _, p := range forbidden {
			if r := b.get(p); r.Status != http.StatusForbidden {
				t.Fatalf("viewer GET %s: %d", p, r.Status)
			}
		}
		for _, p := range append(posts, "/connectors/inbound/"+itoa(conn.ID)+"/disable", "/connectors/inbound/"+itoa(conn.ID)+"/delete", "/domains/"+itoa(d.ID)+"/delete") {
			r := b.post(p, "domain", "fabrikam.com", "domain_type", "authoritative", "email", "x@contoso.com", "password", adminPassword, "role", "admin", "name", "t")
			if r.Status != http.StatusForbidden {
				t.Fatalf("viewer POST %s: %d", p, r.Status)
			}
			r.has(t, "viewer role")
		}
		got, _ := st.GetConnector(ctx, connector.Inbound, conn.ID)
		if got == nil || !got.Enabled {
			t.Fatal("a viewer's POST changed the connector")
		}
		if list, _ := st.ListAcceptedDomains(ctx); len(list) != 1 {
			t.Fatalf("a viewer's POST changed the domains: %v", list)
		}
		// The viewer may still sign out.
		if r := b.post("/signout"); r.Status != http.StatusSeeOther {
			t.Fatalf("viewer sign out: %d", r.Status)
		}
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestSignInIsThrottledAfterRepeatedFailures(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	createUser(t, st, "admin@contoso.com", store.RoleAdmin)
	b := newBrowser(t, serve(t, st, false))
	for i := range 10 {
		if r := b.post("/signin", "email", "admin@contoso.com", "password", "wrong guess "+itoa(int64(i))); r.Status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i, r.Status)
		}
	}
	// Even the right password waits now: guessing cannot go on.
	r := b.post("/signin", "email", "admin@contoso.com", "password", adminPassword)
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("after 10 failures: %d %q", r.Status, r.Header.Get("Retry-After"))
	}
	r.has(t, "Too many failed sign-ins")
	if b.cookie("flowgate_session") != nil {
		t.Fatal("a throttled sign-in set a session")
	}
	// The same client guessing other accounts is throttled too, once it
	// has failed signInAddrMax (20) times in all.
	createUser(t, st, "other@contoso.com", store.RoleAdmin)
	for i := range 10 {
		if r := b.post("/signin", "email", "guess"+itoa(int64(i))+"@contoso.com", "password", "wrong guess"); r.Status != http.StatusUnauthorized {
			t.Fatalf("failure %d on another account: %d", i, r.Status)
		}
	}
	if r := b.post("/signin", "email", "other@contoso.com", "password", adminPassword); r.Status != http.StatusTooManyRequests {
		t.Fatalf("another account from the same address: %d", r.Status)
	}
}
