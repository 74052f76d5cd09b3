package queue_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// summaryRow finds the queue summary's row of a connector.
func summaryRow(t *testing.T, ctl *queue.Control, name string) queue.QueueRow {
	t.Helper()
	sum, err := ctl.Summarize(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range sum.Connectors {
		if r.Connector != nil && *r.Connector == name {
			return r
		}
	}
	return queue.QueueRow{}
}

func auditCount(t *testing.T, st *store.Store, action, objectType, name string) int {
	t.Helper()
	var n int
	if err := st.DB().Raw("SELECT COUNT(*) FROM audit_log WHERE action = ? AND object_type = ? AND object_name = ? AND actor = ?",
		action, objectType, name, admin.String()).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// TestHoldAndRelease: a held connector's mail is accepted and queued but
// not attempted, counted as held; released, it is delivered at once.
func TestHoldAndRelease(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			p, sink := newSinkPipeline(t, e, pipelineOpts{})
			ctx := context.Background()
			ctl := queue.NewControl(p.wk)
			var id int64
			p.st.DB().Raw("SELECT id FROM connectors WHERE name = 'On-prem'").Scan(&id)
			p.change(func() {
				if _, err := ctl.Hold(ctx, admin, id); err != nil {
					t.Fatal(err)
				}
			})
			uid := p.submit("a@fabrikam.com", []string{"john@contoso.com", "ann@contoso.com"}, "held")
			time.Sleep(700 * time.Millisecond)
			if n := len(sink.Messages()); n != 0 {
				t.Fatalf("a held connector delivered %d message(s)", n)
			}
			if got := p.recipient(uid, "john@contoso.com").Status; got != "queued" {
				t.Fatalf("held recipient is %s, want queued", got)
			}
			if ev := p.events(uid); !strings.Contains(ev, `held: john@contoso.com, ann@contoso.com: outbound connector "On-prem" is on hold`) {
				t.Errorf("trace does not say the message is held:\n%s", ev)
			}
			row := summaryRow(t, ctl, "On-prem")
			if row.Held != 2 || row.Queued != 0 || row.Deferred != 0 || row.HeldSince == nil || row.HeldBy != admin.String() || row.NextHop != sink.Addr {
				t.Fatalf("summary row = %+v, want 2 held recipients via %s, held by %s", row, sink.Addr, admin)
			}
			if auditCount(t, p.st, "hold", "connector", "On-prem") != 1 {
				t.Error("no audit row for the hold")
			}
			start := time.Now()
			p.change(func() {
				if _, err := ctl.Release(ctx, admin, id); err != nil {
					t.Fatal(err)
				}
			})
			p.waitStatus(uid, "john@contoso.com", "delivered", 5*time.Second)
			t.Logf("delivered %s after the release", time.Since(start).Round(time.Millisecond))
			if auditCount(t, p.st, "release", "connector", "On-prem") != 1 {
				t.Error("no audit row for the release")
			}
			if sum, _ := ctl.Summarize(ctx); sum.Total != 0 || len(sum.Connectors) != 0 {
				t.Errorf("after delivery the queue is %+v, want empty", sum)
			}
		})
	}
}

// TestHeldMailExpires: held mail still counts against the queue lifetime.
func TestHeldMailExpires(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			p, sink := newSinkPipeline(t, e, pipelineOpts{lifetime: 1500 * time.Millisecond})
			ctl := queue.NewControl(p.wk)
			var id int64
			p.st.DB().Raw("SELECT id FROM connectors WHERE name = 'On-prem'").Scan(&id)
			p.change(func() {
				if _, err := ctl.Hold(context.Background(), admin, id); err != nil {
					t.Fatal(err)
				}
			})
			uid := p.submit("", []string{"john@contoso.com"}, "expires while held")
			r := p.waitStatus(uid, "john@contoso.com", "bounced", 6*time.Second)
			if !strings.Contains(r.LastReply, "queue lifetime expired") || !strings.Contains(r.LastReply, `"On-prem" was on hold`) {
				t.Errorf("last reply %q does not say the lifetime ran out while held", r.LastReply)
			}
			if n := len(sink.Messages()); n != 0 {
				t.Errorf("held mail was delivered (%d)", n)
			}
		})
	}
}

