package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Actor is who made a change: a console user, an API token, or flowgate
// itself.
type Actor struct {
	Kind string // "user", "token" or "system"
	Name string // e-mail address, token name, or a component
}

// String gives "user:alice@contoso.com", "token:ci", "system:startup".
func (a Actor) String() string {
	if a.Kind == "" {
		return "system:" + a.Name
	}
	return a.Kind + ":" + a.Name
}

// System is the actor for changes flowgate makes by itself.
func System(component string) Actor { return Actor{Kind: "system", Name: component} }

// AuditEntry is one row of the audit log.
type AuditEntry struct {
	ID          int64     `gorm:"primaryKey" json:"id"`
	At          time.Time `json:"at"`
	Actor       string    `json:"actor"`
	Action      string    `json:"action"`
	ObjectType  string    `json:"object_type"`
	ObjectID    *int64    `json:"object_id,omitempty"`
	ObjectName  string    `json:"object_name"`
	ConnectorID *int64    `json:"connector_id,omitempty"`
	Revision    *int      `json:"revision,omitempty"`
	Detail      string    `json:"detail"`
}

func (AuditEntry) TableName() string { return "audit_log" }

// audit writes an audit row inside tx, the transaction of the change.
func audit(tx *gorm.DB, actor Actor, action, objectType string, objectID int64, objectName string, detail any) (*AuditEntry, error) {
	e := &AuditEntry{
		At:         tx.NowFunc(),
		Actor:      actor.String(),
		Action:     action,
		ObjectType: objectType,
		ObjectID:   &objectID,
		ObjectName: objectName,
	}
	switch d := detail.(type) {
	case nil:
	case string:
		e.Detail = d
	default:
		b, err := json.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		e.Detail = string(b)
	}
	if objectType == "connector" {
		e.ConnectorID = &objectID
	}
	if err := tx.Create(e).Error; err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return e, nil
}

// AuditFilter narrows ListAudit.
type AuditFilter struct {
	ConnectorID int64 // 0: all
	BeforeID    int64 // 0: newest first from the top; else older than this id
	Limit       int   // 0: 100
}

// ListAudit returns audit entries, newest first.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	q := s.db.WithContext(ctx).Order("id DESC")
	if f.ConnectorID != 0 {
		q = q.Where("connector_id = ?", f.ConnectorID)
	}
	if f.BeforeID != 0 {
		q = q.Where("id < ?", f.BeforeID)
	}
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	var out []AuditEntry
	if err := q.Limit(limit).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("list audit log: %w", err)
	}
	return out, nil
}
