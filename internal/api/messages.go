package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/flowgate/flowgate/internal/queue"
)

// searchMessages is GET /messages?sender=&recipient=&status=&connector=&from=&to=&limit=&before=
// (times in RFC 3339; sender and recipient take an address or "@domain";
// connector is a connector's name, inbound or outbound, in any case).
func (s *Server) searchMessages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := queue.TraceFilter{Sender: q.Get("sender"), Recipient: q.Get("recipient"), Status: queue.Status(q.Get("status")),
		Connector: q.Get("connector")}
	fields := map[string]string{}
	for name := range q {
		switch name {
		case "sender", "recipient", "status", "connector", "from", "to", "before", "limit":
		default:
			// A misspelt filter would otherwise be ignored and the search
			// answer every message.
			fields[name] = "unknown parameter; use sender, recipient, status, connector, from, to, limit or before"
		}
	}
	switch f.Status {
	case "", queue.Queued, queue.Delivered, queue.Deferred, queue.Bounced, queue.Rejected:
	default:
		fields["status"] = "choose queued, delivered, deferred, bounced or rejected"
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				fields[p.name] = "use an RFC 3339 time like 2026-11-23T09:00:00Z"
			}
			*p.dst = t
		}
	}
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"before", &f.BeforeID}} {
		if v := q.Get(p.name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				fields[p.name] = "must be a whole number from the previous page's next_before"
			}
			*p.dst = n
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			fields["limit"] = "must be a whole number from 1 to 500"
		}
		f.Limit = n
	}
	if len(fields) > 0 {
		writeError(w, http.StatusBadRequest, "some query parameters are invalid", fields)
		return
	}
	list, next, err := queue.SearchTrace(r.Context(), s.store, f)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	rulesOf, err := s.recipientRules(r, list)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	msgs := make([]traceJSON, len(list))
	for i := range list {
		msgs[i] = withRules(&list[i], rulesOf[list[i].ID])
	}
	out := map[string]any{"messages": msgs}
	if next > 0 {
		out["next_before"] = next
	}
	writeJSON(w, http.StatusOK, out)
}

// getMessage is GET /messages/{id}?events_after=&limit=: the message with
// its recipients and a page of its events (at most queue.MaxTraceEvents,
// queue.DefaultTraceEvents by default); "next", when present, is the
// events_after of the next page.
func (s *Server) getMessage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var p queue.EventPage
	fields := map[string]string{}
	for name := range q {
		if name != "events_after" && name != "limit" {
			fields[name] = "unknown parameter; use events_after or limit"
		}
	}
	if v := q.Get("events_after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			fields["events_after"] = "must be a whole number from the previous answer's next"
		}
		p.After = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > queue.MaxTraceEvents {
			fields["limit"] = "must be a whole number from 1 to " + strconv.Itoa(queue.MaxTraceEvents)
		}
		p.Limit = n
	}
	if len(fields) > 0 {
		writeError(w, http.StatusBadRequest, "some query parameters are invalid", fields)
		return
	}
	s.writeTrace(w, r, chi.URLParam(r, "id"), p)
}

// writeTrace answers with the message uid as the trace shows it (one page
// of its events), with each recipient's rule.
func (s *Server) writeTrace(w http.ResponseWriter, r *http.Request, uid string, p queue.EventPage) {
	t, err := queue.GetTracePage(r.Context(), s.store, uid, p)
	if errors.Is(err, queue.ErrNoMessage) {
		writeError(w, http.StatusNotFound, "no message with that id", nil)
		return
	}
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	rulesOf, err := s.recipientRules(r, []queue.Trace{*t})
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, withRules(t, rulesOf[t.ID]))
}

// traceJSON is a message of the trace with, for each recipient, the mail
// flow rule that chose its route (SPEC 5).
type traceJSON struct {
	*queue.Trace
	Recipients []traceRecipientJSON `json:"recipients"`
}

type traceRecipientJSON struct {
	queue.TraceRecipient
	// Rule is the name of the mail flow rule that chose the recipient's
	// route, or rejected it; nil when none did.
	Rule *string `json:"rule"`
}

// recipientRule is one recipient's rule, as the relay recorded it.
type recipientRule struct {
	Address string
	Rule    string
}

func withRules(t *queue.Trace, rcptRules []recipientRule) traceJSON {
	out := traceJSON{Trace: t, Recipients: make([]traceRecipientJSON, len(t.Recipients))}
	for i, rc := range t.Recipients {
		out.Recipients[i].TraceRecipient = rc
		// The recipients come in the same order (by id) from both
		// queries; the address guards the pairing.
		if i < len(rcptRules) && rcptRules[i].Address == rc.Address && rcptRules[i].Rule != "" {
			name := rcptRules[i].Rule
			out.Recipients[i].Rule = &name
		}
	}
	return out
}

// recipientRules reads the rule column of the messages' recipients
// (migration 00011), by message id, in recipient id order as the trace
// lists them.
func (s *Server) recipientRules(r *http.Request, list []queue.Trace) (map[string][]recipientRule, error) {
	out := map[string][]recipientRule{}
	if len(list) == 0 {
		return out, nil
	}
	uids := make([]string, len(list))
	for i := range list {
		uids[i] = list[i].ID
	}
	rows, err := s.store.DB().WithContext(r.Context()).Raw(`SELECT m.uid, r.address, r.rule
		FROM message_recipients r JOIN messages m ON m.id = r.message_id
		WHERE m.uid IN ? ORDER BY r.id`, uids).Rows()
	if err != nil {
		return nil, fmt.Errorf("load recipient rules: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var uid string
		var rr recipientRule
		if err := rows.Scan(&uid, &rr.Address, &rr.Rule); err != nil {
			return nil, fmt.Errorf("load recipient rules: %w", err)
		}
		out[uid] = append(out[uid], rr)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load recipient rules: %w", err)
	}
	return out, nil
}
