package relay

import (
	"fmt"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/routing"
	"github.com/flowgate/flowgate/internal/rules"
)

// Trial is a message a route test asks about: what the relay would do
// with it, without sending it.
type Trial struct {
	Client     routing.Client
	Sender     string
	Recipients []string
	Header     []byte // the header section the mail flow rules look at
	Size       int64
	Now        time.Time
}

// Verdict is what the relay would do with a Trial, decision by decision
// as the relay takes them: MAIL FROM, each RCPT TO, the rules after DATA.
type Verdict struct {
	Sender     SenderDecision
	Recipients []RecipientVerdict
	// Rules has one entry per rule of the set, in priority order, merged
	// over the recipients the rules looked at; RulesRan is false when
	// none got that far.
	Rules    []MergedRule
	RulesRan bool
	Accepted bool
	// Reply is the reply that decides: the refusal, the rule's reply to
	// DATA, or the acceptance.
	Reply string
	// RefusedAt says where the message stops: "sender", "recipient" (a
	// RCPT refused), "rules" (every recipient rejected by rules) or "".
	RefusedAt string
	Rejected  int // recipients rejected by rules
}

// RecipientVerdict is one recipient's fate.
type RecipientVerdict struct {
	// Decision is the RCPT decision, its Route set to the rule's
	// connector when a rule routes the recipient.
	Decision RecipientDecision
	Status   string // accepted, refused (at RCPT), rejected (by a rule), deferred (the rule's connector cannot carry mail)
	Reply    string
	Rule     string // the rule that chose the route, or rejected the recipient
	Reason   string
	Trace    []rules.RuleResult // the rules, rule by rule; none for a recipient refused at RCPT
}

// MergedRule is a rule's result over the recipients: matched (applied)
// when it matched (was applied) for some recipient, with the detail they
// share, or each recipient's in PerRecipient ("a@x: …").
type MergedRule struct {
	rules.RuleResult
	PerRecipient []string
}

// Explain runs the relay's decisions for t on ix (DecideSender, each
// DecideRecipient, the rules as applyRules evaluates them, rule routes
// as delivery honours them) and says what each would be. The route test
// of the API and of the console both answer from it.
func Explain(ix *routing.Index, t Trial) Verdict {
	v := Verdict{Accepted: true}
	v.Sender = DecideSender(ix, t.Client, t.Sender)
	if v.Sender.Refusal != nil {
		v.Accepted, v.Reply, v.RefusedAt = false, v.Sender.Refusal.String(), "sender"
		return v
	}
	var accepted []int
	for _, rc := range t.Recipients {
		d := DecideRecipient(ix, v.Sender.Attribution, t.Client, v.Sender.Domain, rc)
		rv := RecipientVerdict{Decision: d, Status: "accepted", Reason: d.Reason}
		if d.Refusal != nil {
			rv.Status, rv.Reply = "refused", d.Refusal.String()
			if v.Accepted {
				v.Accepted, v.Reply, v.RefusedAt = false, d.Refusal.String(), "recipient"
			}
		} else {
			accepted = append(accepted, len(v.Recipients))
		}
		v.Recipients = append(v.Recipients, rv)
	}
	// The rules look at the recipients accepted at RCPT only, as the
	// relay's do after DATA.
	msg := rules.Message{Sender: v.Sender.From, ClientIP: t.Client.IP, Header: t.Header, Size: t.Size}
	if c := v.Sender.Attribution.Connector; c != nil {
		msg.InboundConnector = c.Name
		msg.FromOrganization = c.Spec.ConnectorType == connector.OnPremises
	}
	rcpts := make([]rules.Recipient, len(accepted))
	for i, k := range accepted {
		_, ours := ix.Accepted(v.Recipients[k].Decision.Domain)
		rcpts[i] = rules.Recipient{Address: v.Recipients[k].Decision.Address, InOrganization: ours}
	}
	outcomes := ix.Rules().Explain(t.Now, &msg, rcpts)
	var firstReject *rules.Rejection
	for i, k := range accepted {
		o, rv := &outcomes[i], &v.Recipients[k]
		rv.Trace = o.Trace
		switch {
		case o.Reject != nil:
			v.Rejected++
			if firstReject == nil {
				firstReject = o.Reject
			}
			rv.Status, rv.Rule, rv.Reply = "rejected", o.Reject.Rule, ruleReply(o.Reject.Reject).String()
			rv.Reason = fmt.Sprintf("rejected by mail flow rule %q: %s", o.Reject.Rule, rv.Reply)
			continue
		case o.Route != nil:
			name := o.Route.Rule
			if rt, ok := ix.RouteVia(o.Route.ConnectorID, name); ok {
				rv.Decision.Route, rv.Rule = rt, name
				break
			}
			note := fmt.Sprintf("mail flow rule %q routes through outbound connector %d, which cannot carry mail now; on_error %s", name, o.Route.ConnectorID, o.Route.OnError)
			if o.Route.OnError != rules.Ignore {
				rv.Status, rv.Rule, rv.Reason = "deferred", name, note
				rv.Reply = "451 4.4.0 deferred: " + note
				continue
			}
			rv.Decision.Route.Reason += " (" + note + ")"
		}
		rv.Reason = rv.Decision.Route.Reason
	}
	v.RulesRan = len(accepted) > 0
	if len(outcomes) > 0 {
		for j := range outcomes[0].Trace {
			v.Rules = append(v.Rules, mergeRule(rcpts, outcomes, j))
		}
	}
	switch {
	case v.Rejected > 0 && v.Rejected == len(accepted):
		// Every recipient rejected: the relay answers DATA with the first
		// recipient's rule's reply and queues nothing.
		v.Accepted, v.Reply, v.RefusedAt = false, ruleReply(firstReject.Reject).String(), "rules"
	case !v.Accepted:
	case v.Rejected > 0:
		v.Reply = fmt.Sprintf("250 2.0.0 the message would be accepted; %d recipient(s) rejected by mail flow rules would get a DSN", v.Rejected)
	default:
		v.Reply = "250 2.1.5 every recipient would be accepted"
	}
	return v
}

