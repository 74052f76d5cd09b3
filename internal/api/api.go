// Package api is flowgate's JSON API (SPEC section 5) for automation: the
// connectors of both directions, the accepted domains, the mail flow rules
// (and their preview), the message trace and the route test, behind bearer
// tokens. Handlers decode strictly, let the models (connector, rules) and
// the store validate, and answer every error as {"error", "fields"} with
// 400, 401, 403, 404 or 409 — never a 500 for bad input.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/delivery"
	"github.com/flowgate/flowgate/internal/liveconfig"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/rules"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/validation"
)

// maxBody is the largest request body accepted.
const maxBody = 1 << 20

// Server serves the API.
type Server struct {
	store      *store.Store
	live       *liveconfig.Config
	resolver   *delivery.Resolver
	log        *slog.Logger
	validation *validation.Service
	// traceRetention bounds a rule preview's window; 0: the default.
	traceRetention time.Duration
	// queue is the queue's controls; nil: unavailable (503).
	queue *queue.Control
}

// WithQueue lets the API act on the queue through ctl.
func (s *Server) WithQueue(ctl *queue.Control) *Server {
	s.queue = ctl
	return s
}

// New returns an API server over st. live answers route tests; resolver,
// when not nil, lets route tests show MX hosts.
func New(st *store.Store, live *liveconfig.Config, resolver *delivery.Resolver, log *slog.Logger) *Server {
	return &Server{store: st, live: live, resolver: resolver, log: log}
}

// Handler returns the API's routes, to be mounted at /api/v1.
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	r.Use(s.recoverer, s.authenticate)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API endpoint", nil)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed here", nil)
	})
	for _, dir := range []connector.Direction{connector.Inbound, connector.Outbound} {
		h := connectorHandlers{s: s, dir: dir}
		r.Route("/"+string(dir)+"-connectors", func(r chi.Router) {
			r.Get("/", h.list)
			r.Post("/", h.create)
			r.Get("/{id}", h.get)
			r.Put("/{id}", h.update)
			r.Delete("/{id}", h.delete)
			r.Post("/{id}/validate", h.validate)
			r.Post("/{id}/activate", h.activate)
			r.Get("/{id}/validations", h.listValidations)
			r.Get("/{id}/validations/{vid}", h.getValidation)
			if dir == connector.Outbound {
				r.Post("/{id}/hold", s.holdConnector(true))
				r.Post("/{id}/release", s.holdConnector(false))
				r.Post("/{id}/reroute", s.rerouteConnector)
			}
		})
	}
	r.Route("/accepted-domains", func(r chi.Router) {
		r.Get("/", s.listDomains)
		r.Post("/", s.createDomain)
		r.Delete("/{id}", s.deleteDomain)
	})
	r.Route("/rules", func(r chi.Router) {
		r.Get("/", s.listRules)
		r.Post("/", s.createRule)
		r.Post("/preview", s.previewRule)
		r.Get("/{id}", s.getRule)
		r.Put("/{id}", s.updateRule)
		r.Delete("/{id}", s.deleteRule)
	})
	r.Get("/messages", s.searchMessages)
	r.Get("/messages/{id}", s.getMessage)
	r.Post("/messages/{id}/retry", s.retryMessage)
	r.Post("/messages/{id}/bounce", s.bounceMessage)
	r.Delete("/messages/{id}", s.deleteMessage)
	r.Get("/queue", s.queueSummary)
	r.Post("/route-test", s.routeTest)
	return r
}

type principalKey struct{}

// principal is the authenticated caller.
type principal struct {
	token *store.APIToken
}

func (p principal) actor() store.Actor { return store.Actor{Kind: "token", Name: p.token.Name} }

func actorFrom(ctx context.Context) store.Actor {
	p, _ := ctx.Value(principalKey{}).(principal)
	if p.token == nil {
		return store.System("api")
	}
	return p.actor()
}

