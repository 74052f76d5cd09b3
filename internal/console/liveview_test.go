package console_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strconv"
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

// scriptedHost answers each recipient by its local part, over TLS 1.3:
// defer… 451, bounce… 550, anything else 250.
type scriptedHost struct{}

func (scriptedHost) Deliver(_ context.Context, t delivery.Target, _ string, rcpts []string, _ delivery.Content) delivery.Result {
	ok := smtpreply.Reply{Code: 250, Enhanced: [3]int{2, 0, 0}, Text: "OK queued as 7QkM2"}
	res := delivery.Result{Attempts: []delivery.Attempt{{Host: "mail.contoso.com", Addr: "192.0.2.25:25", Start: time.Now(),
		TLSVersion: "TLS 1.3", TLSCipher: "TLS_AES_128_GCM_SHA256", Reply: ok.String(), OK: true}}}
	for _, r := range rcpts {
		rr := delivery.RcptResult{Address: r, Delivered: true, Reply: ok}
		switch {
		case strings.HasPrefix(r, "defer"):
			rr = delivery.RcptResult{Address: r, Reply: smtpreply.Reply{Code: 451, Enhanced: [3]int{4, 3, 0}, Text: "try again later"}}
		case strings.HasPrefix(r, "bounce"):
			rr = delivery.RcptResult{Address: r, Reply: smtpreply.Reply{Code: 550, Enhanced: [3]int{5, 1, 1}, Text: "no such user"}}
		}
		res.Rcpts = append(res.Rcpts, rr)
	}
	return res
}