// mergeRule is rule j over all recipients.
func mergeRule(rcpts []rules.Recipient, outcomes []rules.Outcome, j int) MergedRule {
	t := outcomes[0].Trace[j]
	m := MergedRule{RuleResult: t}
	same := true
	for i := range outcomes {
		ti := outcomes[i].Trace[j]
		m.Matched = m.Matched || ti.Matched
		m.Applied = m.Applied || ti.Applied
		same = same && ti.Detail == t.Detail
	}
	if !same {
		m.Detail = ""
		for i := range outcomes {
			m.PerRecipient = append(m.PerRecipient, rcpts[i].Address+": "+outcomes[i].Trace[j].Detail)
		}
	}
	return m
}

// HeaderField is one header field of a Trial, as the route test takes it.
type HeaderField struct{ Name, Value string }

// Bounds of a Trial's header fields.
const (
	MaxTrialHeaders     = 100
	MaxTrialHeaderValue = 8 << 10
)

// TrialHeader builds a Trial's header section from its fields, in the
// order given, or says what is wrong with the first field that cannot be
// one. The API's and the console's route tests read their fields through
// it.
func TrialHeader(fields []HeaderField) ([]byte, string) {
	if len(fields) > MaxTrialHeaders {
		return nil, fmt.Sprintf("at most %d header fields", MaxTrialHeaders)
	}
	var b strings.Builder
	for _, f := range fields {
		n, v := f.Name, f.Value
		if n == "" || len(n) > rules.MaxHeaderNameLen {
			return nil, fmt.Sprintf("%q is not a header field name: use 1 to %d letters, digits and dashes, like X-Classification", clip(n, 40), rules.MaxHeaderNameLen)
		}
		for i := 0; i < len(n); i++ {
			if c := n[i]; c <= ' ' || c > '~' || c == ':' {
				return nil, fmt.Sprintf("%q is not a header field name: use letters, digits and dashes, like X-Classification", clip(n, 40))
			}
		}
		switch {
		case len(v) > MaxTrialHeaderValue:
			return nil, fmt.Sprintf("the value of %s is longer than %d bytes", n, MaxTrialHeaderValue)
		case strings.ContainsAny(v, "\r\n\x00"):
			return nil, fmt.Sprintf("the value of %s must be one line, without line breaks or NUL", n)
		}
		b.WriteString(n)
		b.WriteString(": ")
		b.WriteString(v)
		b.WriteString("\r\n")
	}
	return []byte(b.String()), ""
}
