package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/web"
)

// tracePageSize is how many messages one page of the trace search shows.
const tracePageSize = 50

// traceShownRecipients is how many recipients a search row names before
// "and N more".
const traceShownRecipients = 3

// traceStatuses are the status filter's choices.
var traceStatuses = []web.Option{
	{Value: string(queue.Queued), Label: "Queued"}, {Value: string(queue.Delivered), Label: "Delivered"},
	{Value: string(queue.Deferred), Label: "Deferred"}, {Value: string(queue.Bounced), Label: "Bounced"},
	{Value: string(queue.Rejected), Label: "Rejected"},
}

// traceQuery is the trace search's query string read into a queue filter,
// with an error for each parameter it could not read.
type traceQuery struct {
	form   web.TraceFilterForm
	filter queue.TraceFilter
	errs   web.Errors
}

const traceAddressHint = "Enter an address like alice@contoso.com, or @contoso.com for a whole domain."

func parseTraceQuery(q url.Values) traceQuery {
	t := traceQuery{errs: web.Errors{}, filter: queue.TraceFilter{Limit: tracePageSize}}
	f := &t.form
	f.Sender, f.Recipient = strings.TrimSpace(q.Get("sender")), strings.TrimSpace(q.Get("recipient"))
	f.Status, f.Connector = q.Get("status"), strings.TrimSpace(q.Get("connector"))
	f.From, f.To = q.Get("from"), q.Get("to")
	f.Filtered = f.Sender != "" || f.Recipient != "" || f.Status != "" || f.Connector != "" || f.From != "" || f.To != ""
	for _, a := range []struct {
		name, value string
		dst         *string
	}{{"sender", f.Sender, &t.filter.Sender}, {"recipient", f.Recipient, &t.filter.Recipient}} {
		if a.value == "" {
			continue
		}
		if !strings.Contains(a.value, "@") || strings.ContainsAny(a.value, " \t<>,;") || len(a.value) > 320 ||
			strings.HasSuffix(a.value, "@") || strings.Count(a.value, "@") > 1 {
			t.errs[a.name] = traceAddressHint
		}
		*a.dst = a.value
	}
	if f.Status != "" {
		if !hasOption(traceStatuses, f.Status) {
			t.errs["status"] = "Choose a status from the list."
		}
		t.filter.Status = queue.Status(f.Status)
	}
	if len(f.Connector) > 200 {
		t.errs["connector"] = "Choose a connector from the list."
	}
	t.filter.Connector = f.Connector
	from, fromOK := parseDate(f.From)
	to, toOK := parseDate(f.To)
	if !fromOK {
		t.errs["from"] = "Enter a date as year-month-day, like 2026-12-03."
	}
	if !toOK {
		t.errs["to"] = "Enter a date as year-month-day, like 2026-12-03."
	}
	if fromOK && toOK && !from.IsZero() && !to.IsZero() && to.Before(from) {
		t.errs["to"] = "The end date is before the start date."
	}
	t.filter.From = from
	if !to.IsZero() {
		t.filter.To = to.AddDate(0, 0, 1) // the whole of the last day
	}
	before, ok := parseID(q.Get("before"))
	if !ok {
		t.errs["page"] = "This page of the message trace does not exist: the page position must be a message's number. Start again from the newest messages."
	}
	t.filter.BeforeID = before
	return t
}

// link is the trace search's URL with the same filters; before > 0 asks
// for the messages older than that one.
func (t traceQuery) link(before int64) string {
	v := url.Values{}
	for k, s := range map[string]string{"sender": t.form.Sender, "recipient": t.form.Recipient, "status": t.form.Status,
		"connector": t.form.Connector, "from": t.form.From, "to": t.form.To} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if before > 0 {
		v.Set("before", strconv.FormatInt(before, 10))
	}
	if len(v) == 0 {
		return "/trace"
	}
	return "/trace?" + v.Encode()
}

