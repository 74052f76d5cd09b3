package browsertest

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// Issue 18, items 1, 2 and 7, as a browser sees them: Back and reload
// after a field error, the choices every wizard step starts with, and two
// tabs working on the same connector.

// opsEmail is a second admin, who works in another browser.
const opsEmail = "ops@contoso.com"

// seedOps creates the second admin directly in the store.
func (s *server) seedOps(t *testing.T) {
	t.Helper()
	if _, err := s.st.CreateUser(context.Background(), store.System("test"), opsEmail, password, store.RoleAdmin); err != nil {
		t.Fatal(err)
	}
}

// postAnswer is how the console answered a form's post: the HTTP status
// of the page the tab ended on, and the redirects that led there.
type postAnswer struct {
	status    int64
	redirects int
}

// clickPost clicks a form's button and returns how the post was answered,
// for wantRedirected to check once the page has been looked at.
func (b *tab) clickPost(sel string) postAnswer {
	b.t.Helper()
	st := b.click(sel)
	return postAnswer{st, js[int](b, `performance.getEntriesByType("navigation")[0].redirectCount`)}
}

// wantRedirected checks that a refused post was answered with a redirect
// to the form's page, which answered 200.
func (b *tab) wantRedirected(p postAnswer, what string) {
	b.t.Helper()
	if p.status != 200 || p.redirects == 0 {
		b.fatalf("%s: HTTP %d after %d redirects; want the post refused with a redirect to the form's page (200)", what, p.status, p.redirects)
	}
}

// postRefused clicks a form's button whose post must be refused with a
// redirect to the form's page (the harness's clickRefused, under another
// name so that this file compiles in trees without it too).
func (b *tab) postRefused(sel, what string) {
	b.t.Helper()
	b.wantRedirected(b.clickPost(sel), what)
}

// wantNoBrowserError fails when the tab shows Chromium's own error page
// instead of one of the console's: "Confirm Form Resubmission"
// (ERR_CACHE_MISS) is what Back to the answer of a post shows. loadErr is
// the error of the navigation that led there, if any.
func (b *tab) wantNoBrowserError(what string, loadErr error) {
	b.t.Helper()
	type page struct{ Href, Title, Text string }
	p := js[page](b, `({Href: location.href, Title: document.title, Text: document.body ? document.body.innerText : ""})`)
	for _, bad := range []string{"ERR_CACHE_MISS", "Confirm Form Resubmission"} {
		if strings.Contains(p.Title, bad) || strings.Contains(p.Text, bad) {
			b.fatalf("%s: Chromium shows its error page %q (at %s, load error: %v) instead of the console's page", what, bad, p.Href, loadErr)
		}
	}
	if strings.HasPrefix(p.Href, "chrome-error://") {
		b.fatalf("%s: Chromium shows an error page at %s (load error: %v) instead of the console's page", what, p.Href, loadErr)
	}
	if loadErr != nil {
		b.fatalf("%s: %v", what, loadErr)
	}
}

