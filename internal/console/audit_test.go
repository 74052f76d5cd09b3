package console_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

var (
	auditRowRE = regexp.MustCompile(`(?s)<tr><td data-label="When".*?</tr>`)
	tagRE      = regexp.MustCompile(`<[^>]*>`)
	spaceRE    = regexp.MustCompile(`\s+`)
	blockEnd   = strings.NewReplacer("</td>", " ", "</p>", " ", "</li>", " ", "</summary>", " ")
)

// auditRows returns the audit log's rows as the text a reader sees, newest
// first.
func auditRows(p page) []string {
	var out []string
	for _, r := range auditRowRE.FindAllString(p.Body, -1) {
		text := html.UnescapeString(tagRE.ReplaceAllString(blockEnd.Replace(r), ""))
		out = append(out, strings.TrimSpace(spaceRE.ReplaceAllString(text, " ")))
	}
	return out
}

// wantRows checks the page's rows, newest first, contain want in order,
// one a row.
func wantRows(t *testing.T, p page, want ...string) {
	t.Helper()
	rows := auditRows(p)
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d:\n%s", len(rows), len(want), strings.Join(rows, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(rows[i], w) {
			t.Fatalf("row %d = %q\nwant it to contain %q", i, rows[i], w)
		}
	}
}

// TestAuditLogSentences: every kind of change the store records reads as a
// sentence, an edit with the settings it changed; times fit one line with
// the full time in a title.
func TestAuditLogSentences(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	ctx := context.Background()
	b := adminBrowser(t, st)
	admin := testutil.TestActor
	bank := testutil.ActivateConnector(t, st, &connector.InboundSpec{
		Common: connector.Common{Name: "Contoso Bank", ConnectorType: connector.Partner}, SenderDomains: []string{"contosobank.com"}, RequireTLS: true,
	})
	out := &connector.OutboundSpec{
		Common: connector.Common{Name: "To Fabrikam", ConnectorType: connector.Partner}, RecipientDomains: []string{"fabrikam.com"},
		SmartHosts: []string{"mx1.fabrikam.com"}, TLSSettings: connector.TLSOpportunistic,
	}
	fab, err := st.CreateConnector(ctx, admin, out, true)
	if err != nil {
		t.Fatal(err)
	}
	edited := *out
	edited.TLSSettings, edited.TLSDomain = connector.TLSDomainValidation, "fabrikam.com"
	edited.SmartHosts = []string{"mx2.fabrikam.com", "mx3.fabrikam.com"}
	if _, err := st.UpdateConnector(ctx, store.Actor{Kind: "token", Name: "ci"}, fab.ID, &edited, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := st.RecordValidation(ctx, admin, connector.Outbound, &store.Validation{
		ConnectorID: fab.ID, Revision: 2, Status: store.ValidationFailed, StartedAt: now, FinishedAt: now,
		Steps: []store.ValidationStep{{Name: "test message", Status: "failed", Detail: "refused"}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetConnectorEnabled(ctx, admin, connector.Inbound, bank, false); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetConnectorEnabled(ctx, admin, connector.Inbound, bank, true); err != nil {
		t.Fatal(err)
	}
	d, err := st.CreateAcceptedDomain(ctx, admin, "contoso.com", connector.Authoritative)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteAcceptedDomain(ctx, admin, d.ID); err != nil {
		t.Fatal(err)
	}
	bob, err := st.CreateUser(ctx, admin, "bob@contoso.com", adminPassword, store.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteUser(ctx, admin, bob.ID); err != nil {
		t.Fatal(err)
	}
	_, tok, err := st.CreateToken(ctx, admin, "deploy <script>", store.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeToken(ctx, admin, tok.ID); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteConnector(ctx, admin, connector.Outbound, fab.ID); err != nil {
		t.Fatal(err)
	}

	p := b.get("/audit")
	if p.Status != http.StatusOK {
		t.Fatalf("audit log: %d", p.Status)
	}
	wantRows(t, p,
		"admin@contoso.com deleted the outbound connector “To Fabrikam” (its newest revision was 2)",
		"admin@contoso.com revoked the API token “deploy <script>”: it no longer works",
		"admin@contoso.com created the API token “deploy <script>” (admin; it starts "+tok.TokenPrefix,
		"admin@contoso.com removed the user bob@contoso.com (viewer)",
		"admin@contoso.com added the user bob@contoso.com as viewer",
		"admin@contoso.com removed the accepted domain contoso.com (authoritative)",
		"admin@contoso.com added the accepted domain contoso.com (authoritative)",
		"admin@contoso.com turned on the inbound connector “Contoso Bank”: it carries mail again",
		"admin@contoso.com turned off the inbound connector “Contoso Bank”: it carries no mail",
		"admin@contoso.com validated revision 2 of the outbound connector “To Fabrikam”: failed",
		"API token ci changed the outbound connector “To Fabrikam” (revision 2): Smart hosts: removed mx1.fabrikam.com; added mx2.fabrikam.com, mx3.fabrikam.com TLS settings: opportunistic → domain_validation TLS certificate domain: (none) → fabrikam.com",
		"admin@contoso.com created the outbound connector “To Fabrikam” (revision 1) Settings Name: To Fabrikam",
		"admin@contoso.com activated revision 1 of the inbound connector “Contoso Bank”: it carries mail now",
		"admin@contoso.com validated revision 1 of the inbound connector “Contoso Bank”: passed",
		"admin@contoso.com created the inbound connector “Contoso Bank” (revision 1) Settings Name: Contoso Bank Connector type: partner Sender domains: contosobank.com Require TLS: yes",
		"flowgate (test) added the user admin@contoso.com as admin",
	)
	// No raw JSON; names are escaped; the live connector is a link, the
	// deleted one is not; a validation links to its report.
	p.lacks(t, `{"`, `"direction"`)
	if strings.Contains(p.Body, "deploy <script>") || !strings.Contains(p.Body, "deploy &lt;script&gt;") {
		t.Fatal("the token's name is not escaped")
	}
	p.has(t, `<a href="/connectors/inbound/`+itoa(bank)+`"`, `href="/connectors/inbound/`+itoa(bank)+`/validations/`)
	if strings.Contains(p.Body, `href="/connectors/outbound/`+itoa(fab.ID)) {
		t.Fatal("a deleted connector is linked")
	}
	// One line: the short time, the full one in the title.
	entries, _ := st.ListAudit(ctx, store.AuditFilter{Limit: 1})
	at := entries[0].At.UTC()
	p.has(t, fmt.Sprintf(`<time datetime="%s" title="%s">%s</time>`, at.Format(time.RFC3339), at.Format("Monday 2 January 2006, 15:04:05 UTC"), at.Format("2006-01-02 15:04 UTC")))
}

// TestAuditLogFilters: who, what, which connector and when combine; a bad
// value shows an error beside its field, never a 500.
func TestAuditLogFilters(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		b := adminBrowser(t, st)
		bank := testutil.ActivateConnector(t, st, &connector.InboundSpec{
			Common: connector.Common{Name: "Contoso Bank", ConnectorType: connector.Partner}, SenderDomains: []string{"contosobank.com"}, RequireTLS: true,
		})
		ci := store.Actor{Kind: "token", Name: "ci"}
		if _, err := st.CreateAcceptedDomain(ctx, ci, "contoso.com", connector.Authoritative); err != nil {
			t.Fatal(err)
		}
		if _, err := st.SetConnectorEnabled(ctx, ci, connector.Inbound, bank, false); err != nil {
			t.Fatal(err)
		}
		today := time.Now().UTC().Format("2006-01-02")
		tomorrow := time.Now().UTC().AddDate(0, 0, 1).Format("2006-01-02")

		all := b.get("/audit")
		all.has(t, `<option value="token:ci">API token ci</option>`, `<option value="user:admin@contoso.com">admin@contoso.com</option>`)
		if n := len(auditRows(all)); n != 6 {
			t.Fatalf("%d rows, want 6", n)
		}
		wantRows(t, b.get("/audit?actor=token:ci"), "turned off the inbound connector", "added the accepted domain")
		wantRows(t, b.get("/audit?actor=token:ci&object=connector"), "API token ci turned off the inbound connector “Contoso Bank”")
		wantRows(t, b.get("/audit?object=accepted_domain"), "added the accepted domain contoso.com")
		wantRows(t, b.get("/audit?action=create"), "added the accepted domain", "created the inbound connector", "added the user admin@contoso.com")
		wantRows(t, b.get("/audit?connector="+itoa(bank)+"&action=validate"), "validated revision 1")
		wantRows(t, b.get("/audit?connector="+itoa(bank)+"&actor=user:admin@contoso.com&from="+today+"&to="+today), "activated", "validated", "created")
		wantRows(t, b.get("/audit?from="+tomorrow))
		p := b.get("/audit?from=" + tomorrow + "&object=user")
		p.has(t, "No changes match", "Clear filters")
		p.has(t, `<option value="user" selected>Users</option>`, `value="`+tomorrow+`"`)

		// Bad values: a 400 page with the error beside the field.
		b.get("/audit?from=yesterday").wantFieldError(t, "from", "like 2026-12-03")
		b.get("/audit?to=2026-13-01").wantFieldError(t, "to", "year-month-day")
		b.get("/audit?from=2026-12-03&to=2026-12-01").wantFieldError(t, "to", "before the start date")
		b.get("/audit?object=mailbox").wantFieldError(t, "object", "Choose a kind of object")
		b.get("/audit?action=explode").wantFieldError(t, "action", "Choose a change")
		b.get("/audit?actor=alice").wantFieldError(t, "actor", "Choose someone")
		b.get("/audit?connector=abc").wantFieldError(t, "connector", "Choose a connector")
		for _, q := range []string{"before=-4", "after=x", "before=3&after=1"} {
			r := b.get("/audit?" + q)
			if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "This page of the audit log does not exist") {
				t.Fatalf("%s: %d %s", q, r.Status, r.Body)
			}
		}
		// A deleted connector's history stays reachable by its number.
		if err := st.DeleteConnector(ctx, ci, connector.Inbound, bank); err != nil {
			t.Fatal(err)
		}
		d := b.get("/audit?connector=" + itoa(bank))
		d.has(t, `<option value="`+itoa(bank)+`" selected>Connector `+itoa(bank)+` (deleted)</option>`)
		if n := len(auditRows(d)); n != 5 {
			t.Fatalf("deleted connector's rows: %d, want 5", n)
		}
	})
}

var pageLinkRE = regexp.MustCompile(`<a href="([^"]*)" rel="(prev|next)">`)

// TestAuditLogPaging: 50 changes a page, newest first; "Older" and "Newer"
// keep the filters.
func TestAuditLogPaging(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	ctx := context.Background()
	b := adminBrowser(t, st)
	ci := store.Actor{Kind: "token", Name: "ci"}
	for i := range 120 {
		actor := testutil.TestActor
		if i%2 == 0 {
			actor = ci
		}
		if _, err := st.CreateAcceptedDomain(ctx, actor, fmt.Sprintf("d%03d.contoso.com", i), connector.Authoritative); err != nil {
			t.Fatal(err)
		}
	}
	links := func(p page) map[string]string {
		out := map[string]string{}
		for _, m := range pageLinkRE.FindAllStringSubmatch(p.Body, -1) {
			out[m[2]] = html.UnescapeString(m[1])
		}
		return out
	}
	// ci made the even ones: 60 changes, d118 newest.
	p1 := b.get("/audit?actor=token:ci&object=accepted_domain")
	rows := auditRows(p1)
	if len(rows) != 50 || !strings.Contains(rows[0], "d118.contoso.com") || !strings.Contains(rows[49], "d020.contoso.com") {
		t.Fatalf("first page: %d rows, %q … %q", len(rows), rows[0], rows[len(rows)-1])
	}
	p1.has(t, "The newest 50 changes, newest first")
	l1 := links(p1)
	if l1["prev"] != "" || !strings.Contains(l1["next"], "actor=token%3Aci") || !strings.Contains(l1["next"], "object=accepted_domain") || !strings.Contains(l1["next"], "before=") {
		t.Fatalf("first page links: %v", l1)
	}
	p2 := b.get(l1["next"])
	wantRows(t, p2, "d018", "d016", "d014", "d012", "d010", "d008", "d006", "d004", "d002", "d000")
	l2 := links(p2)
	if l2["next"] != "" || !strings.Contains(l2["prev"], "after=") || !strings.Contains(l2["prev"], "actor=token%3Aci") {
		t.Fatalf("last page links: %v", l2)
	}
	back := b.get(l2["prev"])
	if got := auditRows(back); len(got) != 50 || got[0] != rows[0] || got[49] != rows[49] {
		t.Fatalf("newer page is not the first page: %d rows", len(got))
	}
	if l := links(back); l["prev"] != "" || l["next"] != l1["next"] {
		t.Fatalf("links back on the first page: %v", l)
	}
	// The old "?connector=&before=" links still work.
	old := b.get("/audit?connector=&before=" + strings.TrimPrefix(regexp.MustCompile(`before=\d+`).FindString(l1["next"]), "before="))
	if got := auditRows(old); old.Status != http.StatusOK || len(got) != 21 || !strings.Contains(got[0], "d019") || !strings.Contains(got[20], "flowgate (test) added the user") {
		t.Fatalf("old link: %d, %d rows", old.Status, len(got))
	}
}