// traceSearch is the message trace's search page: filters, and the
// matching messages newest first, a page at a time.
func (c *Console) traceSearch(w http.ResponseWriter, r *http.Request) {
	t := parseTraceQuery(r.URL.Query())
	conns, err := c.allConnectors(r)
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	p := web.TraceSearchPage{Page: c.page(w, r, "Message trace", "trace"), Filter: t.form, Errors: t.errs}
	f := &p.Filter
	f.Statuses = selectOption(traceStatuses, f.Status)
	seen := map[string]bool{}
	selected := false
	for _, conn := range conns {
		key := string(conn.Direction) + "\x00" + strings.ToLower(conn.Name)
		if seen[key] {
			continue
		}
		seen[key] = true
		o := web.Option{Value: conn.Name, Label: conn.Name}
		if !selected && strings.EqualFold(conn.Name, f.Connector) {
			o.Selected, selected = true, true
		}
		if conn.Direction == connector.Inbound {
			f.Inbound = append(f.Inbound, o)
		} else {
			f.Outbound = append(f.Outbound, o)
		}
	}
	if f.Connector != "" && !selected && !t.errs.Has("connector") {
		// A deleted connector's mail is still in the trace.
		f.Other = append(f.Other, web.Option{Value: f.Connector, Label: f.Connector + " (no longer configured)", Selected: true})
	}
	if len(t.errs) > 0 {
		c.render(w, r, http.StatusBadRequest, web.TraceSearch(p))
		return
	}
	list, next, err := queue.SearchTrace(r.Context(), c.store, t.filter)
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	for i := range list {
		p.Rows = append(p.Rows, traceRow(&list[i]))
	}
	if next > 0 {
		p.Older = t.link(next)
	}
	if t.filter.BeforeID > 0 {
		p.Newest = t.link(0)
	}
	if n := len(list); n > 0 {
		what := "message"
		if n != 1 {
			what = "messages"
		}
		p.Showing = fmt.Sprintf("%d %s, newest first", n, what)
		if t.filter.BeforeID == 0 {
			p.Showing = "The newest " + p.Showing
		}
		if newest, oldest := web.When(list[0].ReceivedAt), web.When(list[n-1].ReceivedAt); n > 1 && newest != oldest {
			p.Showing += ": " + newest + " back to " + oldest
		}
		p.Showing += "."
	}
	c.render(w, r, http.StatusOK, web.TraceSearch(p))
}

func traceRow(m *queue.Trace) web.TraceRow {
	row := web.TraceRow{Href: "/trace/" + url.PathEscape(m.ID), UID: m.ID, At: m.ReceivedAt, Sender: traceSender(m.Sender),
		Status: string(m.Status), Inbound: m.InboundConnector}
	var shown []string
	outSeen := map[string]bool{}
	for _, rc := range m.Recipients {
		if len(shown) < traceShownRecipients {
			shown = append(shown, rc.Address)
		} else {
			row.More++
		}
		if rc.Connector != "" && !outSeen[strings.ToLower(rc.Connector)] {
			outSeen[strings.ToLower(rc.Connector)] = true
			row.Outbound = append(row.Outbound, rc.Connector)
		}
	}
	if len(m.Recipients) == 0 {
		row.Recipients = "(none accepted)"
	}
	row.Recipients += strings.Join(shown, ", ")
	return row
}

func traceSender(s string) string {
	if s == "" {
		return "<> (null sender)"
	}
	return s
}

// traceMessage is one message's trace: how it was received and
// attributed, each recipient's route and fate, and every event in order.
func (c *Console) traceMessage(w http.ResponseWriter, r *http.Request) {
	uid := chi.URLParam(r, "uid")
	var ep queue.EventPage
	if v := r.URL.Query().Get("events_after"); v != "" {
		n, ok := parseID(v)
		if !ok {
			c.errorPage(w, r, http.StatusBadRequest, "This page of the timeline does not exist: the position must be an event's number.")
			return
		}
		ep.After = n
	}
	t, err := queue.GetTracePage(r.Context(), c.store, uid, ep)
	if errors.Is(err, queue.ErrNoMessage) {
		c.notFound(w, r)
		return
	}
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	rules, err := c.traceRecipientRules(r, uid)
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	p := web.TraceMessagePage{Page: c.page(w, r, "Message "+t.ID, "trace"), UID: t.ID, Status: string(t.Status)}
	p.Facts = traceFacts(t)
	p.Attribution = traceAttribution(t)
	for i, rc := range t.Recipients {
		v := web.TraceRecipientView{Address: rc.Address, Status: string(rc.Status), Route: traceRouteName(rc),
			RouteReason: rc.RouteReason, Attempts: rc.Attempts, LastReply: rc.LastReply}
		if i < len(rules) && rules[i].address == rc.Address {
			v.Rule = rules[i].rule
		}
		p.Recipients = append(p.Recipients, v)
	}
	for _, e := range t.Events {
		label, tone := traceEventWords(e.Type)
		detail := e.Detail
		if detail == "final" {
			// The queue's last event: the message's final state.
			detail = "Final state: every recipient is done."
		}
		p.Events = append(p.Events, web.TraceEventView{At: e.At, Type: e.Type, Label: label, Detail: detail, Tone: tone})
	}
	base := "/trace/" + url.PathEscape(t.ID)
	if t.Next > 0 {
		p.Later = base + "?events_after=" + strconv.FormatInt(t.Next, 10)
	}
	if ep.After > 0 {
		p.First = base
	}
	c.render(w, r, http.StatusOK, web.TraceMessage(p))
}