// historyBack goes Back in the tab's history, as the browser's Back button
// does, waits until the tab shows the page before, and checks that it is
// the console's page, answered 200, and not Chromium's error page.
// Chromium may fetch the page again or restore it from its back/forward
// cache, as it shows it (a GET's answer may be kept there; a post's is
// not); both are the console's page. chromedp.NavigateBack is not used:
// it waits for a load event, and a restored page fires none. After a
// restore, use clickByScript to go on.
func (b *tab) historyBack(what string) {
	b.t.Helper()
	// The page we leave is marked; the page Back shows is another
	// document, without the mark.
	js[chromedp.Void](b, `window.flowgateLeftByBack = true; history.back()`)
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	for {
		done, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.readyState === "complete" && !window.flowgateLeftByBack`))
		if err == nil && done {
			break
		}
		if ctx.Err() != nil {
			b.fatalf("%s: the tab never showed the page before (last: %v)", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.wantNoBrowserError(what, nil)
	if st := js[int](b, `performance.getEntriesByType("navigation")[0].responseStatus`); st != 200 {
		b.fatalf("%s: the page shown was answered with HTTP %d, want 200", what, st)
	}
}

// clickByScript clicks sel from the page's script and waits for the page
// the click leads to, whose path matches pathRe. After a page restored
// from the back/forward cache, chromedp's own DOM queries (click, focus)
// wait for a document that is gone, until the next page loads; the
// page's script sees the restored one.
func (b *tab) clickByScript(sel, pathRe string) {
	b.t.Helper()
	b.mustExist(sel)
	js[chromedp.Void](b, `document.querySelector(`+q(sel)+`).click()`)
	b.waitPath(pathRe)
}

// reload reloads the page, as the browser's reload button does, and
// checks that the browser only fetched the page again: it answers 200
// with no redirect. Sending a refused post again would be answered with
// the post's own status (400) or, now that every post of the console
// redirects, with a redirect.
func (b *tab) reload(what string) {
	b.t.Helper()
	resp, err := chromedp.RunResponse(b.ctx, chromedp.Reload())
	b.wantNoBrowserError(what, err)
	if resp == nil {
		b.fatalf("%s loaded no page", what)
	}
	type nav struct {
		Type      string
		Redirects int
	}
	n := js[nav](b, `(() => { const e = performance.getEntriesByType("navigation")[0]; return {Type: e.type, Redirects: e.redirectCount}; })()`)
	if resp.Status != 200 || n.Redirects != 0 {
		b.fatalf("%s: HTTP %d after %d redirects; want the page fetched again (200, no redirect), not the refused form sent again", what, resp.Status, n.Redirects)
	}
	if n.Type != "reload" {
		b.fatalf("%s: the navigation is a %q, want a reload", what, n.Type)
	}
}

// wantSaveDisabled checks whether the review's Save button is disabled.
func (b *tab) wantSaveDisabled(want bool) {
	b.t.Helper()
	if got := js[bool](b, `document.querySelector(`+q(saveButton)+`).disabled`); got != want {
		b.fatalf("Save disabled = %v, want %v", got, want)
	}
}

// wantReviewLineWith checks that a line of the review contains s.
func (b *tab) wantReviewLineWith(s string) {
	b.t.Helper()
	lines := b.texts("ul.review li")
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, s) }) {
		b.fatalf("no line of the review mentions %q; it has:\n  %s", s, strings.Join(lines, "\n  "))
	}
}

// TestBackAndReloadAfterFieldError (issue 18, item 1): a form post with a
// field error used to be answered with the page of the error itself, so
// reloading it sent the form again, and Back to it, once the error was
// fixed and the next page reached, showed Chromium's "Confirm Form
// Resubmission" (ERR_CACHE_MISS). A refused post now redirects to the
// form's page, which shows the errors: reload and Back show the form.
func TestBackAndReloadAfterFieldError(t *testing.T) {
	srv := startServer(t)
	srv.seedAdmin(t)
	main := newTab(t, srv.url)
	main.signIn(adminEmail, password, "/connectors")

	// toNameStep starts the wizard for a partner sending to flowgate and
	// leaves it on step 2, Name.
	toNameStep := func(b *tab) {
		b.t.Helper()
		b.startWizard()
		b.choose("from", "partner")
		b.choose("to", "flowgate")
		b.clickOK(nextButton, "Next on step 1")
		b.atStep(2, "Name")
	}

	t.Run("wizard: reload on a step that shows an error", func(t *testing.T) {
		b := main.in(t)
		toNameStep(b)
		b.fill("#comment", "Bank statements from Contoso")
		refused := b.clickPost(nextButton)
		b.atStep(2, "Name")
		b.wantFieldError("name", "#name", "enter a name")
		b.shot("wizard-2-name-error")

		b.reload("Reload on the step with the error")
		b.atStep(2, "Name")
		b.mustExist(`form[method=post] ` + nextButton)
		b.wantFieldError("name", "#name", "enter a name")
		b.wantValue("#comment", "Bank statements from Contoso")
		b.shot("wizard-2-name-error-reloaded")

		// The error is still the draft's: fixing it goes on.
		b.fill("#name", "Contoso Bank")
		b.clickOK(nextButton, "Next on step 2 after the reload")
		b.atStep(3, "Identify the sender")
		b.wantRedirected(refused, "Next with no name")
	})

	t.Run("wizard: Back after fixing an error", func(t *testing.T) {
		b := main.in(t)
		toNameStep(b)
		b.fill("#comment", "Statements from Fabrikam")
		refused := b.clickPost(nextButton)
		b.atStep(2, "Name")
		b.wantFieldError("name", "#name", "enter a name")
		b.fill("#name", "Fabrikam")
		b.clickOK(nextButton, "Next on step 2")
		b.atStep(3, "Identify the sender")
		b.shot("wizard-3-identify")

		// The browser's Back, not the wizard's: the page before step 3 in
		// the history is the one that showed the error. Chromium fetches
		// it again (the step, without the error fixed since) or restores
		// it from its back/forward cache as it was left (the error still
		// under the name typed since); either is the wizard's step, with
		// what was typed.
		b.historyBack("Back from step 3 in the browser's history")
		b.atStep(2, "Name")
		b.mustExist(`form[method=post] ` + nextButton)
		b.wantValue("#name", "Fabrikam")
		b.wantValue("#comment", "Statements from Fabrikam")
		b.shot("wizard-2-name-after-back")

		// The page is the wizard's, alive: Next goes on again.
		b.clickByScript(nextButton, `/wizard/[0-9a-f]+/3`)
		b.atStep(3, "Identify the sender")
		b.wantRedirected(refused, "Next with no name")
	})

	t.Run("accepted domains: reload and Back after a field error", func(t *testing.T) {
		b := main.in(t)
		b.wantStatus(b.open("/domains"), 200, "open the accepted domains")
		b.fill("#domain", "not a domain")
		refused := b.clickPost(`form[action="/domains"] button[type=submit]`)
		b.wantPath(`/domains`)
		b.wantFieldError("domain", "#domain", `"not a domain"`)
		b.wantValue("#domain", "not a domain")
		b.shot("domains-error")

		// The page shows a refused form's errors once; reloaded, it is
		// the page again, with nothing sent.
		b.reload("Reload on the accepted domains with the error")
		b.wantPath(`/domains`)
		b.mustExist(`form[action="/domains"] #domain`)
		b.shot("domains-error-reloaded")

		b.fill("#domain", "fabrikam.com")
		b.clickOK(`form[action="/domains"] button[type=submit]`, "Add domain")
		b.wantPath(`/domains`)
		b.wantText(`.notice[role=status]`, "Added fabrikam.com.")

		b.historyBack("Back from the added domain in the browser's history")
		b.wantPath(`/domains`)
		b.mustExist(`form[action="/domains"] #domain`)
		b.shot("domains-after-back")

		// Nothing was sent twice: one domain, the one added.
		list, err := srv.st.ListAcceptedDomains(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].Domain != "fabrikam.com" {
			t.Fatalf("accepted domains %+v, want fabrikam.com only", list)
		}
		b.wantRedirected(refused, "Add domain with a bad domain")
	})

	if d := main.openedDialogs(); len(d) > 0 {
		t.Errorf("JavaScript dialogs opened: %q", d)
	}
}

