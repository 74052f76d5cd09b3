package console_test

import (
	"context"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/delivery"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
	"github.com/flowgate/flowgate/internal/testutil/webtest"
	"github.com/flowgate/flowgate/internal/validation"
)

// serveWithValidation serves the console with outbound validation.
func serveWithValidation(t *testing.T, st *store.Store) *httptest.Server {
	t.Helper()
	svc := &validation.Service{Store: st, Outbound: &validation.Outbound{Hostname: "gw.contoso.test", Resolver: &delivery.Resolver{}, Timeout: 5 * time.Second}}
	return webtest.Serve(t, st, webtest.Options{Validation: svc})
}

var (
	reportRE  = regexp.MustCompile(`^/connectors/outbound/\d+/validations/\d+$`)
	runningRE = regexp.MustCompile(`^/connectors/outbound/\d+/validations/running/[0-9a-f]+$`)
)

// waitForReport follows a started run: its page shows the steps so far and
// reloads itself until the run ends, then redirects to the report. It
// returns that redirect.
func waitForReport(t *testing.T, b *browser, started page) page {
	t.Helper()
	if started.Status != http.StatusSeeOther || !runningRE.MatchString(started.Location) {
		t.Fatalf("run: %d %q %s", started.Status, started.Location, started.Body)
	}
	for {
		r := b.get(started.Location)
		switch {
		case r.Status == http.StatusSeeOther && reportRE.MatchString(r.Location):
			return r
		case r.Status == http.StatusOK:
			r.has(t, "Validating revision", `<meta http-equiv="refresh" content="1">`)
			time.Sleep(20 * time.Millisecond)
		default:
			t.Fatalf("running page: %d %q %s", r.Status, r.Location, r.Body)
		}
	}
}

