package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/flowgate/flowgate/internal/connector"
)

type connectorRow struct {
	ID                int64 `gorm:"primaryKey"`
	Direction         string
	Name              string
	NameKey           string
	Enabled           bool
	LatestRevision    int
	ActiveRevision    *int
	ValidatedRevision *int
	CreatedAt         time.Time
	UpdatedAt         time.Time
	DeletedAt         gorm.DeletedAt

	LastValidationID       *int64
	LastValidationRevision *int
	LastValidationStatus   *string
	LastValidationAt       *time.Time

	HeldAt *time.Time // on hold since (SPEC 3.6); nil: not held
	HeldBy string
}

func (connectorRow) TableName() string { return "connectors" }

type revisionRow struct {
	ConnectorID int64 `gorm:"primaryKey;autoIncrement:false"`
	Revision    int   `gorm:"primaryKey;autoIncrement:false"`
	Spec        string
	CreatedAt   time.Time
	CreatedBy   string
}

func (revisionRow) TableName() string { return "connector_revisions" }

// Status is a connector's state as the console and API show it.
type Status string

const (
	StatusDraft     Status = "draft"     // the newest revision has not passed validation
	StatusValidated Status = "validated" // the newest revision passed validation but is not active
	StatusActive    Status = "active"    // the newest revision carries mail
	StatusFailed    Status = "failed"    // the newest revision failed validation
	StatusDisabled  Status = "disabled"  // turned off: carries no mail
)

// Connector is a connector with the settings of its newest revision.
type Connector struct {
	ID                int64
	Direction         connector.Direction
	Name              string
	Enabled           bool
	Revision          int  // newest revision
	ActiveRevision    *int // the revision that carries mail, if any
	ValidatedRevision *int // the newest revision that passed validation, if any
	CreatedAt         time.Time
	UpdatedAt         time.Time
	Spec              connector.Spec // settings of the newest revision

	LastValidation *LastValidation // the newest validation run, if any

	// HeldAt is when an admin put the outbound connector on hold (SPEC
	// 3.6), and HeldBy who; nil while it is not held.
	HeldAt *time.Time
	HeldBy string
}

// LastValidation summarizes a connector's newest validation run.
type LastValidation struct {
	ID       int64
	Revision int
	Status   string
	At       time.Time
}

// Status derives the connector's state from its revision pointers.
func (c *Connector) Status() Status {
	switch {
	case !c.Enabled:
		return StatusDisabled
	case c.ActiveRevision != nil && *c.ActiveRevision == c.Revision:
		return StatusActive
	case c.LastValidation != nil && c.LastValidation.Revision == c.Revision:
		if c.LastValidation.Status == ValidationPassed {
			return StatusValidated
		}
		return StatusFailed
	case c.ValidatedRevision != nil && *c.ValidatedRevision == c.Revision:
		return StatusValidated
	}
	return StatusDraft
}

// Revision is one immutable revision of a connector.
type Revision struct {
	ConnectorID int64
	Revision    int
	Spec        connector.Spec
	CreatedAt   time.Time
	CreatedBy   string
}

// NewSpec returns an empty spec of the direction.
func NewSpec(dir connector.Direction) (connector.Spec, error) {
	switch dir {
	case connector.Inbound:
		return &connector.InboundSpec{}, nil
	case connector.Outbound:
		return &connector.OutboundSpec{}, nil
	}
	return nil, fmt.Errorf("unknown connector direction %q", dir)
}

func decodeSpec(dir string, text string) (connector.Spec, error) {
	spec, err := NewSpec(connector.Direction(dir))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(text), spec); err != nil {
		return nil, fmt.Errorf("decode %s connector revision: %w", dir, err)
	}
	return spec, nil
}

