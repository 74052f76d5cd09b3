package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/flowgate/flowgate/internal/queue"
)

// searchMessages is GET /messages?sender=&recipient=&status=&from=&to=&limit=&before=
// (times in RFC 3339; sender and recipient take an address or "@domain").
func (s *Server) searchMessages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := queue.TraceFilter{Sender: q.Get("sender"), Recipient: q.Get("recipient"), Status: queue.Status(q.Get("status"))}
	fields := map[string]string{}
	for name := range q {
		switch name {
		case "sender", "recipient", "status", "from", "to", "before", "limit":
		default:
			// A misspelt filter would otherwise be ignored and the search
			// answer every message.
			fields[name] = "unknown parameter; use sender, recipient, status, from, to, limit or before"
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
	out := map[string]any{"messages": list}
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
	t, err := queue.GetTracePage(r.Context(), s.store, chi.URLParam(r, "id"), p)
	if errors.Is(err, queue.ErrNoMessage) {
		writeError(w, http.StatusNotFound, "no message with that id", nil)
		return
	}
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}
