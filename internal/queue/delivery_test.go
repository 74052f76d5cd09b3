package queue_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/testutil"
)

// The seeds' precedence example, delivered: connector 1 for all accepted
// domains, 2 for contoso.com, 3 for *.contoso.com, each to its own sink.
func TestPrecedenceExampleDeliversToThreeSinks(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			p := newPipeline(t, e, pipelineOpts{})
			p.accepted("contoso.com", "sales.contoso.com", "fabrikam.com", "contoso.onmicrosoft.com")
			s1, s2, s3 := testutil.NewSink(t, testutil.SinkOptions{}), testutil.NewSink(t, testutil.SinkOptions{}), testutil.NewSink(t, testutil.SinkOptions{})
			p.outbound(&connector.OutboundSpec{Common: onPrem("Connector 1"), AllAcceptedDomains: true, SmartHosts: []string{s1.Addr}})
			p.outbound(&connector.OutboundSpec{Common: onPrem("Connector 2"), RecipientDomains: []string{"contoso.com"}, SmartHosts: []string{s2.Addr}})
			p.outbound(&connector.OutboundSpec{Common: onPrem("Connector 3"), RecipientDomains: []string{"*.contoso.com"}, SmartHosts: []string{s3.Addr}})

			uid := p.submit("sun@internet.test", []string{"john@fabrikam.com", "john@contoso.com", "john@sales.contoso.com"}, "precedence")
			for sink, rcpt := range map[*testutil.Sink]string{s1: "john@fabrikam.com", s2: "john@contoso.com", s3: "john@sales.contoso.com"} {
				msgs := sink.Wait(t, 1, 10*time.Second)
				if len(msgs) != 1 || len(msgs[0].To) != 1 || msgs[0].To[0] != rcpt {
					t.Fatalf("%s got %+v, want only %s", sink, msgs, rcpt)
				}
				if !strings.Contains(msgs[0].Data, "Subject: precedence") || !strings.Contains(msgs[0].Data, "by gw.flowgate.test (flowgate)") {
					t.Fatalf("delivered content:\n%s", msgs[0].Data)
				}
			}
			for rcpt, name := range map[string]string{"john@fabrikam.com": "Connector 1", "john@contoso.com": "Connector 2", "john@sales.contoso.com": "Connector 3"} {
				r := p.waitStatus(uid, rcpt, "delivered", 5*time.Second)
				if r.Connector != name || r.RouteReason == "" || r.Attempts != 1 {
					t.Fatalf("%s: %+v, want delivered through %s", rcpt, r, name)
				}
			}
			if st := p.messageStatus(uid); st != "delivered" {
				t.Fatalf("message status %s", st)
			}
		})
	}
}

// Recipients that share a route go in one SMTP transaction.
func TestSharedRouteIsOneTransaction(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			p, s := newSinkPipeline(t, e, pipelineOpts{})
			p.submit("sun@internet.test", []string{"a@contoso.com", "b@contoso.com", "c@contoso.com"}, "grouped")
			msgs := s.Wait(t, 1, 5*time.Second)
			time.Sleep(200 * time.Millisecond)
			if msgs = s.Messages(); len(msgs) != 1 || len(msgs[0].To) != 3 {
				t.Fatalf("sink got %d transactions: %+v", len(msgs), msgs)
			}
		})
	}
}