// TestMessageActions: retry, bounce and delete a deferred message, and
// what each refuses.
func TestMessageActions(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			p, sink := newSinkPipeline(t, e, pipelineOpts{retry: []time.Duration{time.Hour}})
			ctx := context.Background()
			ctl := queue.NewControl(p.wk)
			sink.Stop()
			deferred := func(subject string) string {
				uid := p.submit("a@fabrikam.com", []string{"john@contoso.com"}, subject)
				p.waitStatus(uid, "john@contoso.com", "deferred", 5*time.Second)
				return uid
			}
			retried, bounced, deleted := deferred("retry me"), deferred("bounce me"), deferred("delete me")
			row := summaryRow(t, ctl, "On-prem")
			if row.Deferred != 3 || row.LastError == "" || row.OldestAt == nil {
				t.Fatalf("summary row = %+v, want 3 deferred with a last error", row)
			}

			if err := ctl.Bounce(ctx, admin, bounced); err != nil {
				t.Fatal(err)
			}
			if got := p.messageStatus(bounced); got != "bounced" {
				t.Errorf("bounced message is %s", got)
			}
			var dsn int
			p.st.DB().Raw("SELECT COUNT(*) FROM messages WHERE attribution = ?", "delivery status notification for "+bounced).Scan(&dsn)
			if dsn != 1 {
				t.Errorf("%d DSNs queued for the bounced message, want 1", dsn)
			}
			if err := ctl.Delete(ctx, admin, deleted); err != nil {
				t.Fatal(err)
			}
			if got := p.messageStatus(deleted); got != "" {
				t.Errorf("deleted message still in the queue as %s", got)
			}
			var audit string
			p.st.DB().Raw("SELECT detail FROM audit_log WHERE action = 'delete' AND object_type = 'message' AND object_name = ?", deleted).Scan(&audit)
			if !strings.Contains(audit, "john@contoso.com") || !strings.Contains(audit, "a@fabrikam.com") {
				t.Errorf("the delete's audit row does not keep the envelope: %q", audit)
			}

			sink.Start()
			if err := ctl.Retry(ctx, admin, retried); err != nil {
				t.Fatal(err)
			}
			p.waitStatus(retried, "john@contoso.com", "delivered", 5*time.Second)
			time.Sleep(300 * time.Millisecond)
			for _, m := range sink.Messages() {
				if strings.Contains(m.Data, "delete me") || strings.Contains(m.Data, "bounce me") {
					t.Errorf("a deleted or bounced message arrived: %q", m.Data)
				}
			}
			for _, a := range []string{"retry", "bounce", "delete"} {
				uid := map[string]string{"retry": retried, "bounce": bounced, "delete": deleted}[a]
				if auditCount(t, p.st, a, "message", uid) != 1 {
					t.Errorf("no audit row for %s of %s", a, uid)
				}
			}

			// Refusals: finished, unknown, and being delivered right now.
			var fin *queue.FinishedError
			for name, act := range map[string]func(string) error{
				"retry":  func(u string) error { return ctl.Retry(ctx, admin, u) },
				"bounce": func(u string) error { return ctl.Bounce(ctx, admin, u) },
				"delete": func(u string) error { return ctl.Delete(ctx, admin, u) },
			} {
				if err := act(retried); !errors.As(err, &fin) || fin.Status != queue.Delivered {
					t.Errorf("%s of a delivered message: %v, want FinishedError delivered", name, err)
				}
				if err := act("nosuchmessage"); !errors.Is(err, queue.ErrNoMessage) {
					t.Errorf("%s of an unknown message: %v, want ErrNoMessage", name, err)
				}
			}
			arrived, release := sink.Hold()
			busy := p.submit("a@fabrikam.com", []string{"john@contoso.com"}, "in flight")
			<-arrived
			if err := ctl.Delete(ctx, admin, busy); !errors.Is(err, queue.ErrInFlight) {
				t.Errorf("delete of a message being delivered: %v, want ErrInFlight", err)
			}
			if err := ctl.Bounce(ctx, admin, busy); !errors.Is(err, queue.ErrInFlight) {
				t.Errorf("bounce of a message being delivered: %v, want ErrInFlight", err)
			}
			release()
			p.waitStatus(busy, "john@contoso.com", "delivered", 5*time.Second)
		})
	}
}