// deliverThrough runs the queue's writer and workers over st with the
// scripted next hop, enqueues the messages one at a time and waits until
// each pass is recorded; rejected messages are traced as the relay does,
// received when they are enqueued.
func deliverThrough(t *testing.T, st *store.Store, msgs ...*queue.Message) {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	live, err := liveconfig.Load(ctx, st, log)
	if err != nil {
		t.Fatal(err)
	}
	go live.Run(ctx)
	w := queue.NewWriter(st, log)
	wk := queue.NewWorkers(st, live, scriptedHost{}, queue.WorkerConfig{Hostname: "gw.flowgate.test", RetrySchedule: []time.Duration{time.Hour},
		Lifetime: 48 * time.Hour, Poll: 50 * time.Millisecond}, log)
	w.HandOverTo(wk)
	done := make(chan struct{})
	go func() { wk.Run(ctx, time.Second); close(done) }()
	defer func() { cancel(); <-done; w.Close() }()
	for _, m := range msgs {
		if m.Status == queue.Rejected {
			m.ReceivedAt = time.Now() // refused now, after the deliveries before it
		}
		if err := w.Enqueue(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		if m.Status == queue.Rejected {
			continue
		}
		for n := 0; ; n++ {
			tr, err := queue.GetTrace(context.Background(), st, m.UID)
			if err == nil && tr.Status != queue.Queued {
				break
			}
			if n > 400 {
				t.Fatalf("message %s not delivered", m.UID)
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
	// The rejected traces are written without waiting: wait for them.
	for n := 0; ; n++ {
		var left int64
		for _, m := range msgs {
			if tr, err := queue.GetTrace(context.Background(), st, m.UID); err != nil || tr == nil {
				left++
			}
		}
		if left == 0 {
			return
		}
		if n > 400 {
			t.Fatalf("%d messages not traced", left)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// TestConnectorLiveViewFigures: after mail through a partner's inbound
// connector and an outbound connector — delivered, deferred, bounced, and
// one message refused at the relay — both connector pages show the chart's
// bars for the current hour and the figures (TLS share, latency from
// receipt, queue depth, last success and failure with the replies), and
// the list shows each connector's sparkline and queue depth.
func TestConnectorLiveViewFigures(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		b := adminBrowser(t, st)
		in := testutil.ActivateConnector(t, st, &connector.InboundSpec{
			Common: connector.Common{Name: "Contoso Bank", ConnectorType: connector.Partner}, SenderDomains: []string{"contosobank.com"}, RequireTLS: true,
		})
		out := testutil.ActivateConnector(t, st, &connector.OutboundSpec{
			Common: connector.Common{Name: "Fabrikam relay", ConnectorType: connector.Partner}, RecipientDomains: []string{"fabrikam.com"},
			SmartHosts: []string{"smtp.fabrikam.com"},
		})
		received := time.Now().Add(-90 * time.Second) // the latency: a minute and a half
		msg := func(status queue.Status, rcpts ...string) *queue.Message {
			inID, outID := in, out
			m := &queue.Message{UID: queue.NewUID(), ReceivedAt: received, Status: status, ClientIP: "192.0.2.10", Sender: "statements@contosobank.com",
				InboundConnectorID: &inID, InboundConnector: "Contoso Bank", ExpiresAt: received.Add(48 * time.Hour), Body: []byte("Subject: s\r\n\r\nHello.\r\n")}
			for _, r := range rcpts {
				m.Recipients = append(m.Recipients, queue.Recipient{Address: r, Status: status, ConnectorID: &outID, Connector: "Fabrikam relay"})
			}
			if status == queue.Rejected {
				m.Body, m.Reply = nil, "550 5.7.51 Restriction failed: TLS required"
			}
			return m
		}
		deliverThrough(t, st,
			msg(queue.Queued, "kim@fabrikam.com", "ap@fabrikam.com"),
			msg(queue.Queued, "bounce.former@fabrikam.com"),
			msg(queue.Queued, "cfo@fabrikam.com", "ar@fabrikam.com", "treasury@fabrikam.com"),
			msg(queue.Queued, "audit@fabrikam.com", "defer.busy@fabrikam.com"),
			msg(queue.Rejected, "john@fabrikam.com"),
		)
		hour := time.Now().UTC().Truncate(time.Hour).Format("2006-01-02T15:04Z")

		p := b.get("/connectors/outbound/" + itoa(out))
		p.has(t, "Mail in the last 24 hours", `<svg class="hourchart"`,
			`data-outcome="delivered" data-hour="`+hour+`" data-count="6"`,
			`data-outcome="deferred" data-hour="`+hour+`" data-count="1"`,
			`data-outcome="bounced" data-hour="`+hour+`" data-count="1"`,
			"Delivered 6", "Deferred 1", "Bounced 1",
			"100%", "6 of 6 delivered recipients",
			"median ≈ 1.", "median 1–2 min, p95 1–2 min",
			"1 recipient waiting",
			"delivered to ", "250 2.0.0 OK queued as 7QkM2",
			"deferred: defer.busy@fabrikam.com", "451 4.3.0 try again later")
		p.lacks(t, `data-outcome="rejected"`, "Rejected at the relay") // an outbound connector refuses nothing
		if n := strings.Count(p.Body, "data-outcome="); n != 3 {
			t.Fatalf("%d bars, want 3 (this hour's delivered, deferred and bounced)", n)
		}

		p = b.get("/connectors/inbound/" + itoa(in))
		p.has(t, `data-outcome="delivered" data-hour="`+hour+`" data-count="6"`,
			`data-outcome="rejected" data-hour="`+hour+`" data-count="1"`,
			"Rejected at the relay 1", "1 recipient waiting",
			"refused mail from statements@contosobank.com", "550 5.7.51 Restriction failed: TLS required")

		list := b.get("/connectors")
		for id, total := range map[int64]string{in: "9", out: "8"} {
			re := regexp.MustCompile(`(?s)href="/connectors/(?:inbound|outbound)/` + itoa(id) + `#live".*?data-hour="` + hour + `" data-count="(\d+)".*?<small class="muted total">\s*(\d+)</small>\s*<small class="newest depth">\s*([^<]*?)\s*</small>`)
			m := re.FindStringSubmatch(list.Body)
			if m == nil || m[1] != total || m[2] != total || m[3] != "1 recipient waiting" {
				t.Fatalf("connector %d on the list: %q, want %s this hour and 1 recipient waiting\n%s", id, m, total, list.Body)
			}
		}
	})
}

// BenchmarkConnectorLivePage measures the connector page and the list
// with a large trace on PostgreSQL. The trace is seeded with
// generate_series: FLOWGATE_BENCH_TRACE_ROWS messages (e.g. 1000000), one
// recipient each, received over FLOWGATE_BENCH_TRACE_SPAN (default 720h)
// up to now, 5% refused at the relay, 3% bounced, 0.1% still deferred,
// the rest delivered through three outbound connectors; the rollup is
// built from that trace with SQL (and checked against it), as the
// workers would have built it. Run (docs/perf.md):
//
//	FLOWGATE_TEST_POSTGRES_URL=… FLOWGATE_BENCH_TRACE_ROWS=1000000 \
//	  go test -run '^$' -bench ConnectorLivePage -benchtime 200x ./internal/console/
func BenchmarkConnectorLivePage(b *testing.B) {
	rows, _ := strconv.Atoi(os.Getenv("FLOWGATE_BENCH_TRACE_ROWS"))
	if rows <= 0 {
		b.Skip("set FLOWGATE_BENCH_TRACE_ROWS (and FLOWGATE_TEST_POSTGRES_URL) to run")
	}
	span := 720 * time.Hour
	if s := os.Getenv("FLOWGATE_BENCH_TRACE_SPAN"); s != "" {
		var err error
		if span, err = time.ParseDuration(s); err != nil {
			b.Fatal(err)
		}
	}
	testutil.SkipWithoutPostgres(b)
	st := testutil.OpenStore(b, testutil.Engines[1])
	in := testutil.ActivateConnector(b, st, &connector.InboundSpec{
		Common: connector.Common{Name: "Internet", ConnectorType: connector.Partner}, SenderDomains: []string{"*"}, RequireTLS: true,
	})
	var outs []int64
	for _, d := range []string{"fabrikam.com", "contoso.com", "tailspin.com"} {
		outs = append(outs, testutil.ActivateConnector(b, st, &connector.OutboundSpec{
			Common: connector.Common{Name: "To " + d, ConnectorType: connector.Partner}, RecipientDomains: []string{d}, SmartHosts: []string{"smtp." + d},
		}))
	}
	db := testutil.RawDB(b, st)
	now := queue.Micros(time.Now())
	start := time.Now()
	// Latency of message i: 0.1 s to ~17 min, skewed short.
	const latency = `(((i::bigint * 7919) % 1000) * ((i::bigint * 104729) % 1000) * 1000)`
	for _, q := range []string{
		fmt.Sprintf(`INSERT INTO messages (uid, received_at, status, client_ip, sender, size, inbound_connector_id, inbound_connector,
				reply, next_attempt_at, expires_at, attempts, updated_at)
			SELECT 'seed' || i, %[1]d - (i::bigint * %[2]d / %[3]d), s, '192.0.2.' || (i %% 250), 'user' || (i %% 5000) || '@sender.test', 2048, %[4]d, 'Internet',
				CASE s WHEN 'rejected' THEN '550 5.7.1 refused' ELSE '250 2.0.0 OK' END,
				CASE s WHEN 'deferred' THEN %[1]d + 3600000000 END, %[1]d + 172800000000, CASE s WHEN 'rejected' THEN 0 ELSE 1 END,
				LEAST(%[1]d, %[1]d - (i::bigint * %[2]d / %[3]d) + %[5]s)
			FROM (SELECT i, CASE WHEN i %% 20 = 0 THEN 'rejected' WHEN i %% 33 = 0 THEN 'bounced' WHEN i %% 1000 = 7 THEN 'deferred' ELSE 'delivered' END AS s
				FROM generate_series(1, %[3]d) i) g`, now, span.Microseconds(), rows, in, latency),
		fmt.Sprintf(`INSERT INTO message_recipients (message_id, address, status, connector_id, connector, route_reason, attempts, last_reply, updated_at)
			SELECT id, 'rcpt' || (id %% 3000) || '@' || (ARRAY['fabrikam.com', 'contoso.com', 'tailspin.com'])[id %% 3 + 1], status,
				CASE WHEN status <> 'rejected' THEN (ARRAY[%d, %d, %d]::bigint[])[id %% 3 + 1] END, '', '', attempts,
				CASE status WHEN 'bounced' THEN '550 5.1.1 no such user' WHEN 'deferred' THEN '451 4.3.0 try again' WHEN 'rejected' THEN '550 5.7.1 refused' ELSE '250 2.0.0 OK' END,
				updated_at
			FROM messages`, outs[0], outs[1], outs[2]),
		// The rollup, from the trace: per connector (the recipient's and
		// the message's inbound one) and hour of the record.
		`CREATE TEMP TABLE seeded AS
			SELECT r.connector_id AS c, r.status, r.updated_at, r.updated_at - m.received_at AS lat, m.id, m.uid, r.address, r.last_reply
			FROM messages m JOIN message_recipients r ON r.message_id = m.id WHERE m.status <> 'rejected'
			UNION ALL
			SELECT m.inbound_connector_id, r.status, r.updated_at, r.updated_at - m.received_at, m.id, m.uid, r.address, r.last_reply
			FROM messages m JOIN message_recipients r ON r.message_id = m.id WHERE m.status <> 'rejected'`,
		`INSERT INTO connector_hourly (connector_id, hour, kind, n)
			SELECT c, updated_at - updated_at % 3600000000, k, COUNT(*) FROM (
				SELECT c, updated_at, status AS k FROM seeded
				UNION ALL SELECT c, updated_at, 'tls' FROM seeded WHERE status = 'delivered' AND id % 10 <> 0
				UNION ALL SELECT c, updated_at, 'lat:' || CASE ` + latencyCase() + ` ELSE 'inf' END FROM seeded WHERE status = 'delivered'
			) x GROUP BY 1, 2, 3`,
		`INSERT INTO connector_last (connector_id, kind, at, status, address, message_uid, reply)
			SELECT DISTINCT ON (c, kind) c, kind, updated_at, status, address, uid, last_reply
			FROM (SELECT *, CASE status WHEN 'delivered' THEN 'success' ELSE 'failure' END AS kind FROM seeded) x
			ORDER BY c, kind, updated_at DESC`,
		`DROP TABLE seeded`,
		`VACUUM ANALYZE messages`, `VACUUM ANALYZE message_recipients`, `VACUUM ANALYZE connector_hourly`, `VACUUM ANALYZE connector_last`,
	} {
		if _, err := db.Exec(q); err != nil {
			b.Fatalf("seed: %v\n%s", err, q)
		}
	}
	b.Logf("seeded %d messages over %s in %s", rows, span, time.Since(start).Round(time.Second))

	// The seeded rollup is consistent with the seeded trace: the live
	// view's totals equal a count over the trace for the same hours.
	at := time.Now()
	s, err := queue.ReadConnectorStats(context.Background(), st, outs[0], false, at)
	if err != nil {
		b.Fatal(err)
	}
	first := at.UTC().Truncate(time.Hour).Add(-(queue.StatsHours - 1) * time.Hour)
	var delivered, tlsN int64
	db.QueryRow(`SELECT COUNT(*), COUNT(*) FILTER (WHERE m.id % 10 <> 0) FROM message_recipients r JOIN messages m ON m.id = r.message_id
		WHERE r.connector_id = $1 AND r.status = 'delivered' AND r.updated_at >= $2`, outs[0], queue.Micros(first)).Scan(&delivered, &tlsN)
	if s.Delivered != delivered || s.TLS != tlsN || delivered == 0 {
		b.Fatalf("the rollup says %d delivered (%d over TLS) in the window, the trace %d (%d)", s.Delivered, s.TLS, delivered, tlsN)
	}
	t0 := time.Now()
	inStats := mustStats(b, st, in, true)
	firstView := time.Since(t0)
	t0 = time.Now()
	mustStats(b, st, in, true)
	b.Logf("connector %d, last 24 hours: %d delivered, %d deferred, %d bounced; inbound connector: %d rejected, read in %s the first time (the hours that are over counted and kept), %s the second",
		outs[0], s.Delivered, s.Deferred, s.Bounced, inStats.Rejected, firstView.Round(time.Microsecond), time.Since(t0).Round(time.Microsecond))

	if os.Getenv("FLOWGATE_BENCH_EXPLAIN") == "1" {
		h := queue.Micros(first)
		for _, q := range []string{
			fmt.Sprintf(`SELECT hour, kind, n FROM connector_hourly WHERE connector_id = %d AND hour >= %d`, outs[0], h),
			// An inbound connector's rejections of the last hour or so
			// (the earlier hours are counted once, then kept in the rollup).
			fmt.Sprintf(`SELECT inbound_connector_id AS connector_id, received_at / 3600000000 AS hour, COUNT(*) AS n
				FROM messages WHERE status = 'rejected' AND inbound_connector_id IN (%d) AND received_at >= %d AND received_at < %d
				GROUP BY inbound_connector_id, received_at / 3600000000`, in, queue.Micros(time.Now().Add(-15*time.Minute).Truncate(time.Hour)), now+3600000000),
			fmt.Sprintf(`SELECT uid, sender, reply, received_at FROM messages WHERE status = 'rejected' AND inbound_connector_id = %d
				ORDER BY received_at DESC LIMIT 1`, in),
			fmt.Sprintf(`SELECT connector_id, hour, SUM(n) AS n FROM connector_hourly
				WHERE hour >= %d AND kind IN ('delivered', 'deferred', 'bounced') AND connector_id IN (%d, %d, %d, %d)
				GROUP BY connector_id, hour`, h, in, outs[0], outs[1], outs[2]),
			`SELECT r.connector_id, COUNT(*) AS n FROM messages m JOIN message_recipients r ON r.message_id = m.id
				WHERE m.status IN ('queued', 'deferred') AND r.status IN ('queued', 'deferred') GROUP BY r.connector_id`,
		} {
			r, err := db.Query("EXPLAIN (ANALYZE, BUFFERS) " + q)
			if err != nil {
				b.Fatal(err)
			}
			var plan []string
			for r.Next() {
				var line string
				r.Scan(&line)
				plan = append(plan, line)
			}
			r.Close()
			b.Logf("%s\n%s", q, strings.Join(plan, "\n"))
		}
	}

	createUser(b, st, "admin@contoso.com", store.RoleAdmin)
	br := newBrowser(b, serve(b, st, false))
	br.signIn("admin@contoso.com")
	for _, page := range []struct{ name, path, want string }{
		{"outbound page", "/connectors/outbound/" + itoa(outs[0]), "svg"},
		{"inbound page", "/connectors/inbound/" + itoa(in), "svg"},
		{"list", "/connectors", "svg"},
		// The queue page reads the same trace (the 0.1% still deferred).
		{"queue page", "/queue", `data-count="deferred"`},
		{"queue page, one connector", "/queue?connector=" + itoa(outs[0]), `data-count="deferred"`},
	} {
		b.Run(page.name, func(b *testing.B) {
			for b.Loop() {
				if p := br.get(page.path); p.Status != 200 || !strings.Contains(p.Body, page.want) {
					b.Fatalf("%s: %d", page.path, p.Status)
				}
			}
		})
	}
	b.Run("ReadConnectorStats", func(b *testing.B) {
		for b.Loop() {
			mustStats(b, st, outs[0], false)
		}
	})
	b.Run("Depths", func(b *testing.B) {
		for b.Loop() {
			if _, err := queue.Depths(context.Background(), st); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("InboundDepths", func(b *testing.B) {
		for b.Loop() {
			if _, err := queue.InboundDepths(context.Background(), st); err != nil {
				b.Fatal(err)
			}
		}
	})
	// For comparison: the same counts from the trace itself (no index
	// serves recipients by connector and time).
	b.Run("count from the trace", func(b *testing.B) {
		for b.Loop() {
			r, err := db.Query(`SELECT r.status, (r.updated_at / 3600000000), COUNT(*) FROM message_recipients r
				WHERE r.connector_id = $1 AND r.updated_at >= $2 GROUP BY 1, 2`, outs[0], queue.Micros(first))
			if err != nil {
				b.Fatal(err)
			}
			for r.Next() {
			}
			r.Close()
		}
	})
}

func mustStats(b testing.TB, st *store.Store, id int64, inbound bool) *queue.ConnectorStats {
	s, err := queue.ReadConnectorStats(context.Background(), st, id, inbound, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// latencyCase is the SQL CASE arms of the latency histogram's buckets
// (queue/stats.go's latencyBounds) over lat (microseconds).
func latencyCase() string {
	var b strings.Builder
	for _, ms := range []int64{10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000, 120000, 300000, 600000,
		1800000, 3600000, 7200000, 21600000, 43200000, 86400000, 172800000} {
		fmt.Fprintf(&b, "WHEN lat < %d THEN '%d' ", ms*1000, ms)
	}
	return b.String()
}
