package browsertest

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/delivery"
	"github.com/flowgate/flowgate/internal/liveconfig"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/relay"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// mailFlow is flowgate's mail path over the server's store — the relay on
// a real port, the queue's writer and delivery workers, the delivery
// client — as `flowgate serve` runs it beside the console.
type mailFlow struct {
	t     *testing.T
	relay string
	ca    *testutil.CA
}

func startMailFlow(t *testing.T, st *store.Store, ca *testutil.CA) *mailFlow {
	t.Helper()
	f := &mailFlow{t: t, ca: ca}
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	live, err := liveconfig.Load(ctx, st, log)
	if err != nil {
		t.Fatal(err)
	}
	go live.Run(ctx)
	w := queue.NewWriter(st, log)
	client := &delivery.Client{Hostname: "gw.flowgate.test", Roots: f.ca.Pool(), Resolver: &delivery.Resolver{Server: testutil.NewDNS(t).Addr}, DialTimeout: 2 * time.Second}
	wk := queue.NewWorkers(st, live, client, queue.WorkerConfig{Hostname: "gw.flowgate.test", RetrySchedule: []time.Duration{time.Hour},
		Lifetime: 48 * time.Hour, Poll: 50 * time.Millisecond}, log)
	w.HandOverTo(wk)
	wctx, wcancel := context.WithCancel(context.Background())
	wdone := make(chan struct{})
	go func() { wk.Run(wctx, time.Second); close(wdone) }()
	rl := relay.New(relay.Config{Hostname: "gw.flowgate.test", QueueLifetime: 48 * time.Hour,
		Certificate: f.ca.Issue(t, "gw.flowgate.test", "gw.flowgate.test")}, live, w, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.relay = ln.Addr().String()
	go rl.Serve(ln)
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = rl.Shutdown(sctx)
		wcancel()
		<-wdone
		w.Close()
		client.Close()
		cancel()
	})
	return f
}

// send sends one message from a partner's server at 127.0.0.3, over
// STARTTLS when tlsOn; a refusal at MAIL FROM is returned, not fatal.
func (f *mailFlow) send(tlsOn bool, from string, rcpts ...string) (code int, text string) {
	f.t.Helper()
	c := testutil.NewRawSMTP(f.t, "127.0.0.3", f.relay)
	defer c.Cmd("QUIT")
	c.Cmd("EHLO mail.contosobank.com")
	if tlsOn {
		c.StartTLS(&tls.Config{RootCAs: f.ca.Pool(), ServerName: "gw.flowgate.test"})
		c.Cmd("EHLO mail.contosobank.com")
	}
	if code, text := c.Cmd("MAIL FROM:<%s>", from); code != 250 {
		return code, text
	}
	for _, r := range rcpts {
		if code, text := c.Cmd("RCPT TO:<%s>", r); code != 250 {
			f.t.Fatalf("RCPT %s: %d %s", r, code, text)
		}
	}
	c.Cmd("DATA")
	c.Send("Subject: statement\r\nMessage-ID: <%d@contosobank.com>\r\n\r\nHello.\r\n.\r\n", time.Now().UnixNano())
	return c.Read()
}