func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		scheme, token, ok := strings.Cut(auth, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="flowgate"`)
			writeError(w, http.StatusUnauthorized, "send an API token as Authorization: Bearer <token>", nil)
			return
		}
		t, err := s.store.AuthenticateToken(r.Context(), strings.TrimSpace(token))
		if errors.Is(err, store.ErrBadCredentials) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="flowgate", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "the API token is unknown or revoked", nil)
			return
		}
		if err != nil {
			s.serverError(w, r, err)
			return
		}
		// A route test and a rule preview change nothing: a viewer may run them.
		readOnly := r.Method == http.MethodGet || r.Method == http.MethodHead ||
			strings.HasSuffix(r.URL.Path, "/route-test") || strings.HasSuffix(r.URL.Path, "/rules/preview")
		if t.Role != store.RoleAdmin && !readOnly {
			writeError(w, http.StatusForbidden, "this API token has the viewer role and may only read", nil)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, principal{token: t})))
	})
}

func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("api panic", "method", r.Method, "path", r.URL.Path, "panic", v)
				writeError(w, http.StatusInternalServerError, "internal error", nil)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// errorBody is the shape of every error answer.
type errorBody struct {
	Error  string            `json:"error"`
	Fields map[string]string `json:"fields,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string, fields map[string]string) {
	writeJSON(w, status, errorBody{Error: msg, Fields: fields})
}

func (s *Server) serverError(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("api error", "method", r.Method, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "internal error; see the server log", nil)
}

// storeError maps a store or model error to an answer.
func (s *Server) storeError(w http.ResponseWriter, r *http.Request, err error) {
	var fe connector.FieldErrors
	var rfe rules.FieldErrors
	var conflict *store.ConflictError
	switch {
	case errors.As(err, &fe):
		writeError(w, http.StatusBadRequest, "some fields are invalid", fe)
	case errors.As(err, &rfe):
		ruleFieldErrors(w, rfe)
	case errors.As(err, &conflict):
		// A duplicate name, an overlapping connector, or a connector that
		// enabled enforce rules route to (Field "connector", naming them).
		writeError(w, http.StatusConflict, conflict.Message, map[string]string{conflict.Field: conflict.Message})
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not found", nil)
	case errors.Is(err, store.ErrNotValidated):
		writeError(w, http.StatusConflict, err.Error(), nil)
	default:
		s.serverError(w, r, err)
	}
}

// decode reads a JSON object from the body into v, strictly: unknown
// fields, wrong types, trailing data and oversized bodies are field or body
// errors. It writes the error answer and returns false on failure.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			writeError(w, http.StatusBadRequest, "send the body as Content-Type: application/json", nil)
			return false
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.More() {
			err = errors.New("trailing data")
		} else if _, e := dec.Token(); e != io.EOF {
			err = errors.New("trailing data")
		}
	}
	if err == nil {
		return true
	}
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	var maxErr *http.MaxBytesError
	switch {
	case errors.Is(err, io.EOF):
		writeError(w, http.StatusBadRequest, "the request body is empty; send a JSON object", nil)
	case errors.As(err, &maxErr):
		writeError(w, http.StatusBadRequest, "the request body is larger than 1 MiB", nil)
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if i := strings.LastIndexByte(field, '.'); i >= 0 {
			field = field[i+1:]
		}
		if field == "" {
			writeError(w, http.StatusBadRequest, "the request body must be a JSON object", nil)
			return false
		}
		writeError(w, http.StatusBadRequest, "some fields are invalid", map[string]string{field: "must be " + jsonKind(typeErr.Type.Kind().String())})
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		writeError(w, http.StatusBadRequest, "the request body is not valid JSON", nil)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		writeError(w, http.StatusBadRequest, "unknown field "+strconv.Quote(name), map[string]string{name: "unknown field"})
	default:
		writeError(w, http.StatusBadRequest, "the request body could not be read: "+err.Error(), nil)
	}
	return false
}

func jsonKind(k string) string {
	switch k {
	case "slice", "array":
		return "a list"
	case "bool":
		return "true or false"
	case "string":
		return "a string"
	case "int", "int64", "int32", "uint", "uint64":
		return "a whole number"
	case "struct", "map":
		return "an object"
	}
	return "a different type"
}

func pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id < 1 {
		writeError(w, http.StatusNotFound, "not found", nil)
		return 0, false
	}
	return id, true
}
