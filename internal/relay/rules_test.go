package relay_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/relay"
	"github.com/flowgate/flowgate/internal/rules"
	"github.com/flowgate/flowgate/internal/testutil"
)

// rule creates a rule and waits until the relay's index has it.
func (h *harness) rule(r rules.Rule) {
	h.t.Helper()
	h.change(func() {
		if _, err := h.st.CreateRule(context.Background(), admin, r); err != nil {
			h.t.Fatal(err)
		}
	})
}

// ruleRcpt is a traced recipient with its rule decision.
type ruleRcpt struct {
	Address, Status, Connector, RouteReason, LastReply, Rule, RuleOnError string
	RuleConnectorID                                                       *int64
}

func (h *harness) recipients(uid string) map[string]ruleRcpt {
	h.t.Helper()
	var rows []ruleRcpt
	if err := h.st.DB().Raw(`SELECT r.address, r.status, r.connector, r.route_reason, r.last_reply, r.rule, r.rule_on_error, r.rule_connector_id
		FROM message_recipients r JOIN messages m ON m.id = r.message_id WHERE m.uid = ? ORDER BY r.id`, uid).Scan(&rows).Error; err != nil {
		h.t.Fatal(err)
	}
	out := map[string]ruleRcpt{}
	for _, r := range rows {
		out[r.Address] = r
	}
	return out
}

func (h *harness) header(uid string) (string, bool) {
	h.t.Helper()
	var sections []string
	if err := h.st.DB().Raw(`SELECT h.section FROM message_headers h JOIN messages m ON m.id = h.message_id WHERE m.uid = ?`, uid).Scan(&sections).Error; err != nil {
		h.t.Fatal(err)
	}
	if len(sections) == 0 {
		return "", false
	}
	return sections[0], true
}

