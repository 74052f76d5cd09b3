package queue_test

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestSmartHostFailover(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			p := newPipeline(t, e, pipelineOpts{})
			p.accepted("contoso.com")
			s := testutil.NewSink(t, testutil.SinkOptions{})
			dead := closedAddr(t)
			p.outbound(&connector.OutboundSpec{Common: onPrem("On-prem"), AllAcceptedDomains: true, SmartHosts: []string{dead, s.Addr}})
			uid := p.submit("sun@internet.test", []string{"john@contoso.com"}, "failover")
			p.waitStatus(uid, "john@contoso.com", "delivered", 5*time.Second)
			ev := p.events(uid)
			if !strings.Contains(ev, "connection refused on "+dead) || !strings.Contains(ev, s.Addr) {
				t.Fatalf("trace lacks the failed and the good attempt:\n%s", ev)
			}
		})
	}
}

func TestMXByPreference(t *testing.T) {
	// Both MX hosts listen on one port at different loopback addresses.
	primary := testutil.NewSink(t, testutil.SinkOptions{Addr: "127.0.0.31:0"})
	_, port, _ := net.SplitHostPort(primary.Addr)
	backup := testutil.NewSink(t, testutil.SinkOptions{Addr: "127.0.0.32:" + port})
	var portN int
	fmt.Sscan(port, &portN)
	p := newPipeline(t, testutil.Engines[0], pipelineOpts{mxPort: portN})
	p.accepted("contoso.com")
	p.relayFromHere()
	p.dns.MX("fabrikam.test", "mx2.fabrikam.test", 20)
	p.dns.MX("fabrikam.test", "mx1.fabrikam.test", 10)
	p.dns.A("mx1.fabrikam.test", "127.0.0.31")
	p.dns.A("mx2.fabrikam.test", "127.0.0.32")
	p.outbound(&connector.OutboundSpec{Common: partnerOut("Fabrikam by MX"), RecipientDomains: []string{"fabrikam.test"}, UseMXRecord: true})

	uid := p.submit("john@contoso.com", []string{"ann@fabrikam.test"}, "mx primary")
	p.waitStatus(uid, "ann@fabrikam.test", "delivered", 5*time.Second)
	if len(primary.Messages()) != 1 || len(backup.Messages()) != 0 {
		t.Fatalf("preference not honoured: primary %d, backup %d", len(primary.Messages()), len(backup.Messages()))
	}
	primary.Stop()
	uid = p.submit("john@contoso.com", []string{"ann@fabrikam.test"}, "mx backup")
	p.waitStatus(uid, "ann@fabrikam.test", "delivered", 5*time.Second)
	if len(backup.Messages()) != 1 {
		t.Fatalf("backup MX not used: %d", len(backup.Messages()))
	}
	// Internet domains without a connector go by MX too; an unknown one
	// bounces (NXDOMAIN is permanent).
	p.dns.MX("internet.test", "mx2.fabrikam.test", 10)
	uid = p.submit("john@contoso.com", []string{"sun@internet.test", "x@nowhere.test"}, "mx internet")
	p.waitStatus(uid, "sun@internet.test", "delivered", 5*time.Second)
	r := p.waitStatus(uid, "x@nowhere.test", "bounced", 5*time.Second)
	if !strings.Contains(r.LastReply, "NXDOMAIN") {
		t.Fatalf("unknown domain: %q", r.LastReply)
	}
}

func TestAcceptedDomainWithoutRouteIsDeferred(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			p := newPipeline(t, e, pipelineOpts{retry: []time.Duration{time.Hour}})
			p.accepted("contoso.com")
			uid := p.submit("sun@internet.test", []string{"john@contoso.com"}, "no route")
			r := p.waitStatus(uid, "john@contoso.com", "deferred", 5*time.Second)
			if !strings.HasPrefix(r.LastReply, "451 4.4.0") || !strings.Contains(r.LastReply, "never") && !strings.Contains(r.LastReply, "looped") {
				t.Fatalf("deferral reply %q", r.LastReply)
			}
		})
	}
}

