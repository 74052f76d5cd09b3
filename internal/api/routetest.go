package api

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/delivery"
	"github.com/flowgate/flowgate/internal/relay"
	"github.com/flowgate/flowgate/internal/routing"
	"github.com/flowgate/flowgate/internal/rules"
)

type routeTestRequest struct {
	ClientIP       string   `json:"client_ip"`
	Sender         string   `json:"sender"`
	Recipients     []string `json:"recipients"`
	TLS            bool     `json:"tls"`
	ClientCertName string   `json:"client_cert_name"`
	// Headers are the message's header fields the mail flow rules look
	// at (header_contains, header_matches); none when absent.
	Headers map[string]string `json:"headers"`
	// Size is the message's size in bytes (message_size_over); 0 when
	// absent.
	Size *int64 `json:"size"`
}

type routeTestRoute struct {
	Recipient string `json:"recipient"`
	Accepted  bool   `json:"accepted"`
	// Rejected: a mail flow rule rejects the recipient (Reply is the
	// rule's reply).
	Rejected    bool     `json:"rejected"`
	Reply       string   `json:"reply,omitempty"`
	Connector   string   `json:"connector"`
	Rule        *string  `json:"rule"` // the rule that chose the route (or rejected the recipient)
	Reason      string   `json:"reason"`
	NextHops    []string `json:"next_hops"`
	TLSSettings string   `json:"tls_settings"`
	// Rules is this recipient's trace of the mail flow rules, rule by
	// rule in priority order; absent for a recipient refused at RCPT.
	Rules []routeTestRule `json:"rules,omitempty"`
}

// routeTestRule is what one mail flow rule did (rules.RuleResult).
type routeTestRule struct {
	Name    string     `json:"name"`
	Mode    rules.Mode `json:"mode"`
	Matched bool       `json:"matched"`
	Applied bool       `json:"applied"`
	Detail  string     `json:"detail"`
}

type routeTestResponse struct {
	Accepted         bool             `json:"accepted"`
	Reply            string           `json:"reply"`
	InboundConnector string           `json:"inbound_connector"`
	Attribution      string           `json:"attribution"`
	Routes           []routeTestRoute `json:"routes"`
	// Rules merges the recipients' traces: per rule, matched and applied
	// when they are for some recipient, and the detail, which names the
	// recipients when theirs differ.
	Rules []routeTestRule `json:"rules"`
}

// Limits of a route test's header fields.
const (
	maxTestHeaders     = 100
	maxTestHeaderValue = 8 << 10
)

