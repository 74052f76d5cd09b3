package browsertest

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/testutil"
)

// runButton is the Validate page's submit button.
const runButton = `form[action*="/validate"] button[type=submit]`

// TestValidateAndActivate creates an outbound connector in the wizard,
// validates it against a real SMTP sink and activates it, then edits it
// with the pencil twice: once to a smart host that refuses connections
// (validation fails, Activate is refused, revision 1 keeps carrying mail)
// and once to another sink (validation passes, revision 3 is activated
// from the connector page).
func TestValidateAndActivate(t *testing.T) {
	srv := startValidatingServer(t)
	srv.seedAdmin(t)
	sinkA := testutil.NewSink(t, testutil.SinkOptions{})
	sinkB := testutil.NewSink(t, testutil.SinkOptions{})
	dead := deadAddr(t)

	const name = "To Fabrikam"
	const rcpt = "postmaster@fabrikam.test"
	main := newTab(t, srv.url)
	main.signIn(adminEmail, password, "/connectors")

	var connPage, passedReport, failedReport string
	t.Run("new connector: validate and activate", func(t *testing.T) {
		b := main.in(t)
		b.startWizard()
		b.choose("from", "flowgate")
		b.choose("to", "partner")
		b.clickOK(nextButton, "Next on step 1")
		b.atStep(2, "Name")
		b.fill("#name", name)
		b.clickOK(nextButton, "Next on step 2")
		b.atStep(3, "When to use")
		b.fill("#recipient_domains", "fabrikam.test")
		b.clickOK(nextButton, "Next on step 3")
		b.atStep(4, "Routing")
		b.choose("route_by", "smarthosts")
		b.fill("#smart_hosts", sinkA.Addr)
		b.clickOK(nextButton, "Next on step 4")
		b.atStep(5, "TLS")
		b.wantChecked(`input[name=tls_settings][value=opportunistic]`, true)
		b.fill("#validation_recipients", rcpt)
		b.clickOK(nextButton, "Next on step 5")
		b.atStep(6, "Review")
		b.wantReview("ul.review li",
			"Deliver to the smart host "+sinkA.Addr+".",
			"Validate sends its test message to "+rcpt+".")
		b.clickOK(saveButton, "Save")

		// Save leads to the wizard's last step, Validate.
		p := b.atValidate(1, name)
		connPage = strings.TrimSuffix(p, "/validate?wizard=1")
		b.wantText(`.notice[role=status]`, "Saved "+name+" as revision 1.")
		b.wantValue("#recipients", rcpt)
		b.wantValue("#sender", "")
		if ph := js[string](b, `document.querySelector("#sender").placeholder`); ph != "flowgate-validation@gw.contoso.test" {
			b.fatalf("the sender's placeholder is %q, want the default sender", ph)
		}
		b.shot("validate-1-page")
		b.phone()
		b.wantNoSideScroll()
		b.shot("validate-1-page-phone")
		b.desktop()

		// A recipient that is not an address is shown next to the field,
		// with what was typed kept; nothing is run or sent.
		b.fill("#recipients", "not an address")
		b.fill("#sender", "admin@contoso.test")
		b.clickRefused(runButton, "Run validation with a bad recipient")
		b.wantFieldError("recipients", "#recipients", `"not an address"`)
		b.wantValue("#recipients", "not an address")
		b.wantValue("#sender", "admin@contoso.test")
		b.wantText("h1", fmt.Sprintf("Validate revision %d of %s", 1, name))
		b.shot("validate-1-error")
		if n := len(sinkA.Messages()); n != 0 {
			b.fatalf("sink A received %d messages from a refused run", n)
		}

		b.fill("#recipients", rcpt)
		b.fill("#sender", "")
		passedReport = b.runValidation(connPage, 1, "passed")
		// Steps name the host; the connect step's detail names the port.
		b.wantStep("passed", "connect to 127.0.0.1", "connected to "+sinkA.Addr)
		b.wantStep("passed", "RCPT TO "+rcpt, "250 ")
		b.wantStep("passed", "test message to 127.0.0.1", "accepted for 1 recipient(s)")
		b.wantAbsent("tr.step-failed", "the run passed")
		b.wantTranscript("C: RCPT TO:<"+rcpt+">", "C: MAIL FROM:<flowgate-validation@gw.contoso.test>")
		b.shot("report-1-passed")

		// The run sent a real message; the run is synchronous, so it is
		// in the sink by the time the report shows.
		msgs := sinkA.Messages()
		if len(msgs) != 1 || !slices.Equal(msgs[0].To, []string{rcpt}) || msgs[0].From != "flowgate-validation@gw.contoso.test" {
			t.Fatalf("sink A received %+v, want one test message to %s", msgs, rcpt)
		}
		if !strings.Contains(msgs[0].Data, name) {
			t.Errorf("the test message does not name the connector %q:\n%s", name, msgs[0].Data)
		}

		b.clickOK(`form[action$="/activate"] button[type=submit]`, "Activate revision 1 on the report")
		b.wantPath(regexp.QuoteMeta(connPage))
		b.wantText(`.notice[role=status]`, "Revision 1 of "+name+" is active: it carries mail from now on.")
		b.wantText("h1 .badge", "active")
		b.wantText(".lead", "Revision 1, the newest, carries mail.")
		b.wantAbsent(`.pagehead form[action$="/activate"]`, "revision 1 is already active")
		wantHistory(b, run{passedReport, "1", "✓ passed"})

		// The report of an active revision offers no Activate.
		b.wantStatus(b.open(passedReport), 200, "open the report again")
		b.wantText(`.notice[role=status]`, "Revision 1 is active: it carries mail.")
		b.wantAbsent(`form[action$="/activate"]`, "revision 1 is active")
		b.wantAbsent(`button[disabled]`, "revision 1 is active")
	})

	t.Run("edit to a dead host: validation fails", func(t *testing.T) {
		b := main.in(t)
		b.wantStatus(b.open(connPage), 200, "open the connector")
		b.pencilEditSmartHost(name, sinkA.Addr, dead)
		b.clickOK(saveButton, "Save")
		b.atValidate(2, name)
		b.wantText(`.notice[role=status]`, "Saved revision 2 of "+name+". The active revision keeps carrying mail until revision 2 is validated and activated.")
		b.wantValue("#recipients", rcpt)

		failedReport = b.runValidation(connPage, 2, "failed")
		b.wantStep("failed", "", "connection refused on "+dead)
		b.wantTranscript()
		b.wantAbsent(`form[action$="/activate"]`, "revision 2 failed validation")
		b.mustExist(`.pagehead button[disabled]`)
		if got := b.text(`.pagehead button[disabled]`); got != "Activate" {
			b.fatalf("the disabled button says %q, want Activate", got)
		}
		b.shot("report-2-failed")
		b.phone()
		b.shot("report-2-failed-phone")
		b.desktop()
		if n := len(sinkA.Messages()); n != 1 {
			b.fatalf("sink A holds %d messages after the failed run, want still 1", n)
		}

		// The list shows that revision 1 still carries mail, warns that
		// revision 2 failed, and links the report.
		b.wantStatus(b.open("/connectors"), 200, "open the connectors")
		row := `table.list tbody tr:has(a[href=` + q(connPage) + `])`
		if got := b.texts(row + ` td[data-label=Status] > *`); !slices.Equal(got, []string{"active", "revision 1 carries mail", "Newest: revision 2 failed validation"}) {
			b.fatalf("the list's status of %s is %q, want active, that revision 1 carries mail, and that revision 2 failed", name, got)
		}
		b.wantText(row+` td[data-label="Last validation"]`, "failed, revision 2, ")
		b.shot("list-failed")
		b.clickOK(row+` td[data-label="Last validation"] a`, "the list's Last validation link")
		b.wantPath(regexp.QuoteMeta(failedReport))
		b.wantText("h1", "Validation of revision 2: failed")

		// Revision 1 keeps carrying mail: the badge says so, the failure of
		// revision 2 is a warning of its own.
		b.clickOK(`p.muted a[href=`+q(connPage)+`]`, "the breadcrumb to the connector")
		b.wantText("h1 .badge", "active")
		b.wantText(".newest.warn", "Newest: revision 2 failed validation.")
		b.wantText(".lead", "Revision 1 carries mail; revision 2 is newer and waits for validation and activation.")
		b.wantAbsent(`.pagehead form[action$="/activate"]`, "revision 2 failed validation")
		b.wantText(`.pagehead a[href$="/validate"]`, "Validate revision 2")
		wantRevisions(b, "2 newest", "1 active")
	})

	t.Run("edit to another host: validate and activate from the connector page", func(t *testing.T) {
		b := main.in(t)
		b.wantStatus(b.open(connPage), 200, "open the connector")
		b.pencilEditSmartHost(name, dead, sinkB.Addr)
		b.clickOK(saveButton, "Save")
		b.atValidate(3, name)
		b.wantValue("#recipients", rcpt)
		report := b.runValidation(connPage, 3, "passed")
		b.wantStep("passed", "connect to 127.0.0.1", "connected to "+sinkB.Addr)
		b.wantStep("passed", "test message to 127.0.0.1", "accepted for 1 recipient(s)")
		b.mustExist(`form[action$="/activate"] button[type=submit]`)
		if msgs := sinkB.Messages(); len(msgs) != 1 || !slices.Equal(msgs[0].To, []string{rcpt}) {
			t.Fatalf("sink B received %+v, want one test message to %s", msgs, rcpt)
		}

		// The connector page offers the activation too.
		b.clickOK(`p.muted a[href=`+q(connPage)+`]`, "the breadcrumb to the connector")
		b.wantText("h1 .badge", "active")
		b.wantText(".newest", "Newest: revision 3 passed validation and waits for activation.")
		b.wantText(".lead", "Revision 1 carries mail; revision 3 is newer and waits for validation and activation.")
		b.wantText(`.pagehead form[action$="/activate"] button`, "Activate revision 3")
		b.clickOK(`.pagehead form[action$="/activate"] button`, "Activate revision 3 on the connector page")
		b.wantPath(regexp.QuoteMeta(connPage))
		b.wantText(`.notice[role=status]`, "Revision 3 of "+name+" is active: it carries mail from now on.")
		b.wantText("h1 .badge", "active")
		b.wantText(".lead", "Revision 3, the newest, carries mail.")
		wantRevisions(b, "3 active newest", "2", "1")
		wantHistory(b, run{report, "3", "✓ passed"}, run{failedReport, "2", "✗ failed"}, run{passedReport, "1", "✓ passed"})
		b.shot("connector-history")
		b.phone()
		b.wantNoSideScroll()
		b.shot("connector-history-phone")
		b.desktop()

		// Each history row opens its report.
		b.clickOK(`#validations a[href=`+q(failedReport)+`]`, "the failed run's Report and transcript")
		b.wantText("h1", "Validation of revision 2: failed")
		b.wantText(`.banner[role=note]`, "Revision 2 is not the newest: revision 3 was saved since.")
	})

	if d := main.openedDialogs(); len(d) > 0 {
		t.Errorf("JavaScript dialogs opened: %q", d)
	}
}