func toConnector(row *connectorRow, spec connector.Spec) *Connector {
	c := &Connector{
		ID: row.ID, Direction: connector.Direction(row.Direction), Name: row.Name, Enabled: row.Enabled,
		Revision: row.LatestRevision, ActiveRevision: row.ActiveRevision, ValidatedRevision: row.ValidatedRevision,
		CreatedAt: row.CreatedAt, UpdatedAt: row.UpdatedAt, Spec: spec, HeldAt: row.HeldAt, HeldBy: row.HeldBy,
	}
	if row.LastValidationID != nil && row.LastValidationRevision != nil && row.LastValidationStatus != nil && row.LastValidationAt != nil {
		c.LastValidation = &LastValidation{ID: *row.LastValidationID, Revision: *row.LastValidationRevision, Status: *row.LastValidationStatus, At: *row.LastValidationAt}
	}
	return c
}

// lockConnectors serializes connector writes of one direction, so that the
// name and overlap checks see every committed connector. SQLite write
// transactions are already exclusive (_txlock=immediate).
func (s *Store) lockConnectors(tx *gorm.DB, dir connector.Direction) error {
	if s.dialect != Postgres {
		return nil
	}
	key := int64(0x666c6f7767617465) // "flowgate"
	if dir == connector.Outbound {
		key++
	}
	if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", key).Error; err != nil {
		return fmt.Errorf("lock connectors: %w", err)
	}
	return nil
}

func nameKey(name string) string { return strings.ToLower(name) }

func (s *Store) checkName(tx *gorm.DB, dir connector.Direction, name string, exceptID int64) error {
	var other connectorRow
	err := tx.Where("direction = ? AND name_key = ? AND id <> ?", dir, nameKey(name), exceptID).Take(&other).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check connector name: %w", err)
	}
	return &ConflictError{Field: "name", Message: fmt.Sprintf("an %s connector named %q already exists", dir, other.Name)}
}

// checkOverlap refuses a spec whose identity overlaps another connector of
// the same direction, in its newest or its active revision.
func (s *Store) checkOverlap(tx *gorm.DB, spec connector.Spec, exceptID int64) error {
	clashes, err := s.overlaps(tx, spec, exceptID)
	if err != nil {
		return err
	}
	if len(clashes) > 0 {
		return clashes[0]
	}
	return nil
}

// overlaps returns a conflict for each field of spec's identity that
// overlaps another connector of the same direction, in its newest or its
// active revision: the first such connector for each field.
func (s *Store) overlaps(tx *gorm.DB, spec connector.Spec, exceptID int64) ([]*ConflictError, error) {
	dir := spec.Direction()
	var rows []struct {
		ID   int64
		Name string
		Spec string
	}
	err := tx.Raw(`SELECT c.id, c.name, r.spec FROM connectors c
		JOIN connector_revisions r ON r.connector_id = c.id
		 AND (r.revision = c.latest_revision OR r.revision = c.active_revision)
		WHERE c.direction = ? AND c.deleted_at IS NULL AND c.id <> ?
		ORDER BY c.id, r.revision DESC`, dir, exceptID).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("check connector overlap: %w", err)
	}
	mine := connector.IdentityOf(spec)
	var out []*ConflictError
	seen := map[string]bool{}
	for _, r := range rows {
		other, err := decodeSpec(string(dir), r.Spec)
		if err != nil {
			return nil, err
		}
		for _, c := range connector.Overlaps(mine, connector.IdentityOf(other)) {
			if seen[c.Field] {
				continue
			}
			seen[c.Field] = true
			out = append(out, &ConflictError{Field: c.Field, Message: fmt.Sprintf(
				"%s is already used by the %s connector %q; duplicate connectors break delivery, so change that connector instead", c.What, dir, r.Name)})
		}
	}
	return out, nil
}

