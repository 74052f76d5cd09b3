package browsertest

import (
	"context"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/testutil"
)

// TestValidationReportWording runs a validation against three smart
// hosts — one that speaks TLS and refuses one of two recipients, one that
// never greets, one that refuses connections — and reads the finished
// report as an admin does: each detail says what happened in words, with
// the servers' own text quoted and attributed, durations in seconds, and
// the raw replies and errors only in the transcript.
func TestValidationReportWording(t *testing.T) {
	srv := startValidatingServer(t) // 5 s per network step
	srv.seedAdmin(t)
	ca := testutil.NewCA(t, "Fabrikam Test CA")
	cert := ca.Issue(t, "mail.fabrikam.test", "mail.fabrikam.test")
	sink := testutil.NewSink(t, testutil.SinkOptions{Cert: &cert})
	sink.RejectRcpt("ghost@fabrikam.test", 550, [3]int{5, 1, 1}, "no such user here, try the ghost in the attic")
	mute := muteAddr(t)
	dead := deadAddr(t)
	c, err := srv.st.CreateConnector(context.Background(), testutil.TestActor, &connector.OutboundSpec{
		Common: connector.Common{Name: "To Fabrikam", ConnectorType: connector.Partner}, RecipientDomains: []string{"fabrikam.test"},
		SmartHosts: []string{sink.Addr, mute, dead}, ValidationRecipients: []string{"postmaster@fabrikam.test", "ghost@fabrikam.test"},
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	connPage := fmt.Sprintf("/connectors/outbound/%d", c.ID)

	b := newTab(t, srv.url)
	b.signIn(adminEmail, password, "/connectors")
	b.wantStatus(b.open(connPage+"/validate"), 200, "open Validate")
	b.wantValue("#recipients", "postmaster@fabrikam.test\nghost@fabrikam.test")
	// While the run waits on the host that never greets, its page says
	// so, and for how long; then it leads to the report.
	b.clickOK(runButton, "Run validation")
	b.shotRunning("running-waiting", "#waiting", "Now waiting for 127.0.0.1 to greet — ", " s of 5 s.")
	b.waitPath(regexp.QuoteMeta(connPage) + `/validations/[0-9]+`)
	b.wantText(`.banner[role=alert]`, "Revision 1 failed validation;") // a failure is a warning, not a blue notice
	b.wantText("h1", "Validation of revision 1: failed")

	// The TLS facts, in words.
	b.wantStep("passed", "greeting from 127.0.0.1", "127.0.0.1 greeted flowgate (220); the server said: “sink.test ESMTP Service Ready”")
	b.wantStep("passed", "STARTTLS with 127.0.0.1", "connected over TLS 1.3 (cipher ")
	b.wantStep("passed", "certificate of 127.0.0.1", "the certificate names mail.fabrikam.test and is issued by Fabrikam Test CA, which flowgate does not trust; it expires ")
	b.wantStep("passed", "certificate of 127.0.0.1", "the TLS setting opportunistic encrypts without checking it")
	// The server's refusal is its own text, quoted and attributed.
	b.wantStep("failed", "RCPT TO ghost@fabrikam.test", "127.0.0.1 refused the recipient ghost@fabrikam.test: 550 5.1.1 (the server said: “no such user here, try the ghost in the attic”)")
	b.wantStep("passed", "RCPT TO postmaster@fabrikam.test", "127.0.0.1 accepted the recipient: 250 ")
	b.wantStep("passed", "test message to 127.0.0.1", "the test message was accepted for 1 recipient(s): 250 2.0.0 (the server said: “")
	// A host that does not answer, and one that refuses connections.
	b.wantStep("failed", "greeting from "+mute, "127.0.0.1 did not answer within 5 s (no greeting)")
	b.wantStep("failed", "connect to "+dead, "connection refused on "+dead+" — is the mail server running")

	// No developer output in the details: no Go values, no raw errors,
	// no milliseconds; the lead says how long the run took in seconds.
	for _, r := range b.rows("table.steps-table tbody tr") {
		for _, bad := range []string{"[]", " true", " false", "i/o timeout", "read tcp", "dial tcp", " ms", "<nil>"} {
			if strings.Contains(r[3], bad) {
				b.fatalf("the detail of %q reads like developer output (%q): %s", r[0], bad, r[3])
			}
		}
	}
	if lead := b.text(".lead"); !strings.Contains(lead, " s. ") || strings.Contains(lead, " ms") {
		b.fatalf("the lead does not say the run's time in seconds: %q", lead)
	}
	// The raw replies and errors stay in the transcript, unchanged.
	b.wantTranscript(
		"S: 550 5.1.1 no such user here, try the ghost in the attic",
		"S: 220 sink.test ESMTP Service Ready",
	)
	if tr := b.text("pre.transcript"); !strings.Contains(tr, "i/o timeout") || !strings.Contains(tr, "connect: connection refused") {
		b.fatalf("the transcript lacks the raw errors:\n%s", tr)
	}
	b.shot("report-wording")
	b.phone()
	b.wantNoSideScroll()
	b.shot("report-wording-phone")
	b.desktop()
}

// shotRunning waits until the self-reloading page shows an element sel
// whose text contains each of want, and saves a screenshot of it; a
// reload in the middle of either is tried again.
func (b *tab) shotRunning(name, sel string, want ...string) {
	b.t.Helper()
	for {
		got, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`(() => { const e = document.readyState === "complete" && document.querySelector(`+q(sel)+`); return e ? e.innerText : "" })()`))
		ok := err == nil
		for _, w := range want {
			ok = ok && strings.Contains(got, w)
		}
		if ok {
			if png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100)); err == nil {
				if err := os.WriteFile(b.shots.next(name), png, 0o644); err != nil {
					b.t.Fatal(err)
				}
				return
			}
		}
		if b.ctx.Err() != nil {
			b.fatalf("the page never showed %s with %q", sel, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// muteAddr is a 127.0.0.1 address that accepts connections and never
// says a word.
func muteAddr(t *testing.T) string {
	t.Helper()
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
	return ln.Addr().String()
}
