package queue

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/delivery"
	"github.com/flowgate/flowgate/internal/routing"
	"github.com/flowgate/flowgate/internal/smtpreply"
)

// group is the recipients of one message that share a route.
type group struct {
	target      delivery.Target
	route       routing.Route
	deliverable bool // false: the route defers (an accepted domain with no route)
	rcpts       []*recipientRow
}

// process delivers one claimed message: route every pending recipient and
// deliver each group in one transaction. It returns the pass's outcome.
func (wk *Workers) process(ctx context.Context, j *job) (out *outcome) {
	defer func() {
		if v := recover(); v != nil {
			wk.log.Error("delivery worker panic", "msg_id", j.msg.UID, "panic", v)
			out = nil
		}
	}()
	msg := &j.msg
	var pending []*recipientRow
	priorBounced := false
	for _, rc := range j.rcpts {
		switch rc.Status {
		case Queued, Deferred:
			pending = append(pending, rc)
		case Bounced:
			priorBounced = true
		}
	}
	if len(pending) == 0 {
		wk.log.Warn("claimed message has no pending recipient", "msg_id", msg.UID)
		return &outcome{msg: msg, status: finalStatus(priorBounced), attempts: msg.Attempts, deleteBody: true}
	}
	if j.body == nil && j.chunks == 0 {
		// Should never happen; never report such a message as delivered.
		wk.log.Error("queued message has no content; its recipients are bounced", "msg_id", msg.UID)
		for _, rc := range pending {
			rc.setReply(Bounced, smtpreply.Reply{Code: 554, Enhanced: [3]int{5, 3, 0}, Text: "the message content is missing from the queue"})
			rc.Attempts++
		}
		return wk.outcomeOf(msg, pending, priorBounced, func() []byte { return nil }, &pass{attempted: true})
	}
	ix := wk.live.Index()
	p := &pass{}
	event := func(typ, format string, args ...any) {
		p.events = append(p.events, eventRow{MessageID: msg.ID, At: Micros(time.Now()), Type: typ, Detail: fmt.Sprintf(format, args...)})
	}
	groups := map[string]*group{}
	var order []string
	for _, rc := range pending {
		if rc.RuleOnError == RuleRejects {
			// A mail flow rule rejected this recipient when the message
			// was received (others were accepted): it bounces, with the
			// rule's reply, through the usual DSN.
			rc.setReply(Bounced, ruleReply(rc.LastReply))
			event("bounced", "%s: rejected by mail flow rule %q: %s", rc.Address, rc.Rule, rc.LastReply)
			p.attempted = true
			continue
		}
		domain := domainOf(rc.Address)
		route := routeOf(ix, rc, domain)
		target, deliverable := delivery.TargetFor(route, domain)
		rc.ConnectorID, rc.Connector, rc.RouteReason = routeFields(route)
		g, ok := groups[target.Key]
		if !ok {
			g = &group{target: target, route: route, deliverable: deliverable}
			groups[target.Key] = g
			order = append(order, target.Key)
		}
		g.rcpts = append(g.rcpts, rc)
	}
	for _, key := range order {
		g := groups[key]
		if g.route.Kind == routing.ViaConnector && g.route.Connector.Held {
			holdGroup(msg, g, p, event)
			continue
		}
		if !g.deliverable {
			p.attempted = true
			for _, rc := range g.rcpts {
				rc.setReply(Deferred, smtpreply.Reply{Code: 451, Enhanced: [3]int{4, 4, 0}, Text: g.route.Reason})
				rc.Attempts++
			}
			event("deferred", "%s: %s", addresses(g.rcpts), g.route.Reason)
			continue
		}
		if ok, stuck := wk.dests.acquire(ctx, g.target.Key, destinationWait); !ok {
			delay, how := postponeDelay, "under way"
			if stuck {
				delay, how = stuckDelay, "under way and none has ended for a while"
			}
			p.postpone(delay)
			event("waiting", "%s: %d deliveries %s %s, the most this process makes at once to one destination; tried again in %s",
				addresses(g.rcpts), wk.dests.limit, g.target.Via, how, delay)
			continue
		}
		addrs := make([]string, len(g.rcpts))
		for i, rc := range g.rcpts {
			addrs[i] = rc.Address
		}
		p.attempted = true
		res := wk.d.Deliver(ctx, g.target, msg.Sender, addrs, j.content(wk.st))
		wk.dests.release(g.target.Key)
		for _, a := range res.Attempts {
			tlsInfo := "no TLS"
			if a.TLSVersion != "" {
				tlsInfo = a.TLSVersion + " " + a.TLSCipher
			}
			note := ""
			if a.Note != "" {
				note = "; " + a.Note
			}
			event("attempt", "%s via %s: host %s [%s], %s%s: %s (by %s)", addresses(g.rcpts), g.target.Via, a.Host, a.Addr, tlsInfo, note, a.Reply, wk.owner)
		}
		viaTLS := len(res.Attempts) > 0 && res.Attempts[len(res.Attempts)-1].TLSVersion != ""
		byAddr := map[string]delivery.RcptResult{}
		for _, r := range res.Rcpts {
			byAddr[r.Address] = r
		}
		for _, rc := range g.rcpts {
			r := byAddr[rc.Address]
			rc.Attempts++
			switch {
			case r.Delivered:
				rc.setReply(Delivered, r.Reply)
				rc.viaTLS = viaTLS
			case r.Reply.Permanent():
				rc.setReply(Bounced, r.Reply)
			default:
				rc.setReply(Deferred, r.Reply)
			}
		}
	}
	o := wk.outcomeOf(msg, pending, priorBounced, func() []byte { return j.head(ctx, wk.st) }, p)
	if o.deleteBody && j.chunks > 0 {
		o.chunkedUID = msg.UID
	}
	return o
}