// The relay applies the mail flow rules once per message after DATA, from
// its live index: a routing rule's decision is kept with the recipient, a
// rule rejecting every recipient answers DATA with its reply and queues
// nothing, one rejecting some marks those for a DSN, audit rules leave
// events, and the header section is kept with the trace (SPEC 7).
func TestRelayAppliesMailFlowRules(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			h := newHarness(t, e, func(c *relay.Config) { c.TraceHeaders = true })
			h.acceptedDomain("contoso.com")
			// Mail from 127.0.0.9 to the Internet is relayed for our own
			// server; its sender domain is ours.
			h.activeConnector(&connector.InboundSpec{Common: connector.Common{Name: "Our server", ConnectorType: connector.OnPremises},
				SenderIPAddresses: []string{"127.0.0.9"}})
			legal := h.activeConnector(&connector.OutboundSpec{Common: connector.Common{Name: "Legal gateway", ConnectorType: connector.Partner},
				IsTransportRuleScoped: true, SmartHosts: []string{"127.0.0.1:9"}, TLSSettings: connector.TLSOpportunistic})
			zero, one, two := 0, 1, 2
			h.rule(rules.Rule{Name: "Confidential to legal", Priority: &zero, Enabled: true,
				Conditions: rules.Predicates{RecipientDomainIs: []string{"fabrikam.test"},
					HeaderContains: []rules.HeaderWords{{Header: "X-Classification", Words: []string{"confidential"}}}},
				Exceptions: rules.Predicates{SenderAddressIs: []string{"ceo@contoso.com"}},
				Actions:    rules.Actions{RouteToOutboundConnector: &legal}})
			h.rule(rules.Rule{Name: "No mail to rivals", Priority: &one, Enabled: true,
				Conditions: rules.Predicates{RecipientDomainIs: []string{"rival.test"}},
				Actions:    rules.Actions{Reject: &rules.Reject{Code: 550, Enhanced: "5.7.1", Text: "Mail to rivals is not allowed"}}})
			h.rule(rules.Rule{Name: "Watch big mail", Priority: &two, Enabled: true, Mode: rules.Audit,
				Conditions: rules.Predicates{MessageSizeOver: ptr(int64(10))},
				Actions:    rules.Actions{Reject: &rules.Reject{}}})

			c := h.dial(clientOpts{src: "127.0.0.9"})
			confidential := "Subject: plans\r\nX-Classification: =?UTF-8?Q?strictly_Confidential?=\r\n\r\nhello\r\n"

			// Routed by the rule (the header is decoded before matching).
			r := send(c, "alice@contoso.com", []string{"bob@fabrikam.test", "carol@other.test"}, confidential)
			if !r.accepted() {
				t.Fatalf("routed message: %+v", r)
			}
			uid := uidOf(t, r.dataText)
			got := h.recipients(uid)
			if b := got["bob@fabrikam.test"]; b.Rule != "Confidential to legal" || b.RuleConnectorID == nil || *b.RuleConnectorID != legal ||
				b.RuleOnError != "defer" || b.Connector != "Legal gateway" || !strings.Contains(b.RouteReason, `mail flow rule "Confidential to legal"`) {
				t.Fatalf("bob: %+v", b)
			}
			if c := got["carol@other.test"]; c.Rule != "" || c.RuleConnectorID != nil || c.Connector != "" {
				t.Fatalf("carol, whom no rule routes: %+v", c)
			}
			if d := h.event(uid, "rule_audit"); !strings.Contains(d, `mail flow rule "Watch big mail" (audit mode) matched: it would reject`) {
				t.Fatalf("rule_audit event: %q", d)
			}
			if hd, ok := h.header(uid); !ok || !strings.Contains(hd, "X-Classification: =?UTF-8?Q?strictly_Confidential?=") || strings.Contains(hd, "hello") {
				t.Fatalf("kept header section %v: %q", ok, hd)
			}

			// The exception skips the rule.
			r = send(c, "ceo@contoso.com", []string{"bob@fabrikam.test"}, confidential)
			if b := h.recipients(uidOf(t, r.dataText))["bob@fabrikam.test"]; b.Rule != "" || b.Connector == "Legal gateway" {
				t.Fatalf("the exception did not skip the rule: %+v", b)
			}

			// Every recipient rejected: the rule's reply to DATA, nothing queued.
			before := len(h.traces())
			r = send(c, "alice@contoso.com", []string{"x@rival.test", "y@rival.test"}, "")
			if r.dataCode != 550 || !strings.Contains(r.dataText, "5.7.1 Mail to rivals is not allowed") {
				t.Fatalf("DATA of a message rules reject: %d %q", r.dataCode, r.dataText)
			}
			rows := h.traces()
			if len(rows) != before+1 || rows[len(rows)-1].Status != "rejected" || !strings.Contains(rows[len(rows)-1].Reply, "550 5.7.1 Mail to rivals") {
				t.Fatalf("trace of the rejected message: %+v", rows[len(rows)-1])
			}
			var queued int64
			h.st.DB().Raw(`SELECT count(*) FROM messages WHERE status = 'queued' AND uid = ?`, rows[len(rows)-1].UID).Scan(&queued)
			if queued != 0 {
				t.Fatal("a message rules rejected was queued")
			}

			// Rule events count against the per-recipient bound of the trace
			// (an attacker's 500 recipients cannot write 500 audit events
			// each); what is left out is counted in a summary event.
			many := make([]string, 150)
			for i := range many {
				many[i] = fmt.Sprintf("r%d@other.test", i)
			}
			r = send(c, "alice@contoso.com", many, "")
			if !r.accepted() {
				t.Fatalf("a message to 150 recipients: %+v", r)
			}
			uid = uidOf(t, r.dataText)
			var perRecipient, audits int64
			h.st.DB().Raw(`SELECT count(*) FROM message_events e JOIN messages m ON m.id = e.message_id WHERE m.uid = ?
			AND e.type IN ('recipient_accepted', 'rule_audit')`, uid).Scan(&perRecipient)
			h.st.DB().Raw(`SELECT count(*) FROM message_events e JOIN messages m ON m.id = e.message_id WHERE m.uid = ?
			AND e.type = 'events_omitted' AND e.detail = '… and 150 more audit rule matches'`, uid).Scan(&audits)
			if perRecipient > 100 || audits != 1 {
				t.Fatalf("150 recipients matching an audit rule: %d per-recipient events kept, %d summaries of the audit matches", perRecipient, audits)
			}

			// Some rejected: accepted; the rejected one is marked to bounce.
			r = send(c, "alice@contoso.com", []string{"x@rival.test", "carol@other.test"}, "")
			if !r.accepted() {
				t.Fatalf("partly rejected message: %+v", r)
			}
			x := h.recipients(uidOf(t, r.dataText))["x@rival.test"]
			if x.Rule != "No mail to rivals" || x.RuleOnError != "reject" || x.LastReply != "550 5.7.1 Mail to rivals is not allowed" {
				t.Fatalf("the rejected recipient of an accepted message: %+v", x)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
