package console

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/delivery"
	"github.com/flowgate/flowgate/internal/liveconfig"
	"github.com/flowgate/flowgate/internal/relay"
	"github.com/flowgate/flowgate/internal/routing"
	"github.com/flowgate/flowgate/web"
)

// maxTestRecipients bounds a route test's recipients, as the API's does
// (header fields: relay.TrialHeader).
const maxTestRecipients = 100

// routeTestInput is the route test form read from the query string.
type routeTestInput struct {
	client     routing.Client
	sender     string
	recipients []string
	header     []byte
	size       int64
}

// parseRouteTest reads the form; errs holds an error per field it could
// not read, keyed by the field's name.
func parseRouteTest(q url.Values) (web.RouteTestForm, routeTestInput, web.Errors) {
	f := web.RouteTestForm{
		Sender: strings.TrimSpace(q.Get("sender")), Recipients: q.Get("recipients"), ClientIP: strings.TrimSpace(q.Get("client_ip")),
		TLS: q.Get("tls") != "", CertName: strings.TrimSpace(q.Get("cert_name")), Headers: q.Get("headers"), Size: strings.TrimSpace(q.Get("size")),
	}
	var in routeTestInput
	errs := web.Errors{}
	if ip, err := netip.ParseAddr(f.ClientIP); err != nil || ip.Zone() != "" {
		if f.ClientIP == "" {
			errs["client_ip"] = "Enter the IP address the mail would come from, like 203.0.113.5."
		} else {
			errs["client_ip"] = fmt.Sprintf("%q is not an IP address. Enter one like 203.0.113.5 or 2001:db8::25.", f.ClientIP)
		}
	} else {
		in.client.IP = ip.Unmap()
	}
	in.client.TLS = f.TLS
	in.sender = strings.Trim(f.Sender, "<>")
	if in.sender != "" && !looksLikeAddress(in.sender) {
		errs["sender"] = fmt.Sprintf("%q is not an email address. Enter one like alice@contosobank.com, or leave it empty for the null sender (a bounce).", f.Sender)
	}
	for _, line := range strings.FieldsFunc(f.Recipients, func(r rune) bool { return r == '\n' || r == '\r' || r == ',' || r == ';' }) {
		a := strings.Trim(strings.TrimSpace(line), "<>")
		if a == "" {
			continue
		}
		if !looksLikeAddress(a) {
			errs["recipients"] = fmt.Sprintf("%q is not an email address. Enter one address per line, like john@contoso.com.", strings.TrimSpace(line))
			break
		}
		in.recipients = append(in.recipients, a)
	}
	switch {
	case errs.Has("recipients"):
	case len(in.recipients) == 0:
		errs["recipients"] = "Enter at least one recipient address, one per line."
	case len(in.recipients) > maxTestRecipients:
		errs["recipients"] = fmt.Sprintf("At most %d recipients; this list has %d.", maxTestRecipients, len(in.recipients))
	}
	if f.CertName != "" {
		if _, err := connector.ParseCertificateName(f.CertName); err != nil {
			errs["cert_name"] = fmt.Sprintf("%q is not a certificate name: %v. Enter the host name in the client's certificate, like mail.contosobank.com.", f.CertName, err)
		} else if !f.TLS {
			errs["cert_name"] = "A client certificate is only presented over TLS: tick “The client uses TLS”, or leave the certificate name empty."
		} else {
			in.client.CertNames = []string{strings.ToLower(f.CertName)}
		}
	}
	header, why := parseTestHeaders(f.Headers)
	if why != "" {
		errs["headers"] = why
	}
	in.header = header
	if f.Size != "" {
		n, err := strconv.ParseInt(strings.ReplaceAll(f.Size, "_", ""), 10, 64)
		if err != nil || n < 0 {
			errs["size"] = fmt.Sprintf("%q is not a size: enter a whole number of bytes, like 250000, or leave it empty.", f.Size)
		}
		in.size = n
	}
	return f, in, errs
}

