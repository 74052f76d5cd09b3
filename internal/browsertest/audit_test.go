package browsertest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// TestAuditLogReads: after a few changes, with long names and values, the
// audit log reads a sentence a change, each time on one line, and nothing
// runs off a 1280 px page or a phone's; filters and paging work by
// clicking.
func TestAuditLogReads(t *testing.T) {
	srv := startServer(t)
	srv.seedAdmin(t)
	ctx := context.Background()
	st := srv.st
	ci := store.Actor{Kind: "token", Name: "ci-deploy"}
	bank := testutil.ActivateConnector(t, st, &connector.InboundSpec{
		Common: connector.Common{Name: "Contoso Bank", ConnectorType: connector.Partner}, SenderDomains: []string{"contosobank.com"}, RequireTLS: true,
	})
	var hosts []string
	for i := range 12 {
		hosts = append(hosts, fmt.Sprintf("relay-%02d.eu-west.mail-gateway.fabrikam-holdings-international.com", i))
	}
	out := &connector.OutboundSpec{
		Common:           connector.Common{Name: "Fabrikam Holdings International — European subsidiaries", ConnectorType: connector.Partner},
		RecipientDomains: []string{"fabrikam.com"}, SmartHosts: hosts[:2], TLSSettings: connector.TLSOpportunistic,
	}
	fab, err := st.CreateConnector(ctx, testutil.TestActor, out, true)
	if err != nil {
		t.Fatal(err)
	}
	edited := *out
	edited.SmartHosts, edited.TLSSettings, edited.TLSDomain = hosts, connector.TLSDomainValidation, "fabrikam.com"
	if _, err := st.UpdateConnector(ctx, ci, fab.ID, &edited, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := st.RecordValidation(ctx, ci, connector.Outbound, &store.Validation{
		ConnectorID: fab.ID, Revision: 2, Status: store.ValidationFailed, StartedAt: now, FinishedAt: now,
		Steps: []store.ValidationStep{{Name: "test message", Status: "failed", Detail: "refused"}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetConnectorEnabled(ctx, testutil.TestActor, connector.Inbound, bank, false); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateAcceptedDomain(ctx, testutil.TestActor, "contoso.com", connector.Authoritative); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.CreateToken(ctx, testutil.TestActor, "ci-deploy", store.RoleAdmin); err != nil {
		t.Fatal(err)
	}

	b := newTab(t, srv.url)
	b.signIn(adminEmail, password, "/connectors")
	b.open("/audit")
	b.wantNoSideScroll()
	b.shot("audit log")
	sentences := b.texts(".audit-sentence")
	if len(sentences) != 10 {
		b.fatalf("%d rows: %q", len(sentences), sentences)
	}
	for _, want := range []string{
		"admin@contoso.com created the API token “ci-deploy” (admin; it starts fgt_",
		"admin@contoso.com added the accepted domain contoso.com (authoritative)",
		"admin@contoso.com turned off the inbound connector “Contoso Bank”: it carries no mail",
		"API token ci-deploy validated revision 2 of the outbound connector “Fabrikam Holdings International — European subsidiaries”: failed",
		"API token ci-deploy changed the outbound connector “Fabrikam Holdings International — European subsidiaries” (revision 2):",
		"admin@contoso.com activated revision 1 of the inbound connector “Contoso Bank”: it carries mail now",
	} {
		found := false
		for _, s := range sentences {
			found = found || strings.HasPrefix(s, want)
		}
		if !found {
			b.fatalf("no row starts %q; rows:\n%s", want, strings.Join(sentences, "\n"))
		}
	}
	// Every time on one line, as tall as a line of text.
	type box struct{ Max, Line float64 }
	h := js[box](b, `({Max: Math.max(...Array.from(document.querySelectorAll("td.audit-when time"), e => e.getBoundingClientRect().height)),
		Line: parseFloat(getComputedStyle(document.querySelector("td.audit-when")).lineHeight)})`)
	if h.Max > h.Line*1.5 {
		b.fatalf("a time wraps: %v px high, a line is %v px", h.Max, h.Line)
	}
	// Every row fits in the table, the table in the page.
	if over := js[int](b, `Array.from(document.querySelectorAll("table.audit td")).filter(td => td.scrollWidth > td.clientWidth + 1).length`); over != 0 {
		b.fatalf("%d cells overflow", over)
	}
	if w := js[float64](b, `document.querySelector("table.audit").getBoundingClientRect().right`); w > windowWidth {
		b.fatalf("the table ends at %v px", w)
	}

	// Filter by clicking: who and what.
	js[bool](b, `(() => { document.querySelector("#f-actor").value = "token:ci-deploy"; document.querySelector("#f-object").value = "connector"; return true })()`)
	b.clickOK(`form.audit-filters button[type=submit]`, "filter the audit log")
	b.wantPath(`/audit\?actor=token%3Aci-deploy&object=connector&action=&connector=&from=&to=`)
	if got := b.texts(".audit-sentence"); len(got) != 2 {
		b.fatalf("filtered rows: %q", got)
	}
	b.wantText("form.audit-filters .audit-buttons a", "Clear filters")
	b.shot("filtered")

	// A bad date: the error beside the field.
	if st := b.open("/audit?from=yesterday"); st != 400 {
		b.fatalf("bad date: HTTP %d", st)
	}
	b.wantText("#err-from", "Enter a date as year-month-day, like 2026-12-03.")
	b.mustBeVisible("#err-from")
	b.shot("bad date")

	b.open("/audit")
	b.phone()
	b.wantNoSideScroll()
	b.shot("audit log on a phone")
	b.desktop()
}
