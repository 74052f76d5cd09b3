package console_test

import (
	"context"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/delivery"
	"github.com/flowgate/flowgate/internal/liveconfig"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/smtpreply"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// okDeliverer accepts every recipient at the first smart host, as a
// partner's server over TLS 1.3 would.
type okDeliverer struct{}

func (okDeliverer) Deliver(_ context.Context, t delivery.Target, _ string, rcpts []string, _ delivery.Content) delivery.Result {
	reply := smtpreply.Reply{Code: 250, Enhanced: [3]int{2, 0, 0}, Text: "OK queued as 4XyZ"}
	host := "mx.fabrikam.test"
	if len(t.Hosts) > 0 {
		host = t.Hosts[0].Name
	}
	res := delivery.Result{Attempts: []delivery.Attempt{{Host: host, Addr: "192.0.2.25:25", Start: time.Now(),
		TLSVersion: "TLS 1.3", TLSCipher: "TLS_AES_128_GCM_SHA256", Reply: reply.String(), OK: true}}}
	for _, r := range rcpts {
		res.Rcpts = append(res.Rcpts, delivery.RcptResult{Address: r, Delivered: true, Reply: reply})
	}
	return res
}

// traceFixture is a store with an inbound and an outbound connector and a
// writer and delivery workers as `flowgate serve` runs them, delivering
// through okDeliverer.
type traceFixture struct {
	st        *store.Store
	w         *queue.Writer
	inbound   int64
	outbound  int64
	delivered func(uid string)
}

func newTraceFixture(t *testing.T, st *store.Store) *traceFixture {
	t.Helper()
	f := &traceFixture{st: st}
	f.inbound = testutil.ActivateConnector(t, st, &connector.InboundSpec{
		Common: connector.Common{Name: "Contoso Bank", ConnectorType: connector.Partner}, SenderDomains: []string{"contosobank.com"}, RequireTLS: true,
	})
	f.outbound = testutil.ActivateConnector(t, st, &connector.OutboundSpec{
		Common: connector.Common{Name: "To Fabrikam", ConnectorType: connector.Partner}, RecipientDomains: []string{"fabrikam.com"},
		SmartHosts: []string{"smtp.fabrikam.com"}, TLSSettings: connector.TLSOpportunistic,
	})
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	live, err := liveconfig.Load(ctx, st, log)
	if err != nil {
		t.Fatal(err)
	}
	go live.Run(ctx)
	f.w = queue.NewWriter(st, log)
	wk := queue.NewWorkers(st, live, okDeliverer{}, queue.WorkerConfig{Hostname: "gw.flowgate.test", RetrySchedule: []time.Duration{time.Minute},
		Poll: 50 * time.Millisecond}, log)
	f.w.HandOverTo(wk)
	done := make(chan struct{})
	go func() { wk.Run(ctx, time.Second); close(done) }()
	t.Cleanup(func() { cancel(); <-done; f.w.Close() })
	f.delivered = func(uid string) {
		t.Helper()
		for range 200 {
			tr, err := queue.GetTrace(context.Background(), st, uid)
			if err == nil && tr.Status == queue.Delivered {
				return
			}
			time.Sleep(25 * time.Millisecond)
		}
		t.Fatalf("message %s was not delivered", uid)
	}
	return f
}

// received writes a message as the relay does when it accepts one from
// Contoso Bank: its envelope, the route of each recipient and the events
// of the session. With rule set, a mail flow rule routes the recipients.
func (f *traceFixture) received(t *testing.T, uid string, at time.Time, sender string, rcpts []string, rule string) {
	t.Helper()
	id := f.inbound
	m := &queue.Message{UID: uid, ReceivedAt: at, Status: queue.Queued, ClientIP: "192.0.2.10", Helo: "mail.contosobank.com",
		TLSVersion: "TLS 1.3", TLSCipher: "TLS_AES_256_GCM_SHA384", ClientCert: "CN=mail.contosobank.com", Sender: sender,
		MessageIDHeader: "<" + uid + "@contosobank.com>", InboundConnectorID: &id, InboundConnector: "Contoso Bank",
		Attribution: `sender domain contosobank.com (exact): partner connector "Contoso Bank"`, Reply: "250 2.0.0 OK queued as " + uid,
		ExpiresAt: at.Add(48 * time.Hour), Body: []byte("Subject: statement\r\n\r\nHello.\r\n")}
	ev := func(d time.Duration, typ, detail string) {
		m.Events = append(m.Events, queue.Event{At: at.Add(d), Type: typ, Detail: detail})
	}
	ev(0, "connect", "client 192.0.2.10 helo \"mail.contosobank.com\", TLS 1.3 TLS_AES_256_GCM_SHA384, client certificate CN=mail.contosobank.com")
	ev(time.Millisecond, "attributed", m.Attribution)
	for i, a := range rcpts {
		oid := f.outbound
		rc := queue.Recipient{Address: a, Status: queue.Queued, ConnectorID: &oid, Connector: "To Fabrikam",
			RouteReason: `recipient domain fabrikam.com (exact): connector "To Fabrikam"`}
		if rule != "" {
			rc.RouteReason = fmt.Sprintf("mail flow rule %q routes through connector %q", rule, "To Fabrikam")
			rc.Rule = queue.RuleRoute{Rule: rule, ConnectorID: &oid, OnError: "defer"}
		}
		m.Recipients = append(m.Recipients, rc)
		ev(time.Duration(2+i)*time.Millisecond, "recipient_accepted", a+": domain fabrikam.com is routed by an outbound connector; route: "+rc.RouteReason)
		if rule != "" {
			ev(time.Duration(2+i)*time.Millisecond, "rule", a+": "+rc.RouteReason)
		}
	}
	ev(40*time.Millisecond, "received", fmt.Sprintf("%d bytes, message-id %s, %d recipients", len(m.Body), m.MessageIDHeader, len(rcpts)))
	if err := f.w.Enqueue(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

// rejected writes a message the relay refused.
func (f *traceFixture) rejected(t *testing.T, uid string, at time.Time, sender, rcpt string) {
	t.Helper()
	m := &queue.Message{UID: uid, ReceivedAt: at, Status: queue.Rejected, ClientIP: "198.51.100.7", Helo: "evil.test", Sender: sender,
		Attribution: "no inbound connector matches client IP 198.51.100.7 or sender domain evil.test", Reply: "550 5.7.64 Relay access denied",
		Recipients: []queue.Recipient{{Address: rcpt, Status: queue.Rejected, LastReply: "550 5.7.64 Relay access denied"}},
		Events: []queue.Event{{At: at, Type: "connect", Detail: "client 198.51.100.7 helo \"evil.test\", no TLS"},
			{At: at.Add(time.Millisecond), Type: "recipient_rejected", Detail: rcpt + ": relay access denied (550 5.7.64 Relay access denied)"}}}
	if err := f.w.Enqueue(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

var (
	traceRowRE  = regexp.MustCompile(`(?s)<tr><td data-label="Received".*?</tr>`)
	traceLinkRE = regexp.MustCompile(`href="(/trace\?[^"]*before=[0-9]+[^"]*)" rel="next"`)
)

// traceRows returns the search results as the text a reader sees.
func traceRows(p page) []string {
	var out []string
	for _, r := range traceRowRE.FindAllString(p.Body, -1) {
		text := html.UnescapeString(tagRE.ReplaceAllString(blockEnd.Replace(r), " "))
		out = append(out, strings.TrimSpace(spaceRE.ReplaceAllString(text, " ")))
	}
	return out
}

func wantTraceRows(t *testing.T, p page, want ...string) {
	t.Helper()
	if p.Status != http.StatusOK {
		t.Fatalf("status %d: %s", p.Status, p.Body)
	}
	rows := traceRows(p)
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d:\n%s", len(rows), len(want), strings.Join(rows, "\n"))
	}
	for i, w := range want {
		if !strings.Contains(rows[i], w) {
			t.Fatalf("row %d = %q\nwant it to contain %q", i, rows[i], w)
		}
	}
}

// TestTraceSearch: the trace search filters by sender, recipient, status,
// connector and dates, newest first, each row a message with its
// recipients, status and connectors; bad values are a 400 with the error
// next to the field; a viewer may search.
func TestTraceSearch(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		f := newTraceFixture(t, st)
		day := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
		f.received(t, "deliv1", day, "alice@contosobank.com", []string{"john@fabrikam.com"}, "")
		f.delivered("deliv1")
		f.received(t, "deliv2", day.Add(24*time.Hour), "bob@contosobank.com",
			[]string{"a@fabrikam.com", "b@fabrikam.com", "c@fabrikam.com", "d@fabrikam.com", "e@fabrikam.com"}, "Finance via Fabrikam")
		f.delivered("deliv2")
		f.rejected(t, "rej1", day.Add(48*time.Hour), "spam@evil.test", "victim@elsewhere.test")

		createUser(t, st, "viewer@contoso.com", store.RoleViewer)
		b := newBrowser(t, serve(t, st, false))
		b.signIn("viewer@contoso.com")

		p := b.get("/trace")
		wantTraceRows(t, p, "2026-11-22 09:00 UTC spam@evil.test victim@elsewhere.test rejected none",
			"bob@contosobank.com a@fabrikam.com, b@fabrikam.com, c@fabrikam.com and 2 more delivered in Contoso Bank out To Fabrikam",
			"2026-11-20 09:00 UTC alice@contosobank.com john@fabrikam.com delivered in Contoso Bank out To Fabrikam")
		p.has(t, `href="/trace/deliv1"`, "The newest 3 messages, newest first", `<optgroup label="Inbound">`, `<option value="To Fabrikam">`)

		wantTraceRows(t, b.get("/trace?recipient=john@fabrikam.com"), "alice@contosobank.com")
		wantTraceRows(t, b.get("/trace?recipient=JOHN@fabrikam.com"), "alice@contosobank.com")
		wantTraceRows(t, b.get("/trace?recipient=@fabrikam.com"), "bob@", "alice@")
		wantTraceRows(t, b.get("/trace?sender=@contosobank.com&status=delivered"), "bob@", "alice@")
		wantTraceRows(t, b.get("/trace?status=rejected"), "spam@evil.test")
		wantTraceRows(t, b.get("/trace?connector=Contoso+Bank"), "bob@", "alice@")
		wantTraceRows(t, b.get("/trace?connector=to+fabrikam"), "bob@", "alice@")
		wantTraceRows(t, b.get("/trace?from=2026-11-21&to=2026-11-21"), "bob@")
		wantTraceRows(t, b.get("/trace?from=2026-11-21"), "spam@", "bob@")
		p = b.get("/trace?connector=Gone+Partner")
		wantTraceRows(t, p)
		p.has(t, "No messages match", "Gone Partner (no longer configured)")

		for _, c := range []struct{ query, field, want string }{
			{"?sender=alice", "sender", "@contoso.com for a whole domain"},
			{"?recipient=john@", "recipient", "Enter an address"},
			{"?status=lost", "status", "Choose a status"},
			{"?from=20-11-2026", "from", "year-month-day"},
			{"?from=2026-11-22&to=2026-11-20", "to", "before the start date"},
		} {
			p := b.get("/trace" + c.query)
			if p.Status != http.StatusBadRequest {
				t.Fatalf("GET /trace%s: %d, want 400", c.query, p.Status)
			}
			p.wantFieldError(t, c.field, c.want)
			p.has(t, "Fix the search above")
		}
		if p := b.get("/trace?before=x"); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, "page position") {
			t.Fatalf("bad page: %d %s", p.Status, p.Body)
		}
	})
}

// TestTraceSearchPaged: 50 messages a page, newest first; "Older" keeps
// the filters and goes on where the page ended, to the last.
func TestTraceSearchPaged(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	f := newTraceFixture(t, st)
	base := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	for i := range 53 {
		f.rejected(t, fmt.Sprintf("r%02d", i), base.Add(time.Duration(i)*time.Minute), fmt.Sprintf("s%02d@evil.test", i), "v@elsewhere.test")
	}
	f.rejected(t, "other", base.Add(time.Hour), "x@other.test", "v@elsewhere.test")
	b := adminBrowser(t, st)
	p := b.get("/trace?sender=@evil.test")
	rows := traceRows(p)
	if len(rows) != 50 || !strings.Contains(rows[0], "s52@evil.test") || !strings.Contains(rows[49], "s03@evil.test") {
		t.Fatalf("first page: %d rows:\n%s", len(rows), strings.Join(rows, "\n"))
	}
	m := traceLinkRE.FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("no Older link:\n%s", p.Body)
	}
	next := html.UnescapeString(m[1])
	if !strings.Contains(next, "sender=%40evil.test") {
		t.Fatalf("the Older link %q drops the filter", next)
	}
	p = b.get(next)
	wantTraceRows(t, p, "s02@evil.test", "s01@evil.test", "s00@evil.test")
	p.has(t, "← Newest messages")
	p.lacks(t, "Older messages")
}