func TestValidateAndActivateInTheConsole(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		createUser(t, st, "admin@contoso.com", store.RoleAdmin)
		createUser(t, st, "viewer@contoso.com", store.RoleViewer)
		srv := serveWithValidation(t, st)
		b := newBrowser(t, srv)
		b.signIn("admin@contoso.com")
		sink := testutil.NewSink(t, testutil.SinkOptions{})

		// The wizard ends at the Validate step.
		w := startWizard(t, b, "/connectors/new")
		w.next("1", "2", "from", "flowgate", "to", "partner")
		w.next("2", "3", "name", "To Fabrikam", "enabled", "on")
		w.next("3", "4", "use", "domains", "recipient_domains", "fabrikam.test")
		w.next("4", "5", "route_by", "smarthosts", "smart_hosts", sink.Addr)
		w.next("5", "6", "tls_settings", "opportunistic", "validation_recipients", "postmaster@fabrikam.test")
		r := b.post(w.base+"/6", "nav", "save")
		if r.Status != http.StatusSeeOther || !strings.HasSuffix(r.Location, "/validate?wizard=1") {
			t.Fatalf("save: %d %q", r.Status, r.Location)
		}
		href := strings.TrimSuffix(r.Location, "/validate?wizard=1")
		form := b.get(r.Location)
		form.has(t, "Validate revision 1 of To Fabrikam", `aria-current="step">Validate<`, "postmaster@fabrikam.test", "Run validation")

		// Bad input: an error next to the field, nothing run.
		// (The refused post redirects to the form, with ?wizard=1 kept.)
		r = b.post(href+"/validate?wizard=1", "recipients", "not an address", "revision", "1")
		if r.Location != href+"/validate?wizard=1" {
			t.Fatalf("refused run goes to %q", r.Location)
		}
		r.wantFieldError(t, "recipients", "not an address").has(t, `aria-current="step">Validate<`)
		r = b.post(href+"/validate", "recipients", "postmaster@fabrikam.test", "sender", "bad sender", "revision", "1")
		r.wantFieldError(t, "sender", "bad sender").has(t, `value="bad sender"`)

		// Activate before validating: refused, with a warning on the
		// connector's page.
		r = b.post(href+"/activate", "revision", "1")
		if r.Status != http.StatusSeeOther || r.Location != href {
			t.Fatalf("activate before validate: %d %q", r.Status, r.Location)
		}
		b.follow(r).has(t, "Nothing was activated: revision 1 of To Fabrikam has not passed validation")

		// A passing run: the report with steps and transcript, and Activate.
		r = b.post(href+"/validate", "recipients", "postmaster@fabrikam.test\nsales@fabrikam.test", "sender", "admin@contoso.com", "revision", "1")
		r = waitForReport(t, b, r)
		report := b.follow(r)
		report.has(t, "Revision 1 passed validation.", "Validation of revision 1:", "passed", "RCPT TO sales@fabrikam.test", "C: MAIL FROM:<admin@contoso.com>", "Activate revision 1", "Transcript")
		if m := sink.Wait(t, 1, 5*time.Second); len(m[0].To) != 2 || m[0].From != "admin@contoso.com" {
			t.Fatalf("test message: %+v", m[0])
		}
		reportPath := r.Location
		detail := b.get(href)
		detail.has(t, "Validation history", "Report and transcript", "Activate revision 1", `class="badge validated"`)

		// A viewer reads the report but cannot validate or activate.
		viewer := newBrowser(t, srv)
		viewer.signIn("viewer@contoso.com")
		viewer.get(reportPath).lacks(t, "Activate revision 1", "Validate again")
		if r := viewer.get(href + "/validate"); r.Status != http.StatusForbidden {
			t.Fatalf("viewer validate page: %d", r.Status)
		}
		if r := viewer.post(href+"/activate", "revision", "1"); r.Status != http.StatusForbidden {
			t.Fatalf("viewer activate: %d", r.Status)
		}

		r = b.post(href+"/activate", "revision", "1")
		if r.Status != http.StatusSeeOther {
			t.Fatalf("activate: %d %s", r.Status, r.Body)
		}
		b.follow(r).has(t, "Revision 1 of To Fabrikam is active", `class="badge active"`, "Revision 1, the newest, carries mail.")

		// Edit to a dead host: the run fails with the reason, the
		// connector is "failed" with the report one click away, and
		// activation is refused; revision 1 stays active.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := ln.Addr().String()
		ln.Close()
		w = startWizard(t, b, href+"/edit")
		w.next("1", "2", "from", "flowgate", "to", "partner")
		w.next("2", "3", "name", "To Fabrikam", "enabled", "on")
		w.next("3", "4", "use", "domains", "recipient_domains", "fabrikam.test")
		w.next("4", "5", "route_by", "smarthosts", "smart_hosts", dead)
		w.next("5", "6", "tls_settings", "opportunistic", "validation_recipients", "postmaster@fabrikam.test")
		r = b.post(w.base+"/6", "nav", "save")
		b.follow(r).has(t, "Validate revision 2 of To Fabrikam", "The active revision keeps carrying mail until revision 2 is validated and activated.")
		// A Validate page still showing revision 1 (another tab) validates
		// nothing: it says revision 2 was saved, by whom, and shows it.
		stale := b.post(href+"/validate", "recipients", "postmaster@fabrikam.test", "revision", "1")
		if stale.Status != http.StatusSeeOther || stale.Location != href+"/validate" {
			t.Fatalf("stale validate: %d %q", stale.Status, stale.Location)
		}
		b.follow(stale).has(t, "Nothing was validated: this page was for revision 1, and revision 2 has been saved since by admin@contoso.com", "Validate revision 2 of To Fabrikam")
		if runs, err := st.ListValidations(ctx, onlyConnector(t, st, connector.Outbound).ID, 10); err != nil || len(runs) != 1 {
			t.Fatalf("the stale page started a run: %d runs, %v", len(runs), err)
		}
		r = waitForReport(t, b, b.post(href+"/validate", "recipients", "postmaster@fabrikam.test", "revision", "2"))
		failed := b.follow(r)
		failed.has(t, "Revision 2 failed validation", "connection refused on "+dead, "✗ failed")
		failed.lacks(t, "Activate revision 2")
		list := b.get("/connectors")
		// Revision 1 still carries mail: the badge says so, and the failure
		// is a warning about the newest revision.
		list.has(t, `class="badge active"`, `class="newest warn"`, "Newest: revision 2 failed validation", "failed, revision 2")
		if !strings.Contains(list.Body, `href="`+r.Location+`"`) {
			t.Fatalf("the list does not link the failed report %s:\n%s", r.Location, list.Body)
		}
		if r := b.post(href+"/activate", "revision", "2"); r.Status != http.StatusSeeOther {
			t.Fatalf("activating the failed revision: %d", r.Status)
		} else {
			b.follow(r).has(t, "Nothing was activated: revision 2")
		}
		c := onlyConnector(t, st, connector.Outbound)
		if c.ActiveRevision == nil || *c.ActiveRevision != 1 || c.Status() != store.StatusFailed {
			t.Fatalf("after the failed run: active %v status %s", c.ActiveRevision, c.Status())
		}
		// The old passed report no longer offers activation of a revision
		// that is not the newest... but revision 1 is active anyway.
		b.get(reportPath).has(t, "Revision 1 is active")
		entries, _ := st.ListAudit(ctx, store.AuditFilter{ConnectorID: c.ID})
		var actions []string
		for _, e := range entries {
			actions = append(actions, e.Action)
		}
		if got := strings.Join(actions, ","); got != "validate,update,activate,validate,create" {
			t.Fatalf("audit: %s", got)
		}
	})
}