// deadAddr is a 127.0.0.1 address nothing listens on: a port opened and
// closed again, so connecting to it is refused.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// atValidate checks that the wizard's Save led to the Validate page of
// revision rev, shown as the wizard's seventh step; it returns the path.
func (b *tab) atValidate(rev int, name string) string {
	b.t.Helper()
	p := b.wantPath(`/connectors/outbound/[0-9]+/validate\?wizard=1`)
	b.wantText("h1", fmt.Sprintf("Validate revision %d of %s", rev, name))
	steps := b.texts(`ol.steps li`)
	want := []string{"Scenario", "Name", "When to use", "Routing", "TLS", "Review", "Validate"}
	if !slices.Equal(steps, want) {
		b.fatalf("the steps bar shows %q, want %q", steps, want)
	}
	if got := b.text(`ol.steps li[aria-current="step"]`); got != "Validate" {
		b.fatalf("current step is %q, want Validate", got)
	}
	if n := js[int](b, `document.querySelectorAll("ol.steps li.done").length`); n != 6 {
		b.fatalf("%d steps are marked done, want the 6 before Validate", n)
	}
	return p
}

// runValidation presses Run validation and checks the report it leads
// to; it returns the report's path.
func (b *tab) runValidation(connPage string, rev int, result string) string {
	b.t.Helper()
	b.clickOK(runButton, "Run validation")
	// The run's page reloads itself until the run ends, then shows the report.
	p := b.waitPath(regexp.QuoteMeta(connPage) + `/validations/[0-9]+`)
	// A pass is a confirmation; a failure a warning.
	flash, where := fmt.Sprintf("Revision %d passed validation.", rev), `.notice[role=status]`
	if result == "failed" {
		flash, where = fmt.Sprintf("Revision %d failed validation;", rev), `.banner[role=alert]`
	}
	b.wantText(where, flash)
	b.wantText("h1", fmt.Sprintf("Validation of revision %d: %s", rev, result))
	b.wantText("h1 .badge", result)
	// The headings are upper case on screen: compare their source text.
	if head := js[[]string](b, `Array.from(document.querySelectorAll("table.steps-table thead th"), e => e.textContent.trim())`); !slices.Equal(head, []string{"Step", "Result", "Time", "Detail"}) {
		b.fatalf("steps table columns %q", head)
	}
	return p
}

