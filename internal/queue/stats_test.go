package queue

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/smtpreply"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

var (
	reply250 = smtpreply.Reply{Code: 250, Enhanced: [3]int{2, 0, 0}, Text: "OK queued as X1"}
	reply451 = smtpreply.Reply{Code: 451, Enhanced: [3]int{4, 3, 0}, Text: "try again later"}
	reply550 = smtpreply.Reply{Code: 550, Enhanced: [3]int{5, 1, 1}, Text: "no such user"}
)

// statsFixture stores messages as the relay does, to build delivery
// outcomes for them by hand and record them as the workers do.
type statsFixture struct {
	t   *testing.T
	st  *store.Store
	w   *Writer
	in  int64 // inbound connector id
	out int64 // outbound connector id
}

func newStatsFixture(t *testing.T, st *store.Store) *statsFixture {
	w := NewWriter(st, slog.New(slog.DiscardHandler))
	t.Cleanup(w.Close)
	return &statsFixture{t: t, st: st, w: w, in: 7, out: 9}
}

// pass stores a message received at `received` with one queued recipient
// per entry of results and returns the outcome of a delivery pass that
// gave each recipient its reply (viaTLS for the delivered ones).
func (f *statsFixture) pass(received time.Time, viaTLS bool, results ...smtpreply.Reply) *outcome {
	f.t.Helper()
	in, out := f.in, f.out
	m := &Message{UID: NewUID(), ReceivedAt: received, Status: Queued, ClientIP: "192.0.2.1", Sender: "a@fabrikam.com",
		InboundConnectorID: &in, InboundConnector: "Partner"}
	for i := range results {
		m.Recipients = append(m.Recipients, Recipient{Address: fmt.Sprintf("r%d@contoso.com", i), Status: Queued, ConnectorID: &out, Connector: "Smart host"})
	}
	reqs := []request{{m: m}}
	if err := f.w.commitEach(reqs, nil)[0]; err != nil {
		f.t.Fatal(err)
	}
	msg := &messageRow{ID: reqs[0].id, UID: m.UID, ReceivedAt: Micros(received), Status: Queued, InboundConnectorID: &in}
	o := &outcome{msg: msg, status: Delivered, attempts: 1, deleteBody: true}
	for i, r := range results {
		rc := &recipientRow{ID: reqs[0].rcptIDs[i], MessageID: msg.ID, Address: m.Recipients[i].Address, ConnectorID: &out, Connector: "Smart host", Attempts: 1}
		switch {
		case r.Code == 0: // deferred by an earlier pass, only postponed by this one
			rc.Status, rc.LastReply = Deferred, "451 4.4.1 earlier"
			o.status = Deferred
		case r.Code < 400:
			rc.setReply(Delivered, r)
			rc.viaTLS = viaTLS
		case r.Code < 500:
			rc.setReply(Deferred, r)
			o.status = Deferred
		default:
			rc.setReply(Bounced, r)
		}
		o.rcpts = append(o.rcpts, rc)
	}
	return o
}

func (f *statsFixture) record(batch ...*outcome) {
	f.t.Helper()
	if err := dialectFor(f.st).record(context.Background(), batch); err != nil {
		f.t.Fatalf("record: %v", err)
	}
}