func TestOutageThenRecoveryDeliversEverything(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			p, s := newSinkPipeline(t, e, pipelineOpts{retry: []time.Duration{150 * time.Millisecond}})
			s.Stop()
			var uids []string
			for i := range 20 {
				uids = append(uids, p.submit("sun@internet.test", []string{fmt.Sprintf("u%d@contoso.com", i)}, fmt.Sprintf("outage %d", i)))
			}
			for i, uid := range uids {
				r := p.waitStatus(uid, fmt.Sprintf("u%d@contoso.com", i), "deferred", 5*time.Second)
				if !strings.Contains(r.LastReply, "connection refused") {
					t.Fatalf("deferral reason %q", r.LastReply)
				}
			}
			s.Start()
			for i, uid := range uids {
				p.waitStatus(uid, fmt.Sprintf("u%d@contoso.com", i), "delivered", 10*time.Second)
			}
			got := map[string]int{}
			for _, m := range s.Messages() {
				for _, to := range m.To {
					got[to]++
				}
			}
			for i := range 20 {
				if n := got[fmt.Sprintf("u%d@contoso.com", i)]; n != 1 {
					t.Fatalf("u%d delivered %d times", i, n)
				}
			}
		})
	}
}

// dsnSink routes mail for the sender's domain to a sink, so DSNs can be
// counted.
func dsnSink(t *testing.T, p *pipeline) *testutil.Sink {
	s := testutil.NewSink(t, testutil.SinkOptions{})
	p.outbound(&connector.OutboundSpec{Common: partnerOut("Senders"), RecipientDomains: []string{"sender.test"}, SmartHosts: []string{s.Addr}})
	return s
}

func checkOneDSN(t *testing.T, s *testutil.Sink, to, wantStatus, wantText string) {
	t.Helper()
	msgs := s.Wait(t, 1, 10*time.Second)
	time.Sleep(300 * time.Millisecond) // a second DSN would arrive by now
	msgs = s.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d DSNs, want exactly one", len(msgs))
	}
	m := msgs[0]
	if m.From != "" || len(m.To) != 1 || m.To[0] != to {
		t.Fatalf("DSN envelope from %q to %v", m.From, m.To)
	}
	for _, want := range []string{"multipart/report; report-type=delivery-status", "Content-Type: message/delivery-status",
		"Action: failed", "Status: " + wantStatus, wantText, "Content-Type: text/rfc822-headers", "Subject: doomed"} {
		if !strings.Contains(m.Data, want) {
			t.Fatalf("DSN lacks %q:\n%s", want, m.Data)
		}
	}
}

func TestPermanentFailureSendsOneDSN(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			p, s := newSinkPipeline(t, e, pipelineOpts{})
			s.RejectRcpt("nobody@contoso.com", 550, [3]int{5, 1, 1}, "no such user")
			bounces := dsnSink(t, p)
			uid := p.submit("alice@sender.test", []string{"nobody@contoso.com", "john@contoso.com"}, "doomed")
			r := p.waitStatus(uid, "nobody@contoso.com", "bounced", 5*time.Second)
			if !strings.Contains(r.LastReply, "550 5.1.1") {
				t.Fatalf("bounce reply %q", r.LastReply)
			}
			p.waitStatus(uid, "john@contoso.com", "delivered", 5*time.Second)
			checkOneDSN(t, bounces, "alice@sender.test", "5.1.1", "no such user")
			if st := p.messageStatus(uid); st != "bounced" {
				t.Fatalf("message status %s", st)
			}
		})
	}
}

