package browsertest

import (
	"context"
	"fmt"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/testutil"
)

// TestViewerReadsButCannotChange: an admin adds a viewer on the users
// page; the viewer sees the connectors without any button that changes
// them, and the change pages answer 403.
func TestViewerReadsButCannotChange(t *testing.T) {
	srv := startServer(t)
	srv.seedAdmin(t)
	c, err := srv.st.CreateConnector(context.Background(), testutil.TestActor, &connector.InboundSpec{
		Common:        connector.Common{Name: "Contoso Bank", ConnectorType: connector.Partner},
		SenderDomains: []string{"contosobank.com"}, RequireTLS: true,
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	href := fmt.Sprintf("/connectors/inbound/%d", c.ID)
	b := newTab(t, srv.url)
	b.signIn(adminEmail, password, "/connectors")

	b.clickOK(`header nav a[href="/users"]`, "open Users and API tokens")
	b.wantText("h1", "Users and API tokens")
	b.fill("#user-email", viewerEmail)
	b.fill("#user-password", "short")
	b.choose("role", "viewer")
	b.clickRefused(`form[action="/users"] button[type=submit]`, "add a user with a short password")
	b.wantFieldError("password", "#user-password", "use at least 12 characters")
	b.wantValue("#user-email", viewerEmail)
	b.wantChecked(`form[action="/users"] input[name=role][value=viewer]`, true)
	b.shot("users-error")
	b.fill("#user-password", password)
	b.clickOK(`form[action="/users"] button[type=submit]`, "add the viewer")
	b.wantPath(`/users`)
	b.wantText(`.notice[role=status]`, "Added "+viewerEmail+" as viewer.")
	found := false
	for _, r := range b.rows("table.list tbody tr") {
		if len(r) > 1 && r[0] == viewerEmail && r[1] == "viewer" {
			found = true
		}
	}
	if !found {
		b.fatalf("the users table does not list %s as viewer: %q", viewerEmail, b.rows("table.list tbody tr"))
	}
	b.shot("users")
	b.signOut()

	b.signIn(viewerEmail, password, "/connectors")
	b.wantText("header .who", viewerEmail+" (viewer)")
	b.wantText("table.list tbody", "Contoso Bank")
	b.wantAbsent(`a[href="/connectors/new"]`, "a viewer cannot add connectors")
	b.wantAbsent(`a[href$="/edit"]`, "a viewer cannot edit")
	b.wantAbsent(`a[href$="/delete"]`, "a viewer cannot delete")
	b.wantAbsent(`main form[method=post]`, "a viewer has no buttons that change anything")
	b.shot("viewer-list")

	b.clickOK(`table.list a[href="`+href+`"]`, "open Contoso Bank")
	b.wantText("h1", "Contoso Bank")
	b.wantAbsent(`a[href$="/edit"]`, "a viewer cannot edit")
	b.wantAbsent(`main form[method=post]`, "a viewer has no buttons that change anything")
	b.shot("viewer-connector")

	for _, p := range []string{"/connectors/new", href + "/edit", href + "/delete"} {
		b.wantStatus(b.open(p), 403, "a viewer opens "+p)
		b.wantText("h1", "Forbidden")
		b.wantText("main .card", "Your account has the viewer role: it can read everything but change nothing.")
		b.wantText("header .who", viewerEmail)
	}
	b.shot("viewer-403")

	b.clickOK(`header nav a[href="/users"]`, "open Users and API tokens as viewer")
	b.wantAbsent(`form[action="/users"]`, "a viewer cannot add users")
	b.wantAbsent(`form[action="/tokens"]`, "a viewer cannot create tokens")
}

// TestConnectorNamesAreText: names with markup are shown as text, never
// run or parsed as HTML.
func TestConnectorNamesAreText(t *testing.T) {
	srv := startServer(t)
	srv.seedAdmin(t)
	const attrName = `"><img src=x onerror=alert(2)>`
	if _, err := srv.st.CreateConnector(context.Background(), testutil.TestActor, &connector.InboundSpec{
		Common:        connector.Common{Name: attrName, ConnectorType: connector.Partner},
		SenderDomains: []string{"evil.example"}, RequireTLS: true,
	}, true); err != nil {
		t.Fatal(err)
	}
	b := newTab(t, srv.url)
	b.signIn(adminEmail, password, "/connectors")

	// Type a script as the name of a new connector.
	const scriptName = `<script>alert(1)</script>`
	b.startWizard()
	b.choose("from", "flowgate")
	b.choose("to", "partner")
	b.clickOK(nextButton, "Next on step 1")
	b.fill("#name", scriptName)
	b.fill("#comment", `<b>bold</b> & <i>"quoted"</i>`)
	b.clickOK(nextButton, "Next on step 2")
	b.fill("#recipient_domains", "fabrikam.com")
	b.clickOK(nextButton, "Next on step 3")
	b.choose("route_by", "mx")
	b.clickOK(nextButton, "Next on step 4")
	b.clickOK(nextButton, "Next on step 5")
	b.atStep(6, "Review")
	b.wantReview("ul.review li",
		scriptName+": flowgate → Partner organization.",
		`Description: <b>bold</b> & <i>"quoted"</i>`)
	b.wantAbsent("main script, main b, main i, main img", "markup in a name is text")
	b.shot("xss-review")
	b.saveWizard("outbound", scriptName, "Saved "+scriptName+" as revision 1.")
	b.wantAbsent("main script, main b, main i, main img", "markup in a name is text")

	b.wantStatus(b.open("/connectors"), 200, "open the connectors")
	names := b.texts("table.list tbody tr td:first-child a")
	if len(names) != 2 || names[0] != attrName || names[1] != scriptName {
		b.fatalf("names in the list: %q, want %q and %q as text", names, attrName, scriptName)
	}
	b.mustExist(`table.list a[aria-label=` + q("Edit "+scriptName) + `]`)
	b.mustExist(`table.list a[aria-label=` + q("Edit "+attrName) + `]`)
	b.wantAbsent("main script, main img", "markup in a name is text")
	if n := js[int](b, `document.scripts.length`); n != 0 {
		b.fatalf("the page has %d script elements", n)
	}
	b.shot("xss-list")
	if d := b.openedDialogs(); len(d) > 0 {
		b.fatalf("JavaScript dialogs opened: %q", d)
	}
}