// TestStatsRecordedWithOutcomes: recording delivery outcomes (the
// engine's own record statement) adds to each connector's counters —
// outbound and inbound — exactly what the trace records: delivered,
// deferred, bounced, the share over TLS, and latencies from which the
// median and p95 come out within their buckets; postponed recipients
// count nothing; the last success and failure keep their replies.
func TestStatsRecordedWithOutcomes(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		f := newStatsFixture(t, st)
		now := time.Now()
		// 20 delivered recipients: 8 took ~30 ms, 10 ~3 s, 2 ~2 min; 15 over TLS.
		var batch []*outcome
		for i := range 8 {
			batch = append(batch, f.pass(now.Add(-30*time.Millisecond), i < 7, reply250))
		}
		for i := range 10 {
			batch = append(batch, f.pass(now.Add(-3*time.Second), i < 6, reply250))
		}
		batch = append(batch, f.pass(now.Add(-2*time.Minute), true, reply250, reply250))
		f.record(batch...)
		// A second batch: 2 deferred, 1 bounced, 1 postponed (deferred by
		// an earlier pass: the trace shows 3 deferred, 2 of them now).
		f.record(f.pass(now, false, reply451, reply550, smtpreply.Reply{}), f.pass(now, false, reply451))

		want := map[Status]int64{}
		var rows []struct {
			Status string
			N      int64
		}
		st.DB().Raw(`SELECT status, COUNT(*) AS n FROM message_recipients GROUP BY status`).Scan(&rows)
		for _, r := range rows {
			want[Status(r.Status)] = r.N
		}
		if want[Delivered] != 20 || want[Deferred] != 3 || want[Bounced] != 1 {
			t.Fatalf("the trace holds %v", want)
		}
		want[Deferred] = 2
		for _, id := range []int64{f.in, f.out} {
			s, err := ReadConnectorStats(context.Background(), st, id, id == f.in, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if s.Delivered != want[Delivered] || s.Deferred != want[Deferred] || s.Bounced != want[Bounced] || s.Rejected != 0 || s.TLS != 15 {
				t.Fatalf("connector %d: delivered %d deferred %d bounced %d rejected %d tls %d; trace: %v, 15 over TLS",
					id, s.Delivered, s.Deferred, s.Bounced, s.Rejected, s.TLS, want)
			}
			cur := s.Hours[StatsHours-1]
			if cur.Delivered != 20 || cur.Deferred != 2 || cur.Bounced != 1 || !cur.Start.Equal(FromMicros(hourStart(Micros(time.Now())))) {
				t.Fatalf("connector %d: current hour %+v", id, cur)
			}
			for _, h := range s.Hours[:StatsHours-1] {
				if h.Total() != 0 {
					t.Fatalf("connector %d: mail in an earlier hour: %+v", id, h)
				}
			}
			// The median (the 10th of 20) is in the 2–5 s bucket, the p95
			// (the 19th) in the 2–5 min one.
			if !s.HasLatency || s.Median.Lo != 2*time.Second || s.Median.Hi != 5*time.Second ||
				s.Median.Value < 2*time.Second || s.Median.Value >= 5*time.Second {
				t.Fatalf("connector %d: median %+v", id, s.Median)
			}
			if s.P95.Lo != 2*time.Minute || s.P95.Hi != 5*time.Minute {
				t.Fatalf("connector %d: p95 %+v", id, s.P95)
			}
			if s.LastSuccess == nil || s.LastSuccess.Status != Delivered || s.LastSuccess.Reply != reply250.String() {
				t.Fatalf("connector %d: last success %+v", id, s.LastSuccess)
			}
			if l := s.LastFailure; l == nil || l.Status != Deferred || l.Reply != reply451.String() || l.Address != "r0@contoso.com" || l.MessageUID == "" {
				t.Fatalf("connector %d: last failure %+v, want the last deferral", id, l)
			}
		}
		// The histogram holds every delivered recipient once per connector.
		var lat int64
		st.DB().Raw(`SELECT COALESCE(SUM(n), 0) FROM connector_hourly WHERE connector_id = ? AND kind LIKE 'lat:%'`, f.out).Scan(&lat)
		if lat != 20 {
			t.Fatalf("latency histogram holds %d deliveries, want 20", lat)
		}
	})
}

// TestStatsLastKeepsTheNewest: a record never replaces a newer last
// outcome (another process may have recorded one meanwhile).
func TestStatsLastKeepsTheNewest(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		f := newStatsFixture(t, st)
		future := Micros(time.Now().Add(time.Hour))
		if err := st.DB().Exec(`INSERT INTO connector_last (connector_id, kind, at, status, address, message_uid, reply)
			VALUES (?, 'failure', ?, 'bounced', 'later@contoso.com', 'LATER', '550 later')`, f.out, future).Error; err != nil {
			t.Fatal(err)
		}
		f.record(f.pass(time.Now(), false, reply550))
		s, err := ReadConnectorStats(context.Background(), st, f.out, false, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if s.LastFailure == nil || s.LastFailure.MessageUID != "LATER" || s.Bounced != 1 {
			t.Fatalf("last failure %+v, bounced %d; want the newer row kept and the bounce counted", s.LastFailure, s.Bounced)
		}
		// The inbound connector had no row: it gets this one.
		if s, _ := ReadConnectorStats(context.Background(), st, f.in, true, time.Now()); s.LastFailure == nil || s.LastFailure.Reply != reply550.String() {
			t.Fatalf("inbound last failure %+v", s.LastFailure)
		}
	})
}

