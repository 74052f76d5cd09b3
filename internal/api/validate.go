package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/validation"
)

// WithValidation enables POST …/validate; without it the endpoint answers
// 503.
func (s *Server) WithValidation(v *validation.Service) *Server {
	s.validation = v
	return s
}

type validateRequest struct {
	Recipients []string `json:"recipients"`
	Sender     string   `json:"sender"`
}

type activateRequest struct {
	Revision *int `json:"revision"`
}

// validationJSON is a run in the shape of SPEC section 5.
func validationJSON(v *store.Validation) map[string]any {
	steps := v.Steps
	if steps == nil {
		steps = []store.ValidationStep{}
	}
	rcpts := v.Recipients
	if rcpts == nil {
		rcpts = []string{}
	}
	return map[string]any{
		"id": v.ID, "connector_id": v.ConnectorID, "revision": v.Revision, "status": v.Status,
		"started_at": v.StartedAt.UTC().Format(time.RFC3339Nano), "finished_at": v.FinishedAt.UTC().Format(time.RFC3339Nano),
		"sender": v.Sender, "recipients": rcpts, "steps": steps, "transcript": v.Transcript, "created_by": v.CreatedBy,
	}
}

// readOptionalBody decodes a JSON body when there is one.
func readOptionalBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if r.ContentLength == 0 {
		return true
	}
	return decode(w, r, v)
}

func (h connectorHandlers) validate(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	var req validateRequest
	if !readOptionalBody(w, r, &req) {
		return
	}
	if h.s.validation == nil {
		writeError(w, http.StatusServiceUnavailable, "validation is not available in this process", nil)
		return
	}
	v, err := h.s.validation.Run(r.Context(), actorFrom(r.Context()), h.dir, id, validation.Request{Recipients: req.Recipients, Sender: req.Sender})
	if err != nil {
		h.s.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, validationJSON(v))
}

func (h connectorHandlers) activate(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	var req activateRequest
	if !readOptionalBody(w, r, &req) {
		return
	}
	c, err := h.s.store.GetConnector(r.Context(), h.dir, id)
	if err != nil {
		h.s.storeError(w, r, err)
		return
	}
	rev := c.Revision
	if req.Revision != nil {
		rev = *req.Revision
		if rev < 1 || rev > c.Revision {
			writeError(w, http.StatusBadRequest, "some fields are invalid", map[string]string{"revision": "this connector has revisions 1 to " + strconv.Itoa(c.Revision)})
			return
		}
	}
	c, err = h.s.store.Activate(r.Context(), actorFrom(r.Context()), h.dir, id, rev)
	if errors.Is(err, store.ErrNotValidated) {
		writeError(w, http.StatusConflict, "revision "+strconv.Itoa(rev)+" has not passed validation; validate it (POST …/validate) before activating", nil)
		return
	}
	if err != nil {
		h.s.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, connectorJSON(c))
}

func (h connectorHandlers) listValidations(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	if _, err := h.s.store.GetConnector(r.Context(), h.dir, id); err != nil {
		h.s.storeError(w, r, err)
		return
	}
	list, err := h.s.store.ListValidations(r.Context(), id, 100)
	if err != nil {
		h.s.storeError(w, r, err)
		return
	}
	out := make([]map[string]any, 0, len(list))
	for _, v := range list {
		out = append(out, validationJSON(v))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h connectorHandlers) getValidation(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	vid, err := strconv.ParseInt(chi.URLParam(r, "vid"), 10, 64)
	if err != nil || vid < 1 {
		writeError(w, http.StatusNotFound, "not found", nil)
		return
	}
	if _, err := h.s.store.GetConnector(r.Context(), h.dir, id); err != nil {
		h.s.storeError(w, r, err)
		return
	}
	v, err := h.s.store.GetValidation(r.Context(), id, vid)
	if err != nil {
		h.s.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, validationJSON(v))
}