func TestLifetimeExpirySendsOneDSN(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			p := newPipeline(t, e, pipelineOpts{lifetime: 700 * time.Millisecond, retry: []time.Duration{100 * time.Millisecond}})
			p.accepted("contoso.com")
			dead := closedAddr(t)
			p.outbound(&connector.OutboundSpec{Common: onPrem("On-prem"), AllAcceptedDomains: true, SmartHosts: []string{dead}})
			bounces := dsnSink(t, p)
			uid := p.submit("alice@sender.test", []string{"john@contoso.com"}, "doomed")
			r := p.waitStatus(uid, "john@contoso.com", "bounced", 10*time.Second)
			if !strings.Contains(r.LastReply, "queue lifetime expired") || r.Attempts < 2 {
				t.Fatalf("expiry: %+v", r)
			}
			checkOneDSN(t, bounces, "alice@sender.test", "4.4.7", "connection refused")
		})
	}
}

// A DSN is queued for FLOWGATE_QUEUE_LIFETIME like any other message.
func TestDSNFollowsQueueLifetime(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			const lifetime = 3 * time.Hour
			p, s := newSinkPipeline(t, e, pipelineOpts{lifetime: lifetime})
			s.RejectRcpt("nobody@contoso.com", 550, [3]int{5, 1, 1}, "no such user")
			bounces := dsnSink(t, p)
			uid := p.submit("alice@sender.test", []string{"nobody@contoso.com"}, "doomed")
			p.waitStatus(uid, "nobody@contoso.com", "bounced", 5*time.Second)
			bounces.Wait(t, 1, 10*time.Second)
			var got []struct{ ReceivedAt, ExpiresAt int64 }
			if err := p.st.DB().Raw(`SELECT received_at, expires_at FROM messages WHERE sender = ''`).Scan(&got).Error; err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("%d DSNs queued, want 1", len(got))
			}
			if d := time.Duration(got[0].ExpiresAt-got[0].ReceivedAt) * time.Microsecond; d != lifetime {
				t.Fatalf("the DSN expires %s after it was queued, want the queue lifetime %s", d, lifetime)
			}
		})
	}
}

// A DSN that cannot be delivered is not answered with another DSN.
func TestBounceNeverBounces(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			p, s := newSinkPipeline(t, e, pipelineOpts{})
			s.RejectRcpt("nobody@contoso.com", 550, [3]int{5, 1, 1}, "no such user")
			bounces := dsnSink(t, p)
			bounces.RejectRcpt("alice@sender.test", 550, [3]int{5, 1, 1}, "sender gone too")
			uid := p.submit("alice@sender.test", []string{"nobody@contoso.com"}, "doomed")
			p.waitStatus(uid, "nobody@contoso.com", "bounced", 5*time.Second)
			var dsnUID string
			deadline := time.Now().Add(5 * time.Second)
			for dsnUID == "" && time.Now().Before(deadline) {
				p.st.DB().Raw(`SELECT uid FROM messages WHERE sender = '' AND status = 'bounced'`).Scan(&dsnUID)
				time.Sleep(20 * time.Millisecond)
			}
			if dsnUID == "" {
				t.Fatal("the DSN did not bounce")
			}
			if ev := p.events(dsnUID); !strings.Contains(ev, "no DSN: the message has the null sender") {
				t.Fatalf("events of the bounced DSN:\n%s", ev)
			}
			time.Sleep(300 * time.Millisecond)
			var n int
			p.st.DB().Raw(`SELECT COUNT(*) FROM messages WHERE sender = ''`).Scan(&n)
			if n != 1 {
				t.Fatalf("%d null-sender messages, want only the one DSN", n)
			}
		})
	}
}