// TestStatsRejectedAndHours: an inbound connector's rejected messages are
// counted per hour of receipt (an hour that is over once, then kept in
// the rollup), hours are placed in the window, and a newer rejection is
// its last failure.
func TestStatsRejectedAndHours(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		w := NewWriter(st, slog.New(slog.DiscardHandler))
		defer w.Close()
		now := time.Now()
		in, other := int64(3), int64(4)
		var reqs []request
		for i, at := range []time.Time{now, now, now.Add(-5 * time.Hour), now.Add(-30 * time.Hour)} {
			id := in
			if i == 1 {
				id = other
			}
			reqs = append(reqs, request{m: &Message{UID: NewUID(), ReceivedAt: at, Status: Rejected, ClientIP: "192.0.2.9",
				Sender: fmt.Sprintf("s%d@fabrikam.com", i), InboundConnectorID: &id, Reply: "550 5.7.51 Restriction failed: TLS required"}})
		}
		for _, err := range w.commitEach(reqs, nil) {
			if err != nil {
				t.Fatal(err)
			}
		}
		// Two hours ago the rollup had mail for the connector too.
		two := hourStart(Micros(now)) - 2*hourMicros
		if err := st.DB().Exec(`INSERT INTO connector_hourly (connector_id, hour, kind, n) VALUES (?, ?, 'delivered', 4), (?, ?, 'deferred', 1), (?, ?, 'delivered', 9)`,
			in, two, in, two, in, two-30*hourMicros).Error; err != nil {
			t.Fatal(err)
		}
		s, err := ReadConnectorStats(ctx, st, in, true, now)
		if err != nil {
			t.Fatal(err)
		}
		got := map[int]HourCounts{}
		for i, h := range s.Hours {
			if h.Total() > 0 {
				got[StatsHours-1-i] = h // hours ago
			}
		}
		if len(got) != 3 || got[0].Rejected != 1 || got[5].Rejected != 1 || got[2].Delivered != 4 || got[2].Deferred != 1 {
			t.Fatalf("hours with mail (hours ago → counts): %+v", got)
		}
		if s.Rejected != 2 || s.Delivered != 4 {
			t.Fatalf("totals: rejected %d delivered %d", s.Rejected, s.Delivered)
		}
		if l := s.LastFailure; l == nil || l.Status != Rejected || l.Address != "s0@fabrikam.com" || !strings.Contains(l.Reply, "5.7.51") {
			t.Fatalf("last failure %+v", l)
		}
		// The hours that are over are counted once and kept in the rollup
		// (zeros too): the view then reads them there, not in the index;
		// the current hour is counted from the index at every view.
		var kept, keptN int64
		st.DB().Raw(`SELECT COUNT(*) FROM connector_hourly WHERE connector_id = ? AND kind = 'rejected'`, in).Scan(&kept)
		st.DB().Raw(`SELECT COALESCE(SUM(n), 0) FROM connector_hourly WHERE connector_id = ? AND kind = 'rejected'`, in).Scan(&keptN)
		settled := (hourStart(Micros(now.Add(-rejectSettle))) - windowStart(now)) / hourMicros
		if kept != settled || keptN != 1 {
			t.Fatalf("%d hours of rejections kept (%d rejected), want %d (1)", kept, keptN, settled)
		}
		st.DB().Exec(`DELETE FROM messages WHERE status = 'rejected' AND received_at < ?`, Micros(now.Add(-time.Hour)))
		late := &Message{UID: NewUID(), ReceivedAt: now, Status: Rejected, ClientIP: "192.0.2.9", InboundConnectorID: &in, Reply: "550 5.7.1 no"}
		if err := w.commitEach([]request{{m: late}}, nil)[0]; err != nil {
			t.Fatal(err)
		}
		if s, err := ReadConnectorStats(ctx, st, in, true, now); err != nil || s.Hours[StatsHours-1].Rejected != 2 || s.Hours[StatsHours-6].Rejected != 1 {
			t.Fatalf("after one more rejection now and the trace of 5 hours ago pruned: %+v, %v", s, err)
		}

		totals, err := HourlyTotals(ctx, st, []int64{99}, []int64{in, other}, now)
		if err != nil {
			t.Fatal(err)
		}
		if tin := totals[in]; tin[StatsHours-1] != 2 || tin[StatsHours-3] != 5 || tin[StatsHours-6] != 1 || sum(tin[:]) != 8 {
			t.Fatalf("sparkline of %d: %v", in, tin)
		}
		if to := totals[other]; sum(to[:]) != 1 || to[StatsHours-1] != 1 {
			t.Fatalf("sparkline of %d: %v", other, to)
		}
		if _, ok := totals[99]; ok {
			t.Fatalf("a connector without mail has a sparkline: %v", totals[99])
		}
	})
}