// Conflicts returns what would stop spec from being saved as connector
// exceptID (0: a new connector) because of other connectors: a name in
// use, and a conflict for each field of its identity that overlaps
// another connector. It changes nothing and takes no lock, so a save may
// still be refused by a connector saved meanwhile; the wizard uses it to
// point out a duplicate at the step that owns the field. spec must be
// normalized; fields that are not valid yet are skipped.
func (s *Store) Conflicts(ctx context.Context, spec connector.Spec, exceptID int64) ([]*ConflictError, error) {
	db := s.db.WithContext(ctx)
	var out []*ConflictError
	if name := spec.Base().Name; name != "" {
		err := s.checkName(db, spec.Direction(), name, exceptID)
		var conflict *ConflictError
		switch {
		case errors.As(err, &conflict):
			out = append(out, conflict)
		case err != nil:
			return nil, err
		}
	}
	clashes, err := s.overlaps(db, spec, exceptID)
	if err != nil {
		return nil, err
	}
	return append(out, clashes...), nil
}

// CreateConnector validates spec and stores it as revision 1 of a new
// connector, with an audit row. It returns connector.FieldErrors for
// invalid fields and *ConflictError for a duplicate name or an overlap.
func (s *Store) CreateConnector(ctx context.Context, actor Actor, spec connector.Spec, enabled bool) (*Connector, error) {
	if errs := spec.Normalize(); len(errs) > 0 {
		return nil, errs
	}
	body, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("create connector: %w", err)
	}
	dir := spec.Direction()
	name := spec.Base().Name
	var out *Connector
	err = s.configChange(ctx, func(tx *gorm.DB) error {
		if err := s.lockConnectors(tx, dir); err != nil {
			return err
		}
		if err := s.checkName(tx, dir, name, 0); err != nil {
			return err
		}
		if err := s.checkOverlap(tx, spec, 0); err != nil {
			return err
		}
		row := &connectorRow{Direction: string(dir), Name: name, NameKey: nameKey(name), Enabled: enabled, LatestRevision: 1}
		if err := tx.Create(row).Error; err != nil {
			if isUniqueViolation(err) {
				return &ConflictError{Field: "name", Message: fmt.Sprintf("an %s connector named %q already exists", dir, name)}
			}
			return fmt.Errorf("create connector: %w", err)
		}
		if err := tx.Create(&revisionRow{ConnectorID: row.ID, Revision: 1, Spec: string(body), CreatedBy: actor.String()}).Error; err != nil {
			return fmt.Errorf("create connector revision: %w", err)
		}
		if _, err := audit(tx, actor, "create", "connector", row.ID, name, map[string]any{"direction": dir, "revision": 1, "enabled": enabled, "settings": spec}); err != nil {
			return err
		}
		out = toConnector(row, spec)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateConnector stores spec as a new revision of connector id. It never
// changes an existing revision, and never changes which revision is active:
// the active revision keeps carrying mail until a new one is validated and
// activated. enabled, when not nil, turns the connector on or off at once.
func (s *Store) UpdateConnector(ctx context.Context, actor Actor, id int64, spec connector.Spec, enabled *bool) (*Connector, error) {
	if errs := spec.Normalize(); len(errs) > 0 {
		return nil, errs
	}
	body, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("update connector: %w", err)
	}
	dir := spec.Direction()
	name := spec.Base().Name
	var out *Connector
	err = s.configChange(ctx, func(tx *gorm.DB) error {
		if err := s.lockConnectors(tx, dir); err != nil {
			return err
		}
		row, err := s.connectorRow(tx, dir, id)
		if err != nil {
			return err
		}
		if enabled != nil && !*enabled {
			if err := s.checkConnectorUnrouted(tx, dir, id); err != nil {
				return err
			}
		}
		if err := s.checkName(tx, dir, name, id); err != nil {
			return err
		}
		if err := s.checkOverlap(tx, spec, id); err != nil {
			return err
		}
		changes := map[string]any{
			"latest_revision": gorm.Expr("latest_revision + 1"),
			"name":            name,
			"name_key":        nameKey(name),
			"updated_at":      tx.NowFunc(),
		}
		if enabled != nil {
			changes["enabled"] = *enabled
		}
		res := tx.Model(&connectorRow{}).Where("id = ?", id).Updates(changes)
		if res.Error != nil {
			if isUniqueViolation(res.Error) {
				return &ConflictError{Field: "name", Message: fmt.Sprintf("an %s connector named %q already exists", dir, name)}
			}
			return fmt.Errorf("update connector: %w", res.Error)
		}
		if err := tx.Take(row, id).Error; err != nil {
			return fmt.Errorf("update connector: %w", err)
		}
		if err := tx.Create(&revisionRow{ConnectorID: id, Revision: row.LatestRevision, Spec: string(body), CreatedBy: actor.String()}).Error; err != nil {
			return fmt.Errorf("create connector revision: %w", err)
		}
		detail := map[string]any{"direction": dir, "revision": row.LatestRevision, "settings": spec}
		if enabled != nil {
			detail["enabled"] = *enabled
		}
		if _, err := audit(tx, actor, "update", "connector", id, name, detail); err != nil {
			return err
		}
		out = toConnector(row, spec)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Store) connectorRow(tx *gorm.DB, dir connector.Direction, id int64) (*connectorRow, error) {
	row := &connectorRow{}
	err := tx.Where("id = ? AND direction = ?", id, dir).Take(row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load connector %d: %w", id, err)
	}
	return row, nil
}

// SetConnectorEnabled turns a connector on or off; it takes effect at once.
// An outbound connector that an enabled enforce rule routes to cannot be
// turned off: *ConflictError naming the rules (checkConnectorUnrouted).
func (s *Store) SetConnectorEnabled(ctx context.Context, actor Actor, dir connector.Direction, id int64, enabled bool) (*Connector, error) {
	err := s.configChange(ctx, func(tx *gorm.DB) error {
		row, err := s.connectorRow(tx, dir, id)
		if err != nil {
			return err
		}
		if !enabled {
			if err := s.checkConnectorUnrouted(tx, dir, id); err != nil {
				return err
			}
		}
		if err := tx.Model(row).Updates(map[string]any{"enabled": enabled, "updated_at": tx.NowFunc()}).Error; err != nil {
			return fmt.Errorf("set connector enabled: %w", err)
		}
		action := "disable"
		if enabled {
			action = "enable"
		}
		_, err = audit(tx, actor, action, "connector", id, row.Name, map[string]any{"direction": dir})
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.GetConnector(ctx, dir, id)
}

// DeleteConnector removes a connector; it stops carrying mail at once. Its
// revisions stay in the database for the audit trail. An outbound
// connector that an enabled enforce rule routes to cannot be deleted:
// *ConflictError naming the rules (checkConnectorUnrouted).
func (s *Store) DeleteConnector(ctx context.Context, actor Actor, dir connector.Direction, id int64) error {
	return s.configChange(ctx, func(tx *gorm.DB) error {
		row, err := s.connectorRow(tx, dir, id)
		if err != nil {
			return err
		}
		if err := s.checkConnectorUnrouted(tx, dir, id); err != nil {
			return err
		}
		if err := tx.Delete(row).Error; err != nil {
			return fmt.Errorf("delete connector: %w", err)
		}
		_, err = audit(tx, actor, "delete", "connector", id, row.Name, map[string]any{"direction": dir, "revision": row.LatestRevision})
		return err
	})
}

// GetConnector returns a connector with its newest revision.
func (s *Store) GetConnector(ctx context.Context, dir connector.Direction, id int64) (*Connector, error) {
	db := s.db.WithContext(ctx)
	row, err := s.connectorRow(db, dir, id)
	if err != nil {
		return nil, err
	}
	var rev revisionRow
	if err := db.Where("connector_id = ? AND revision = ?", id, row.LatestRevision).Take(&rev).Error; err != nil {
		return nil, fmt.Errorf("load connector %d revision %d: %w", id, row.LatestRevision, err)
	}
	spec, err := decodeSpec(row.Direction, rev.Spec)
	if err != nil {
		return nil, err
	}
	return toConnector(row, spec), nil
}

// ListConnectors returns the connectors of a direction ("" for both), by
// name, each with its newest revision.
func (s *Store) ListConnectors(ctx context.Context, dir connector.Direction) ([]*Connector, error) {
	db := s.db.WithContext(ctx)
	q := db.Order("name_key, id")
	if dir != "" {
		q = q.Where("direction = ?", dir)
	}
	var rows []connectorRow
	if err := q.Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list connectors: %w", err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	ids := make([]int64, len(rows))
	for i := range rows {
		ids[i] = rows[i].ID
	}
	var revs []revisionRow
	err := db.Raw(`SELECT r.* FROM connector_revisions r JOIN connectors c
		ON c.id = r.connector_id AND c.latest_revision = r.revision
		WHERE c.id IN ?`, ids).Scan(&revs).Error
	if err != nil {
		return nil, fmt.Errorf("list connector revisions: %w", err)
	}
	specs := make(map[int64]string, len(revs))
	for _, r := range revs {
		specs[r.ConnectorID] = r.Spec
	}
	out := make([]*Connector, 0, len(rows))
	for i := range rows {
		spec, err := decodeSpec(rows[i].Direction, specs[rows[i].ID])
		if err != nil {
			return nil, err
		}
		out = append(out, toConnector(&rows[i], spec))
	}
	return out, nil
}

// ListRevisions returns every revision of a connector, newest first.
func (s *Store) ListRevisions(ctx context.Context, dir connector.Direction, id int64) ([]Revision, error) {
	db := s.db.WithContext(ctx)
	if _, err := s.connectorRow(db.Unscoped(), dir, id); err != nil {
		return nil, err
	}
	var rows []revisionRow
	if err := db.Where("connector_id = ?", id).Order("revision DESC").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list revisions: %w", err)
	}
	out := make([]Revision, 0, len(rows))
	for _, r := range rows {
		spec, err := decodeSpec(string(dir), r.Spec)
		if err != nil {
			return nil, err
		}
		out = append(out, Revision{ConnectorID: r.ConnectorID, Revision: r.Revision, Spec: spec, CreatedAt: r.CreatedAt, CreatedBy: r.CreatedBy})
	}
	return out, nil
}

// ErrNotValidated is returned when activating a revision that has not
// passed validation.
var ErrNotValidated = errors.New("this revision has not passed validation; validate it before activating")

// MarkValidated records a passed validation of a revision without running
// one: for tests and benchmark setup, which build active connectors
// directly.
func (s *Store) MarkValidated(ctx context.Context, actor Actor, dir connector.Direction, id int64, revision int) error {
	now := time.Now().UTC()
	return s.RecordValidation(ctx, actor, dir, &Validation{
		ConnectorID: id, Revision: revision, Status: ValidationPassed, StartedAt: now, FinishedAt: now,
		Steps: []ValidationStep{{Name: "marked validated", Status: "passed", Detail: "recorded by " + actor.String() + " without a run"}},
	})
}

// Activate makes a validated revision the one that carries mail. The switch
// is one row update, so the relay sees either the old revision or the new
// one, never a mix.
func (s *Store) Activate(ctx context.Context, actor Actor, dir connector.Direction, id int64, revision int) (*Connector, error) {
	err := s.configChange(ctx, func(tx *gorm.DB) error {
		row, err := s.connectorRow(tx, dir, id)
		if err != nil {
			return err
		}
		if revision < 1 || revision > row.LatestRevision {
			return ErrNotFound
		}
		passed, err := revisionPassed(tx, id, revision)
		if err != nil {
			return err
		}
		if !passed {
			return ErrNotValidated
		}
		if err := tx.Model(row).Updates(map[string]any{"active_revision": revision, "updated_at": tx.NowFunc()}).Error; err != nil {
			return fmt.Errorf("activate: %w", err)
		}
		_, err = audit(tx, actor, "activate", "connector", id, row.Name, map[string]any{"direction": dir, "revision": revision})
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.GetConnector(ctx, dir, id)
}
