package relay

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/rules"
)

// applyRules evaluates the mail flow rules (SPEC 7) once for the message,
// after DATA and before it is committed, from the index the transaction
// began with (no database round trip). Each recipient a rule routes
// records the rule's decision, which delivery honours with its on_error;
// each recipient a rule rejects records the rule's reply, and bounces with
// a DSN when others are accepted. Audit rules leave rule_audit events. It
// returns the reply to DATA when rules rejected every recipient (the
// first recipient's rule's reply), nil otherwise.
func (s *session) applyRules(header []byte, size int64) *Reply {
	tx := s.tx
	set := tx.ix.Rules()
	if set.Len() == 0 {
		return nil
	}
	m := rules.Message{Sender: tx.from, ClientIP: s.ip, Header: header, Size: size}
	if c := tx.attribution.Connector; c != nil {
		m.InboundConnector = c.Name
		m.FromOrganization = c.Spec.ConnectorType == connector.OnPremises
	}
	rcpts := make([]rules.Recipient, len(tx.rcpts))
	for i, rc := range tx.rcpts {
		_, ours := tx.ix.Accepted(rc.Address[strings.LastIndexByte(rc.Address, '@')+1:])
		rcpts[i] = rules.Recipient{Address: rc.Address, InOrganization: ours}
	}
	var first *rules.Rejection
	rejected := 0
	for i, o := range set.Evaluate(time.Now(), &m, rcpts) {
		rc := &tx.rcpts[i]
		for _, a := range o.Audit {
			s.event("rule_audit", "%s: mail flow rule %q (audit mode) matched: it %s", rc.Address, a.Rule, a.Would)
		}
		switch {
		case o.Reject != nil:
			rejected++
			if first == nil {
				first = o.Reject
			}
			rc.Rule = queue.RuleRoute{Rule: o.Reject.Rule, OnError: queue.RuleRejects}
			rc.LastReply = ruleReply(o.Reject.Reject).String()
			rc.RouteReason = fmt.Sprintf("rejected by mail flow rule %q", o.Reject.Rule)
			s.event("rule_rejected", "%s: rejected by mail flow rule %q: %s", rc.Address, o.Reject.Rule, rc.LastReply)
		case o.Route != nil:
			id := o.Route.ConnectorID
			rc.Rule = queue.RuleRoute{Rule: o.Route.Rule, ConnectorID: &id, OnError: string(o.Route.OnError)}
			if r, ok := tx.ix.RouteVia(id, o.Route.Rule); ok {
				routed := queue.NewRecipient(rc.Address, r)
				rc.ConnectorID, rc.Connector, rc.RouteReason = routed.ConnectorID, routed.Connector, routed.RouteReason
				s.event("rule", "%s: %s", rc.Address, r.Reason)
				continue
			}
			// Delivery decides by on_error; the trace says so now.
			rc.ConnectorID, rc.Connector = nil, ""
			rc.RouteReason = fmt.Sprintf("mail flow rule %q routes through outbound connector %d, which cannot carry mail now; on_error %s", o.Route.Rule, id, o.Route.OnError)
			s.event("rule", "%s: %s", rc.Address, rc.RouteReason)
		}
	}
	if rejected == 0 || rejected < len(tx.rcpts) {
		return nil
	}
	for i := range tx.rcpts {
		tx.rcpts[i].Status = queue.Rejected
	}
	reply := ruleReply(first.Reject)
	return &reply
}

// ruleReply is a rule's reject action as an SMTP reply.
func ruleReply(r rules.Reject) Reply {
	out := Reply{Code: r.Code, Enhanced: [3]int{5, 7, 1}, Text: r.Text}
	parts := strings.Split(r.Enhanced, ".")
	if len(parts) == 3 {
		for i, p := range parts {
			n, err := strconv.Atoi(p)
			if err != nil {
				return out
			}
			out.Enhanced[i] = n
		}
	}
	return out
}