func sum(xs []int64) (n int64) {
	for _, x := range xs {
		n += x
	}
	return n
}

// TestStatsPruned: the trace pruning deletes the rollup's hours older
// than a week, and keeps the others.
func TestStatsPruned(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		h := hourStart(Micros(time.Now()))
		for _, ago := range []int64{0, 23, 24 * 7, 24*7 + 1, 24 * 30} { // 24 × 7: the hour of a week ago, kept
			if err := st.DB().Exec(`INSERT INTO connector_hourly (connector_id, hour, kind, n) VALUES (1, ?, 'delivered', 1)`, h-ago*hourMicros).Error; err != nil {
				t.Fatal(err)
			}
		}
		if _, err := Prune(context.Background(), st, time.Now().Add(-90*24*time.Hour), 0); err != nil {
			t.Fatal(err)
		}
		var left []int64
		st.DB().Raw(`SELECT hour FROM connector_hourly ORDER BY hour DESC`).Scan(&left)
		if len(left) != 3 || left[0] != h || left[1] != h-23*hourMicros || left[2] != h-24*7*hourMicros {
			t.Fatalf("hours left: %v (want this hour, 23 hours ago and a week ago)", left)
		}
	})
}

// TestStatsOfKeysSortedAndAggregated: a batch's counters are aggregated
// and sorted by key — an upsert never meets a key twice, and processes
// take the rows' locks in one order.
func TestStatsOfKeysSortedAndAggregated(t *testing.T) {
	in, a, b := int64(5), int64(2), int64(8)
	now := Micros(time.Date(2026, 3, 1, 14, 30, 0, 0, time.UTC))
	mk := func(conn int64, status Status, r smtpreply.Reply, tls bool, latency time.Duration) *outcome {
		rc := &recipientRow{Address: "x@contoso.com", ConnectorID: &conn}
		rc.setReply(status, r)
		rc.viaTLS = tls
		return &outcome{msg: &messageRow{UID: "U", ReceivedAt: now - latency.Microseconds(), InboundConnectorID: &in}, rcpts: []*recipientRow{rc}}
	}
	s := statsOf([]*outcome{
		mk(b, Delivered, reply250, true, 40*time.Millisecond), mk(a, Delivered, reply250, false, 40*time.Millisecond),
		mk(b, Delivered, reply250, true, 3*time.Second), mk(a, Deferred, reply451, false, 0), mk(b, Bounced, reply550, false, 0),
		mk(a, Delivered, reply250, false, 100*time.Hour),
	}, now)
	var got []string
	for i, k := range s.keys {
		got = append(got, fmt.Sprintf("%d/%s=%d", k.connector, k.kind, s.counts[i]))
		if k.hour != Micros(time.Date(2026, 3, 1, 14, 0, 0, 0, time.UTC)) {
			t.Fatalf("hour of %v", k)
		}
	}
	want := "2/deferred=1 2/delivered=2 2/lat:50=1 2/lat:inf=1 5/bounced=1 5/deferred=1 5/delivered=4 5/lat:50=2 5/lat:5000=1 5/lat:inf=1 5/tls=2 8/bounced=1 8/delivered=2 8/lat:50=1 8/lat:5000=1 8/tls=2"
	if strings.Join(got, " ") != want {
		t.Fatalf("counters\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	var last []string
	for _, l := range s.last {
		last = append(last, fmt.Sprintf("%d/%s=%s", l.connector, l.kind, l.status))
	}
	if w := "2/failure=deferred 2/success=delivered 5/failure=bounced 5/success=delivered 8/failure=bounced 8/success=delivered"; strings.Join(last, " ") != w {
		t.Fatalf("last rows %s, want %s", strings.Join(last, " "), w)
	}
}

// TestQuantileInterpolates: quantiles come from the bucket that holds
// them, interpolated on a log scale inside it.
func TestQuantileInterpolates(t *testing.T) {
	bs := []latencyBucket{{0, 10 * time.Millisecond, 10}, {time.Second, 2 * time.Second, 10}, {48 * time.Hour, 0, 1}}
	for _, tc := range []struct {
		q      float64
		lo, hi time.Duration
		value  time.Duration
	}{
		{0.25, 0, 10 * time.Millisecond, 5 * time.Millisecond},
		{0.5, time.Second, 2 * time.Second, 1035 * time.Millisecond}, // rank 10.5: 5% into the bucket, on a log scale: 1 s × 2^0.05
		{0.99, 48 * time.Hour, 0, 48 * time.Hour},
	} {
		got, ok := quantile(bs, tc.q)
		if !ok || got.Lo != tc.lo || got.Hi != tc.hi || (got.Value-tc.value).Abs() > time.Millisecond {
			t.Errorf("q%.2f = %+v, want %s in [%s, %s)", tc.q, got, tc.value, tc.lo, tc.hi)
		}
	}
	if _, ok := quantile(nil, 0.5); ok {
		t.Error("a quantile of nothing")
	}
	for _, d := range []time.Duration{0, 9 * time.Millisecond, 10 * time.Millisecond, 47 * time.Hour, 48 * time.Hour} {
		lo, hi, ok := parseLatencyKind(latencyKind(d))
		if !ok || d < lo || (hi != 0 && d >= hi) {
			t.Errorf("%s: bucket %s [%s, %s)", d, latencyKind(d), lo, hi)
		}
	}
}

// BenchmarkRecordStatsPostgres: what the rollup's two CTEs add to the
// record statement on PostgreSQL, per batch of delivered outcomes (one
// recipient each, through one outbound and one inbound connector, over
// TLS): the same statement with the rollup's arrays empty, alternating
// with the statement as the workers run it. Command (docs/perf.md):
//
//	FLOWGATE_TEST_POSTGRES_URL=… go test -run '^$' -bench RecordStatsPostgres -count 5 ./internal/queue/
func BenchmarkRecordStatsPostgres(b *testing.B) {
	testutil.SkipWithoutPostgres(b)
	st := testutil.OpenStore(b, testutil.Engines[1])
	w := NewWriter(st, slog.New(slog.DiscardHandler))
	defer w.Close()
	in, out := int64(7), int64(9)
	sqlDB, err := st.BookkeepingDB().DB()
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{1, 8, 64} {
		var reqs []request
		for range n {
			reqs = append(reqs, request{m: &Message{UID: NewUID(), ReceivedAt: time.Now(), Status: Queued, ClientIP: "192.0.2.1", Sender: "a@fabrikam.com",
				InboundConnectorID: &in, Recipients: []Recipient{{Address: "x@contoso.com", Status: Queued, ConnectorID: &out}}}})
		}
		for _, err := range w.commitEach(reqs, nil) {
			if err != nil {
				b.Fatal(err)
			}
		}
		var batch []*outcome
		for _, r := range reqs {
			rc := &recipientRow{ID: r.rcptIDs[0], MessageID: r.id, Address: "x@contoso.com", ConnectorID: &out, Attempts: 1}
			rc.setReply(Delivered, reply250)
			rc.viaTLS = true
			batch = append(batch, &outcome{msg: &messageRow{ID: r.id, UID: r.m.UID, ReceivedAt: Micros(r.m.ReceivedAt), InboundConnectorID: &in},
				rcpts: []*recipientRow{rc}, status: Delivered, attempts: 1,
				events: []eventRow{{MessageID: r.id, At: Micros(time.Now()), Type: "attempt", Detail: "x@contoso.com via smart host: 250 2.0.0 OK"}}})
		}
		// The two statements alternate, so that both see the same table
		// (each run leaves dead row versions behind).
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			var with, without time.Duration
			for b.Loop() {
				for _, rollup := range []bool{false, true} {
					args := outcomeArgs(batch, Micros(time.Now()))
					if !rollup {
						args = append(args[:17], batchStats{}.args()...)
					}
					t0 := time.Now()
					if _, err := sqlDB.ExecContext(context.Background(), outcomesPostgres, args...); err != nil {
						b.Fatal(err)
					}
					if rollup {
						with += time.Since(t0)
					} else {
						without += time.Since(t0)
					}
				}
			}
			per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) }
			b.ReportMetric(per(without), "µs/stmt-without")
			b.ReportMetric(per(with), "µs/stmt-with")
			b.ReportMetric(per(with-without), "µs/stmt-added")
			b.ReportMetric(per(with-without)/float64(n), "µs/outcome-added")
		})
	}
}
