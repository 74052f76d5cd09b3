//go:build unix

package relay_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/delivery"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/relay"
	"github.com/flowgate/flowgate/internal/rules"
	"github.com/flowgate/flowgate/internal/testutil"
)

// BenchmarkRulesEndToEnd measures the relay's end-to-end rate with no mail
// flow rules and with 100 (issue 19: within 10%): SMTP sessions over
// loopback send 2 KiB messages back to back (as BenchmarkAccept does) to
// a relay configured as flowgate serve configures it by default (header
// sections kept with the trace), whose queue commits each message before
// the 250 and whose delivery workers (from memory, as in flowgate serve)
// deliver it over SMTP to a counting sink. The clock runs from the first
// message until the sink has received the last one.
//
// With rules=100, 99 rules match nothing — a realistic mix of every key
// (recipient and sender addresses and domains, scopes, IP ranges, sizes,
// inbound connectors, header_contains and header_matches on fields the
// messages have and fields they lack, audit rules), as in
// internal/rules' BenchmarkEvaluate — and the last one routes every
// message (recipient_domain_is contoso.com and a Subject condition)
// through a rule-scoped connector to the same sink: each message is
// evaluated against all 100 and carries a rule decision. With rules=0 the
// messages go by SPEC 3.5 through a connector for all accepted domains to
// that sink.
//
// Reported: msgs/s (end to end), accept-msgs/s (to the last 250),
// cpu-us/msg (this process: relay, queue, delivery, sink, clients; not
// PostgreSQL). Every run starts on a fresh database. On a busy machine
// compare the two with BenchmarkRulesEndToEndPaired, or at a fixed count
// and interleaved:
//
//	go test -c -o /tmp/relay.test ./internal/relay
//	cd internal/relay && for i in 1 2 3 4 5; do for r in 0 100; do
//	  /tmp/relay.test -test.run='^$' -test.bench="RulesEndToEnd$/engine=sqlite/rules=$r$" -test.benchtime=3000x
//	done; done
func BenchmarkRulesEndToEnd(b *testing.B) {
	for _, e := range testutil.Engines {
		b.Run("engine="+e.Name, func(b *testing.B) {
			for _, n := range []int{0, 100} {
				b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
					benchRulesEndToEnd(b, e, n, 8, 2<<10)
				})
			}
		})
	}
}