// wantStep checks that the report has a step with the result (passed,
// failed, skipped) whose name starts with name and whose detail contains
// detail.
func (b *tab) wantStep(result, name, detail string) {
	b.t.Helper()
	rows := b.rows("table.steps-table tbody tr.step-" + result)
	for _, r := range rows {
		if len(r) == 4 && strings.HasPrefix(r[0], name) && strings.Contains(r[1], result) &&
			regexp.MustCompile(`^(under 0\.1|[0-9]+(\.[0-9])?) s$`).MatchString(r[2]) && strings.Contains(r[3], detail) {
			return
		}
	}
	b.fatalf("no %s step %q with the detail %q; the steps:\n%q", result, name, detail, b.rows("table.steps-table tbody tr"))
}

// wantTranscript checks that the report shows a transcript with a line
// ending in each of lines (a line starts with the time and the peer:
// "   0.001s  [127.0.0.1:40123] C: RCPT TO:<…>").
func (b *tab) wantTranscript(lines ...string) {
	b.t.Helper()
	got := b.text("pre.transcript")
	if got == "" {
		b.fatalf("the transcript is empty")
	}
	for _, l := range lines {
		if !slices.ContainsFunc(strings.Split(got, "\n"), func(s string) bool { return strings.HasSuffix(s, " "+l) }) {
			b.fatalf("the transcript lacks the line %q:\n%s", l, got)
		}
	}
}

