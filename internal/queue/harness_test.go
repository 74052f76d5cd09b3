package queue_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
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

var admin = store.Actor{Kind: "user", Name: "admin@contoso.com"}

// pipeline is the whole path: relay → queue → workers → delivery client,
// over a real store, with a test CA, a test DNS server and real sinks.
type pipeline struct {
	t     testing.TB
	st    *store.Store
	live  *liveconfig.Config
	relay string // SMTP address
	ca    *testutil.CA
	dns   *testutil.DNS
	wk    *queue.Workers
}

type pipelineOpts struct {
	lifetime time.Duration
	retry    []time.Duration
	mxPort   int
	// concurrency is the workers' delivery slots (default 32).
	concurrency int
}

func newPipeline(t testing.TB, e testutil.Engine, o pipelineOpts) *pipeline {
	t.Helper()
	p := &pipeline{t: t, st: testutil.OpenStore(t, e), ca: testutil.NewCA(t, "Test CA"), dns: testutil.NewDNS(t)}
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	var err error
	p.live, err = liveconfig.Load(ctx, p.st, log)
	if err != nil {
		t.Fatal(err)
	}
	go p.live.Run(ctx)
	w := queue.NewWriter(p.st, log)
	if o.retry == nil {
		o.retry = []time.Duration{100 * time.Millisecond}
	}
	client := &delivery.Client{Hostname: "gw.flowgate.test", Roots: p.ca.Pool(), Resolver: &delivery.Resolver{Server: p.dns.Addr}, DialTimeout: 2 * time.Second, Port: o.mxPort}
	wk := queue.NewWorkers(p.st, p.live, client, queue.WorkerConfig{Hostname: "gw.flowgate.test", RetrySchedule: o.retry, Lifetime: o.lifetime, Poll: 100 * time.Millisecond, Concurrency: o.concurrency}, log)
	w.HandOverTo(wk)
	p.wk = wk
	wctx, wcancel := context.WithCancel(context.Background())
	wdone := make(chan struct{})
	go func() { wk.Run(wctx, 2*time.Second); close(wdone) }()
	rl := relay.New(relay.Config{Hostname: "gw.flowgate.test", QueueLifetime: o.lifetime}, p.live, w, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.relay = ln.Addr().String()
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
	return p
}

func (p *pipeline) change(fn func()) { p.t.Helper(); testutil.AfterReload(p.t, p.live, fn) }

func (p *pipeline) accepted(domains ...string) {
	p.t.Helper()
	for _, d := range domains {
		p.change(func() {
			if _, err := p.st.CreateAcceptedDomain(context.Background(), admin, d, connector.Authoritative); err != nil {
				p.t.Fatal(err)
			}
		})
	}
}

func (p *pipeline) outbound(spec *connector.OutboundSpec) int64 {
	p.t.Helper()
	var id int64
	p.change(func() { id = testutil.ActivateConnector(p.t, p.st, spec) })
	return id
}

// submit sends one message through the relay from the on-premises-like
// address 127.0.0.1 and returns its queue id.
func (p *pipeline) submit(from string, rcpts []string, subject string) string {
	p.t.Helper()
	return p.submitBody(from, rcpts, subject, "body of "+subject+"\r\n")
}

// submitBody is submit with the given body (CRLF lines).
func (p *pipeline) submitBody(from string, rcpts []string, subject, body string) string {
	p.t.Helper()
	c := testutil.NewRawSMTP(p.t, "127.0.0.1", p.relay)
	c.Cmd("EHLO client.test")
	if code, text := c.Cmd("MAIL FROM:<%s>", from); code != 250 {
		p.t.Fatalf("MAIL: %d %s", code, text)
	}
	for _, r := range rcpts {
		if code, text := c.Cmd("RCPT TO:<%s>", r); code != 250 {
			p.t.Fatalf("RCPT %s: %d %s", r, code, text)
		}
	}
	c.Cmd("DATA")
	c.Send("Subject: %s\r\nMessage-ID: <%d@client.test>\r\n\r\n%s.\r\n", subject, time.Now().UnixNano(), body)
	code, text := c.Read()
	if code != 250 {
		p.t.Fatalf("DATA: %d %s", code, text)
	}
	c.Cmd("QUIT")
	return text[strings.LastIndex(text, " ")+1:]
}

type rcptRow struct {
	Address, Status, Connector, RouteReason, LastReply string
	Attempts                                           int
}

func (p *pipeline) recipient(uid, addr string) rcptRow {
	p.t.Helper()
	var r rcptRow
	err := p.st.DB().Raw(`SELECT r.address, r.status, r.connector, r.route_reason, r.last_reply, r.attempts
		FROM message_recipients r JOIN messages m ON m.id = r.message_id WHERE m.uid = ? AND r.address = ?`, uid, addr).Scan(&r).Error
	if err != nil || r.Address == "" {
		p.t.Fatalf("recipient %s of %s: %v", addr, uid, err)
	}
	return r
}

// waitStatus polls until the recipient reaches status.
func (p *pipeline) waitStatus(uid, addr, status string, timeout time.Duration) rcptRow {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := p.recipient(uid, addr)
		if r.Status == status {
			return r
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s of %s is %s (%s) after %s, want %s\nevents:\n%s", addr, uid, r.Status, r.LastReply, timeout, status, p.events(uid))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *pipeline) events(uid string) string {
	var rows []struct{ Type, Detail string }
	p.st.DB().Raw(`SELECT e.type, e.detail FROM message_events e JOIN messages m ON m.id = e.message_id WHERE m.uid = ? ORDER BY e.id`, uid).Scan(&rows)
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "  %s: %s\n", r.Type, r.Detail)
	}
	return b.String()
}

func (p *pipeline) messageStatus(uid string) string {
	var s string
	p.st.DB().Raw(`SELECT status FROM messages WHERE uid = ?`, uid).Scan(&s)
	return s
}

// newSinkPipeline is a pipeline with contoso.com accepted and one sink
// behind an on-premises connector for all accepted domains.
func newSinkPipeline(t testing.TB, e testutil.Engine, o pipelineOpts) (*pipeline, *testutil.Sink) {
	t.Helper()
	p := newPipeline(t, e, o)
	p.accepted("contoso.com")
	s := testutil.NewSink(t, testutil.SinkOptions{})
	p.outbound(&connector.OutboundSpec{Common: onPrem("On-prem"), AllAcceptedDomains: true, SmartHosts: []string{s.Addr}})
	return p, s
}

func onPrem(name string) connector.Common {
	return connector.Common{Name: name, ConnectorType: connector.OnPremises}
}

func partnerOut(name string) connector.Common {
	return connector.Common{Name: name, ConnectorType: connector.Partner}
}

// relayFromHere lets 127.0.0.1 relay, as the organization's own server, for
// senders in contoso.com.
func (p *pipeline) relayFromHere() {
	p.t.Helper()
	p.change(func() {
		testutil.ActivateConnector(p.t, p.st, &connector.InboundSpec{Common: onPrem("Our server"), SenderIPAddresses: []string{"127.0.0.1"}})
	})
}