// TestTraceMessage: a delivered message's page shows how it came in, why
// its connector applied, each recipient's route (and the rule that chose
// it), the attempt and the whole timeline in words; a viewer may read it;
// an unknown message is the console's 404.
func TestTraceMessage(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		f := newTraceFixture(t, st)
		at := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
		f.received(t, "deliv2", at, "bob@contosobank.com", []string{"a@fabrikam.com", "b@fabrikam.com"}, "Finance via Fabrikam")
		f.delivered("deliv2")
		f.rejected(t, "rej1", at, "spam@evil.test", "victim@elsewhere.test")

		createUser(t, st, "viewer@contoso.com", store.RoleViewer)
		b := newBrowser(t, serve(t, st, false))
		b.signIn("viewer@contoso.com")
		p := b.get("/trace/deliv2")
		if p.Status != http.StatusOK {
			t.Fatalf("GET /trace/deliv2: %d %s", p.Status, p.Body)
		}
		p.has(t, "Message", "deliv2", "<deliv2@contosobank.com>", "2026-11-20 09:00:00.000 UTC",
			"192.0.2.10 (HELO mail.contosobank.com)", "TLS 1.3, TLS_AES_256_GCM_SHA384", "CN=mail.contosobank.com",
			"delivered after 1 delivery pass", "250 2.0.0 OK queued as deliv2",
			"Attributed to inbound connector <strong>Contoso Bank</strong>: sender domain contosobank.com (exact): partner connector \"Contoso Bank\".",
			"Connector To Fabrikam", "chosen by mail flow rule <strong>Finance via Fabrikam</strong>",
			`mail flow rule "Finance via Fabrikam" routes through connector "To Fabrikam"`, "1 attempt", "250 2.0.0 OK queued as 4XyZ",
			">Connected<", ">Attributed<", ">Recipient accepted<", ">Mail flow rule<", ">Received<", ">Delivery attempt<",
			"09:00:00.040", "host smtp.fabrikam.com [192.0.2.25:25], TLS 1.3 TLS_AES_128_GCM_SHA256")
		// The timeline is in time order: received before the attempt.
		if i, j := strings.Index(p.Body, ">Received<"), strings.Index(p.Body, ">Delivery attempt<"); i < 0 || j < i {
			t.Fatalf("timeline out of order")
		}
		if n := strings.Count(p.Body, `aria-current="page"`); n == 0 || !strings.Contains(p.Body, `href="/trace" aria-current="page"`) {
			t.Fatalf("the nav does not mark the trace")
		}

		p = b.get("/trace/rej1")
		p.has(t, "No inbound connector applied: no inbound connector matches client IP 198.51.100.7", "Not routed: rejected",
			"550 5.7.64 Relay access denied", ">Recipient rejected<", "none: received in clear text", "none presented")

		if p := b.get("/trace/nosuchmessage"); p.Status != http.StatusNotFound {
			t.Fatalf("unknown message: %d", p.Status)
		}
	})
}
