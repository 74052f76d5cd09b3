package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/preview"
	"github.com/flowgate/flowgate/internal/rules"
)

// Mail flow rules (SPEC 5 and 7): GET/POST /rules, GET/PUT/DELETE
// /rules/{id}, POST /rules/preview. Rule bodies are read by rules.Parse,
// strictly, and answered in the same shape (rules.Rule).

// defaultTraceRetention is FLOWGATE_TRACE_RETENTION's default, for a
// server that was given none.
const defaultTraceRetention = 90 * 24 * time.Hour

// WithTraceRetention sets how long the trace is kept: the longest window a
// rule preview may replay. Without it the default (90 days) applies.
func (s *Server) WithTraceRetention(d time.Duration) *Server {
	s.traceRetention = d
	return s
}

func (s *Server) retention() time.Duration {
	if s.traceRetention > 0 {
		return s.traceRetention
	}
	return defaultTraceRetention
}

// readBody reads a JSON request body (at most maxBody bytes). It writes
// the error answer and returns false on failure.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			writeError(w, http.StatusBadRequest, "send the body as Content-Type: application/json", nil)
			return nil, false
		}
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			writeError(w, http.StatusBadRequest, "the request body is larger than 1 MiB", nil)
		} else {
			writeError(w, http.StatusBadRequest, "the request body could not be read", nil)
		}
		return nil, false
	}
	return b, true
}

// ruleFieldErrors answers rules.FieldErrors: 400, with the problems of the
// body as a whole (key "") as the error and the others as fields.
func ruleFieldErrors(w http.ResponseWriter, fe rules.FieldErrors) {
	fields := map[string]string{}
	msg := "some fields are invalid"
	for k, v := range fe {
		if k == "" {
			msg = v
			continue
		}
		fields[k] = v
	}
	if len(fields) == 0 {
		fields = nil
	}
	writeError(w, http.StatusBadRequest, msg, fields)
}

// parseRule reads a rule body; it answers 400 and returns false when the
// body is not a valid rule.
func parseRule(w http.ResponseWriter, r *http.Request) (rules.Rule, bool) {
	body, ok := readBody(w, r)
	if !ok {
		return rules.Rule{}, false
	}
	rule, fe := rules.Parse(body)
	if len(fe) > 0 {
		ruleFieldErrors(w, fe)
		return rules.Rule{}, false
	}
	return rule, true
}

func (s *Server) listRules(w http.ResponseWriter, r *http.Request) {
	list, err := s.store.ListRules(r.Context())
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	if list == nil {
		list = []rules.Rule{}
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) getRule(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	rule, err := s.store.GetRule(r.Context(), id)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rule)
}

// createRule is POST /rules: the rule goes at its priority (shifting the
// others) or, without one, last.
func (s *Server) createRule(w http.ResponseWriter, r *http.Request) {
	rule, ok := parseRule(w, r)
	if !ok {
		return
	}
	out, err := s.store.CreateRule(r.Context(), actorFrom(r.Context()), rule)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	w.Header().Set("Location", r.URL.Path+"/"+itoa(out.ID))
	writeJSON(w, http.StatusCreated, out)
}

// updateRule is PUT /rules/{id}: the body replaces the rule; a null or
// absent priority keeps its place.
func (s *Server) updateRule(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	rule, ok := parseRule(w, r)
	if !ok {
		return
	}
	out, err := s.store.UpdateRule(r.Context(), actorFrom(r.Context()), id, rule)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) deleteRule(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	if err := s.store.DeleteRule(r.Context(), actorFrom(r.Context()), id); err != nil {
		s.storeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type previewRequest struct {
	Rule   json.RawMessage `json:"rule"`
	RuleID *int64          `json:"rule_id"`
	Since  *string         `json:"since"`
}

// previewRule is POST /rules/preview (SPEC 7): {"rule": {…}} (a draft; with
// "id" it stands in for that rule) or {"rule_id": N}, and "since" (a
// duration like 24h or 7d; default 24h, at most the trace retention). It
// changes nothing, so a viewer token may run it, as it may a route test.
func (s *Server) previewRule(w http.ResponseWriter, r *http.Request) {
	var req previewRequest
	if !decode(w, r, &req) {
		return
	}
	fields := rules.FieldErrors{}
	var p preview.Request
	if raw := strings.TrimSpace(string(req.Rule)); raw != "" && raw != "null" {
		rule, fe := rules.Parse(req.Rule)
		for k, v := range fe {
			if k == "" {
				fields["rule"] = v
			} else {
				fields["rule."+k] = v
			}
		}
		p.Rule = &rule
	}
	if req.RuleID != nil {
		if *req.RuleID < 1 {
			fields["rule_id"] = "enter the id of a rule (a positive number)"
		}
		p.RuleID = *req.RuleID
	}
	switch {
	case p.Rule != nil && req.RuleID != nil:
		fields["rule"] = "send a draft rule or the id of a rule (rule_id), not both"
	case p.Rule == nil && req.RuleID == nil:
		fields["rule"] = "send a draft rule (rule) or the id of a rule (rule_id) to preview"
	}
	p.Since = preview.DefaultSince
	if req.Since != nil {
		d, err := parseWindow(*req.Since)
		switch {
		case err != nil || d <= 0:
			fields["since"] = "enter a positive duration like 24h, 90m or 7d"
		case d > s.retention():
			fields["since"] = fmt.Sprintf("at most the trace retention (%s): older messages are no longer traced", describeDuration(s.retention()))
		default:
			p.Since = d
		}
	}
	if len(fields) > 0 {
		ruleFieldErrors(w, fields)
		return
	}
	p.Now = time.Now()
	res, err := preview.Run(r.Context(), s.store, p)
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// parseWindow reads a duration: Go's (24h, 90m, 1h30m) or a number of days
// (7d).
func parseWindow(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(days, "%d", &n); err != nil || itoa(int64(n)) != days || n < 0 || n > 100*365 {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// describeDuration writes whole days as "90d", anything else as Go does.
func describeDuration(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return itoa(int64(d/(24*time.Hour))) + "d"
	}
	return d.String()
}
