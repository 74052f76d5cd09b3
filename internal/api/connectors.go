package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
)

type connectorHandlers struct {
	s   *Server
	dir connector.Direction
}

// readOnly are response fields a client may send back unchanged (GET, edit,
// PUT); they are ignored on input.
type readOnly struct {
	ID                json.RawMessage `json:"id,omitempty"`
	Direction         json.RawMessage `json:"direction,omitempty"`
	Status            json.RawMessage `json:"status,omitempty"`
	Revision          json.RawMessage `json:"revision,omitempty"`
	ActiveRevision    json.RawMessage `json:"active_revision,omitempty"`
	ValidatedRevision json.RawMessage `json:"validated_revision,omitempty"`
	CreatedAt         json.RawMessage `json:"created_at,omitempty"`
	UpdatedAt         json.RawMessage `json:"updated_at,omitempty"`
	LastValidation    json.RawMessage `json:"last_validation,omitempty"`
	// Held, HeldAt and HeldBy change only through .../hold and .../release.
	Held   json.RawMessage `json:"held,omitempty"`
	HeldAt json.RawMessage `json:"held_at,omitempty"`
	HeldBy json.RawMessage `json:"held_by,omitempty"`
}

type inboundRequest struct {
	connector.InboundSpec
	Enabled *bool `json:"enabled"`
	readOnly
}

type outboundRequest struct {
	connector.OutboundSpec
	Enabled *bool `json:"enabled"`
	readOnly
}

// decodeSpec reads a connector body of the handler's direction.
func (h connectorHandlers) decodeSpec(w http.ResponseWriter, r *http.Request) (connector.Spec, *bool, bool) {
	if h.dir == connector.Inbound {
		var req inboundRequest
		if !decode(w, r, &req) {
			return nil, nil, false
		}
		return &req.InboundSpec, req.Enabled, true
	}
	var req outboundRequest
	if !decode(w, r, &req) {
		return nil, nil, false
	}
	return &req.OutboundSpec, req.Enabled, true
}

// connectorJSON renders a connector: the revision's fields plus state.
func connectorJSON(c *store.Connector) map[string]any {
	out := map[string]any{}
	b, _ := json.Marshal(c.Spec)
	_ = json.Unmarshal(b, &out)
	out["id"] = c.ID
	out["direction"] = c.Direction
	out["enabled"] = c.Enabled
	out["status"] = c.Status()
	out["revision"] = c.Revision
	out["active_revision"] = c.ActiveRevision
	out["validated_revision"] = c.ValidatedRevision
	out["created_at"] = c.CreatedAt.UTC().Format(time.RFC3339)
	out["updated_at"] = c.UpdatedAt.UTC().Format(time.RFC3339)
	if c.Direction == connector.Outbound {
		out["held"] = c.HeldAt != nil
		if c.HeldAt != nil {
			out["held_at"] = c.HeldAt.UTC().Format(time.RFC3339)
			out["held_by"] = c.HeldBy
		}
	}
	out["last_validation"] = nil
	if lv := c.LastValidation; lv != nil {
		out["last_validation"] = map[string]any{"id": lv.ID, "revision": lv.Revision, "status": lv.Status, "finished_at": lv.At.UTC().Format(time.RFC3339)}
	}
	return out
}

func (h connectorHandlers) list(w http.ResponseWriter, r *http.Request) {
	list, err := h.s.store.ListConnectors(r.Context(), h.dir)
	if err != nil {
		h.s.storeError(w, r, err)
		return
	}
	out := make([]map[string]any, 0, len(list))
	for _, c := range list {
		out = append(out, connectorJSON(c))
	}
	writeJSON(w, http.StatusOK, out)
}

func (h connectorHandlers) get(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	c, err := h.s.store.GetConnector(r.Context(), h.dir, id)
	if err != nil {
		h.s.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, connectorJSON(c))
}

func (h connectorHandlers) create(w http.ResponseWriter, r *http.Request) {
	spec, enabled, ok := h.decodeSpec(w, r)
	if !ok {
		return
	}
	on := true
	if enabled != nil {
		on = *enabled
	}
	c, err := h.s.store.CreateConnector(r.Context(), actorFrom(r.Context()), spec, on)
	if err != nil {
		h.s.storeError(w, r, err)
		return
	}
	w.Header().Set("Location", r.URL.Path+"/"+itoa(c.ID))
	writeJSON(w, http.StatusCreated, connectorJSON(c))
}

func (h connectorHandlers) update(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	spec, enabled, ok := h.decodeSpec(w, r)
	if !ok {
		return
	}
	c, err := h.s.store.UpdateConnector(r.Context(), actorFrom(r.Context()), id, spec, enabled)
	if err != nil {
		h.s.storeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, connectorJSON(c))
}

func (h connectorHandlers) delete(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	if err := h.s.store.DeleteConnector(r.Context(), actorFrom(r.Context()), h.dir, id); err != nil {
		h.s.storeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
