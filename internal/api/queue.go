package api

import (
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/flowgate/flowgate/internal/queue"
)

// The queue's endpoints (SPEC 5): GET /queue, the per-message actions
// under /messages/{id} (id is the message's trace id), and hold, release
// and reroute under /outbound-connectors/{id}. What each guarantees
// against a delivery under way is in queue/control.go.

func (s *Server) queueReady(w http.ResponseWriter) bool {
	if s.queue == nil {
		writeError(w, http.StatusServiceUnavailable, "the queue's controls are not available in this process", nil)
		return false
	}
	return true
}

// queueSummary is GET /queue.
func (s *Server) queueSummary(w http.ResponseWriter, r *http.Request) {
	sum, err := queue.Summarize(r.Context(), s.store, s.live.Index())
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sum)
}

// queueError answers a refused or failed queue action.
func (s *Server) queueError(w http.ResponseWriter, r *http.Request, err error) {
	var fin *queue.FinishedError
	switch {
	case errors.Is(err, queue.ErrNoMessage):
		writeError(w, http.StatusNotFound, "no message with that id", nil)
	case errors.As(err, &fin):
		writeError(w, http.StatusConflict, err.Error(), nil)
	case errors.Is(err, queue.ErrInFlight):
		writeError(w, http.StatusConflict, "the message is being delivered right now; try again when this attempt has ended (its trace shows the attempt)", nil)
	default:
		s.storeError(w, r, err)
	}
}

// messageAction is POST /messages/{id}/retry and .../bounce: it answers
// with the message as the trace shows it afterwards.
func (s *Server) messageAction(act func(ctl *queue.Control, r *http.Request, uid string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.queueReady(w) {
			return
		}
		uid := chi.URLParam(r, "id")
		if err := act(s.queue, r, uid); err != nil {
			s.queueError(w, r, err)
			return
		}
		s.writeTrace(w, r, uid, queue.EventPage{})
	}
}

func (s *Server) retryMessage(w http.ResponseWriter, r *http.Request) {
	s.messageAction(func(ctl *queue.Control, r *http.Request, uid string) error {
		return ctl.Retry(r.Context(), actorFrom(r.Context()), uid)
	})(w, r)
}

func (s *Server) bounceMessage(w http.ResponseWriter, r *http.Request) {
	s.messageAction(func(ctl *queue.Control, r *http.Request, uid string) error {
		return ctl.Bounce(r.Context(), actorFrom(r.Context()), uid)
	})(w, r)
}

// deleteMessage is DELETE /messages/{id}: 204 when the message is gone.
func (s *Server) deleteMessage(w http.ResponseWriter, r *http.Request) {
	if !s.queueReady(w) {
		return
	}
	if err := s.queue.Delete(r.Context(), actorFrom(r.Context()), chi.URLParam(r, "id")); err != nil {
		s.queueError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// holdConnector is POST /outbound-connectors/{id}/hold and .../release:
// it answers with the connector.
func (s *Server) holdConnector(hold bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.queueReady(w) {
			return
		}
		id, ok := pathID(w, r)
		if !ok {
			return
		}
		act := s.queue.Release
		if hold {
			act = s.queue.Hold
		}
		c, err := act(r.Context(), actorFrom(r.Context()), id)
		if err != nil {
			s.queueError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, connectorJSON(c))
	}
}

// rerouteConnector is POST /outbound-connectors/{id}/reroute.
func (s *Server) rerouteConnector(w http.ResponseWriter, r *http.Request) {
	if !s.queueReady(w) {
		return
	}
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	n, err := s.queue.Reroute(r.Context(), actorFrom(r.Context()), id)
	if err != nil {
		s.queueError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"rerouted": n})
}
