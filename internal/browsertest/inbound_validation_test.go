package browsertest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/delivery"
	"github.com/flowgate/flowgate/internal/liveconfig"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/relay"
	"github.com/flowgate/flowgate/internal/testutil"
	"github.com/flowgate/flowgate/internal/testutil/webtest"
	"github.com/flowgate/flowgate/internal/validation"
)

// inboundServer is startValidatingServer with flowgate's SMTP relay
// running in the process too, as `flowgate serve` runs it, so that the
// Validate page of an inbound connector probes a real listener. No
// delivery workers run: what the relay accepts stays in the queue, where
// the test can see it.
type inboundServer struct {
	*server
	queue *queue.Writer
}

func startInboundValidatingServer(t *testing.T) *inboundServer {
	t.Helper()
	st := openSQLite(t)
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	live, err := liveconfig.Load(ctx, st, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	go live.Run(ctx)
	q := queue.NewWriter(st, log)
	ca := testutil.NewCA(t, "Test Root CA")
	rl := relay.New(relay.Config{Hostname: "gw.contoso.test", Certificate: ca.Issue(t, "gw.contoso.test", "gw.contoso.test"), ClientRoots: ca.Pool()}, live, q, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	go rl.Serve(ln)
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = rl.Shutdown(sctx)
		q.Close()
		cancel()
	})
	svc := &validation.Service{Store: st,
		Outbound: &validation.Outbound{Hostname: "gw.contoso.test", Resolver: &delivery.Resolver{}, Timeout: 5 * time.Second},
		Inbound:  &validation.Inbound{Relay: rl, Port: ln.Addr().(*net.TCPAddr).Port, Store: st, Hostname: "gw.contoso.test", Timeout: 5 * time.Second},
	}
	srv := webtest.Serve(t, st, webtest.Options{Validation: svc})
	return &inboundServer{server: &server{st: st, url: srv.URL}, queue: q}
}

// queuedFor lists the recipient rows of rcpt in the queue, after
// everything the relay handed to the queue writer has been committed:
// "status via connector" (the connector is empty when none routes it).
func (s *inboundServer) queuedFor(t *testing.T, rcpt string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.queue.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	var rows []struct{ Message, Recipient, Connector string }
	if err := s.st.DB().Raw(`SELECT m.status AS message, r.status AS recipient, r.connector AS connector
		FROM message_recipients r JOIN messages m ON m.id = r.message_id
		WHERE lower(r.address) = lower(?) AND m.status IN ('queued', 'deferred') ORDER BY r.id`, rcpt).Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%s/%s via %q", r.Message, r.Recipient, r.Connector))
	}
	return out
}

// atInboundValidate checks that the wizard's Save led to the Validate
// page of revision rev of an inbound connector, shown as the wizard's
// last step; it returns the path.
func (b *tab) atInboundValidate(rev int, name string) string {
	b.t.Helper()
	p := b.wantPath(`/connectors/inbound/[0-9]+/validate\?wizard=1`)
	b.wantText("h1", fmt.Sprintf("Validate revision %d of %s", rev, name))
	steps := b.texts(`ol.steps li`)
	if len(steps) == 0 || steps[len(steps)-1] != "Validate" {
		b.fatalf("the steps bar shows %q, want Validate last", steps)
	}
	if got := b.text(`ol.steps li[aria-current="step"]`); got != "Validate" {
		b.fatalf("current step is %q, want Validate", got)
	}
	return p
}