// TestWizardStartsWithChoicesMade (issue 18, item 2): every step starts
// with a choice made, and a value typed under a choice that is not the
// one made is called out next to its box, instead of being dropped
// without a word.
func TestWizardStartsWithChoicesMade(t *testing.T) {
	srv := startServer(t)
	srv.seedAdmin(t)
	main := newTab(t, srv.url)
	main.signIn(adminEmail, password, "/connectors")

	t.Run("a new wizard has partner → flowgate chosen", func(t *testing.T) {
		b := main.in(t)
		b.startWizard()
		b.wantChecked(`input[name=from][value=partner]`, true)
		b.wantChecked(`input[name=to][value=flowgate]`, true)
		b.shot("scenario-preselected")
		b.clickOK(nextButton, "Next on step 1 with the preselected scenario")
		b.atStep(2, "Name")
	})

	t.Run("outbound to a partner: MX record chosen; a smart host typed under it", func(t *testing.T) {
		b := main.in(t)
		b.startWizard()
		b.choose("from", "flowgate")
		b.choose("to", "partner")
		b.clickOK(nextButton, "Next on step 1")
		b.atStep(2, "Name")
		b.fill("#name", "To Fabrikam")
		b.clickOK(nextButton, "Next on step 2")
		b.atStep(3, "When to use")
		b.fill("#recipient_domains", "fabrikam.com")
		b.clickOK(nextButton, "Next on step 3")

		b.atStep(4, "Routing")
		b.wantChecked(`input[name=route_by][value=mx]`, true)
		b.wantChecked(`input[name=route_by][value=smarthosts]`, false)
		b.shot("routing-mx-preselected")
		b.fill("#smart_hosts", "mail.fabrikam.com")
		b.postRefused(nextButton, "Next with a smart host typed and the MX record chosen")
		b.atStep(4, "Routing")
		b.wantFieldError("smart_hosts", "#smart_hosts", "used only with “Route email through these smart hosts”")
		b.wantValue("#smart_hosts", "mail.fabrikam.com")
		b.wantChecked(`input[name=route_by][value=mx]`, true)
		b.shot("routing-smart-host-under-mx")

		b.choose("route_by", "smarthosts")
		b.clickOK(nextButton, "Next with smart hosts chosen")
		b.atStep(5, "TLS")
		b.clickOK(nextButton, "Next on step 5")
		b.atStep(6, "Review")
		b.wantReview("ul.review li", "Deliver to the smart host mail.fabrikam.com.")
		b.wantSaveDisabled(false)
		b.shot("routing-review")
	})

	t.Run("inbound from a partner: TLS required; an IP range typed under an unticked restriction", func(t *testing.T) {
		b := main.in(t)
		b.startWizard()
		b.choose("from", "partner")
		b.choose("to", "flowgate")
		b.clickOK(nextButton, "Next on step 1")
		b.atStep(2, "Name")
		b.fill("#name", "Contoso Bank")
		b.clickOK(nextButton, "Next on step 2")
		b.atStep(3, "Identify the sender")
		b.wantChecked(`input[name=identify_by][value=domain]`, true)
		b.fill("#sender_domains", "contosobank.com")
		b.clickOK(nextButton, "Next on step 3")

		b.atStep(4, "Security restrictions")
		b.wantChecked(`input[name=require_tls]`, true)
		b.wantChecked(`input[name=restrict_ips]`, false)
		b.shot("restrictions-tls-preselected")
		b.fill("#sender_ips", "203.0.113.0/24")
		b.postRefused(nextButton, "Next with an IP range typed and the IP restriction unticked")
		b.atStep(4, "Security restrictions")
		b.wantFieldError("sender_ip_addresses", "#sender_ips", "used only with “Reject email messages if they aren't sent from within these IP address ranges”")
		b.wantValue("#sender_ips", "203.0.113.0/24")
		b.wantChecked(`input[name=require_tls]`, true)
		b.wantChecked(`input[name=restrict_ips]`, false)
		b.shot("restrictions-ips-unticked")

		b.tick("restrict_ips", true)
		b.clickOK(nextButton, "Next with the IP restriction ticked")
		b.atStep(6, "Review")
		b.wantReview("ul.review li", "Reject mail from contosobank.com that is not sent over TLS.")
		b.wantReviewLineWith("203.0.113.0/24")
		b.wantSaveDisabled(false)
		b.shot("restrictions-review")
	})
}