// looksLikeAddress is the form's check of an address: one "@" between a
// local part and a domain, no spaces. What else is wrong with it (an IP
// literal, a source route, a trailing dot…) is the relay's to say, in its
// reply, as it would to a client.
func looksLikeAddress(a string) bool {
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at == len(a)-1 {
		return false
	}
	for _, r := range a {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// parseTestHeaders reads the header lines ("Name: value", one a line,
// blank lines skipped) into a header section for the rules
// (relay.TrialHeader checks the fields).
func parseTestHeaders(text string) ([]byte, string) {
	var fields []relay.HeaderField
	for _, line := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return nil, fmt.Sprintf("%q is not a header line: write it as Name: value, like X-Classification: confidential", clipText(line, 60))
		}
		fields = append(fields, relay.HeaderField{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)})
	}
	return relay.TrialHeader(fields)
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// routeTest is the route test page: the API's inputs as a GET form, and
// the answer in plain words. It builds a routing index from the store's
// current configuration per request (liveconfig.LoadRouting and
// routing.Build, what the relay's live index is built from), and decides
// through the relay's and the delivery's own functions (relay.DecideSender,
// relay.DecideRecipient, rules.Set.Explain, delivery.TargetFor), so it
// cannot disagree with them.
func (c *Console) routeTest(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := web.RouteTestPage{Page: c.page(w, r, "Route test", "routetest"), Errors: web.Errors{}}
	submitted := q.Has("client_ip") || q.Has("recipients") || q.Has("sender")
	if !submitted {
		p.Form.TLS = true
		c.render(w, r, http.StatusOK, web.RouteTest(p))
		return
	}
	form, in, errs := parseRouteTest(q)
	p.Form, p.Errors = form, errs
	if len(errs) > 0 {
		c.render(w, r, http.StatusBadRequest, web.RouteTest(p))
		return
	}
	cfg, err := liveconfig.LoadRouting(r.Context(), c.store)
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	res := explainRoute(routing.Build(cfg), in, time.Now())
	res.Summary = routeSummary(in, res)
	p.Result = &res
	c.render(w, r, http.StatusOK, web.RouteTest(p))
}

// explainRoute is the relay's verdict on the test message (relay.Explain,
// which the API's route test answers from too) in the page's words.
func explainRoute(ix *routing.Index, in routeTestInput, now time.Time) web.RouteTestResult {
	v := relay.Explain(ix, relay.Trial{Client: in.client, Sender: in.sender, Recipients: in.recipients,
		Header: in.header, Size: in.size, Now: now})
	res := web.RouteTestResult{Accepted: v.Accepted, Reply: v.Reply, RefusedAt: v.RefusedAt, RulesRan: v.RulesRan,
		Attribution: v.Sender.Attribution.Reason}
	if conn := v.Sender.Attribution.Connector; conn != nil {
		res.Inbound = conn.Name
		res.Attribution = dropConnectorName(res.Attribution, conn.Name)
	}
	if v.RefusedAt == "sender" {
		res.Attribution = v.Sender.Detail
		return res
	}
	for _, rv := range v.Recipients {
		route := web.RouteTestRoute{Recipient: rv.Decision.Address, Status: rv.Status, Reply: rv.Reply, Rule: rv.Rule, Reason: rv.Reason}
		switch rv.Status {
		case "rejected":
			route.Reason = fmt.Sprintf("mail flow rule “%s” rejects this recipient", rv.Rule)
		case "deferred":
			route.Via = "Deferred"
		case "accepted":
			describeTarget(rv.Decision, &route)
		}
		res.Routes = append(res.Routes, route)
	}
	for _, m := range v.Rules {
		e := web.RouteTestRule{Name: m.Name, Mode: string(m.Mode), Matched: m.Matched, Applied: m.Applied,
			Detail: nameConnectors(ix, m.Detail)}
		for _, d := range m.PerRecipient {
			e.PerRecipient = append(e.PerRecipient, nameConnectors(ix, d))
		}
		res.Rules = append(res.Rules, e)
	}
	res.Partly = v.RefusedAt == "recipient" && v.Rejected < len(v.Recipients)-refusedAtRCPT(v)
	return res
}

// refusedAtRCPT counts the recipients refused at RCPT TO.
func refusedAtRCPT(v relay.Verdict) int {
	n := 0
	for _, rv := range v.Recipients {
		if rv.Status == "refused" {
			n++
		}
	}
	return n
}