// heldRecheck is how long a message waiting for a held connector waits
// before a delivery pass looks at it again (and notes the hold in its
// trace once more); a release makes it due at once.
const heldRecheck = time.Hour

// holdGroup leaves recipients routed to a held connector waiting (SPEC
// 3.6): no attempt, no backoff, due again after heldRecheck or when the
// message would expire. Held mail still counts against the queue lifetime:
// once it has run out they bounce like any expired recipient.
func holdGroup(msg *messageRow, g *group, p *pass, event func(typ, format string, args ...any)) {
	name := g.route.Connector.Name
	now := time.Now()
	if msg.ExpiresAt != nil && Micros(now) >= *msg.ExpiresAt {
		for _, rc := range g.rcpts {
			rc.setReply(Deferred, smtpreply.Reply{Code: 451, Enhanced: [3]int{4, 4, 0}, Text: fmt.Sprintf("outbound connector %q was on hold", name)})
		}
		return
	}
	wait := heldRecheck
	if msg.ExpiresAt != nil {
		if left := FromMicros(*msg.ExpiresAt).Sub(now) + time.Second; left < wait {
			wait = left
		}
	}
	p.postpone(wait)
	event("held", "%s: outbound connector %q is on hold; not attempted until it is released", addresses(g.rcpts), name)
}

func finalStatus(bounced bool) Status {
	if bounced {
		return Bounced
	}
	return Delivered
}

func addresses(rs []*recipientRow) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.Address
	}
	return strings.Join(parts, ", ")
}

// setReply records a delivery pass's result for a recipient: its new
// status and the reply that decided it (kept typed for the DSN, and as
// text in the trace).
func (rc *recipientRow) setReply(status Status, r smtpreply.Reply) {
	rc.Status, rc.reply, rc.LastReply = status, r, r.String()
}

// RuleRejects, as a recipient's rule_on_error, marks a recipient a mail
// flow rule rejected while others of the message were accepted; its
// last_reply holds the rule's reply.
const RuleRejects = "reject"

// routeOf is a recipient's route for this delivery pass: through the
// connector a mail flow rule chose when the message was received, or, when
// no rule did, by SPEC 3.5 under today's connectors. A rule's connector
// that cannot be used now (turned off, deleted, without an active
// revision) defers the recipient, or, with on_error ignore, routes it as
// if the rule had not matched (SPEC 7).
func routeOf(ix *routing.Index, rc *recipientRow, domain string) routing.Route {
	if rc.Rule == "" || rc.RuleConnectorID == nil {
		return ix.Route(domain)
	}
	if r, ok := ix.RouteVia(*rc.RuleConnectorID, rc.Rule); ok {
		return r
	}
	why := fmt.Sprintf("mail flow rule %q routes through outbound connector %d, which cannot carry mail now (turned off, deleted, or without an active revision)", rc.Rule, *rc.RuleConnectorID)
	if rc.RuleOnError == "ignore" {
		r := ix.Route(domain)
		r.Reason = why + "; routed as if the rule had not matched (on_error ignore): " + r.Reason
		return r
	}
	return routing.Route{Kind: routing.Defer, Reason: why + "; deferred (on_error defer)"}
}

// ruleReply parses the reply a rule rejected a recipient with
// ("550 5.7.1 text"); a text that does not parse is a 550 5.7.1.
func ruleReply(text string) smtpreply.Reply {
	r := smtpreply.Reply{Code: 550, Enhanced: [3]int{5, 7, 1}, Text: text}
	code, rest, _ := strings.Cut(text, " ")
	enh, msg, _ := strings.Cut(rest, " ")
	n, err := strconv.Atoi(code)
	parts := strings.Split(enh, ".")
	if err != nil || n < 500 || n > 599 || len(parts) != 3 {
		return r
	}
	var e [3]int
	for i, p := range parts {
		if e[i], err = strconv.Atoi(p); err != nil {
			return r
		}
	}
	return smtpreply.Reply{Code: n, Enhanced: e, Text: msg}
}