// pencilEditSmartHost presses ✎ Edit on the connector page, replaces the
// smart host and goes on to the review step.
func (b *tab) pencilEditSmartHost(name, from, to string) {
	b.t.Helper()
	b.clickOK(`.pagehead a[aria-label=`+q("Edit "+name)+`]`, "✎ Edit on the connector page")
	b.atStep(1, "Scenario")
	b.clickOK(nextButton, "Next on step 1")
	b.atStep(2, "Name")
	b.clickOK(nextButton, "Next on step 2")
	b.atStep(3, "When to use")
	b.clickOK(nextButton, "Next on step 3")
	b.atStep(4, "Routing")
	b.wantChecked(`input[name=route_by][value=smarthosts]`, true)
	b.wantValue("#smart_hosts", from)
	b.fill("#smart_hosts", to)
	b.clickOK(nextButton, "Next on step 4")
	b.atStep(5, "TLS")
	b.wantValue("#validation_recipients", "postmaster@fabrikam.test")
	b.clickOK(nextButton, "Next on step 5")
	b.atStep(6, "Review")
	b.wantReview("ul.review li", "Deliver to the smart host "+to+".")
}

// run is one row of a connector's Validation history.
type run struct {
	report, revision, result string
}

// wantHistory checks the connector page's Validation history, newest
// first: each row's revision, result and the report it links.
func wantHistory(b *tab, want ...run) {
	b.t.Helper()
	var got []run
	for _, r := range js[[][]string](b, `Array.from(document.querySelectorAll("#validations tbody tr"), tr => {
		const a = tr.querySelector("a");
		return [a && a.innerText.trim() === "Report and transcript" ? a.getAttribute("href") : "", tr.cells[1].innerText.trim(), tr.cells[2].innerText.trim(), tr.cells[3].innerText.trim()];
	})`) {
		// The console shows who ran it as the plain address.
		if r[3] != adminEmail {
			b.fatalf("a run in the history is by %q, want %s", r[3], adminEmail)
		}
		got = append(got, run{r[0], r[1], r[2]})
	}
	if !slices.Equal(got, want) {
		b.fatalf("validation history %q, want %q", got, want)
	}
}
