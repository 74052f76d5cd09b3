package queue_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/testutil"
)

// TestConnectorStatsFollowTheTrace: mail through the real relay, queue and
// workers to real sinks — delivered over TLS and without, deferred,
// bounced (with its DSN), and refused at the relay by an inbound
// connector's restriction — and each connector's live view counts what
// the trace records for it, on both engines.
func TestConnectorStatsFollowTheTrace(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			p := newPipeline(t, e, pipelineOpts{retry: []time.Duration{time.Hour}})
			p.accepted("contoso.com")
			var ours, partner int64
			p.change(func() {
				ours = testutil.ActivateConnector(t, p.st, &connector.InboundSpec{Common: onPrem("Our server"), SenderIPAddresses: []string{"127.0.0.1"}})
			})
			p.change(func() {
				partner = testutil.ActivateConnector(t, p.st, &connector.InboundSpec{Common: connector.Common{Name: "Fabrikam", ConnectorType: connector.Partner},
					SenderDomains: []string{"fabrikam.com"}, RequireTLS: true})
			})
			mailboxes := testutil.NewSink(t, testutil.SinkOptions{Cert: ptr(p.ca.Issue(t, "mail.contoso.com", "mail.contoso.com"))})
			mailboxes.RejectRcpt("gone@contoso.com", 550, [3]int{5, 1, 1}, "no such user")
			mailboxes.RejectRcpt("busy@contoso.com", 451, [3]int{4, 2, 1}, "mailbox busy")
			relayHost := testutil.NewSink(t, testutil.SinkOptions{})
			toMailboxes := p.outbound(&connector.OutboundSpec{Common: onPrem("Mailboxes"), AllAcceptedDomains: true,
				SmartHosts: []string{mailboxes.Addr}, TLSSettings: connector.TLSOpportunistic})
			toPartner := p.outbound(&connector.OutboundSpec{Common: partnerOut("Partner relay"), RecipientDomains: []string{"partner.test"},
				SmartHosts: []string{relayHost.Addr}, TLSSettings: connector.TLSOpportunistic})

			first := p.submit("john@contoso.com", []string{"a@contoso.com", "b@contoso.com", "gone@contoso.com", "busy@contoso.com"}, "one")
			second := p.submit("john@contoso.com", []string{"x@partner.test"}, "two")
			third := p.submit("john@contoso.com", []string{"a@contoso.com"}, "three")
			c := testutil.NewRawSMTP(t, "127.0.0.2", p.relay)
			c.Cmd("EHLO mail.fabrikam.com")
			if code, text := c.Cmd("MAIL FROM:<bob@fabrikam.com>"); code != 550 || !strings.Contains(text, "5.7.51") {
				t.Fatalf("MAIL FROM without TLS through a connector that requires it: %d %s", code, text)
			}
			c.Cmd("QUIT")

			p.waitStatus(first, "a@contoso.com", "delivered", 5*time.Second)
			p.waitStatus(first, "b@contoso.com", "delivered", 5*time.Second)
			p.waitStatus(first, "gone@contoso.com", "bounced", 5*time.Second)
			p.waitStatus(first, "busy@contoso.com", "deferred", 5*time.Second)
			p.waitStatus(second, "x@partner.test", "delivered", 5*time.Second)
			p.waitStatus(third, "a@contoso.com", "delivered", 5*time.Second)
			waitFor(t, "the DSN to john@contoso.com delivered and the refusal traced", func() bool {
				var dsn, refused int64
				p.st.DB().Raw(`SELECT COUNT(*) FROM messages WHERE sender = '' AND status = 'delivered'`).Scan(&dsn)
				p.st.DB().Raw(`SELECT COUNT(*) FROM messages WHERE status = 'rejected' AND inbound_connector_id = ?`, partner).Scan(&refused)
				return dsn == 1 && refused == 1
			})

			// What the trace says, per connector: recipients by status
			// (each attempted once), and messages refused at the relay.
			trace := map[int64]map[string]int64{}
			var rows []struct {
				ConnectorID int64
				Status      string
				N           int64
			}
			if err := p.st.DB().Raw(`SELECT r.connector_id, r.status, COUNT(*) AS n FROM message_recipients r
					WHERE r.connector_id IS NOT NULL AND r.status <> 'rejected' GROUP BY r.connector_id, r.status
				UNION ALL SELECT m.inbound_connector_id, r.status, COUNT(*) FROM messages m JOIN message_recipients r ON r.message_id = m.id
					WHERE m.inbound_connector_id IS NOT NULL AND m.status <> 'rejected' GROUP BY m.inbound_connector_id, r.status
				UNION ALL SELECT inbound_connector_id, 'rejected', COUNT(*) FROM messages WHERE status = 'rejected' AND inbound_connector_id IS NOT NULL
					GROUP BY inbound_connector_id`).Scan(&rows).Error; err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				if trace[r.ConnectorID] == nil {
					trace[r.ConnectorID] = map[string]int64{}
				}
				trace[r.ConnectorID][r.Status] += r.N
			}
			for _, tc := range []struct {
				name                                        string
				id                                          int64
				inbound                                     bool
				delivered, deferred, bounced, rejected, tls int64
				lastFailure                                 string
			}{
				// a, b, a again and the DSN to john; gone; busy.
				{"Mailboxes", toMailboxes, false, 4, 1, 1, 0, 4, "@contoso.com"},
				{"Partner relay", toPartner, false, 1, 0, 0, 0, 0, ""},
				{"Our server", ours, true, 4, 1, 1, 0, 3, "@contoso.com"},
				{"Fabrikam", partner, true, 0, 0, 0, 1, 0, "bob@fabrikam.com"},
			} {
				s, err := queue.ReadConnectorStats(context.Background(), p.st, tc.id, tc.inbound, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				tr := trace[tc.id]
				if s.Delivered != tr["delivered"] || s.Deferred != tr["deferred"] || s.Bounced != tr["bounced"] || s.Rejected != tr["rejected"] {
					t.Errorf("%s: live view delivered %d deferred %d bounced %d rejected %d; the trace %v",
						tc.name, s.Delivered, s.Deferred, s.Bounced, s.Rejected, tr)
				}
				if s.Delivered != tc.delivered || s.Deferred != tc.deferred || s.Bounced != tc.bounced || s.Rejected != tc.rejected || s.TLS != tc.tls {
					t.Errorf("%s: delivered %d deferred %d bounced %d rejected %d tls %d; want %d %d %d %d %d", tc.name,
						s.Delivered, s.Deferred, s.Bounced, s.Rejected, s.TLS, tc.delivered, tc.deferred, tc.bounced, tc.rejected, tc.tls)
				}
				if now := s.Hours[queue.StatsHours-1]; now.Total() != s.Delivered+s.Deferred+s.Bounced+s.Rejected {
					t.Errorf("%s: the current hour holds %+v, not all of the mail", tc.name, now)
				}
				if tc.delivered > 0 {
					if !s.HasLatency || s.Median.Value <= 0 || s.P95.Value < s.Median.Value || s.P95.Hi == 0 || s.P95.Hi > 10*time.Second {
						t.Errorf("%s: latency median %+v p95 %+v, want a few milliseconds to seconds", tc.name, s.Median, s.P95)
					}
					if s.LastSuccess == nil || !strings.HasPrefix(s.LastSuccess.Reply, "250") || s.LastSuccess.MessageUID == "" {
						t.Errorf("%s: last success %+v", tc.name, s.LastSuccess)
					}
				} else if s.HasLatency || s.LastSuccess != nil {
					t.Errorf("%s: latency %+v, last success %+v without deliveries", tc.name, s.Median, s.LastSuccess)
				}
				switch l := s.LastFailure; {
				case tc.lastFailure == "" && l != nil:
					t.Errorf("%s: last failure %+v without failures", tc.name, l)
				case tc.lastFailure == "":
				case l == nil || !strings.Contains(l.Address, tc.lastFailure):
					t.Errorf("%s: last failure %+v, want one of %s", tc.name, l, tc.lastFailure)
				case l.Status == queue.Bounced && !strings.HasPrefix(l.Reply, "550 5.1.1"),
					l.Status == queue.Deferred && !strings.HasPrefix(l.Reply, "451 4.2.1"),
					l.Status == queue.Rejected && !strings.Contains(l.Reply, "5.7.51"),
					l.Status == queue.Delivered:
					t.Errorf("%s: last failure %+v: the wrong reply", tc.name, l)
				}
			}
		})
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
