package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/flowgate/flowgate/internal/connector"
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

// AuditFilter narrows ListAudit and ListAuditPage; its conditions combine.
type AuditFilter struct {
	ConnectorID int64     // 0: all
	Actor       string    // "user:alice@contoso.com" (Actor.String); "": everyone
	ObjectType  string    // "connector", "accepted_domain", "user", "api_token"; "": all
	Action      string    // "create", "update", "activate", ...; "": all
	From        time.Time // zero: from the start; else entries at or after From
	To          time.Time // zero: up to now; else entries before To
	BeforeID    int64     // 0: newest first from the top; else older than this id
	AfterID     int64     // 0: ignored; else newer than this id (ListAuditPage only pages back from here)
	Limit       int       // 0: 100
}

func (s *Store) auditQuery(ctx context.Context, f AuditFilter) *gorm.DB {
	q := s.db.WithContext(ctx).Model(&AuditEntry{})
	if f.ConnectorID != 0 {
		q = q.Where("connector_id = ?", f.ConnectorID)
	}
	if f.Actor != "" {
		q = q.Where("actor = ?", f.Actor)
	}
	if f.ObjectType != "" {
		q = q.Where("object_type = ?", f.ObjectType)
	}
	if f.Action != "" {
		q = q.Where("action = ?", f.Action)
	}
	if !f.From.IsZero() {
		q = q.Where("at >= ?", f.From.UTC())
	}
	if !f.To.IsZero() {
		q = q.Where("at < ?", f.To.UTC())
	}
	return q
}

func (f AuditFilter) limit() int {
	if f.Limit <= 0 || f.Limit > 1000 {
		return 100
	}
	return f.Limit
}

// ListAudit returns audit entries, newest first.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	q := s.auditQuery(ctx, f).Order("id DESC")
	if f.BeforeID != 0 {
		q = q.Where("id < ?", f.BeforeID)
	}
	if f.AfterID != 0 {
		q = q.Where("id > ?", f.AfterID)
	}
	var out []AuditEntry
	if err := q.Limit(f.limit()).Find(&out).Error; err != nil {
		return nil, fmt.Errorf("list audit log: %w", err)
	}
	return out, nil
}

// AuditPage is one page of the audit log, newest first, and whether there
// are entries on either side of it that match the same filter.
type AuditPage struct {
	Entries []AuditEntry
	Newer   bool // entries newer than Entries[0]
	Older   bool // entries older than the last of Entries
}

// ListAuditPage returns the page of f.Limit entries older than f.BeforeID
// or, with f.AfterID, the page of entries just newer than f.AfterID; both
// newest first.
func (s *Store) ListAuditPage(ctx context.Context, f AuditFilter) (*AuditPage, error) {
	n := f.limit()
	q := s.auditQuery(ctx, f).Limit(n + 1)
	var rows []AuditEntry
	switch {
	case f.AfterID != 0:
		q = q.Where("id > ?", f.AfterID).Order("id ASC")
	case f.BeforeID != 0:
		q = q.Where("id < ?", f.BeforeID).Order("id DESC")
	default:
		q = q.Order("id DESC")
	}
	if err := q.Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list audit log: %w", err)
	}
	p := &AuditPage{}
	more := len(rows) > n
	if more {
		rows = rows[:n]
	}
	if f.AfterID != 0 {
		slices.Reverse(rows)
		p.Newer = more
	} else {
		p.Older = more
	}
	if len(rows) == 0 {
		return p, nil
	}
	// The other side: is there anything past the page's edge?
	var err error
	if f.AfterID != 0 {
		p.Older, err = s.auditExists(ctx, f, "id < ?", rows[len(rows)-1].ID)
	} else {
		p.Newer, err = s.auditExists(ctx, f, "id > ?", rows[0].ID)
	}
	if err != nil {
		return nil, err
	}
	p.Entries = rows
	return p, nil
}

func (s *Store) auditExists(ctx context.Context, f AuditFilter, cond string, id int64) (bool, error) {
	var ids []int64
	if err := s.auditQuery(ctx, f).Where(cond, id).Limit(1).Pluck("id", &ids).Error; err != nil {
		return false, fmt.Errorf("list audit log: %w", err)
	}
	return len(ids) > 0, nil
}

// AuditActors lists everyone who appears in the audit log, sorted.
func (s *Store) AuditActors(ctx context.Context) ([]string, error) {
	var out []string
	if err := s.db.WithContext(ctx).Model(&AuditEntry{}).Distinct("actor").Order("actor").Pluck("actor", &out).Error; err != nil {
		return nil, fmt.Errorf("list audit actors: %w", err)
	}
	return out, nil
}

// RevisionKey names one revision of a connector.
type RevisionKey struct {
	ConnectorID int64
	Revision    int
}

// RevisionSpecs returns the settings of the given connector revisions,
// deleted connectors' included (revisions are never deleted); a revision
// that does not exist is missing from the map. dir says how to read each
// connector's settings.
func (s *Store) RevisionSpecs(ctx context.Context, dir map[int64]connector.Direction, keys []RevisionKey) (map[RevisionKey]connector.Spec, error) {
	out := map[RevisionKey]connector.Spec{}
	if len(keys) == 0 {
		return out, nil
	}
	q := s.db.WithContext(ctx)
	cond := s.db.Where("1 = 0")
	for _, k := range keys {
		cond = cond.Or("connector_id = ? AND revision = ?", k.ConnectorID, k.Revision)
	}
	var rows []revisionRow
	if err := q.Where(cond).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("load revisions: %w", err)
	}
	for _, r := range rows {
		d, ok := dir[r.ConnectorID]
		if !ok {
			continue
		}
		spec, err := decodeSpec(string(d), r.Spec)
		if err != nil {
			return nil, err
		}
		out[RevisionKey{r.ConnectorID, r.Revision}] = spec
	}
	return out, nil
}