// A queued message whose content is missing is bounced, never reported as
// delivered.
func TestMissingContentIsBouncedNotDelivered(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			p := newPipeline(t, e, pipelineOpts{retry: []time.Duration{time.Hour}})
			p.accepted("contoso.com")
			dead := closedAddr(t)
			p.outbound(&connector.OutboundSpec{Common: onPrem("On-prem"), AllAcceptedDomains: true, SmartHosts: []string{dead}})
			uid := p.submit("sun@internet.test", []string{"john@contoso.com"}, "no content")
			p.waitStatus(uid, "john@contoso.com", "deferred", 5*time.Second)
			if err := p.st.DB().Exec(`DELETE FROM message_bodies WHERE message_id = (SELECT id FROM messages WHERE uid = ?)`, uid).Error; err != nil {
				t.Fatal(err)
			}
			if err := p.st.DB().Exec(`UPDATE messages SET next_attempt_at = 0 WHERE uid = ?`, uid).Error; err != nil {
				t.Fatal(err)
			}
			r := p.waitStatus(uid, "john@contoso.com", "bounced", 5*time.Second)
			if !strings.Contains(r.LastReply, "5.3.0") {
				t.Fatalf("reply %q", r.LastReply)
			}
		})
	}
}

// A large message whose stored pieces no longer make its content (one is
// gone) is bounced, never delivered cut short.
func TestMissingPieceIsBouncedNotDelivered(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			p := newPipeline(t, e, pipelineOpts{retry: []time.Duration{time.Hour}})
			p.accepted("contoso.com")
			dead := closedAddr(t)
			p.outbound(&connector.OutboundSpec{Common: onPrem("On-prem"), AllAcceptedDomains: true, SmartHosts: []string{dead}})
			uid := p.submitBody("sun@internet.test", []string{"john@contoso.com"}, "large", strings.Repeat("a line of the body\r\n", 2*queue.ChunkSize/20))
			p.waitStatus(uid, "john@contoso.com", "deferred", 5*time.Second)
			if err := p.st.DB().Exec(`DELETE FROM message_chunks WHERE uid = ? AND seq = 1`, uid).Error; err != nil {
				t.Fatal(err)
			}
			if err := p.st.DB().Exec(`UPDATE messages SET next_attempt_at = 0 WHERE uid = ?`, uid).Error; err != nil {
				t.Fatal(err)
			}
			r := p.waitStatus(uid, "john@contoso.com", "bounced", 5*time.Second)
			if !strings.Contains(r.LastReply, "5.3.0") {
				t.Fatalf("reply %q", r.LastReply)
			}
		})
	}
}

// TestOutcomeRecordedAfterDatabaseOutage: PostgreSQL (behind a proxy the
// test cuts) goes away after the sink has the message's content and before
// the sink answers, and stays away for two seconds — a restart or a
// failover. Once it is back, the delivery's outcome is recorded: the
// message is delivered, and only once, rather than left leased until its
// lease runs out and then delivered again.
func TestOutcomeRecordedAfterDatabaseOutage(t *testing.T) {
	u, err := url.Parse(testutil.PostgresDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	px := testutil.NewProxy(t, u.Host)
	u.Host = px.Addr
	viaProxy := testutil.Engine{Name: "postgres via a proxy", Options: func(testing.TB) store.Options {
		return store.Options{DatabaseURL: u.String()}
	}}
	p, sink := newSinkPipeline(t, viaProxy, pipelineOpts{})
	arrived, release := sink.Hold()
	defer release()
	uid := p.submit("sun@internet.test", []string{"a@contoso.com"}, "outage")
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the message did not reach the sink")
	}
	px.Cut()
	release() // the delivery client gets its 250 while the database is away
	time.Sleep(2 * time.Second)
	px.Restore()

	// Poll with errors tolerated: the test's own pooled connections went
	// down with the proxy's.
	deadline := time.Now().Add(15 * time.Second)
	for {
		var status string
		err := p.st.DB().Raw(`SELECT status FROM messages WHERE uid = ?`, uid).Row().Scan(&status)
		if err == nil && status == "delivered" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s is %q (%v) 15 s after the database came back, want delivered\nevents:\n%s", uid, status, err, p.events(uid))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r := p.recipient(uid, "a@contoso.com"); r.Status != "delivered" || r.Attempts != 1 {
		t.Fatalf("recipient %+v, want delivered after one attempt", r)
	}
	if n := len(sink.Messages()); n != 1 {
		t.Fatalf("the sink has %d messages, want 1", n)
	}
}