// routeTest answers which inbound connector and which outbound route the
// relay would apply, and why — through the same decisions the relay makes.
// The client certificate name is taken as verified.
func (s *Server) routeTest(w http.ResponseWriter, r *http.Request) {
	var req routeTestRequest
	if !decode(w, r, &req) {
		return
	}
	fields := map[string]string{}
	ip, err := netip.ParseAddr(strings.TrimSpace(req.ClientIP))
	if err != nil {
		fields["client_ip"] = "enter the client's IP address, like 192.0.2.10"
	}
	if len(req.Recipients) == 0 {
		fields["recipients"] = "enter at least one recipient address"
	} else if len(req.Recipients) > 100 {
		fields["recipients"] = "at most 100 recipients"
	}
	if req.ClientCertName != "" {
		if _, err := connector.ParseCertificateName(req.ClientCertName); err != nil {
			fields["client_cert_name"] = err.Error()
		}
		if !req.TLS {
			fields["tls"] = "a client certificate is only presented over TLS; set tls to true"
		}
	}
	header, why := testHeader(req.Headers)
	if why != "" {
		fields["headers"] = why
	}
	var size int64
	if req.Size != nil {
		if size = *req.Size; size < 0 {
			fields["size"] = "the size cannot be negative; enter a number of bytes"
		}
	}
	if len(fields) > 0 {
		writeError(w, http.StatusBadRequest, "some fields are invalid", fields)
		return
	}
	client := routing.Client{IP: ip.Unmap(), TLS: req.TLS}
	if req.ClientCertName != "" {
		client.CertNames = []string{strings.ToLower(req.ClientCertName)}
	}
	ix := s.live.Index()
	sd := relay.DecideSender(ix, client, strings.Trim(strings.TrimSpace(req.Sender), "<>"))
	resp := routeTestResponse{Accepted: true, Attribution: sd.Attribution.Reason, Routes: []routeTestRoute{}, Rules: []routeTestRule{}}
	if sd.Attribution.Connector != nil {
		resp.InboundConnector = sd.Attribution.Connector.Name
	}
	if sd.Refusal != nil {
		resp.Accepted, resp.Reply = false, sd.Refusal.String()
		resp.Attribution = sd.Detail
		writeJSON(w, http.StatusOK, resp)
		return
	}
	// The recipients accepted at RCPT; the rules look at those only, as
	// the relay's do after DATA.
	var decisions []relay.RecipientDecision
	var accepted []int
	for _, rc := range req.Recipients {
		d := relay.DecideRecipient(ix, sd.Attribution, client, sd.Domain, strings.Trim(strings.TrimSpace(rc), "<>"))
		route := routeTestRoute{Recipient: d.Address, Accepted: d.Refusal == nil, Reason: d.Reason, NextHops: []string{}}
		if d.Refusal != nil {
			route.Reply = d.Refusal.String()
			if resp.Accepted {
				resp.Accepted, resp.Reply = false, d.Refusal.String()
			}
		} else {
			accepted = append(accepted, len(resp.Routes))
		}
		decisions = append(decisions, d)
		resp.Routes = append(resp.Routes, route)
	}
	msg := rules.Message{Sender: sd.From, ClientIP: client.IP, Header: header, Size: size}
	if c := sd.Attribution.Connector; c != nil {
		msg.InboundConnector = c.Name
		msg.FromOrganization = c.Spec.ConnectorType == connector.OnPremises
	}
	rcpts := make([]rules.Recipient, len(accepted))
	for i, k := range accepted {
		_, ours := ix.Accepted(decisions[k].Domain)
		rcpts[i] = rules.Recipient{Address: decisions[k].Address, InOrganization: ours}
	}
	outcomes := ix.Rules().Explain(time.Now(), &msg, rcpts)
	var firstReject *rules.Rejection
	rejected := 0
	for i, k := range accepted {
		o, d, route := &outcomes[i], decisions[k], &resp.Routes[k]
		route.Rules = ruleTrace(o.Trace)
		switch {
		case o.Reject != nil:
			rejected++
			if firstReject == nil {
				firstReject = o.Reject
			}
			name := o.Reject.Rule
			route.Accepted, route.Rejected, route.Rule = false, true, &name
			route.Reply = o.Reject.Reject.String()
			route.Reason = fmt.Sprintf("rejected by mail flow rule %q: %s", name, route.Reply)
			continue
		case o.Route != nil:
			name := o.Route.Rule
			if rt, ok := ix.RouteVia(o.Route.ConnectorID, name); ok {
				d.Route = rt
				route.Rule = &name
				break
			}
			note := fmt.Sprintf("mail flow rule %q routes through outbound connector %d, which cannot carry mail now; on_error %s", name, o.Route.ConnectorID, o.Route.OnError)
			if o.Route.OnError != rules.Ignore {
				route.Rule, route.Reason = &name, note
				route.Reply = "451 4.4.0 deferred: " + note
				continue
			}
			d.Route.Reason += " (" + note + ")"
		}
		route.Reason = d.Route.Reason
		s.describeRoute(r.Context(), d, route)
	}
	resp.Rules = mergeRuleTraces(rcpts, outcomes)
	switch {
	case rejected > 0 && rejected == len(accepted):
		// Every recipient rejected: the relay answers DATA with the
		// first recipient's rule's reply and queues nothing.
		resp.Accepted, resp.Reply = false, firstReject.Reject.String()
	case !resp.Accepted:
	case rejected > 0:
		resp.Reply = fmt.Sprintf("250 2.0.0 the message would be accepted; %d recipient(s) rejected by mail flow rules would get a DSN", rejected)
	default:
		resp.Reply = "250 2.1.5 every recipient would be accepted"
	}
	writeJSON(w, http.StatusOK, resp)
}