// TestInboundValidationFailsWhenTheMessageCouldNotArrive creates a partner
// connector in the wizard and validates it with a recipient in an accepted
// domain that no outbound connector routes: the test message could not
// arrive, so the run fails and says why, the revision cannot be activated,
// and the test message is not sent, so nothing waits in the queue to
// arrive later by surprise. Once an outbound connector routes the domain,
// the same run passes and the revision can be activated: the missing
// route was the cause.
func TestInboundValidationFailsWhenTheMessageCouldNotArrive(t *testing.T) {
	srv := startInboundValidatingServer(t)
	srv.seedAdmin(t)

	const (
		name   = "Contoso Bank"
		domain = "contoso.com"
		rcpt   = "statements@" + domain
	)
	main := newTab(t, srv.url)
	main.signIn(adminEmail, password, "/connectors")

	// Each part builds on the one before: stop at the first that fails.
	if !t.Run("accepted domain without an outbound route", func(t *testing.T) {
		b := main.in(t)
		b.wantStatus(b.open("/domains"), 200, "open the accepted domains")
		b.fill("#domain", domain)
		b.wantChecked(`input[name=domain_type][value=authoritative]`, true)
		b.clickOK(`form[action="/domains"] button[type=submit]`, "Add domain")
		b.wantPath(`/domains`)
		b.wantText(`.notice[role=status]`, "Added "+domain+".")
		if out, err := srv.st.ListConnectors(context.Background(), connector.Outbound); err != nil || len(out) != 0 {
			t.Fatalf("outbound connectors %v %v, want none: nothing routes %s", out, err, domain)
		}
	}) {
		return
	}

	var connPage, failedReport string
	if !t.Run("partner connector: validation fails, the message could not arrive", func(t *testing.T) {
		b := main.in(t)
		b.startWizard()
		b.choose("from", "partner")
		b.choose("to", "flowgate")
		b.clickOK(nextButton, "Next on step 1")
		b.atStep(2, "Name")
		b.fill("#name", name)
		b.clickOK(nextButton, "Next on step 2")
		b.atStep(3, "Identify the sender")
		b.fill("#sender_domains", "contosobank.com")
		b.clickOK(nextButton, "Next on step 3")
		b.atStep(4, "Security restrictions")
		b.tick("require_tls", true)
		b.clickOK(nextButton, "Next on step 4")
		b.atStep(6, "Review")
		b.wantReview("ul.review li", "Reject mail from contosobank.com that is not sent over TLS.")
		b.clickOK(saveButton, "Save")

		p := b.atInboundValidate(1, name)
		connPage = strings.TrimSuffix(p, "/validate?wizard=1")
		b.wantText(`.notice[role=status]`, "Saved "+name+" as revision 1.")
		b.fill("#recipients", rcpt)
		failedReport = b.runValidation(connPage, 1, "failed")

		// The probe got in and was attributed; flowgate accepted the
		// recipient, but nothing would carry it on: the step says so, and
		// what to do.
		b.wantStep("passed", "attribution", "")
		b.wantStep("failed", "RCPT TO "+rcpt, "flowgate accepts "+rcpt+" but could not deliver it")
		b.wantStep("failed", "RCPT TO "+rcpt, "no outbound connector routes it")
		b.wantStep("failed", "RCPT TO "+rcpt, "add an outbound connector that routes it")
		b.wantStep("failed", "test message", "not sent: 1 of its recipients could not be delivered")
		b.wantStep("failed", "test message", "must not wait in the queue to arrive later")
		b.wantTranscript("C: RCPT TO:<" + rcpt + ">")
		if tr := b.text("pre.transcript"); strings.Contains(tr, " C: DATA") {
			b.fatalf("the test message was sent (DATA) although it could not arrive:\n%s", tr)
		}

		// No Activate: the button is there, disabled.
		b.wantAbsent(`form[action$="/activate"]`, "the revision failed validation")
		if got := b.text(`.pagehead button[disabled]`); got != "Activate" {
			b.fatalf("the disabled button says %q, want Activate", got)
		}
		b.shot("inbound-report-failed-no-route")

		// The test message is not in the queue, to arrive once a route
		// exists.
		if q := srv.queuedFor(t, rcpt); len(q) != 0 {
			b.fatalf("the queue holds %q for %s after the failed run, want nothing", q, rcpt)
		}

		// The connector page offers no activation either.
		b.clickOK(`p.muted a[href=`+q(connPage)+`]`, "the breadcrumb to the connector")
		b.wantText("h1 .badge", "failed")
		b.wantText(".lead", "No revision carries mail yet")
		b.wantAbsent(`.pagehead form[action$="/activate"]`, "revision 1 failed validation")
		wantHistory(b, run{failedReport, "1", "✗ failed"})
		c, err := srv.st.GetConnector(context.Background(), connector.Inbound, mustID(b, connPage))
		if err != nil {
			t.Fatal(err)
		}
		if c.ActiveRevision != nil {
			b.fatalf("revision %d of %s is active after a failed run", *c.ActiveRevision, name)
		}
	}) {
		return
	}

	t.Run("with an outbound route for the domain, validation passes", func(t *testing.T) {
		b := main.in(t)
		// Mail for contoso.com leaves through the organization's own
		// server, by an active outbound connector.
		testutil.ActivateConnector(t, srv.st, &connector.OutboundSpec{Common: connector.Common{Name: "To our server", ConnectorType: connector.OnPremises},
			AllAcceptedDomains: true, SmartHosts: []string{"mail.contoso.com"}})

		b.wantStatus(b.open(failedReport), 200, "open the failed report")
		b.clickOK(`.pagehead a[href$="/validate"]`, "Validate again")
		b.wantText("h1", fmt.Sprintf("Validate revision %d of %s", 1, name))
		b.wantValue("#recipients", rcpt)
		passedReport := b.runValidation(connPage, 1, "passed")
		b.wantStep("passed", "RCPT TO "+rcpt, `routed through outbound connector "To our server"`)
		b.wantStep("passed", "test message", "flowgate accepted the test message and queued it")
		b.wantAbsent("tr.step-failed", "the run passed")
		b.mustExist(`form[action$="/activate"] button[type=submit]`)
		b.shot("inbound-report-passed-with-route")

		// The test message is queued, to go out through the route.
		if got := srv.queuedFor(t, rcpt); !slices.Equal(got, []string{`queued/queued via "To our server"`}) {
			b.fatalf("the queue holds %q for %s, want the test message queued via To our server", got, rcpt)
		}

		b.clickOK(`form[action$="/activate"] button[type=submit]`, "Activate revision 1 on the report")
		b.wantPath(regexp.QuoteMeta(connPage))
		b.wantText(`.notice[role=status]`, "Revision 1 of "+name+" is active: it carries mail from now on.")
		b.wantText("h1 .badge", "active")
		wantHistory(b, run{passedReport, "1", "✓ passed"}, run{failedReport, "1", "✗ failed"})
	})

	if d := main.openedDialogs(); len(d) > 0 {
		t.Errorf("JavaScript dialogs opened: %q", d)
	}
}

// mustID is the connector id at the end of a connector page's path.
func mustID(b *tab, page string) int64 {
	b.t.Helper()
	var id int64
	if _, err := fmt.Sscanf(page[strings.LastIndex(page, "/")+1:], "%d", &id); err != nil {
		b.fatalf("no connector id in %s: %v", page, err)
	}
	return id
}
