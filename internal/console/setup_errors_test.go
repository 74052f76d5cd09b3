package console_test

import (
	"net/http"
	"testing"

	"github.com/flowgate/flowgate/internal/testutil"
)

// The first-run form shows every problem at once: a password that is too
// short and does not match its repetition gets both errors, beside their
// fields.
func TestSetupShowsEveryPasswordProblem(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	b := newBrowser(t, serve(t, st, false))
	p := b.post("/setup", "email", "admin@contoso.com", "password", "short", "password2", "shorter")
	p.wantFieldError(t, "password", "at least 12 characters")
	p.wantFieldError(t, "password2", "differ")
}

// An address that is no page gets the console's error page, in its
// layout, not bare text.
func TestUnknownAddressGetsTheConsoleErrorPage(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	b := adminBrowser(t, st)
	p := b.get("/no/such/page")
	if p.Status != http.StatusNotFound {
		t.Fatalf("status %d", p.Status)
	}
	p.has(t, "<title>Not Found · flowgate</title>", "There is no such page", "admin@contoso.com (admin)", `href="/static/flowgate.css"`)
}