// TestTwoTabsOnOneConnector (issue 18, item 7): two admins, each in a
// browser of their own, work on the same connector.
func TestTwoTabsOnOneConnector(t *testing.T) {
	ctx := context.Background()

	// (a) Both start editing revision 1; the second Save finds revision 2
	// and says who saved it, links it, keeps the answers and offers to
	// save them as revision 3.
	t.Run("save refused by a newer revision", func(t *testing.T) {
		srv := startServer(t)
		srv.seedAdmin(t)
		srv.seedOps(t)
		bank, err := srv.st.CreateConnector(ctx, testutil.TestActor, &connector.InboundSpec{
			Common:        connector.Common{Name: "Contoso Bank", ConnectorType: connector.Partner},
			SenderDomains: []string{"contosobank.com"}, RequireTLS: true,
		}, true)
		if err != nil {
			t.Fatal(err)
		}
		page := fmt.Sprintf("/connectors/inbound/%d", bank.ID)
		edit := `.pagehead a[aria-label="Edit Contoso Bank"]`

		a := newTab(t, srv.url)
		b := newTab(t, srv.url)
		b.shots = a.shots // one numbering for the test's screenshots
		a.signIn(opsEmail, password, "/connectors")
		b.signIn(adminEmail, password, "/connectors")

		// Both open the pencil on revision 1.
		for _, x := range []*tab{a, b} {
			x.wantStatus(x.open(page), 200, "open Contoso Bank")
			x.clickOK(edit, "✎ Edit Contoso Bank")
			x.atStep(1, "Scenario")
			x.wantText(`.banner[role=note]`, "Saving creates revision 2.")
		}

		// Tab B changes the sender domains and reaches the review.
		b.clickOK(nextButton, "B: Next on step 1")
		b.atStep(2, "Name")
		b.clickOK(nextButton, "B: Next on step 2")
		b.atStep(3, "Identify the sender")
		b.fill("#sender_domains", "contosobank.com\ncontosobank.org")
		b.clickOK(nextButton, "B: Next on step 3")
		b.atStep(4, "Security restrictions")
		b.clickOK(nextButton, "B: Next on step 4")
		b.atStep(6, "Review")
		b.wantSaveDisabled(false)

		// Tab A changes them otherwise and saves first: revision 2.
		a.clickOK(nextButton, "A: Next on step 1")
		a.atStep(2, "Name")
		a.clickOK(nextButton, "A: Next on step 2")
		a.atStep(3, "Identify the sender")
		a.fill("#sender_domains", "contosobank.com\ncontosobank.net")
		a.clickOK(nextButton, "A: Next on step 3")
		a.atStep(4, "Security restrictions")
		a.clickOK(nextButton, "A: Next on step 4")
		a.atStep(6, "Review")
		a.clickOK(saveButton, "A: Save")
		a.wantPath(regexp.QuoteMeta(page))
		a.wantText(`.notice[role=status]`, "Saved Contoso Bank as revision 2.")
		a.shot("tab-a-saved-revision-2")
		if c, err := srv.st.GetConnector(ctx, connector.Inbound, bank.ID); err != nil || c.Revision != 2 {
			t.Fatalf("after tab A's save: %+v %v, want revision 2", c, err)
		}

		// Tab B saves: refused, and told why.
		saved := b.clickPost(saveButton)
		b.atStep(6, "Review")
		b.mustExist("#newer-revision")
		b.wantText("#newer-revision", opsEmail+" saved revision 2 of this connector at ")
		b.wantText("#newer-revision", "after you started editing revision 1")
		b.wantText(`#newer-revision a[href=`+q(page+"#revisions")+`]`, "See revision 2 and what changed")
		// B's answers are still the review's.
		b.wantReview("ul.review li", "Apply to mail arriving at flowgate from senders in contosobank.com and contosobank.org.")
		b.wantSaveDisabled(true)
		over := `#newer-revision button[name=nav][value=overwrite]`
		b.wantText(over, "Save my answers as revision 3")
		b.wantRedirected(saved, "B: Save refused by revision 2")
		b.shot("tab-b-newer-revision")

		// Reload shows the same, sends nothing.
		b.reload("B: reload the refused review")
		b.wantText("#newer-revision", "after you started editing revision 1")
		if c, err := srv.st.GetConnector(ctx, connector.Inbound, bank.ID); err != nil || c.Revision != 2 {
			t.Fatalf("after tab B's refused save: %+v %v, want still revision 2", c, err)
		}

		b.clickOK(over, "B: Save my answers as revision 3")
		b.wantPath(regexp.QuoteMeta(page))
		b.wantText(`.notice[role=status]`, "Saved Contoso Bank as revision 3.")
		b.shot("tab-b-saved-revision-3")
		c, err := srv.st.GetConnector(ctx, connector.Inbound, bank.ID)
		if err != nil {
			t.Fatal(err)
		}
		spec, ok := c.Spec.(*connector.InboundSpec)
		if c.Revision != 3 || !ok || !slices.Equal(spec.SenderDomains, []string{"contosobank.com", "contosobank.org"}) {
			t.Fatalf("after tab B's save over revision 2: revision %d, spec %+v; want revision 3 with B's sender domains", c.Revision, c.Spec)
		}
		revs, err := srv.st.ListRevisions(ctx, connector.Inbound, bank.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(revs) != 3 {
			t.Fatalf("%d revisions, want 3", len(revs))
		}
		for _, x := range []*tab{a, b} {
			if d := x.openedDialogs(); len(d) > 0 {
				t.Errorf("JavaScript dialogs opened: %q", d)
			}
		}
	})

	// (b) A Validate page opened for revision 1 validates nothing once
	// revision 2 has been saved: it shows revision 2 and says why.
	t.Run("stale Validate page", func(t *testing.T) {
		srv := startValidatingServer(t)
		srv.seedAdmin(t)
		srv.seedOps(t)
		sinkA := testutil.NewSink(t, testutil.SinkOptions{})
		sinkB := testutil.NewSink(t, testutil.SinkOptions{})
		const name = "To Fabrikam"
		const rcpt = "postmaster@fabrikam.test"
		conn, err := srv.st.CreateConnector(ctx, testutil.TestActor, &connector.OutboundSpec{
			Common:           connector.Common{Name: name, ConnectorType: connector.Partner},
			RecipientDomains: []string{"fabrikam.test"}, SmartHosts: []string{sinkA.Addr},
			TLSSettings: connector.TLSOpportunistic, ValidationRecipients: []string{rcpt},
		}, true)
		if err != nil {
			t.Fatal(err)
		}
		page := fmt.Sprintf("/connectors/outbound/%d", conn.ID)

		a := newTab(t, srv.url)
		b := newTab(t, srv.url)
		b.shots = a.shots // one numbering for the test's screenshots
		a.signIn(adminEmail, password, "/connectors")
		a.wantStatus(a.open(page+"/validate"), 200, "A: open the Validate page")
		a.wantText("h1", "Validate revision 1 of "+name)
		a.wantValue("#recipients", rcpt)
		a.shot("tab-a-validate-revision-1")

		// Tab B saves revision 2, to another smart host.
		b.signIn(opsEmail, password, "/connectors")
		b.wantStatus(b.open(page), 200, "B: open the connector")
		b.clickOK(`.pagehead a[aria-label=`+q("Edit "+name)+`]`, "B: ✎ Edit")
		b.atStep(1, "Scenario")
		b.clickOK(nextButton, "B: Next on step 1")
		b.atStep(2, "Name")
		b.clickOK(nextButton, "B: Next on step 2")
		b.atStep(3, "When to use")
		b.clickOK(nextButton, "B: Next on step 3")
		b.atStep(4, "Routing")
		b.wantValue("#smart_hosts", sinkA.Addr)
		b.fill("#smart_hosts", sinkB.Addr)
		b.clickOK(nextButton, "B: Next on step 4")
		b.atStep(5, "TLS")
		b.clickOK(nextButton, "B: Next on step 5")
		b.atStep(6, "Review")
		b.clickOK(saveButton, "B: Save")
		b.wantText("h1", "Validate revision 2 of "+name)

		// Tab A, still showing revision 1, presses Run validation.
		run := a.clickPost(runButton)
		if runs, err := srv.st.ListValidations(ctx, conn.ID, 10); err != nil || len(runs) != 0 {
			a.fatalf("the stale Validate page started %d runs (%v); want none", len(runs), err)
		}
		if n := len(sinkA.Messages()) + len(sinkB.Messages()); n != 0 {
			a.fatalf("the sinks received %d messages from the stale page; want none", n)
		}
		a.wantPath(regexp.QuoteMeta(page + "/validate"))
		a.wantText("h1", "Validate revision 2 of "+name)
		msg := a.text(`form[action*="/validate"] .formerror[role=alert]`)
		if want := "Nothing was validated: this page was for revision 1, and revision 2 has been saved since by " + opsEmail + " at "; !strings.HasPrefix(msg, want) {
			a.fatalf("the form error says %q, want it to start with %q", msg, want)
		}
		if !strings.Contains(msg, "The page now shows revision 2") {
			a.fatalf("the form error says %q, want it to say that the page now shows revision 2", msg)
		}
		a.wantValue("#recipients", rcpt)
		a.wantRedirected(run, "A: Run validation on the stale page")
		a.shot("tab-a-stale-validate")

		// Run again: revision 2 is validated, at its smart host.
		a.runValidation(page, 2, "passed")
		runs, err := srv.st.ListValidations(ctx, conn.ID, 10)
		if err != nil || len(runs) != 1 || runs[0].Revision != 2 {
			t.Fatalf("runs after validating again: %d (%v), want one of revision 2", len(runs), err)
		}
		if len(sinkA.Messages()) != 0 || len(sinkB.Messages()) != 1 {
			t.Fatalf("sink A holds %d messages, sink B %d; want 0 and 1", len(sinkA.Messages()), len(sinkB.Messages()))
		}
		a.shot("tab-a-validated-revision-2")
		for _, x := range []*tab{a, b} {
			if d := x.openedDialogs(); len(d) > 0 {
				t.Errorf("JavaScript dialogs opened: %q", d)
			}
		}
	})
}
