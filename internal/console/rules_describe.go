package console

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/rules"
	"github.com/flowgate/flowgate/web"
)

// A rule in short plain words, for the list, the delete confirmation and
// the audit log: "recipient domain is fabrikam.com and header
// X-Classification contains confidential → route to “Legal gateway”;
// except when the sender is ceo@contoso.com".

// maxListed is how many values of one key a summary names; the rest are
// counted.
const maxListed = 3

// connectorName names an outbound connector by id for a summary; names
// holds the connectors that exist.
func connectorName(id int64, names map[int64]string) string {
	if n, ok := names[id]; ok {
		return "“" + n + "”"
	}
	return fmt.Sprintf("connector %d (deleted)", id)
}

// ruleSummary is what the rule does: its conditions, its action and its
// exceptions.
func ruleSummary(r *rules.Rule, names map[int64]string) string {
	s := orWords(predicateWords(r.Conditions), " and ", "any message")
	s += " → " + actionWords(r.Actions, names)
	if exc := predicateWords(r.Exceptions); len(exc) > 0 {
		s += "; except when " + strings.Join(exc, ", or when ")
	}
	return s
}

func orWords(parts []string, sep, none string) string {
	if len(parts) == 0 {
		return none
	}
	return strings.Join(parts, sep)
}

// actionWords is the rule's action: "route to “Legal gateway”", "reject
// with 550 5.7.1 Delivery not authorized, message refused", and whether it
// stops the rules after it.
func actionWords(a rules.Actions, names map[int64]string) string {
	var s string
	switch {
	case a.RouteToOutboundConnector != nil:
		s = "route to " + connectorName(*a.RouteToOutboundConnector, names)
	case a.Reject != nil:
		s = "reject with “" + a.Reject.String() + "”"
	default:
		s = "no action"
	}
	if a.StopProcessing {
		s += ", and stop processing more rules"
	}
	return s
}

// listWords names up to maxListed values, ORed: "a, b or c", "a, b, c or
// 2 more".
func listWords(values []string) string {
	if len(values) <= maxListed {
		if len(values) == 1 {
			return values[0]
		}
		return strings.Join(values[:len(values)-1], ", ") + " or " + values[len(values)-1]
	}
	return strings.Join(values[:maxListed], ", ") + fmt.Sprintf(" or %d more", len(values)-maxListed)
}

func scopeWords(s rules.Scope) string {
	if s == rules.InOrganization {
		return "inside the organization"
	}
	return "outside the organization"
}

// predicateWords says each key that is set, in the order of the form.
func predicateWords(p rules.Predicates) []string {
	var out []string
	add := func(format string, values []string) {
		if len(values) > 0 {
			out = append(out, fmt.Sprintf(format, listWords(values)))
		}
	}
	add("the sender is %s", p.SenderAddressIs)
	add("the sender domain is %s", p.SenderDomainIs)
	if p.FromScope != "" {
		out = append(out, "the sender is "+scopeWords(p.FromScope))
	}
	add("the recipient is %s", p.RecipientAddressIs)
	add("the recipient domain is %s", p.RecipientDomainIs)
	if p.SentToScope != "" {
		out = append(out, "the recipient is "+scopeWords(p.SentToScope))
	}
	add("the sending server's IP address is in %s", p.SenderIPRanges)
	for _, hw := range p.HeaderContains {
		out = append(out, fmt.Sprintf("the header %s contains %s", hw.Header, listWords(hw.Words)))
	}
	for _, hp := range p.HeaderMatches {
		out = append(out, fmt.Sprintf("the header %s matches %s", hp.Header, hp.Pattern))
	}
	if p.MessageSizeOver != nil {
		out = append(out, "the message is larger than "+sizeWords(*p.MessageSizeOver))
	}
	if len(p.InboundConnectorIs) > 0 {
		quoted := make([]string, len(p.InboundConnectorIs))
		for i, n := range p.InboundConnectorIs {
			quoted[i] = "“" + n + "”"
		}
		add("the message came through the inbound connector %s", quoted)
	}
	return out
}

// sizeWords is a size in bytes, with KB or MB when that is round.
func sizeWords(n int64) string {
	b := strconv.FormatInt(n, 10) + " bytes"
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MB (%s)", n>>20, b)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KB (%s)", n>>10, b)
	}
	return b
}

// ruleDates says when the rule's dates let it act ("" when they do not
// bound it) and, when they keep it from acting at now, why.
func ruleDates(r *rules.Rule, now time.Time) (dates, dormant string) {
	switch {
	case r.ActivationDate != nil && r.ExpiryDate != nil:
		dates = "from " + web.When(*r.ActivationDate) + " until " + web.When(*r.ExpiryDate)
	case r.ActivationDate != nil:
		dates = "from " + web.When(*r.ActivationDate)
	case r.ExpiryDate != nil:
		dates = "until " + web.When(*r.ExpiryDate)
	}
	switch {
	case r.ExpiryDate != nil && !now.Before(*r.ExpiryDate):
		dormant = "expired: it no longer acts"
	case r.ActivationDate != nil && now.Before(*r.ActivationDate):
		dormant = "not active yet"
	}
	return dates, dormant
}

// modeWords says what the mode means.
func modeWords(m rules.Mode) string {
	if m == rules.Audit {
		return "audit (only records in the message trace what it would do)"
	}
	return "enforce"
}

// ruleDetails are the lines of the delete confirmation and of a rule in
// the audit log: what the rule does, its mode, its state, its dates.
func ruleDetails(r *rules.Rule, names map[int64]string) []string {
	out := []string{
		"Conditions: " + orWords(predicateWords(r.Conditions), "; and ", "none"),
	}
	if exc := predicateWords(r.Exceptions); len(exc) > 0 {
		out = append(out, "Exceptions: "+strings.Join(exc, "; or "))
	}
	out = append(out, "Action: "+actionWords(r.Actions, names))
	if r.Actions.RouteToOutboundConnector != nil {
		out = append(out, "When the connector cannot be used: "+onErrorWords(r.OnError))
	}
	out = append(out, "Mode: "+modeWords(r.Mode))
	if dates, _ := ruleDates(r, time.Now()); dates != "" {
		out = append(out, "Dates: "+dates)
	}
	return out
}

func onErrorWords(o rules.OnError) string {
	if o == rules.Ignore {
		return "ignore the rule (route as if it had not matched)"
	}
	return "defer the message (451 4.4.0) and retry"
}
