package api

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/delivery"
	"github.com/flowgate/flowgate/internal/relay"
	"github.com/flowgate/flowgate/internal/routing"
)

type routeTestRequest struct {
	ClientIP       string   `json:"client_ip"`
	Sender         string   `json:"sender"`
	Recipients     []string `json:"recipients"`
	TLS            bool     `json:"tls"`
	ClientCertName string   `json:"client_cert_name"`
}

type routeTestRoute struct {
	Recipient   string   `json:"recipient"`
	Accepted    bool     `json:"accepted"`
	Reply       string   `json:"reply,omitempty"`
	Connector   string   `json:"connector"`
	Reason      string   `json:"reason"`
	NextHops    []string `json:"next_hops"`
	TLSSettings string   `json:"tls_settings"`
}

type routeTestResponse struct {
	Accepted         bool             `json:"accepted"`
	Reply            string           `json:"reply"`
	InboundConnector string           `json:"inbound_connector"`
	Attribution      string           `json:"attribution"`
	Routes           []routeTestRoute `json:"routes"`
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
	resp := routeTestResponse{Accepted: true, Attribution: sd.Attribution.Reason, Routes: []routeTestRoute{}}
	if sd.Attribution.Connector != nil {
		resp.InboundConnector = sd.Attribution.Connector.Name
	}
	if sd.Refusal != nil {
		resp.Accepted, resp.Reply = false, sd.Refusal.String()
		resp.Attribution = sd.Detail
		writeJSON(w, http.StatusOK, resp)
		return
	}
	for _, rc := range req.Recipients {
		d := relay.DecideRecipient(ix, sd.Attribution, client, sd.Domain, strings.Trim(strings.TrimSpace(rc), "<>"))
		route := routeTestRoute{Recipient: d.Address, Accepted: d.Refusal == nil, Reason: d.Reason, NextHops: []string{}}
		if d.Refusal != nil {
			route.Reply = d.Refusal.String()
			if resp.Accepted {
				resp.Accepted, resp.Reply = false, d.Refusal.String()
			}
			resp.Routes = append(resp.Routes, route)
			continue
		}
		route.Reason = d.Route.Reason
		s.describeRoute(r.Context(), d, &route)
		resp.Routes = append(resp.Routes, route)
	}
	if resp.Accepted {
		resp.Reply = "250 2.1.5 every recipient would be accepted"
	}
	writeJSON(w, http.StatusOK, resp)
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
