package rules_test

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/flowgate/flowgate/internal/rules"
)

// Evaluation cost at growing rule counts. The rules mix every key, the way
// an organization's rules might (rule i by i%10):
//
//	0 recipient_domain_is d<i>.example                 → route
//	1 recipient_address_is user<i>@contoso.com         → reject
//	2 sender_domain_is vendor<i>.example + header_contains X-Priority
//	3 sender_address_is ceo<i>@contoso.com + sent_to_scope not_in_organization
//	4 inbound_connector_is Partner <i>
//	5 header_matches on Subject (even tens) or X-Loop-<i> (odd tens)
//	6 sender_ip_ranges 198.51.x.y/32 + message_size_over 10 MB
//	7 from_scope in_organization + recipient_domain_is p<i>.example
//	8 message_size_over 25 MB, except sender_domain_is contoso.com
//	9 header_contains X-Classification secret-<i>, in audit mode
//
// and a last rule routes fabrikam.com, so the recipient is routed by the
// last rule after every other was passed over: most rules do not match.
// The Set is compiled outside the timed loop. Run:
//
//	go test -run='^$' -bench=. -benchmem ./internal/rules

var benchSizes = []int{0, 10, 100, 1000}

func benchRules(n int) []rules.Rule {
	rs := make([]rules.Rule, 0, n+1)
	for i := range n {
		var p rules.Predicates
		var exc rules.Predicates
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
			p.MessageSizeOver = ptr[int64](10 << 20)
		case 7:
			p.FromScope = rules.InOrganization
			p.RecipientDomainIs = []string{fmt.Sprintf("p%d.example", i)}
		case 8:
			p.MessageSizeOver = ptr[int64](25 << 20)
			exc.SenderDomainIs = []string{"contoso.com"}
		case 9:
			p.HeaderContains = []rules.HeaderWords{{Header: "X-Classification", Words: []string{fmt.Sprintf("secret-%d", i)}}}
			mode = rules.Audit
		}
		r := rules.Rule{Name: fmt.Sprint("rule ", i), Priority: ptr(i), Enabled: true, Mode: mode, Conditions: p, Exceptions: exc,
			Actions: rules.Actions{RouteToOutboundConnector: ptr(int64(i + 1))}}
		if i%10 == 1 {
			r.Actions = rules.Actions{Reject: &rules.Reject{}}
		}
		rs = append(rs, r)
	}
	rs = append(rs, routing("fabrikam", n, rules.Predicates{RecipientDomainIs: []string{"fabrikam.com"}}, 99))
	return rs
}

var benchHeader = []byte("Received: from mail.contoso.com (mail.contoso.com [203.0.113.5])\r\n" +
	"\tby mx.fabrikam.com with ESMTPS id 4Xyz; Mon, 2 Jun 2025 10:00:00 +0000\r\n" +
	"Received: from [10.0.0.7] by mail.contoso.com; Mon, 2 Jun 2025 09:59:59 +0000\r\n" +
	"From: Alice <alice@contoso.com>\r\nTo: Bob <bob@fabrikam.com>\r\n" +
	"Subject: =?UTF-8?Q?Quarterly_report_=E2=80=93_Q2?=\r\n" +
	"Date: Mon, 2 Jun 2025 09:59:58 +0000\r\nMessage-ID: <abc123@contoso.com>\r\n" +
	"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nX-Mailer: Outlook\r\n" +
	"X-Classification: internal\r\n\r\nHello Bob,\r\n")

var benchMessage = rules.Message{Sender: "alice@contoso.com", ClientIP: netip.MustParseAddr("203.0.113.5"),
	InboundConnector: "Contoso servers", FromOrganization: true, Header: benchHeader, Size: 48 << 10}

var sinkOutcomes []rules.Outcome

func BenchmarkEvaluate(b *testing.B) {
	rcpt := []rules.Recipient{{Address: "bob@fabrikam.com"}}
	var ten []rules.Recipient
	for i := range 10 {
		ten = append(ten, rules.Recipient{Address: fmt.Sprintf("user%d@fabrikam.com", i)})
	}
	for _, n := range benchSizes {
		s := compile(b, benchRules(n)...)
		if o := s.Evaluate(now, &benchMessage, rcpt); o[0].Route == nil || o[0].Route.ConnectorID != 99 {
			b.Fatalf("rules=%d: %+v", n, o[0])
		}
		b.Run(fmt.Sprintf("1-recipient/rules=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkOutcomes = s.Evaluate(now, &benchMessage, rcpt)
			}
		})
		b.Run(fmt.Sprintf("10-recipients/rules=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkOutcomes = s.Evaluate(now, &benchMessage, ten)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ten)), "ns/rcpt")
		})
	}
}

// Explain tests every rule and writes a trace: for the route test, not for
// the relay.
func BenchmarkExplain(b *testing.B) {
	rcpt := []rules.Recipient{{Address: "bob@fabrikam.com"}}
	for _, n := range benchSizes {
		s := compile(b, benchRules(n)...)
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkOutcomes = s.Explain(now, &benchMessage, rcpt)
			}
		})
	}
}

var sinkSet *rules.Set

func BenchmarkCompile(b *testing.B) {
	for _, n := range []int{100, 1000} {
		rs := benchRules(n)
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sinkSet = rules.Compile(rs)
			}
		})
	}
}
