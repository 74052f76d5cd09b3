package console

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/flowgate/flowgate/internal/rules"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/web"
)

// The audit log's sentences for mail flow rules (object type "rule"). The
// store writes {"rule": …} for create and delete and {"before": …,
// "after": …} for update, move, enable and disable.

// ruleAuditDetail is a rule row's detail.
type ruleAuditDetail struct {
	Rule   *rules.Rule `json:"rule"`
	Before *rules.Rule `json:"before"`
	After  *rules.Rule `json:"after"`
}

func describeRuleAudit(row *web.AuditLogRow, s *sentence, e store.AuditEntry, d auditDetail, live map[int64]*store.Connector) {
	var det ruleAuditDetail
	_ = json.Unmarshal([]byte(e.Detail), &det) // not a rule: the sentence says less
	names := map[int64]string{}
	for id, c := range live {
		names[id] = c.Name
	}
	const the = "the mail flow rule "
	switch e.Action {
	case "create":
		s.text("created "+the).name(e.ObjectName, rulesPath)
		if r := det.Rule; r != nil {
			s.text(" (%s)", priorityAndMode(r))
			if !r.Enabled {
				s.text(", turned off")
			}
			row.Settings = ruleSettings(r, names)
		}
	case "update":
		s.text("changed "+the).name(e.ObjectName, rulesPath)
		if det.Before != nil && det.After != nil {
			row.Changes = ruleChanges(det.Before, det.After, names)
			if len(row.Changes) == 0 {
				s.text(": no setting changed")
			} else {
				s.text(":")
			}
		}
	case "move":
		s.text("moved "+the).name(e.ObjectName, rulesPath)
		if det.Before != nil && det.After != nil && det.Before.Priority != nil && det.After.Priority != nil {
			s.text(" from priority %d to %d", *det.Before.Priority, *det.After.Priority)
		}
	case "enable":
		s.text("turned on "+the).name(e.ObjectName, rulesPath).text(": it acts on mail")
	case "disable":
		s.text("turned off "+the).name(e.ObjectName, rulesPath).text(": it no longer acts on mail")
	case "delete":
		s.text("deleted "+the).name(e.ObjectName, "")
		if r := det.Rule; r != nil {
			s.text(" (%s)", priorityAndMode(r))
			row.Settings = ruleSettings(r, names)
		}
	default:
		describeOther(row, s, e, d)
	}
}

// priorityAndMode is "priority 0, enforce".
func priorityAndMode(r *rules.Rule) string {
	mode := string(r.Mode)
	if mode == "" {
		mode = string(rules.Enforce)
	}
	if r.Priority == nil {
		return mode
	}
	return fmt.Sprintf("priority %d, %s", *r.Priority, mode)
}

// ruleField is one setting of a rule as the audit log shows it; a list
// key has List, so that a change tells the entries added and removed.
type ruleField struct {
	Field string
	Value string
	List  []string
}

// ruleFields are a rule's settings, in the form's order, leaving out the
// keys that are not set.
func ruleFields(r *rules.Rule, names map[int64]string) []ruleField {
	on := "no"
	if r.Enabled {
		on = "yes"
	}
	out := []ruleField{{Field: "Name", Value: r.Name}}
	if r.Priority != nil {
		out = append(out, ruleField{Field: "Priority", Value: strconv.Itoa(*r.Priority)})
	}
	out = append(out, ruleField{Field: "Turned on", Value: on}, ruleField{Field: "Mode", Value: string(r.Mode)})
	if r.Comment != "" {
		out = append(out, ruleField{Field: "Comment", Value: r.Comment})
	}
	if r.ActivationDate != nil {
		out = append(out, ruleField{Field: "Active from", Value: web.When(*r.ActivationDate)})
	}
	if r.ExpiryDate != nil {
		out = append(out, ruleField{Field: "Active until", Value: web.When(*r.ExpiryDate)})
	}
	out = append(out, predicateFields("If", r.Conditions)...)
	out = append(out, predicateFields("Except if", r.Exceptions)...)
	out = append(out, ruleField{Field: "Action", Value: actionWords(rules.Actions{
		RouteToOutboundConnector: r.Actions.RouteToOutboundConnector, Reject: r.Actions.Reject}, names)})
	stop := "no"
	if r.Actions.StopProcessing {
		stop = "yes"
	}
	out = append(out, ruleField{Field: "Stop processing more rules", Value: stop})
	if r.Actions.RouteToOutboundConnector != nil {
		out = append(out, ruleField{Field: "When the connector cannot be used", Value: onErrorWords(r.OnError)})
	}
	return out
}

// predicateFields are the set keys of conditions or exceptions, each
// field named "If the sender domain is", "Except if …".
func predicateFields(lead string, p rules.Predicates) []ruleField {
	var out []ruleField
	list := func(what string, values []string) {
		if len(values) > 0 {
			out = append(out, ruleField{Field: lead + " " + what, Value: strings.Join(values, ", "), List: values})
		}
	}
	list("the sender is", p.SenderAddressIs)
	list("the sender domain is", p.SenderDomainIs)
	if p.FromScope != "" {
		out = append(out, ruleField{Field: lead + " the sender is located", Value: scopeWords(p.FromScope)})
	}
	list("the recipient is", p.RecipientAddressIs)
	list("the recipient domain is", p.RecipientDomainIs)
	if p.SentToScope != "" {
		out = append(out, ruleField{Field: lead + " the recipient is located", Value: scopeWords(p.SentToScope)})
	}
	list("the sending server's IP address is in", p.SenderIPRanges)
	for _, hw := range p.HeaderContains {
		list("the header "+hw.Header+" contains", hw.Words)
	}
	for _, hp := range p.HeaderMatches {
		out = append(out, ruleField{Field: lead + " the header " + hp.Header + " matches", Value: hp.Pattern})
	}
	if p.MessageSizeOver != nil {
		out = append(out, ruleField{Field: lead + " the message is larger than", Value: sizeWords(*p.MessageSizeOver)})
	}
	list("the message came through the inbound connector", p.InboundConnectorIs)
	return out
}

// ruleSettings are a created or deleted rule's settings, for the row's
// folded "Settings".
func ruleSettings(r *rules.Rule, names map[int64]string) []web.AuditChange {
	var out []web.AuditChange
	for _, f := range ruleFields(r, names) {
		out = append(out, change(diffLine{Field: f.Field, New: f.Value}))
	}
	return out
}

// ruleChanges are the settings an edit changed: a list key as the entries
// removed and added, any other setting as old → new.
func ruleChanges(before, after *rules.Rule, names map[int64]string) []web.AuditChange {
	a, b := ruleFields(before, names), ruleFields(after, names)
	old := map[string]ruleField{}
	for _, f := range a {
		old[f.Field] = f
	}
	seen := map[string]bool{}
	var out []web.AuditChange
	for _, f := range b {
		seen[f.Field] = true
		o, had := old[f.Field]
		switch {
		case had && o.Value == f.Value:
		case had && len(o.List) > 0 && len(f.List) > 0:
			out = append(out, listChange(f.Field, anyList(o.List), anyList(f.List)))
		case had:
			out = append(out, change(diffLine{Field: f.Field, Old: o.Value, New: f.Value}))
		default:
			out = append(out, change(diffLine{Field: f.Field, Old: "(none)", New: f.Value}))
		}
	}
	for _, o := range a {
		if !seen[o.Field] {
			out = append(out, change(diffLine{Field: o.Field, Old: o.Value, New: "(none)"}))
		}
	}
	return out
}

func anyList(l []string) []any {
	out := make([]any, len(l))
	for i, s := range l {
		out[i] = s
	}
	return out
}
