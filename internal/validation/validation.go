// Package validation runs flowgate's signature check (SPEC section 2): a
// real test message through one connector revision before it may carry
// mail. Outbound: resolve, connect, EHLO, STARTTLS, the certificate under
// the revision's TLS setting, and a test message to every validation
// recipient, against each smart host or MX host. Inbound: a probe message
// through flowgate's own SMTP listener, attributed to the revision under
// test, plus a negative probe that must be refused. Every step is recorded
// with its duration and a detail an admin can act on, and the whole SMTP
// and TLS conversation is kept as a transcript.
package validation

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// Step statuses.
const (
	Passed  = "passed"
	Failed  = "failed"
	Skipped = "skipped"
)

// run collects the steps and transcript of one validation.
type run struct {
	start      time.Time
	steps      []store.ValidationStep
	transcript strings.Builder
	failed     bool
	observe    observer
}

// observer sees a run as it happens: each step as it is recorded, and
// what the run waits for (nil: nothing).
type observer struct {
	step func(store.ValidationStep)
	wait func(*Wait)
}

type observerKey struct{}

// withObserver makes the runs started under ctx report to o.
func withObserver(ctx context.Context, o observer) context.Context {
	return context.WithValue(ctx, observerKey{}, o)
}

func newRun(ctx context.Context) *run {
	r := &run{start: time.Now().UTC()}
	r.observe, _ = ctx.Value(observerKey{}).(observer)
	return r
}

// Wait is what a run is waiting for: a host (or DNS) to do something.
type Wait struct {
	Host  string        // "mx1.fabrikam.com", "DNS"
	Doing string        // "to greet", "to resolve mx1.fabrikam.com"
	Since time.Time     // when the wait began
	Limit time.Duration // how long the run waits at most
}

// Describe says what the run is waiting for and for how long:
// "waiting for mx1.fabrikam.com to greet — 12 s of 30 s".
func (w Wait) Describe(now time.Time) string {
	waited := now.Sub(w.Since).Truncate(time.Second)
	if waited < 0 {
		waited = 0
	}
	return fmt.Sprintf("waiting for %s %s — %d s of %s", w.Host, w.Doing, int(waited.Seconds()), seconds(w.Limit))
}

// waiting tells the observer what the run now waits for, for at most
// limit; a nil wait means it waits for nothing.
func (r *run) waiting(host, doing string, limit time.Duration) {
	if r.observe.wait != nil {
		r.observe.wait(&Wait{Host: host, Doing: doing, Since: time.Now(), Limit: limit})
	}
}

// logf appends a transcript line, stamped with the time since the start.
func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(&r.transcript, "%8.3fs  ", time.Since(r.start).Seconds())
	fmt.Fprintf(&r.transcript, format, args...)
	r.transcript.WriteByte('\n')
}

// pass records a passed step that began at began.
func (r *run) pass(name string, began time.Time, detail string) {
	r.add(name, Passed, began, detail)
}

// fail records a failed step; the whole validation fails.
func (r *run) fail(name string, began time.Time, detail string) {
	r.failed = true
	r.add(name, Failed, began, detail)
}

func (r *run) skip(name, detail string) {
	r.add(name, Skipped, time.Now(), detail)
}

func (r *run) add(name, status string, began time.Time, detail string) {
	d := time.Since(began)
	if status == Skipped {
		d = 0
	}
	step := store.ValidationStep{Name: name, Status: status, Detail: detail, DurationMS: d.Milliseconds()}
	r.steps = append(r.steps, step)
	if r.observe.wait != nil {
		r.observe.wait(nil)
	}
	if r.observe.step != nil {
		r.observe.step(step)
	}
	r.logf("step %s: %s — %s", status, name, detail)
}

// result turns the run into a validation record.
func (r *run) result(connectorID int64, revision int, sender string, rcpts []string) *store.Validation {
	if r.observe.wait != nil {
		r.observe.wait(nil)
	}
	status := store.ValidationPassed
	if r.failed || len(r.steps) == 0 {
		status = store.ValidationFailed
	}
	return &store.Validation{
		ConnectorID: connectorID, Revision: revision, Status: status,
		StartedAt: r.start, FinishedAt: time.Now().UTC(), Sender: sender, Recipients: rcpts,
		Steps: r.steps, Transcript: r.transcript.String(),
	}
}

// testMessage is the body of a validation message: it names the connector
// and revision, so a recipient knows what it is.
func testMessage(hostname, sender string, rcpts []string, kind, name string, revision int, id string) []byte {
	var b strings.Builder
	now := time.Now()
	fmt.Fprintf(&b, "From: flowgate validation <%s>\r\n", sender)
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(rcpts, ", "))
	fmt.Fprintf(&b, "Subject: flowgate validation of %s connector \"%s\", revision %d\r\n", kind, headerSafe(name), revision)
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <validation-%s@%s>\r\n", id, hostname)
	fmt.Fprintf(&b, "X-Flowgate-Validation: %s connector \"%s\" revision %d\r\n", kind, headerSafe(name), revision)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	fmt.Fprintf(&b, "This is a test message from flowgate (%s).\r\n\r\n", hostname)
	fmt.Fprintf(&b, "It validates revision %d of the %s connector \"%s\" before that\r\n", revision, kind, name)
	b.WriteString("revision may carry real mail. No action is needed; you may delete it.\r\n\r\n")
	fmt.Fprintf(&b, "Validation id: %s\r\nSent: %s\r\n", id, now.UTC().Format(time.RFC3339))
	return []byte(b.String())
}

// headerSafe keeps a name on one header line.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == '"' {
			return ' '
		}
		return r
	}, s)
}
