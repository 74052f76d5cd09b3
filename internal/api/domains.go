package api

import (
	"net/http"
	"strconv"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
)

type domainRequest struct {
	Domain     string               `json:"domain"`
	DomainType connector.DomainType `json:"domain_type"`
	// AllowExternalSenders: mail from the domain accepted from anyone
	// (SPEC 3.3); default false.
	AllowExternalSenders bool `json:"allow_external_senders"`
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func (s *Server) listDomains(w http.ResponseWriter, r *http.Request) {
	list, err := s.store.ListAcceptedDomains(r.Context())
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	if list == nil {
		writeJSON(w, http.StatusOK, []any{})
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) createDomain(w http.ResponseWriter, r *http.Request) {
	var req domainRequest
	if !decode(w, r, &req) {
		return
	}
	d, err := s.store.CreateAcceptedDomainWith(r.Context(), actorFrom(r.Context()), req.Domain, req.DomainType,
		store.AcceptedDomainOptions{AllowExternalSenders: req.AllowExternalSenders})
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	w.Header().Set("Location", r.URL.Path+"/"+itoa(d.ID))
	writeJSON(w, http.StatusCreated, d)
}

func (s *Server) deleteDomain(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	if err := s.store.DeleteAcceptedDomain(r.Context(), actorFrom(r.Context()), id); err != nil {
		s.storeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
