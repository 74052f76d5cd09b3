package browsertest

import (
	"testing"
)

// TestFirstStartSignInSignOut: on first start the console asks for the
// first admin; then signing out and in again works, and a wrong password
// is refused with a message.
func TestFirstStartSignInSignOut(t *testing.T) {
	srv := startServer(t)
	b := newTab(t, srv.url)

	// Any page sends a fresh install to the setup page.
	b.wantStatus(b.open("/connectors"), 200, "open the console")
	b.wantPath(`/setup`)
	b.wantText("h1", "Welcome to flowgate")
	b.wantAbsent("header .who", "no one is signed in")
	b.shot("setup")

	// A short password and a mistyped repetition are refused, next to
	// their fields; the e-mail address stays.
	b.fill("#email", adminEmail)
	b.fill("#password", "too short")
	b.fill("#password2", "too short")
	b.wantStatus(b.click(`form[action="/setup"] button[type=submit]`), 400, "setup with a short password")
	b.wantFieldError("password", "#password", "use at least 12 characters")
	b.wantValue("#email", adminEmail)
	b.fill("#password", password)
	b.fill("#password2", password+"!")
	b.wantStatus(b.click(`form[action="/setup"] button[type=submit]`), 400, "setup with two different passwords")
	b.wantFieldError("password2", "#password2", "the two passwords differ")
	b.shot("setup-error")

	b.fill("#password", password)
	b.fill("#password2", password)
	b.clickOK(`form[action="/setup"] button[type=submit]`, "create the first admin")
	b.wantPath(`/connectors`)
	b.wantText("header .who", adminEmail+" (admin)")
	b.wantText(".empty", "No connectors yet")
	b.shot("connectors-empty")

	b.signOut()
	b.shot("signin")
	// The setup page is shown only once.
	b.open("/setup")
	b.wantPath(`/signin`)
	// Signed out, the console sends to the sign-in page and back after it.
	b.open("/domains")
	b.wantPath(`/signin\?next=%2Fdomains`)

	b.fill("#email", adminEmail)
	b.fill("#password", password+"x")
	b.wantStatus(b.click(`form[action="/signin"] button[type=submit]`), 401, "sign in with a wrong password")
	b.wantText(`.formerror[role=alert]`, "Wrong e-mail address or password.")
	b.wantValue("#email", adminEmail)
	b.wantValue("#password", "")
	b.wantAbsent("header .who", "the sign-in failed")
	b.shot("signin-wrong-password")

	b.signIn(adminEmail, password, "/domains")
	b.wantText("h1", "Accepted domains")
	b.clickOK(`header nav a[href="/connectors"]`, "open Connectors")
	b.wantPath(`/connectors`)
	if got := b.text(`header nav a[aria-current="page"]`); got != "Connectors" {
		b.fatalf("current section %q, want Connectors", got)
	}
}