// traceFacts is the message's header, in the order an administrator
// reads it.
func traceFacts(t *queue.Trace) []web.Fact {
	none := func(s, instead string) string {
		if s == "" {
			return instead
		}
		return s
	}
	facts := []web.Fact{
		{Label: "Queue id", Value: t.ID, Mono: true},
		{Label: "Message-ID", Value: none(t.MessageID, "none"), Mono: t.MessageID != ""},
		{Label: "Received", Value: t.ReceivedAt.UTC().Format("2006-01-02 15:04:05.000 UTC")},
		{Label: "Client", Value: none(t.ClientIP, "unknown") + traceHelo(t.Helo)},
		{Label: "Sender", Value: traceSender(t.Sender)},
	}
	tls := "none: received in clear text"
	cert := "none presented"
	if t.TLS != nil {
		if t.TLS.Version != "" {
			tls = t.TLS.Version
			if t.TLS.Cipher != "" {
				tls += ", " + t.TLS.Cipher
			}
		}
		if t.TLS.ClientCertificate != "" {
			cert = t.TLS.ClientCertificate
		}
	}
	facts = append(facts, web.Fact{Label: "TLS", Value: tls}, web.Fact{Label: "Client certificate", Value: cert})
	if t.Size > 0 {
		facts = append(facts, web.Fact{Label: "Size", Value: traceSize(t.Size)})
	}
	status := string(t.Status)
	if t.Attempts > 0 {
		status += fmt.Sprintf(" after %d delivery pass", t.Attempts)
		if t.Attempts != 1 {
			status += "es"
		}
	}
	if t.NextAttemptAt != nil {
		status += "; next attempt " + web.When(*t.NextAttemptAt)
	}
	facts = append(facts, web.Fact{Label: "Status", Value: status})
	if t.Reply != "" {
		facts = append(facts, web.Fact{Label: "Reply to the client", Value: t.Reply, Mono: true})
	}
	return facts
}

func traceHelo(h string) string {
	if h == "" {
		return ""
	}
	return " (HELO " + h + ")"
}

func traceSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB (%d bytes)", float64(n)/(1<<20), n)
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB (%d bytes)", float64(n)/(1<<10), n)
	}
	return fmt.Sprintf("%d bytes", n)
}

// attributionSentence says which inbound connector applied, and why.
func traceAttribution(t *queue.Trace) []web.Span {
	var out []web.Span
	if t.InboundConnector != "" {
		out = append(out, web.Span{Text: "Attributed to inbound connector "}, web.Span{Text: t.InboundConnector, Strong: true})
	} else {
		out = append(out, web.Span{Text: "No inbound connector applied"})
	}
	if t.Attribution != "" {
		out = append(out, web.Span{Text: ": " + t.Attribution + "."})
	} else {
		out = append(out, web.Span{Text: "."})
	}
	return out
}

// routeName is how a recipient left, or would leave: its connector, MX
// lookup, or why it has no route.
func traceRouteName(rc queue.TraceRecipient) string {
	switch {
	case rc.Connector != "":
		return "Connector " + rc.Connector
	case strings.Contains(rc.RouteReason, "MX lookup"):
		return "MX lookup (no connector)"
	case rc.Status == queue.Rejected:
		return "Not routed: rejected"
	case strings.Contains(rc.RouteReason, "deferred"):
		return "No route: deferred"
	}
	return "No connector"
}

// eventWords is an event type in words, and its tone on the timeline.
func traceEventWords(typ string) (string, string) {
	switch typ {
	case "connect":
		return "Connected", ""
	case "probe":
		return "Validation probe", ""
	case "attributed":
		return "Attributed", ""
	case "received":
		return "Received", "ok"
	case "recipient_accepted":
		return "Recipient accepted", ""
	case "recipient_rejected":
		return "Recipient rejected", "bad"
	case "postmaster":
		return "Postmaster", ""
	case "rule":
		return "Mail flow rule", ""
	case "rule_audit":
		return "Audit rule matched", ""
	case "rule_rejected":
		return "Rejected by mail flow rule", "bad"
	case "attempt":
		return "Delivery attempt", ""
	case "delivered":
		return "Delivered", "ok"
	case "deferred":
		return "Deferred", "warn"
	case "waiting":
		return "Waiting", "warn"
	case "bounced":
		return "Bounced", "bad"
	case "dsn":
		return "DSN sent", ""
	case "rejected":
		return "Rejected", "bad"
	case "error_limit":
		return "Too many errors", "bad"
	}
	if typ == "" {
		return "Event", ""
	}
	words := strings.ReplaceAll(typ, "_", " ")
	return strings.ToUpper(words[:1]) + words[1:], ""
}

// traceRecipientRule is one recipient's mail flow rule, as the relay recorded
// it (the trace's recipients do not carry it; the API reads it alike).
type traceRecipientRule struct {
	address, rule string
}

func (c *Console) traceRecipientRules(r *http.Request, uid string) ([]traceRecipientRule, error) {
	rows, err := c.store.DB().WithContext(r.Context()).Raw(`SELECT r.address, r.rule
		FROM message_recipients r JOIN messages m ON m.id = r.message_id
		WHERE m.uid = ? ORDER BY r.id`, uid).Rows()
	if err != nil {
		return nil, fmt.Errorf("load recipient rules: %w", err)
	}
	defer rows.Close()
	var out []traceRecipientRule
	for rows.Next() {
		var rr traceRecipientRule
		if err := rows.Scan(&rr.address, &rr.rule); err != nil {
			return nil, fmt.Errorf("load recipient rules: %w", err)
		}
		out = append(out, rr)
	}
	return out, rows.Err()
}