// gate is a TCP proxy to addr that holds every connection until opened.
func gate(t *testing.T, addr string) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	open := make(chan struct{})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				<-open
				up, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	var once sync.Once
	return ln.Addr().String(), func() { once.Do(func() { close(open) }) }
}

// The run's page shows the steps done so far while the run waits on a
// slow server, and the report once it ends.
func TestValidationStepsShowWhileRunning(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	createUser(t, st, "admin@contoso.com", store.RoleAdmin)
	b := newBrowser(t, serveWithValidation(t, st))
	b.signIn("admin@contoso.com")
	sink := testutil.NewSink(t, testutil.SinkOptions{})
	slow, release := gate(t, sink.Addr)
	defer release()
	c, err := st.CreateConnector(context.Background(), testutil.TestActor, &connector.OutboundSpec{
		Common: connector.Common{Name: "Slow", ConnectorType: connector.Partner}, RecipientDomains: []string{"fabrikam.test"},
		SmartHosts: []string{slow}, ValidationRecipients: []string{"postmaster@fabrikam.test"},
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	started := b.post("/connectors/outbound/"+itoa(c.ID)+"/validate", "recipients", "postmaster@fabrikam.test", "revision", "1")
	if !runningRE.MatchString(started.Location) {
		t.Fatalf("run: %d %q", started.Status, started.Location)
	}
	// The connection is held: the page shows the steps so far.
	for {
		p := b.get(started.Location)
		if p.Status != http.StatusOK {
			t.Fatalf("running page: %d %q", p.Status, p.Location)
		}
		if strings.Contains(p.Body, "connect to "+slow) {
			p.has(t, "Validating revision 1 of Slow…", "resolve 127.0.0.1", "✓ passed", `<meta http-equiv="refresh" content="1">`)
			p.lacks(t, "test message to")
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	release()
	report := b.follow(waitForReport(t, b, started))
	report.has(t, "Revision 1 passed validation.", "test message to "+slow)
	// Another process (or an unknown run id) cannot show it.
	if r := b.get("/connectors/outbound/" + itoa(c.ID) + "/validations/running/0123abcd"); r.Status != http.StatusNotFound {
		t.Fatalf("unknown run: %d", r.Status)
	}
}

// While a host does not answer, the run's page says what the run waits
// for and for how long, counting up on each reload (a meta refresh: no
// JavaScript); the report then says, in seconds, that the host did not
// answer, and keeps the raw error in the transcript.
func TestValidationRunningSaysWhatItWaitsFor(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	createUser(t, st, "admin@contoso.com", store.RoleAdmin)
	b := newBrowser(t, serveWithValidation(t, st)) // a 5 s timeout per step
	b.signIn("admin@contoso.com")
	// A server that accepts connections and never greets.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	mute := ln.Addr().String()
	c, err := st.CreateConnector(context.Background(), testutil.TestActor, &connector.OutboundSpec{
		Common: connector.Common{Name: "Mute", ConnectorType: connector.Partner}, RecipientDomains: []string{"fabrikam.test"},
		SmartHosts: []string{mute}, ValidationRecipients: []string{"postmaster@fabrikam.test"},
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	started := b.post("/connectors/outbound/"+itoa(c.ID)+"/validate", "recipients", "postmaster@fabrikam.test", "revision", "1")
	if !runningRE.MatchString(started.Location) {
		t.Fatalf("run: %d %q", started.Status, started.Location)
	}
	waitingRE := regexp.MustCompile(`Now waiting for 127\.0\.0\.1 to greet — ([0-9]+) s of 5 s\.`)
	seen := map[string]bool{}
	deadline := time.Now().Add(4 * time.Second)
	for !seen["1"] {
		p := b.get(started.Location)
		if p.Status != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("running page: %d %q, waits seen %v\n%s", p.Status, p.Location, seen, p.Body)
		}
		if m := waitingRE.FindStringSubmatch(p.Body); m != nil {
			seen[m[1]] = true
			p.has(t, `<meta http-equiv="refresh" content="1">`, "connect to "+mute, "connected to "+mute)
			p.lacks(t, "<script")
		}
		time.Sleep(50 * time.Millisecond)
	}
	report := b.follow(waitForReport(t, b, started))
	report.has(t, "Revision 1 failed validation", "greeting from "+mute, "127.0.0.1 did not answer within 5 s (no greeting) — an SMTP server greets with 220 as soon as it accepts a connection")
	report.lacks(t, "Now waiting for")
	if !regexp.MustCompile(`S: \(read tcp [^)]*i/o timeout\)`).MatchString(html.UnescapeString(report.Body)) {
		t.Fatalf("the transcript lacks the raw error:\n%s", report.Body)
	}
}