// describeTarget fills in where an accepted recipient's mail would go, as
// delivery decides it: the next hops and the TLS policy, or the deferral.
func describeTarget(d relay.RecipientDecision, out *web.RouteTestRoute) {
	t, ok := delivery.TargetFor(d.Route, d.Domain)
	if !ok {
		out.Status, out.Via = "deferred", "Deferred"
		out.Reply = "451 4.4.0 deferred: no route"
		return
	}
	if conn := d.Route.Connector; conn != nil {
		out.Connector = conn.Name
		out.Via = "Outbound connector “" + conn.Name + "”"
		out.Reason = dropConnectorName(out.Reason, conn.Name)
	} else {
		out.Via = "MX lookup (no connector)"
	}
	for _, h := range t.Hosts {
		out.NextHops = append(out.NextHops, h.String())
	}
	if t.MXDomain != "" {
		out.NextHops = append(out.NextHops, "the MX hosts of "+t.MXDomain+" (looked up at delivery)")
	}
	out.TLS = tlsInWords(t.TLS, t.TLSDomain)
}

func tlsInWords(s connector.TLSSettings, domain *connector.DomainPattern) string {
	switch s {
	case connector.TLSEncryptionOnly:
		return "Always TLS, any certificate (encryption_only)"
	case connector.TLSCertificateValidation:
		return "Always TLS with a trusted certificate (certificate_validation)"
	case connector.TLSDomainValidation:
		if domain != nil {
			return "Always TLS with a trusted certificate for " + domain.String() + " (domain_validation)"
		}
		return "Always TLS with a trusted certificate for the connector's domain (domain_validation)"
	}
	return "TLS when offered, else unencrypted (opportunistic)"
}

// routeSummary is the answer's first sentence: who the mail comes from,
// as whom, and the inbound connector it is attributed to, and why — or
// why it is refused.
func routeSummary(in routeTestInput, res web.RouteTestResult) string {
	var how []string
	if in.client.TLS {
		how = append(how, "TLS")
	} else {
		how = append(how, "no TLS")
	}
	if len(in.client.CertNames) > 0 {
		how = append(how, "certificate "+in.client.CertNames[0])
	}
	as := in.sender
	if as == "" {
		as = "the null sender <>"
	}
	s := fmt.Sprintf("Mail from %s (%s) as %s ", in.client.IP, strings.Join(how, ", "), as)
	if res.RefusedAt == "sender" {
		if res.Inbound != "" {
			s += fmt.Sprintf("would be attributed to the inbound connector “%s” and ", res.Inbound)
		}
		return s + fmt.Sprintf("would be refused: %s (%s).", res.Reply, res.Attribution)
	}
	if res.Inbound == "" {
		return s + fmt.Sprintf("would come through no inbound connector: %s.", res.Attribution)
	}
	return s + fmt.Sprintf("would be attributed to the inbound connector “%s”: %s.", res.Inbound, res.Attribution)
}

// dropConnectorName drops the connector's name from the end of a routing
// reason ("sender exact domain match x.com: partner connector \"X\""),
// where the page names it already.
func dropConnectorName(reason, name string) string {
	for _, suffix := range []string{
		fmt.Sprintf(": partner connector %q", name), fmt.Sprintf(": on_premises connector %q", name), fmt.Sprintf(": connector %q", name),
	} {
		if r, ok := strings.CutSuffix(reason, suffix); ok {
			return r
		}
	}
	return reason
}

// nameConnectors puts the outbound connectors' names for their ids in a
// rule's trace detail ("routes to connector 3" → "routes to connector
// “Secure gateway”").
func nameConnectors(ix *routing.Index, detail string) string {
	return connectorIDRef.ReplaceAllStringFunc(detail, func(m string) string {
		sub := connectorIDRef.FindStringSubmatch(m)
		id, err := strconv.ParseInt(sub[2], 10, 64)
		if err != nil {
			return m
		}
		if o, ok := ix.OutboundByID(id); ok {
			return sub[1] + " connector “" + o.Name + "”"
		}
		return m
	})
}

var connectorIDRef = regexp.MustCompile(`\b(routes to|would route to) connector ([0-9]+)\b`)