func benchRulesEndToEnd(b *testing.B, e testutil.Engine, nRules, sessions, size int) {
	b.StopTimer()
	rig := newRulesRig(b, e, nRules, sessions, size)
	cpu0 := processCPU()
	b.ResetTimer()
	b.StartTimer()
	elapsed, accepted := rig.run(b, b.N)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N)/accepted.Seconds(), "accept-msgs/s")
	b.ReportMetric(float64(processCPU()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-us/msg")
	rig.check(b)
}

// BenchmarkRulesEndToEndPaired runs the two configurations of
// BenchmarkRulesEndToEnd (0 and 100 rules, one relay and database each) in
// one process and alternates between them in rounds of 2×250 messages
// (which goes first alternates too), so that a busy machine slows both
// alike; each round is timed from its first message until the sink has its
// last. b.N is the number of messages per configuration (rounded up to
// whole rounds). Reported: msgs/s of each and their ratio (rules100/rules0).
//
//	go test -run='^$' -bench=RulesEndToEndPaired -benchtime=5000x ./internal/relay
func BenchmarkRulesEndToEndPaired(b *testing.B) {
	for _, e := range testutil.Engines {
		b.Run("engine="+e.Name, func(b *testing.B) {
			b.StopTimer()
			const batch = 250
			none := newRulesRig(b, e, 0, 8, 2<<10)
			hundred := newRulesRig(b, e, 100, 8, 2<<10)
			rounds := (b.N + batch - 1) / batch
			var tNone, tHundred time.Duration
			b.ResetTimer()
			b.StartTimer()
			for i := range rounds {
				first, second, t1, t2 := none, hundred, &tNone, &tHundred
				if i%2 == 1 {
					first, second, t1, t2 = hundred, none, &tHundred, &tNone
				}
				d, _ := first.run(b, batch)
				*t1 += d
				d, _ = second.run(b, batch)
				*t2 += d
			}
			b.StopTimer()
			n := float64(rounds * batch)
			b.ReportMetric(n/tNone.Seconds(), "rules0-msgs/s")
			b.ReportMetric(n/tHundred.Seconds(), "rules100-msgs/s")
			b.ReportMetric(tNone.Seconds()/tHundred.Seconds(), "rules100/rules0")
			none.check(b)
			hundred.check(b)
		})
	}
}

// rulesRig is a relay with its delivery workers, a sink they deliver to,
// nRules mail flow rules and open client sessions.
type rulesRig struct {
	h       *harness
	sink    *countSink
	clients []*benchClient
	body    string
	nRules  int
	sent    int
}

func newRulesRig(b *testing.B, e testutil.Engine, nRules, sessions, size int) *rulesRig {
	b.Helper()
	h := newHarness(b, e, func(c *relay.Config) { c.TraceHeaders = true })
	sink := newCountSink(b)
	h.acceptedDomain("contoso.com")
	h.activeConnector(&connector.OutboundSpec{Common: connector.Common{Name: "Contoso servers", ConnectorType: connector.OnPremises},
		AllAcceptedDomains: true, SmartHosts: []string{sink.addr}})
	gateway := h.activeConnector(&connector.OutboundSpec{Common: connector.Common{Name: "Bench gateway", ConnectorType: connector.Partner},
		IsTransportRuleScoped: true, SmartHosts: []string{sink.addr}})
	if nRules > 0 {
		h.change(func() {
			for _, r := range benchRuleSet(nRules, gateway) {
				if _, err := h.st.CreateRule(context.Background(), admin, r); err != nil {
					b.Fatal(err)
				}
			}
		})
		if got := h.live.Index().Rules().Len(); got != nRules {
			b.Fatalf("the index holds %d rules, want %d", got, nRules)
		}
	}

	// Delivery workers as flowgate serve runs them: this process delivers
	// what it accepts from memory.
	log := slog.New(slog.DiscardHandler)
	client := &delivery.Client{Hostname: "gw.flowgate.test"}
	wk := queue.NewWorkers(h.st, h.live, client, queue.WorkerConfig{Hostname: "gw.flowgate.test"}, log)
	h.q.HandOverTo(wk)
	wctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { wk.Run(wctx, 5*time.Second); close(done) }()
	b.Cleanup(func() { stop(); <-done; client.Close() })

	rig := &rulesRig{h: h, sink: sink, body: benchBody(size), nRules: nRules}
	for range sessions {
		c, err := dialBench(h.addr)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(c.close)
		rig.clients = append(rig.clients, c)
	}
	return rig
}

// run sends n messages over the rig's sessions and waits until the sink
// has received them; it returns the time from the first message to the
// last one received, and to the last 250.
func (rig *rulesRig) run(b *testing.B, n int) (elapsed, accepted time.Duration) {
	var next atomic.Int64
	var wg sync.WaitGroup
	want := rig.sink.n.Load() + int64(n)
	start := time.Now()
	for i, c := range rig.clients {
		wg.Go(func() {
			for k := next.Add(1); k <= int64(n); k = next.Add(1) {
				if _, err := c.send(fmt.Sprintf("%d.%d.%d", start.UnixNano(), i, k), rig.body); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	accepted = time.Since(start)
	if !rig.sink.waitFor(want, 2*time.Minute) {
		b.Fatalf("the sink received %d of %d messages within 2 minutes", rig.sink.n.Load(), want)
	}
	rig.sent += n
	return time.Since(start), accepted
}

// check verifies that the messages sent went the way the configuration
// says: every one routed by the last rule, or none.
func (rig *rulesRig) check(b *testing.B) {
	var routed int64
	if err := rig.h.st.DB().Raw(`SELECT COUNT(*) FROM message_recipients WHERE rule = ?`, "Bench route").Scan(&routed).Error; err != nil {
		b.Fatal(err)
	}
	want := int64(0)
	if rig.nRules > 0 {
		want = int64(rig.sent)
	}
	if routed != want {
		b.Fatalf("rules=%d: %d recipients routed by the rule, want %d", rig.nRules, routed, want)
	}
}

// benchRuleSet is n rules (n ≥ 1): n-1 that match none of the benchmark's
// messages, by i%10 as in internal/rules' benchmark, then "Bench route",
// which routes them all through the connector gateway.
func benchRuleSet(n int, gateway int64) []rules.Rule {
	ptr := func(v int64) *int64 { return &v }
	out := make([]rules.Rule, 0, n)
	for i := range n - 1 {
		var p, exc rules.Predicates
		mode := rules.Enforce
		switch i % 10 {
		case 0:
			p.RecipientDomainIs = []string{fmt.Sprintf("d%d.example", i)}
		case 1:
			p.RecipientAddressIs = []string{fmt.Sprintf("user%d@contoso.com", i)}
		case 2:
			p.SenderDomainIs = []string{fmt.Sprintf("vendor%d.example", i)}
			p.HeaderContains = []rules.HeaderWords{{Header: "X-Priority", Words: []string{"high"}}}
		case 3:
			p.SenderAddressIs = []string{fmt.Sprintf("ceo%d@contoso.com", i)}
			p.SentToScope = rules.NotInOrganization
		case 4:
			p.InboundConnectorIs = []string{fmt.Sprintf("Partner %d", i)}
		case 5:
			if i/10%2 == 0 {
				p.HeaderMatches = []rules.HeaderPattern{{Header: "Subject", Pattern: fmt.Sprintf(`^\[T-%d\]`, i)}}
			} else {
				p.HeaderMatches = []rules.HeaderPattern{{Header: fmt.Sprintf("X-Loop-%d", i), Pattern: "."}}
			}
		case 6:
			p.SenderIPRanges = []string{fmt.Sprintf("198.51.%d.%d/32", i/256, i%256)}
			p.MessageSizeOver = ptr(10 << 20)
		case 7:
			p.FromScope = rules.InOrganization
			p.RecipientDomainIs = []string{fmt.Sprintf("p%d.example", i)}
		case 8:
			p.MessageSizeOver = ptr(25 << 20)
			exc.SenderDomainIs = []string{"fabrikam.com"}
		case 9:
			p.HeaderContains = []rules.HeaderWords{{Header: "X-Classification", Words: []string{fmt.Sprintf("secret-%d", i)}}}
			mode = rules.Audit
		}
		r := rules.Rule{Name: fmt.Sprint("Rule ", i), Enabled: true, Mode: mode, Conditions: p, Exceptions: exc,
			Actions: rules.Actions{RouteToOutboundConnector: ptr(gateway)}}
		if i%10 == 1 {
			r.Actions = rules.Actions{Reject: &rules.Reject{}}
		}
		out = append(out, r)
	}
	return append(out, rules.Rule{Name: "Bench route", Enabled: true,
		Conditions: rules.Predicates{RecipientDomainIs: []string{"contoso.com"},
			HeaderContains: []rules.HeaderWords{{Header: "Subject", Words: []string{"benchmark"}}}},
		Actions: rules.Actions{RouteToOutboundConnector: ptr(gateway)}})
}

// countSink is an SMTP server that counts the messages it receives and
// keeps nothing, so that it costs the benchmark little.
type countSink struct {
	addr string
	n    atomic.Int64
	more chan struct{} // a message arrived (buffered: a wake-up, not a count)
}

func newCountSink(b *testing.B) *countSink {
	s := &countSink{more: make(chan struct{}, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s.addr = ln.Addr().String()
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return countSession{s}, nil }))
	srv.Domain = "sink.test"
	srv.ReadTimeout, srv.WriteTimeout = time.Minute, time.Minute
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return s
}

// waitFor waits until the sink has received n messages in all.
func (s *countSink) waitFor(n int64, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for s.n.Load() < n {
		select {
		case <-s.more:
		case <-deadline:
			return false
		}
	}
	return true
}

type countSession struct{ s *countSink }

func (countSession) Reset()                               {}
func (countSession) Logout() error                        { return nil }
func (countSession) Mail(string, *smtp.MailOptions) error { return nil }
func (countSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (cs countSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	cs.s.n.Add(1)
	select {
	case cs.s.more <- struct{}{}:
	default:
	}
	return nil
}
