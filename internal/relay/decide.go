package relay

import (
	"errors"
	"fmt"

	"github.com/flowgate/flowgate/internal/routing"
)

// SenderDecision is the relay's verdict at MAIL FROM.
type SenderDecision struct {
	From        string // canonical sender, "" for the null sender
	Domain      string
	Attribution routing.Attribution
	Refusal     *Reply // nil: accepted
	Detail      string // why, for the trace
}

// DecideSender parses the sender, attributes the message to an inbound
// connector and applies its restrictions. The relay and the route test
// share it, so they cannot disagree.
func DecideSender(ix *routing.Index, c routing.Client, from string) SenderDecision {
	var d SenderDecision
	if len(from) > maxAddressLength {
		d.From = clip(from, maxAddressLength)
		d.Refusal, d.Detail = &replySenderTooLong, fmt.Sprintf("sender of %d octets, more than %d", len(from), maxAddressLength)
		return d
	}
	if from != "" {
		mb, err := parseMailbox(from, true)
		if err != nil {
			d.From = from
			d.Refusal, d.Detail = &replyBadSender, fmt.Sprintf("sender %q: %v", from, err)
			return d
		}
		d.From, d.Domain = mb.String(), mb.Domain
	}
	d.Attribution = ix.Attribute(c, d.Domain)
	d.Detail = d.Attribution.Reason
	if v := d.Attribution.Check(c); v != nil {
		r := replyRestriction(v.Reply)
		d.Refusal, d.Detail = &r, v.Detail
		return d
	}
	if v := ix.CheckOwnDomain(d.Attribution, d.Domain); v != nil {
		r := replyOwnDomain(v.Reply)
		d.Refusal, d.Detail = &r, v.Detail
	}
	return d
}

// RecipientDecision is the relay's verdict at RCPT TO.
type RecipientDecision struct {
	Address string
	Domain  string
	Refusal *Reply
	Reason  string        // relay authorization, or why the address was refused
	Route   routing.Route // set when accepted
}

// DecideRecipient parses a recipient, applies relay authorization and
// picks its route.
func DecideRecipient(ix *routing.Index, a routing.Attribution, c routing.Client, senderDomain, to string) RecipientDecision {
	if len(to) > maxAddressLength {
		return RecipientDecision{Address: clip(to, maxAddressLength), Refusal: &replyRcptTooLong,
			Reason: fmt.Sprintf("recipient of %d octets, more than %d", len(to), maxAddressLength)}
	}
	mb, err := parseMailbox(to, false)
	if err != nil {
		reply := replyBadRecipient
		if errors.Is(err, errIPLiteral) || errors.Is(err, errMultipleAt) {
			reply = replyRelayDenied
		}
		return RecipientDecision{Address: to, Refusal: &reply, Reason: fmt.Sprintf("%q: %v", to, err)}
	}
	d := RecipientDecision{Address: mb.String(), Domain: mb.Domain}
	auth := ix.AuthorizeRecipient(a, c, senderDomain, mb.Domain)
	d.Reason = auth.Reason
	if !auth.Allowed {
		d.Refusal = &replyRelayDenied
		return d
	}
	d.Route = ix.Route(mb.Domain)
	return d
}
