package queue

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/delivery"
	"github.com/flowgate/flowgate/internal/routing"
)

// group is the recipients of one message that share a route.
type group struct {
	target delivery.Target
	route  routing.Route
	rcpts  []*recipientRow
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
		return &outcome{msg: msg, status: finalStatus(priorBounced), deleteBody: true}
	}
	if j.body == nil {
		// Should never happen; never report such a message as delivered.
		wk.log.Error("queued message has no content; its recipients are bounced", "msg_id", msg.UID)
		for _, rc := range pending {
			rc.Status, rc.LastReply = Bounced, "554 5.3.0 the message content is missing from the queue"
			rc.Attempts++
		}
		return wk.outcomeOf(msg, pending, priorBounced, nil, nil)
	}
	ix := wk.live.Index()
	var events []eventRow
	event := func(typ, format string, args ...any) {
		events = append(events, eventRow{MessageID: msg.ID, At: Micros(time.Now()), Type: typ, Detail: fmt.Sprintf(format, args...)})
	}
	groups := map[string]*group{}
	var order []string
	for _, rc := range pending {
		domain := rc.Address[strings.LastIndexByte(rc.Address, '@')+1:]
		route := ix.Route(domain)
		key, target := targetFor(route, domain)
		if route.Connector != nil {
			cid := route.Connector.ID
			rc.ConnectorID, rc.Connector = &cid, route.Connector.Name
		} else {
			rc.ConnectorID, rc.Connector = nil, ""
		}
		rc.RouteReason = route.Reason
		g, ok := groups[key]
		if !ok {
			g = &group{target: target, route: route}
			groups[key] = g
			order = append(order, key)
		}
		g.rcpts = append(g.rcpts, rc)
	}
	for _, key := range order {
		g := groups[key]
		if g.route.Kind == routing.Defer {
			for _, rc := range g.rcpts {
				rc.Status, rc.LastReply = Deferred, "451 4.4.0 "+g.route.Reason
				rc.Attempts++
			}
			event("deferred", "%s: %s", addresses(g.rcpts), g.route.Reason)
			continue
		}
		addrs := make([]string, len(g.rcpts))
		for i, rc := range g.rcpts {
			addrs[i] = rc.Address
		}
		res := wk.d.Deliver(ctx, g.target, msg.Sender, addrs, j.body)
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
		byAddr := map[string]delivery.RcptResult{}
		for _, r := range res.Rcpts {
			byAddr[r.Address] = r
		}
		for _, rc := range g.rcpts {
			r := byAddr[rc.Address]
			rc.Attempts++
			rc.LastReply = r.Reply
			switch {
			case r.Delivered:
				rc.Status = Delivered
			case r.Permanent:
				rc.Status = Bounced
			default:
				rc.Status = Deferred
			}
		}
	}
	return wk.outcomeOf(msg, pending, priorBounced, j.body, events)
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

// targetFor turns a route into a delivery target and a grouping key.
func targetFor(route routing.Route, domain string) (string, delivery.Target) {
	switch route.Kind {
	case routing.ViaConnector:
		c := route.Connector
		p := c.Parsed()
		t := delivery.Target{Via: fmt.Sprintf("connector %q", c.Name), TLS: c.Spec.TLSSettings, TLSDomain: p.TLSDomain}
		if c.Spec.UseMXRecord {
			t.MXDomain = domain
			return fmt.Sprintf("c%d|%s", c.ID, domain), t
		}
		for _, h := range p.SmartHosts {
			t.Hosts = append(t.Hosts, delivery.Host{Name: h.Host, IP: h.IP, Port: h.Port})
		}
		return fmt.Sprintf("c%d", c.ID), t
	case routing.ViaMX:
		return "mx|" + domain, delivery.Target{Via: "MX of " + domain, MXDomain: domain, TLS: connector.TLSOpportunistic}
	}
	return "defer|" + domain, delivery.Target{}
}