func TestTLSSettings(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			p := newPipeline(t, e, pipelineOpts{retry: []time.Duration{time.Hour}})
			p.accepted("contoso.com")
			p.relayFromHere()
			other := testutil.NewCA(t, "Untrusted CA")
			plain := testutil.NewSink(t, testutil.SinkOptions{})
			good := testutil.NewSink(t, testutil.SinkOptions{Cert: ptr(p.ca.Issue(t, "mail.partner.test", "mail.partner.test"))})
			wrongName := testutil.NewSink(t, testutil.SinkOptions{Cert: ptr(p.ca.Issue(t, "mail.other.test", "mail.other.test"))})
			untrusted := testutil.NewSink(t, testutil.SinkOptions{Cert: ptr(other.Issue(t, "mail.partner.test", "mail.partner.test"))})

			cases := []struct {
				name      string
				sink      *testutil.Sink
				setting   connector.TLSSettings
				tlsDomain string
				delivered bool
				tls       bool
				reason    string
			}{
				{"opportunistic, plain sink", plain, connector.TLSOpportunistic, "", true, false, ""},
				{"opportunistic, untrusted sink", untrusted, connector.TLSOpportunistic, "", true, true, ""},
				{"encryption_only, plain sink", plain, connector.TLSEncryptionOnly, "", false, false, "does not offer STARTTLS"},
				{"encryption_only, untrusted sink", untrusted, connector.TLSEncryptionOnly, "", true, true, ""},
				{"certificate_validation, trusted", good, connector.TLSCertificateValidation, "", true, true, ""},
				{"certificate_validation, untrusted", untrusted, connector.TLSCertificateValidation, "", false, false, "not issued by a trusted CA"},
				{"domain_validation, right name", good, connector.TLSDomainValidation, "mail.partner.test", true, true, ""},
				{"domain_validation, wildcard", good, connector.TLSDomainValidation, "*.partner.test", true, true, ""},
				{"domain_validation, wrong name", wrongName, connector.TLSDomainValidation, "mail.partner.test", false, false, "certificate for mail.other.test does not match tls_domain mail.partner.test"},
				{"domain_validation, plain sink", plain, connector.TLSDomainValidation, "mail.partner.test", false, false, "does not offer STARTTLS"},
			}
			for i, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					domain := "p" + string(rune('a'+i)) + ".partner.test"
					p.outbound(&connector.OutboundSpec{Common: partnerOut("Partner " + domain), RecipientDomains: []string{domain},
						SmartHosts: []string{tc.sink.Addr}, TLSSettings: tc.setting, TLSDomain: tc.tlsDomain})
					before := len(tc.sink.Messages())
					rcpt := "bob@" + domain
					uid := p.submit("john@contoso.com", []string{rcpt}, tc.name)
					if tc.delivered {
						p.waitStatus(uid, rcpt, "delivered", 5*time.Second)
						msgs := tc.sink.Wait(t, before+1, time.Second)
						if got := msgs[len(msgs)-1]; got.TLS != tc.tls || got.To[0] != rcpt {
							t.Fatalf("delivered with TLS=%v to %v, want TLS=%v", got.TLS, got.To, tc.tls)
						}
						return
					}
					r := p.waitStatus(uid, rcpt, "deferred", 5*time.Second)
					if !strings.Contains(r.LastReply, tc.reason) || !strings.Contains(p.events(uid), tc.reason) {
						t.Fatalf("deferral reason %q (events:\n%s), want it to contain %q", r.LastReply, p.events(uid), tc.reason)
					}
					if n := len(tc.sink.Messages()); n != before {
						t.Fatalf("the sink received the message anyway (downgrade): %d", n)
					}
				})
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// What this process accepts it delivers from memory while it has free
// delivery slots (no claim); with every slot busy, the rest is queued for a
// claim, and every message is still delivered exactly once.
func TestAcceptedMessagesHandedToLocalWorkers(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			p, s := newSinkPipeline(t, e, pipelineOpts{})
			for i := range 5 {
				uid := p.submit("sun@internet.test", []string{"a@contoso.com"}, fmt.Sprintf("m%d", i))
				p.waitStatus(uid, "a@contoso.com", "delivered", 5*time.Second)
			}
			if h, c := p.wk.Stats(); h != 5 || c != 0 {
				t.Fatalf("handed over %d, claimed %d; want 5, 0", h, c)
			}
			if n := len(s.Messages()); n != 5 {
				t.Fatalf("the sink received %d messages, want 5", n)
			}
		})
		t.Run(e.Name+"/one slot", func(t *testing.T) {
			p, s := newSinkPipeline(t, e, pipelineOpts{concurrency: 1})
			const n = 12
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					p.submit("sun@internet.test", []string{"a@contoso.com"}, fmt.Sprintf("m%d", i))
				}()
			}
			wg.Wait()
			s.Wait(t, n, 10*time.Second)
			time.Sleep(300 * time.Millisecond)
			subjects := map[string]int{}
			for _, m := range s.Messages() {
				for _, l := range strings.Split(m.Data, "\r\n") {
					if strings.HasPrefix(l, "Subject: ") {
						subjects[l]++
					}
				}
			}
			h, c := p.wk.Stats()
			t.Logf("handed over %d, claimed %d", h, c)
			if len(subjects) != n || len(s.Messages()) != n || h < 1 || h+c != n {
				t.Fatalf("%d messages, %d subjects at the sink; handed over %d, claimed %d; want %d each, h+c = %d", len(s.Messages()), len(subjects), h, c, n, n)
			}
		})
	}
}
