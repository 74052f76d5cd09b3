package browsertest

import (
	"net/url"
	"testing"
)

// TestSignInNextStaysOnThisSite: a sign-in link whose next parameter a
// browser would read as another site ("/<tab>/evil.test/" is
// "//evil.test/" once the tab is dropped) ends on this site's console,
// not on evil.test.
func TestSignInNextStaysOnThisSite(t *testing.T) {
	srv := startServer(t)
	srv.seedAdmin(t)
	b := newTab(t, srv.url)
	base, err := url.Parse(srv.url)
	if err != nil {
		t.Fatal(err)
	}

	for _, next := range []string{"%2F%09%2Fevil.test%2F", "%2F%2Fevil.test%2F", "%2F%5Cevil.test%2F", "https%3A%2F%2Fevil.test%2F"} {
		b.wantStatus(b.open("/signin?next="+next), 200, "open the sign-in page")
		b.fill("#email", adminEmail)
		b.fill("#password", password)
		b.clickOK(`form[action="/signin"] button[type=submit]`, "sign in with next="+next)
		if host := js[string](b, `location.host`); host != base.Host {
			b.fatalf("next=%s: signed in and sent to %s, want this site %s", next, host, base.Host)
		}
		b.wantPath(`/connectors`)
		b.wantText("header .who", adminEmail)
		b.signOut()
	}
	// A path of this site is still honoured.
	b.open("/signin?next=%2Fdomains")
	b.signIn(adminEmail, password, "/domains")
}
