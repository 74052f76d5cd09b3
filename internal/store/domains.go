package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/flowgate/flowgate/internal/connector"
)

// AcceptedDomain is a domain the organization receives mail for.
type AcceptedDomain struct {
	ID         int64                `gorm:"primaryKey" json:"id"`
	Domain     string               `json:"domain"`
	DomainType connector.DomainType `json:"domain_type"`
	// AllowExternalSenders: mail from the domain is accepted from anyone,
	// not only through our own connectors (SPEC 3.3). Dangerous: anyone
	// can then send as the domain.
	AllowExternalSenders bool      `json:"allow_external_senders"`
	CreatedAt            time.Time `json:"created_at"`
}

// AcceptedDomainOptions are an accepted domain's settings besides its
// name and type.
type AcceptedDomainOptions struct {
	AllowExternalSenders bool
}

func (AcceptedDomain) TableName() string { return "accepted_domains" }

// CreateAcceptedDomain adds an accepted domain with the default options.
func (s *Store) CreateAcceptedDomain(ctx context.Context, actor Actor, domain string, typ connector.DomainType) (*AcceptedDomain, error) {
	return s.CreateAcceptedDomainWith(ctx, actor, domain, typ, AcceptedDomainOptions{})
}

// CreateAcceptedDomainWith adds an accepted domain with options.
func (s *Store) CreateAcceptedDomainWith(ctx context.Context, actor Actor, domain string, typ connector.DomainType, opts AcceptedDomainOptions) (*AcceptedDomain, error) {
	d, typ, errs := connector.ValidateAcceptedDomain(domain, typ)
	if len(errs) > 0 {
		return nil, errs
	}
	row := &AcceptedDomain{Domain: d, DomainType: typ, AllowExternalSenders: opts.AllowExternalSenders}
	err := s.configChange(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(row).Error; err != nil {
			if isUniqueViolation(err) {
				return &ConflictError{Field: "domain", Message: fmt.Sprintf("%s is already an accepted domain", d)}
			}
			return fmt.Errorf("create accepted domain: %w", err)
		}
		_, err := audit(tx, actor, "create", "accepted_domain", row.ID, d, map[string]any{"domain_type": typ, "allow_external_senders": row.AllowExternalSenders})
		return err
	})
	if err != nil {
		return nil, err
	}
	return row, nil
}

// ListAcceptedDomains returns the accepted domains by name.
func (s *Store) ListAcceptedDomains(ctx context.Context) ([]AcceptedDomain, error) {
	var out []AcceptedDomain
	if err := s.db.WithContext(ctx).Order("domain").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("list accepted domains: %w", err)
	}
	return out, nil
}

// GetAcceptedDomain returns one accepted domain.
func (s *Store) GetAcceptedDomain(ctx context.Context, id int64) (*AcceptedDomain, error) {
	var d AcceptedDomain
	err := s.db.WithContext(ctx).Take(&d, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load accepted domain: %w", err)
	}
	return &d, nil
}

// DeleteAcceptedDomain removes an accepted domain.
func (s *Store) DeleteAcceptedDomain(ctx context.Context, actor Actor, id int64) error {
	return s.configChange(ctx, func(tx *gorm.DB) error {
		var d AcceptedDomain
		err := tx.Take(&d, id).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("load accepted domain: %w", err)
		}
		if err := tx.Delete(&d).Error; err != nil {
			return fmt.Errorf("delete accepted domain: %w", err)
		}
		_, err = audit(tx, actor, "delete", "accepted_domain", id, d.Domain, map[string]any{"domain_type": d.DomainType})
		return err
	})
}

// ActiveRevision is the active revision of an enabled connector, with
// its settings decoded: one of Inbound and Outbound is set.
type ActiveRevision struct {
	ID       int64
	Name     string
	Revision int
	Held     bool // an outbound connector on hold (SPEC 3.6)
	Inbound  *connector.InboundSpec
	Outbound *connector.OutboundSpec
}

// ActiveRevisions loads the active revisions of the enabled connectors,
// which the relay's routing index is built from (with the accepted
// domains).
func (s *Store) ActiveRevisions(ctx context.Context) ([]ActiveRevision, error) {
	var rows []struct {
		ID        int64
		Direction string
		Name      string
		Revision  int
		Spec      string
		Held      bool
	}
	err := s.db.WithContext(ctx).Raw(`SELECT c.id, c.direction, c.name, r.revision, r.spec, c.held_at IS NOT NULL AS held FROM connectors c
		JOIN connector_revisions r ON r.connector_id = c.id AND r.revision = c.active_revision
		WHERE c.deleted_at IS NULL AND c.enabled
		ORDER BY c.id`).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("load active connectors: %w", err)
	}
	out := make([]ActiveRevision, 0, len(rows))
	for _, r := range rows {
		spec, err := decodeSpec(r.Direction, r.Spec)
		if err != nil {
			return nil, err
		}
		a := ActiveRevision{ID: r.ID, Name: r.Name, Revision: r.Revision, Held: r.Held}
		switch sp := spec.(type) {
		case *connector.InboundSpec:
			a.Inbound = sp
		case *connector.OutboundSpec:
			a.Outbound = sp
		}
		out = append(out, a)
	}
	return out, nil
}
