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
	recipients := make([]string, len(req.Recipients))
	for i, rc := range req.Recipients {
		recipients[i] = strings.Trim(strings.TrimSpace(rc), "<>")
	}
	v := relay.Explain(ix, relay.Trial{Client: client, Sender: strings.Trim(strings.TrimSpace(req.Sender), "<>"),
		Recipients: recipients, Header: header, Size: size, Now: time.Now()})
	resp := routeTestResponse{Accepted: v.Accepted, Reply: v.Reply, Attribution: v.Sender.Attribution.Reason,
		Routes: []routeTestRoute{}, Rules: []routeTestRule{}}
	if c := v.Sender.Attribution.Connector; c != nil {
		resp.InboundConnector = c.Name
	}
	if v.RefusedAt == "sender" {
		resp.Attribution = v.Sender.Detail
		writeJSON(w, http.StatusOK, resp)
		return
	}
	for _, rv := range v.Recipients {
		route := routeTestRoute{Recipient: rv.Decision.Address, Accepted: rv.Status == "accepted" || rv.Status == "deferred", Rejected: rv.Status == "rejected",
			Reply: rv.Reply, Reason: rv.Reason, NextHops: []string{}, Rules: ruleTrace(rv.Trace)}
		if rv.Rule != "" {
			name := rv.Rule
			route.Rule = &name
		}
		if rv.Status == "accepted" {
			s.describeRoute(r.Context(), rv.Decision, &route)
		}
		resp.Routes = append(resp.Routes, route)
	}
	for _, m := range v.Rules {
		e := routeTestRule{Name: m.Name, Mode: m.Mode, Matched: m.Matched, Applied: m.Applied, Detail: m.Detail}
		if len(m.PerRecipient) > 0 {
			e.Detail = strings.Join(m.PerRecipient, "; ")
		}
		resp.Rules = append(resp.Rules, e)
	}
	writeJSON(w, http.StatusOK, resp)
}

// testHeader builds the header section of a route test from its fields,
// in name order (relay.TrialHeader).
func testHeader(fields map[string]string) ([]byte, string) {
	list := make([]relay.HeaderField, 0, len(fields))
	for n, v := range fields {
		list = append(list, relay.HeaderField{Name: n, Value: v})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	return relay.TrialHeader(list)
}

func ruleTrace(trace []rules.RuleResult) []routeTestRule {
	out := make([]routeTestRule, len(trace))
	for i, t := range trace {
		out[i] = routeTestRule{Name: t.Name, Mode: t.Mode, Matched: t.Matched, Applied: t.Applied, Detail: t.Detail}
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
