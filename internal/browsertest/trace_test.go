package browsertest

import (
	"context"
	"fmt"
	"log/slog"
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

// acceptingHost accepts every recipient, as a partner's server over TLS
// 1.3 does.
type acceptingHost struct{}

func (acceptingHost) Deliver(_ context.Context, t delivery.Target, _ string, rcpts []string, _ delivery.Content) delivery.Result {
	reply := smtpreply.Reply{Code: 250, Enhanced: [3]int{2, 0, 0}, Text: "OK queued as 7QkM2"}
	res := delivery.Result{Attempts: []delivery.Attempt{{Host: t.Hosts[0].Name, Addr: "192.0.2.25:25", Start: time.Now(),
		TLSVersion: "TLS 1.3", TLSCipher: "TLS_AES_128_GCM_SHA256", Reply: reply.String(), OK: true}}}
	for _, r := range rcpts {
		res.Rcpts = append(res.Rcpts, delivery.RcptResult{Address: r, Delivered: true, Reply: reply})
	}
	return res
}

// seedTraced writes messages as the relay does (through the queue's
// writer, with the relay's events) and lets the queue's workers deliver
// them through the outbound connector.
func seedTraced(t *testing.T, st *store.Store) {
	t.Helper()
	in := testutil.ActivateConnector(t, st, &connector.InboundSpec{
		Common: connector.Common{Name: "Contoso Bank", ConnectorType: connector.Partner}, SenderDomains: []string{"contosobank.com"}, RequireTLS: true,
	})
	out := testutil.ActivateConnector(t, st, &connector.OutboundSpec{
		Common: connector.Common{Name: "Fabrikam partner relay", ConnectorType: connector.Partner}, RecipientDomains: []string{"fabrikam.com"},
		SmartHosts: []string{"smtp.fabrikam.com"}, TLSSettings: connector.TLSOpportunistic,
	})
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	live, err := liveconfig.Load(ctx, st, log)
	if err != nil {
		t.Fatal(err)
	}
	go live.Run(ctx)
	w := queue.NewWriter(st, log)
	wk := queue.NewWorkers(st, live, acceptingHost{}, queue.WorkerConfig{Hostname: "gw.flowgate.test", RetrySchedule: []time.Duration{time.Minute},
		Poll: 50 * time.Millisecond}, log)
	w.HandOverTo(wk)
	done := make(chan struct{})
	go func() { wk.Run(ctx, time.Second); close(done) }()
	defer func() { cancel(); <-done; w.Close() }()

	now := time.Now().UTC().Truncate(time.Second)
	senders := []string{"bob@contosobank.com", "statements@contosobank.com", "alice@contosobank.com"}
	var uids []string
	for i, rcpts := range [][]string{
		{"kim@fabrikam.com"},
		{"ap@fabrikam.com", "ar@fabrikam.com", "cfo@fabrikam.com", "treasury@fabrikam.com", "audit@fabrikam.com"},
		{"john@fabrikam.com"},
	} {
		at := now.Add(-time.Duration(2-i)*17*time.Minute - 2*time.Second)
		uid := queue.NewUID()
		uids = append(uids, uid)
		inID, outID := in, out
		m := &queue.Message{UID: uid, ReceivedAt: at, Status: queue.Queued, ClientIP: "192.0.2.10", Helo: "mail.contosobank.com",
			TLSVersion: "TLS 1.3", TLSCipher: "TLS_AES_256_GCM_SHA384", ClientCert: "CN=mail.contosobank.com", Sender: senders[i],
			MessageIDHeader: fmt.Sprintf("<%s@mail.contosobank.com>", uid), InboundConnectorID: &inID, InboundConnector: "Contoso Bank",
			Attribution: `sender domain contosobank.com (exact): partner connector "Contoso Bank"`, Reply: "250 2.0.0 OK queued as " + uid,
			ExpiresAt: at.Add(48 * time.Hour), Body: []byte("Subject: statement\r\n\r\nHello.\r\n")}
		ev := func(d time.Duration, typ, detail string) {
			m.Events = append(m.Events, queue.Event{At: at.Add(d), Type: typ, Detail: detail})
		}
		ev(0, "connect", `client 192.0.2.10 helo "mail.contosobank.com", TLS 1.3 TLS_AES_256_GCM_SHA384, client certificate CN=mail.contosobank.com`)
		ev(2*time.Millisecond, "attributed", m.Attribution)
		for j, a := range rcpts {
			rc := queue.Recipient{Address: a, Status: queue.Queued, ConnectorID: &outID, Connector: "Fabrikam partner relay",
				RouteReason: `mail flow rule "Statements via partner relay" routes through connector "Fabrikam partner relay"`,
				Rule:        queue.RuleRoute{Rule: "Statements via partner relay", ConnectorID: &outID, OnError: "defer"}}
			m.Recipients = append(m.Recipients, rc)
			d := time.Duration(5+j) * time.Millisecond
			ev(d, "recipient_accepted", a+": fabrikam.com is routed by an outbound connector; route: "+rc.RouteReason)
			ev(d, "rule", a+": "+rc.RouteReason)
		}
		ev(31*time.Millisecond, "received", fmt.Sprintf("%d bytes, message-id %s, %d recipients", len(m.Body), m.MessageIDHeader, len(rcpts)))
		if err := w.Enqueue(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	rej := &queue.Message{UID: queue.NewUID(), ReceivedAt: now, Status: queue.Rejected, ClientIP: "198.51.100.7", Helo: "evil.test",
		Sender: "spam@evil.test", Attribution: "no inbound connector matches client IP 198.51.100.7 or sender domain evil.test",
		Reply:      "550 5.7.64 Relay access denied",
		Recipients: []queue.Recipient{{Address: "victim@elsewhere.test", Status: queue.Rejected, LastReply: "550 5.7.64 Relay access denied"}},
		Events:     []queue.Event{{At: now, Type: "recipient_rejected", Detail: "victim@elsewhere.test: relay access denied"}}}
	if err := w.Enqueue(context.Background(), rej); err != nil {
		t.Fatal(err)
	}
	for _, uid := range uids {
		for n := 0; ; n++ {
			tr, err := queue.GetTrace(context.Background(), st, uid)
			if err == nil && tr.Status == queue.Delivered {
				break
			}
			if n > 200 {
				t.Fatalf("message %s not delivered", uid)
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
}

// TestTraceFindAndOpen: an administrator finds a delivered message by its
// recipient, opens its timeline and sees the route (and the rule that
// chose it) and the delivery attempt.
func TestTraceFindAndOpen(t *testing.T) {
	srv := startServer(t)
	srv.seedAdmin(t)
	seedTraced(t, srv.st)

	b := newTab(t, srv.url)
	b.signIn(adminEmail, password, "/connectors")
	b.clickOK(`nav a[href="/trace"]`, "open the message trace")
	b.wantPath(`/trace`)
	if got := len(b.rows("table.trace tbody tr")); got != 4 {
		b.fatalf("%d messages listed, want 4", got)
	}
	b.wantNoSideScroll()
	b.fill("#f-recipient", "john@fabrikam.com")
	b.clickOK(`form.trace-filters button[type=submit]`, "search")
	b.wantPath(`/trace\?sender=&recipient=john%40fabrikam\.com&status=&connector=&from=&to=`)
	rows := b.rows("table.trace tbody tr")
	if len(rows) != 1 {
		b.fatalf("rows: %q", rows)
	}
	if r := strings.Join(rows[0], " | "); !strings.Contains(r, "alice@contosobank.com | john@fabrikam.com | delivered |") ||
		!strings.Contains(r, "Contoso Bank") || !strings.Contains(r, "Fabrikam partner relay") {
		b.fatalf("row: %q", r)
	}
	b.open("/trace")
	b.shot("trace-search")

	b.open("/trace?recipient=john@fabrikam.com")
	b.clickOK(`table.trace tbody tr td.trace-when a`, "open the message")
	b.wantPath(`/trace/[a-z2-7]{16}`)
	b.wantText("h1", "delivered")
	b.wantText(".trace-attribution", `Attributed to inbound connector Contoso Bank: sender domain contosobank.com (exact)`)
	route := b.rows("table.trace-recipients tbody tr")
	if len(route) != 1 {
		b.fatalf("recipients: %q", route)
	}
	r := strings.Join(route[0], " | ")
	for _, want := range []string{"john@fabrikam.com", "delivered", "Connector Fabrikam partner relay", "chosen by mail flow rule Statements via partner relay",
		"1 attempt", "250 2.0.0 OK queued as 7QkM2"} {
		if !strings.Contains(r, want) {
			b.fatalf("recipient row %q lacks %q", r, want)
		}
	}
	types := b.texts("ol.trace-timeline .trace-type")
	if want := "Connected Attributed Recipient accepted Mail flow rule Received Delivery attempt Delivered"; strings.Join(types, " ") != want {
		b.fatalf("timeline: %q, want %q", types, want)
	}
	b.wantText("ol.trace-timeline li.attempt .trace-detail", "host smtp.fabrikam.com [192.0.2.25:25], TLS 1.3 TLS_AES_128_GCM_SHA256")
	b.wantNoSideScroll()
	b.shot("trace-message")

	if st := b.open("/trace/nosuchmessage"); st != 404 {
		b.fatalf("unknown message: HTTP %d", st)
	}
}
