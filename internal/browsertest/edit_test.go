package browsertest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/testutil"
)

// TestPencilEditShowsRevisionsAndDiff edits two saved connectors with the
// pencil, one whose first revision carries mail and one that is a draft,
// and checks the revisions and the diff on the connector page.
func TestPencilEditShowsRevisionsAndDiff(t *testing.T) {
	srv := startServer(t)
	srv.seedAdmin(t)
	ctx := context.Background()
	bank, err := srv.st.CreateConnector(ctx, testutil.TestActor, &connector.InboundSpec{
		Common:        connector.Common{Name: "Contoso Bank", ConnectorType: connector.Partner},
		SenderDomains: []string{"contosobank.com"}, RequireTLS: true,
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	fabrikam := testutil.ActivateConnector(t, srv.st, &connector.OutboundSpec{
		Common:           connector.Common{Name: "To Fabrikam", ConnectorType: connector.Partner},
		RecipientDomains: []string{"fabrikam.com"}, SmartHosts: []string{"mail.fabrikam.com"},
		TLSSettings: connector.TLSOpportunistic,
	})
	bankPage := fmt.Sprintf("/connectors/inbound/%d", bank.ID)
	fabrikamPage := fmt.Sprintf("/connectors/outbound/%d", fabrikam)

	main := newTab(t, srv.url)
	main.signIn(adminEmail, password, "/connectors")

	t.Run("draft connector from the list", func(t *testing.T) {
		b := main.in(t)
		b.wantStatus(b.open("/connectors"), 200, "open the connectors")
		b.clickOK(`table.list a[aria-label="Edit Contoso Bank"]`, "✎ Edit Contoso Bank")
		b.atStep(1, "Scenario")
		b.wantText("h1", "Edit Contoso Bank")
		b.wantText(`.banner[role=note]`, "Saving creates revision 2. No revision of this connector carries mail yet")
		// The wizard is filled in with the saved settings.
		b.wantChecked(`input[name=from][value=partner]`, true)
		b.wantChecked(`input[name=to][value=flowgate]`, true)
		b.shot("edit-draft-1-scenario")
		b.clickOK(nextButton, "Next on step 1")
		b.atStep(2, "Name")
		b.wantValue("#name", "Contoso Bank")
		b.wantChecked(`input[name=enabled]`, true)
		b.clickOK(nextButton, "Next on step 2")
		b.atStep(3, "Identify the sender")
		b.wantValue("#sender_domains", "contosobank.com")
		b.fill("#sender_domains", "contosobank.com\ncontosobank.net")
		b.shot("edit-draft-3-identify")
		b.clickOK(nextButton, "Next on step 3")
		b.atStep(4, "Security restrictions")
		b.wantChecked(`input[name=require_tls]`, true)
		b.clickOK(nextButton, "Next on step 4")
		b.atStep(6, "Review")
		b.wantReview("ul.review li",
			"Apply to mail arriving at flowgate from senders in contosobank.com and contosobank.net.",
			"Reject mail from contosobank.com and contosobank.net that is not sent over TLS.")
		b.shot("edit-draft-6-review")
		b.clickOK(saveButton, "Save")

		b.wantPath(bankPage)
		b.wantText(`.notice[role=status]`, "Saved Contoso Bank as revision 2.")
		b.wantText("section.card h2", "Settings of revision 2")
		wantRevisions(b, "2 newest", "1")
		wantDiff(b, 1, 2, []string{"Sender domains", "contosobank.com", "contosobank.com, contosobank.net"})
		b.shot("edit-draft-saved-diff")
	})

	t.Run("active connector from its page", func(t *testing.T) {
		b := main.in(t)
		b.wantStatus(b.open(fabrikamPage), 200, "open To Fabrikam")
		b.wantText("h1 .badge", "active")
		b.clickOK(`.pagehead a[aria-label="Edit To Fabrikam"]`, "✎ Edit on the connector page")
		b.atStep(1, "Scenario")
		b.wantText(`.banner[role=note]`, "The active settings keep carrying mail until the new revision you save here has been validated and activated.")
		b.shot("edit-active-1-scenario")
		// The direction of a saved connector cannot change.
		b.choose("from", "partner")
		b.choose("to", "flowgate")
		b.clickRefused(nextButton, "Next with the other direction")
		b.wantFieldError("scenario", ".scenario", "an existing connector's direction cannot change")
		b.shot("edit-active-1-scenario-error")
		b.choose("from", "flowgate")
		b.choose("to", "partner")
		b.clickOK(nextButton, "Next on step 1")
		b.atStep(2, "Name")
		b.clickOK(nextButton, "Next on step 2")
		b.atStep(3, "When to use")
		b.wantValue("#recipient_domains", "fabrikam.com")
		b.clickOK(nextButton, "Next on step 3")
		b.atStep(4, "Routing")
		b.wantChecked(`input[name=route_by][value=smarthosts]`, true)
		b.wantValue("#smart_hosts", "mail.fabrikam.com")
		b.fill("#smart_hosts", "mail2.fabrikam.com\nmail3.fabrikam.com")
		b.shot("edit-active-4-routing")
		b.clickOK(nextButton, "Next on step 4")
		b.atStep(5, "TLS")
		b.clickOK(nextButton, "Next on step 5")
		b.atStep(6, "Review")
		b.wantReview("ul.review li", "Deliver to the smart host mail2.fabrikam.com; if it fails, try mail3.fabrikam.com, in that order.")
		b.clickOK(saveButton, "Save")

		b.wantPath(fabrikamPage)
		b.wantText(`.notice[role=status]`, "Saved revision 2 of To Fabrikam. The active revision keeps carrying mail until revision 2 is validated and activated.")
		b.wantText(".lead", "Revision 1 carries mail; revision 2 is newer and waits for validation and activation.")
		wantRevisions(b, "2 newest", "1 active")
		wantDiff(b, 1, 2, []string{"Smart hosts", "mail.fabrikam.com", "mail2.fabrikam.com, mail3.fabrikam.com"})
		b.shot("edit-active-saved-diff")

		// The list shows the newest revision's state; the connector
		// still carries mail with revision 1.
		b.wantStatus(b.open("/connectors"), 200, "open the connectors")
		rows := b.rows("table.list tbody tr")
		if len(rows) != 2 || rows[1][0] != "To Fabrikam" {
			b.fatalf("list after the edit: %q", rows)
		}
		// The badge says what carries mail; the newest revision's state is apart.
		status := b.texts("table.list tbody tr:nth-child(2) td[data-label=Status] > *")
		if !slices.Equal(status, []string{"active", "revision 1 carries mail", "Newest: revision 2 is a draft, not validated yet"}) {
			b.fatalf("To Fabrikam's status in the list: %q, want active, that revision 1 carries mail, and the draft revision 2", status)
		}
		b.shot("edit-list")
	})
}

// wantRevisions checks the revisions table, newest first: each want is
// the revision number followed by its state words.
func wantRevisions(b *tab, want ...string) {
	b.t.Helper()
	var got []string
	// The state cell's badge and "newest" are elements side by side, with
	// no space between them in the text: join their texts with one.
	for _, r := range js[[]string](b, `Array.from(document.querySelectorAll("#revisions table.list:not(.diff) tbody tr"),
		tr => [tr.cells[0].innerText, ...Array.from(tr.cells[3].children, e => e.innerText)].join(" "))`) {
		got = append(got, strings.Join(strings.Fields(r), " "))
	}
	if !slices.Equal(got, want) {
		b.fatalf("revisions %q, want %q", got, want)
	}
}

// wantDiff checks the "Compare revisions" table between revisions a and b.
func wantDiff(b *tab, from, to int, want ...[]string) {
	b.t.Helper()
	b.wantText("#diff", "Compare revisions")
	if got := b.value("select#a"); got != fmt.Sprint(from) {
		b.fatalf("diff from revision %s, want %d", got, from)
	}
	if got := b.value("select#b"); got != fmt.Sprint(to) {
		b.fatalf("diff to revision %s, want %d", got, to)
	}
	head := b.texts("table.diff thead th")
	if len(head) != 3 || !strings.EqualFold(head[1], fmt.Sprintf("Revision %d", from)) || !strings.EqualFold(head[2], fmt.Sprintf("Revision %d", to)) {
		b.fatalf("diff columns %q", head)
	}
	got := b.rows("table.diff tbody tr")
	if len(got) != len(want) {
		b.fatalf("diff rows %q, want %q", got, want)
	}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			b.fatalf("diff row %d is %q, want %q", i+1, got[i], want[i])
		}
	}
	// The old value is marked old, the new one new.
	if b.text("table.diff tbody tr td.old") != want[0][1] || b.text("table.diff tbody tr td.new") != want[0][2] {
		b.fatalf("the diff's old and new cells are not marked")
	}
}