// testHeader builds the header section of a route test from its fields,
// in name order; it says what is wrong when a field cannot be one.
func testHeader(fields map[string]string) ([]byte, string) {
	if len(fields) > maxTestHeaders {
		return nil, fmt.Sprintf("at most %d header fields", maxTestHeaders)
	}
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		if n == "" || len(n) > rules.MaxHeaderNameLen {
			return nil, fmt.Sprintf("%q is not a header field name: use 1 to %d letters, digits and dashes, like X-Classification", n, rules.MaxHeaderNameLen)
		}
		for i := 0; i < len(n); i++ {
			if c := n[i]; c <= ' ' || c > '~' || c == ':' {
				return nil, fmt.Sprintf("%q is not a header field name: use letters, digits and dashes, like X-Classification", n)
			}
		}
		v := fields[n]
		switch {
		case len(v) > maxTestHeaderValue:
			return nil, fmt.Sprintf("the value of %s is longer than %d bytes", n, maxTestHeaderValue)
		case strings.ContainsAny(v, "\r\n\x00"):
			return nil, fmt.Sprintf("the value of %s must be one line, without line breaks", n)
		}
		b.WriteString(n)
		b.WriteString(": ")
		b.WriteString(v)
		b.WriteString("\r\n")
	}
	return []byte(b.String()), ""
}

func ruleTrace(trace []rules.RuleResult) []routeTestRule {
	out := make([]routeTestRule, len(trace))
	for i, t := range trace {
		out[i] = routeTestRule{Name: t.Name, Mode: t.Mode, Matched: t.Matched, Applied: t.Applied, Detail: t.Detail}
	}
	return out
}

// mergeRuleTraces is the route test's "rules" list: one entry per rule of
// the set, in priority order, matched (applied) when it matched (was
// applied) for some recipient, with the detail all recipients share or,
// when theirs differ, each recipient's ("a@x: …; b@y: …").
func mergeRuleTraces(rcpts []rules.Recipient, outcomes []rules.Outcome) []routeTestRule {
	out := []routeTestRule{}
	if len(outcomes) == 0 {
		return out
	}
	for j, t := range outcomes[0].Trace {
		e := routeTestRule{Name: t.Name, Mode: t.Mode, Detail: t.Detail}
		same := true
		for i := range outcomes {
			ti := outcomes[i].Trace[j]
			e.Matched = e.Matched || ti.Matched
			e.Applied = e.Applied || ti.Applied
			same = same && ti.Detail == t.Detail
		}
		if !same {
			parts := make([]string, len(outcomes))
			for i := range outcomes {
				parts[i] = rcpts[i].Address + ": " + outcomes[i].Trace[j].Detail
			}
			e.Detail = strings.Join(parts, "; ")
		}
		out = append(out, e)
	}
	return out
}

// describeRoute fills in where an accepted recipient's mail would go, as
// delivery decides it (delivery.TargetFor): the next hops and the TLS
// policy, or the deferral.
func (s *Server) describeRoute(ctx context.Context, d relay.RecipientDecision, out *routeTestRoute) {
	t, ok := delivery.TargetFor(d.Route, d.Domain)
	if !ok {
		out.Reply = "451 4.4.0 deferred: no route"
		return
	}
	if c := d.Route.Connector; c != nil {
		out.Connector = c.Name
	}
	out.TLSSettings = string(t.TLS)
	for _, h := range t.Hosts {
		out.NextHops = append(out.NextHops, h.String())
	}
	if t.MXDomain != "" {
		out.NextHops = s.mxHops(ctx, t.MXDomain)
	}
}

// mxHops lists a domain's MX hosts, or says why they could not be found.
func (s *Server) mxHops(ctx context.Context, domain string) []string {
	if s.resolver == nil {
		return []string{"MX of " + domain}
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	hosts, err := s.resolver.MXHosts(ctx, domain, 0)
	if err != nil {
		return []string{fmt.Sprintf("MX of %s (lookup failed: %v)", domain, err)}
	}
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = h.String()
	}
	return out
}