// TestConnectorLiveView: after mail through the real relay — a partner's
// messages over TLS to the organization's server (delivered, one recipient
// deferred, one bounced) and one refused for want of TLS — the connector
// pages chart it: bars in exactly the hours with mail (the current one
// and, from the rollup, some earlier hours), none in the others, with the
// figures under the chart; the list has a sparkline and the queue depth.
func TestConnectorLiveView(t *testing.T) {
	findChromium(t)
	// The mail and the page must fall in one hour.
	if left := time.Until(time.Now().UTC().Truncate(time.Hour).Add(time.Hour)); left < 45*time.Second {
		time.Sleep(left + time.Second)
	}
	srv := startServer(t)
	srv.seedAdmin(t)
	st := srv.st
	ctx := context.Background()
	ca := testutil.NewCA(t, "Live view CA")
	mailboxes := testutil.NewSink(t, testutil.SinkOptions{Cert: ptr(ca.Issue(t, "mail.contoso.com", "mail.contoso.com"))})
	mailboxes.RejectRcpt("former.employee@contoso.com", 550, [3]int{5, 1, 1}, "mailbox unavailable")
	mailboxes.RejectRcpt("full@contoso.com", 452, [3]int{4, 2, 2}, "mailbox full")
	if _, err := st.CreateAcceptedDomain(ctx, store.Actor{Kind: "user", Name: adminEmail}, "contoso.com", connector.Authoritative); err != nil {
		t.Fatal(err)
	}
	bank := testutil.ActivateConnector(t, st, &connector.InboundSpec{
		Common: connector.Common{Name: "Contoso Bank", ConnectorType: connector.Partner}, SenderDomains: []string{"contosobank.com"}, RequireTLS: true,
	})
	exchange := testutil.ActivateConnector(t, st, &connector.OutboundSpec{
		Common: connector.Common{Name: "Exchange on-premises", ConnectorType: connector.OnPremises}, AllAcceptedDomains: true,
		SmartHosts: []string{mailboxes.Addr}, TLSSettings: connector.TLSCertificateValidation,
	})
	flow := startMailFlow(t, st, ca)

	for i, rcpts := range [][]string{
		{"kim@contoso.com"},
		{"ap@contoso.com", "ar@contoso.com", "former.employee@contoso.com"},
		{"cfo@contoso.com", "full@contoso.com"},
		{"treasury@contoso.com"},
		{"audit@contoso.com", "john@contoso.com"},
	} {
		if code, text := flow.send(true, fmt.Sprintf("statements%d@contosobank.com", i), rcpts...); code != 250 {
			t.Fatalf("message %d: %d %s", i, code, text)
		}
	}
	mailboxes.Wait(t, 5, 10*time.Second)
	waitRecipients(t, st, map[string]int64{"delivered": 7, "deferred": 1, "bounced": 1})
	if code, text := flow.send(false, "bob@contosobank.com", "kim@contoso.com"); code != 550 || !strings.Contains(text, "5.7.51") {
		t.Fatalf("without TLS: %d %s, want 550 5.7.51", code, text)
	}

	// Earlier hours, as the delivery workers and the relay recorded them.
	now := time.Now().UTC()
	hour := now.Truncate(time.Hour)
	history := map[int][4]int64{ // hours ago → delivered, deferred, bounced, rejected
		21: {14, 0, 0, 0}, 14: {35, 2, 0, 0}, 13: {52, 4, 1, 0}, 12: {61, 0, 0, 2}, 11: {44, 1, 0, 0},
		9: {12, 0, 0, 0}, 5: {27, 3, 0, 1}, 3: {38, 0, 2, 0}, 2: {19, 0, 0, 0},
	}
	w := queue.NewWriter(st, slog.New(slog.DiscardHandler))
	for ago, n := range history {
		h := queue.Micros(hour.Add(-time.Duration(ago) * time.Hour))
		for _, id := range []int64{bank, exchange} {
			for kind, v := range map[string]int64{"delivered": n[0], "deferred": n[1], "bounced": n[2], "tls": n[0], "lat:500": n[0] - n[0]/5, "lat:5000": n[0] / 5} {
				if v == 0 {
					continue
				}
				if err := st.DB().Exec(`INSERT INTO connector_hourly (connector_id, hour, kind, n) VALUES (?, ?, ?, ?)`, id, h, kind, v).Error; err != nil {
					t.Fatal(err)
				}
			}
		}
		for range n[3] {
			id := bank
			m := &queue.Message{UID: queue.NewUID(), ReceivedAt: hour.Add(-time.Duration(ago)*time.Hour + 10*time.Minute), Status: queue.Rejected,
				ClientIP: "127.0.0.3", Sender: "bob@contosobank.com", InboundConnectorID: &id, InboundConnector: "Contoso Bank",
				Reply: "550 5.7.51 Restriction failed: TLS required"}
			if err := w.Enqueue(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	w.Close()

	b := newTab(t, srv.url)
	b.signIn(adminEmail, password, "/connectors")

	type bar struct {
		Outcome, Hour string
		Count         int
	}
	hourKey := func(ago int) string { return hour.Add(-time.Duration(ago) * time.Hour).Format("2006-01-02T15:04Z") }
	check := func(href string, current [4]int64, figures ...string) {
		b.t.Helper()
		b.open(href)
		b.mustExist("svg.hourchart")
		bars := js[[]bar](b, `Array.from(document.querySelectorAll("svg.hourchart rect[data-outcome][data-hour]"),
			r => ({Outcome: r.dataset.outcome, Hour: r.dataset.hour, Count: Number(r.dataset.count.replace(/,/g, ""))}))`)
		got := map[string][4]int64{}
		for _, r := range bars {
			i := slices.IndexFunc(outcomes[:], func(o string) bool { return o == r.Outcome })
			if i < 0 || r.Count <= 0 {
				b.fatalf("bar %+v", r)
			}
			c := got[r.Hour]
			c[i] += int64(r.Count)
			got[r.Hour] = c
		}
		want := map[string][4]int64{hourKey(0): current}
		for ago, n := range history {
			if href == fmt.Sprintf("/connectors/outbound/%d", exchange) {
				n[3] = 0 // rejections are the inbound connector's
			}
			want[hourKey(ago)] = n
		}
		for h, n := range want {
			if got[h] != n {
				b.fatalf("%s: bars of %s: %v, want %v (all bars: %v)", href, h, got[h], n, got)
			}
		}
		if len(got) != len(want) {
			b.fatalf("%s: bars in %d hours, want %d (the hours with mail only): %v", href, len(got), len(want), got)
		}
		// Axes: a count scale starting at 0 and hour labels.
		if ys := svgTexts(b, "svg.hourchart g.yaxis text"); len(ys) < 3 || ys[0] != "0" {
			b.fatalf("count scale %q", ys)
		}
		if xs := svgTexts(b, "svg.hourchart g.xlabels text"); !slices.Contains(xs, hour.Format("15:04")) {
			b.fatalf("hour labels %q lack the current hour %s", xs, hour.Format("15:04"))
		}
		figs := strings.Join(b.texts("dl.liveview-figures dt, dl.liveview-figures dd"), " | ")
		for _, f := range figures {
			if !strings.Contains(figs, f) {
				b.fatalf("%s: the figures %q lack %q", href, figs, f)
			}
		}
	}

	// The outbound connector: this hour 7 delivered, 1 deferred, 1 bounced.
	check(fmt.Sprintf("/connectors/outbound/%d", exchange), [4]int64{7, 1, 1, 0},
		"Delivered over TLS | 100% 309 of 309 delivered recipients",
		"Delivery latency | median ≈", "Queue depth | 1 recipient waiting",
		"Last success", "delivered to ", "250 ",
		"Last failure", "@contoso.com", "452 4.2.2 mailbox full")
	b.wantNoSideScroll()
	b.shot("outbound-connector-live-view")

	// The inbound connector: the same recipients, and the refused message.
	check(fmt.Sprintf("/connectors/inbound/%d", bank), [4]int64{7, 1, 1, 1},
		"Last failure", "refused mail from bob@contosobank.com", "550 5.7.51")
	b.shot("inbound-connector-live-view")

	// The list: a sparkline per connector with bars in the hours with
	// mail, and the queue depth.
	b.open("/connectors")
	for _, tc := range []struct {
		id    int64
		depth string
	}{{bank, "1 recipient waiting"}, {exchange, "1 recipient waiting"}} {
		row := fmt.Sprintf(`a[href="/connectors/%s/%d#live"]`, map[bool]string{true: "inbound", false: "outbound"}[tc.id == bank], tc.id)
		b.mustExist(row + " svg.sparkline")
		hours := js[[]string](b, `Array.from(document.querySelectorAll(`+q(row+" svg.sparkline rect[data-hour]")+`), r => r.dataset.hour)`)
		if len(hours) != len(history)+1 || !slices.Contains(hours, hourKey(0)) || !slices.Contains(hours, hourKey(13)) || slices.Contains(hours, hourKey(1)) {
			b.fatalf("sparkline of %d has bars in %v; want %d hours", tc.id, hours, len(history)+1)
		}
		if got := js[string](b, `document.querySelector(`+q(row)+`).closest("td").querySelector(".depth").innerText.trim()`); got != tc.depth {
			b.fatalf("queue depth of %d: %q, want %q", tc.id, got, tc.depth)
		}
	}
	b.wantNoSideScroll()
	b.shot("connectors-list-overview")

	// On a phone the chart shrinks to the screen; nothing scrolls sideways.
	b.phone()
	b.open(fmt.Sprintf("/connectors/outbound/%d", exchange))
	b.wantNoSideScroll()
	b.shot("outbound-connector-live-view-phone")
	b.open("/connectors")
	b.wantNoSideScroll()
	b.desktop()
}

var outcomes = [4]string{"delivered", "deferred", "bounced", "rejected"}

func ptr[T any](v T) *T { return &v }

// waitRecipients waits until the trace's recipients have these counts by
// status (those of other statuses aside).
func waitRecipients(t *testing.T, st *store.Store, want map[string]int64) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got := map[string]int64{}
		var rows []struct {
			Status string
			N      int64
		}
		st.DB().Raw(`SELECT r.status, COUNT(*) AS n FROM message_recipients r JOIN messages m ON m.id = r.message_id
			WHERE m.sender <> '' AND m.status <> 'rejected' GROUP BY r.status`).Scan(&rows)
		ok := true
		for _, r := range rows {
			got[r.Status] = r.N
		}
		for s, n := range want {
			ok = ok && got[s] == n
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("recipients by status: %v, want %v", got, want)
		}
	}
}

// svgTexts are the texts of the SVG elements matching sel (which have no
// innerText).
func svgTexts(b *tab, sel string) []string {
	b.t.Helper()
	return js[[]string](b, `Array.from(document.querySelectorAll(`+q(sel)+`), e => e.textContent.trim())`)
}