// TestReroute: mail deferred at a smart host that moved is re-routed to
// the connector's new smart host and delivered at once.
func TestReroute(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			p := newPipeline(t, e, pipelineOpts{retry: []time.Duration{time.Hour}})
			p.accepted("contoso.com")
			old := testutil.NewSink(t, testutil.SinkOptions{})
			old.Stop()
			spec := &connector.OutboundSpec{Common: onPrem("On-prem"), AllAcceptedDomains: true, SmartHosts: []string{old.Addr}}
			id := p.outbound(spec)
			ctx := context.Background()
			ctl := queue.NewControl(p.wk)
			uid := p.submit("a@fabrikam.com", []string{"john@contoso.com", "ann@contoso.com"}, "moved")
			p.waitStatus(uid, "john@contoso.com", "deferred", 5*time.Second)

			moved := testutil.NewSink(t, testutil.SinkOptions{})
			spec.SmartHosts = []string{moved.Addr}
			p.change(func() {
				if _, err := p.st.UpdateConnector(ctx, admin, id, spec, nil); err != nil {
					t.Fatal(err)
				}
				if err := p.st.MarkValidated(ctx, admin, connector.Outbound, id, 2); err != nil {
					t.Fatal(err)
				}
				if _, err := p.st.Activate(ctx, admin, connector.Outbound, id, 2); err != nil {
					t.Fatal(err)
				}
			})
			if row := summaryRow(t, ctl, "On-prem"); row.NextHop != moved.Addr || row.Deferred != 2 {
				t.Errorf("summary row = %+v, want 2 deferred, next hop %s", row, moved.Addr)
			}
			n, err := ctl.Reroute(ctx, admin, id)
			if err != nil || n != 2 {
				t.Fatalf("Reroute = %d, %v; want 2 recipients", n, err)
			}
			p.waitStatus(uid, "john@contoso.com", "delivered", 5*time.Second)
			moved.Wait(t, 1, 5*time.Second)
			if r := p.recipient(uid, "ann@contoso.com"); r.Status != "delivered" || r.Attempts != 2 {
				t.Errorf("ann: %+v", r)
			}
			if !strings.Contains(p.events(uid), "rerouted: routes recomputed by "+admin.String()) {
				t.Errorf("trace lacks the re-route:\n%s", p.events(uid))
			}
			if auditCount(t, p.st, "reroute", "connector", "On-prem") != 1 {
				t.Error("no audit row for the re-route")
			}
			if _, err := ctl.Reroute(ctx, admin, 999999); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("re-route of an unknown connector: %v, want ErrNotFound", err)
			}
		})
	}
}

// TestListWaitingPages: the waiting messages oldest first, a page at a
// time, finished ones skipped, narrowed to a connector or to mail without
// one.
func TestListWaitingPages(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		w := queue.NewWriter(st, slog.New(slog.DiscardHandler))
		defer w.Close()
		a, b := int64(101), int64(102)
		now := time.Now().UTC()
		for i, m := range []struct {
			uid    string
			status queue.Status
			conn   *int64
		}{{"w1", queue.Queued, &a}, {"d1", queue.Delivered, &a}, {"w2", queue.Deferred, &b}, {"w3", queue.Queued, nil},
			{"b1", queue.Bounced, &a}, {"w4", queue.Queued, &a}, {"w5", queue.Queued, &a}} {
			msg := &queue.Message{UID: m.uid, ReceivedAt: now.Add(time.Duration(i) * time.Second), Status: m.status, ClientIP: "192.0.2.1",
				Sender: "a@fabrikam.com", ExpiresAt: now.Add(time.Hour), Body: []byte("x\r\n"),
				Recipients: []queue.Recipient{{Address: "john@contoso.com", Status: m.status, ConnectorID: m.conn}}}
			if err := w.Enqueue(context.Background(), msg); err != nil {
				t.Fatal(err)
			}
		}
		list := func(conn int64, limit int) string {
			t.Helper()
			var pages []string
			after := int64(0)
			for {
				l, next, err := queue.ListWaiting(context.Background(), st, conn, after, limit)
				if err != nil {
					t.Fatal(err)
				}
				var uids []string
				for _, m := range l {
					uids = append(uids, m.UID)
				}
				pages = append(pages, strings.Join(uids, ","))
				if next == 0 {
					return strings.Join(pages, " | ")
				}
				after = next
			}
		}
		for _, c := range []struct {
			conn  int64
			limit int
			want  string
		}{{-1, 2, "w1,w2 | w3,w4 | w5"}, {-1, 10, "w1,w2,w3,w4,w5"}, {a, 2, "w1,w4 | w5"}, {b, 2, "w2"}, {0, 2, "w3"}, {999, 2, ""}} {
			if got := list(c.conn, c.limit); got != c.want {
				t.Errorf("ListWaiting(connector %d, %d a page) = %q, want %q", c.conn, c.limit, got, c.want)
			}
		}
	})
}
