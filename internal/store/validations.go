package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/flowgate/flowgate/internal/connector"
)

// Validation statuses.
const (
	ValidationPassed = "passed"
	ValidationFailed = "failed"
)

// ValidationStep is one step of a validation run.
type ValidationStep struct {
	Name       string `json:"name"`
	Status     string `json:"status"` // passed, failed, skipped
	Detail     string `json:"detail"`
	DurationMS int64  `json:"duration_ms"`
}

// Validation is one validation run of one connector revision.
type Validation struct {
	ID          int64
	ConnectorID int64
	Revision    int
	Status      string
	StartedAt   time.Time
	FinishedAt  time.Time
	Sender      string
	Recipients  []string
	Steps       []ValidationStep
	Transcript  string
	CreatedBy   string
}

type validationRow struct {
	ID          int64 `gorm:"primaryKey"`
	ConnectorID int64
	Revision    int
	Status      string
	StartedAt   time.Time
	FinishedAt  time.Time
	Sender      string
	Recipients  string
	Steps       string
	Transcript  string
	CreatedBy   string
}

func (validationRow) TableName() string { return "validations" }

func (r *validationRow) toValidation() (*Validation, error) {
	v := &Validation{
		ID: r.ID, ConnectorID: r.ConnectorID, Revision: r.Revision, Status: r.Status,
		StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, Sender: r.Sender, Transcript: r.Transcript, CreatedBy: r.CreatedBy,
	}
	if err := json.Unmarshal([]byte(r.Recipients), &v.Recipients); err != nil {
		return nil, fmt.Errorf("decode validation %d recipients: %w", r.ID, err)
	}
	if err := json.Unmarshal([]byte(r.Steps), &v.Steps); err != nil {
		return nil, fmt.Errorf("decode validation %d steps: %w", r.ID, err)
	}
	return v, nil
}

// RecordValidation stores a finished validation run of one revision, with
// an audit row, in one transaction. A passed run makes the revision
// eligible for activation; a failed one leaves the connector "failed"
// while that revision is its newest.
func (s *Store) RecordValidation(ctx context.Context, actor Actor, dir connector.Direction, v *Validation) error {
	if v.Status != ValidationPassed && v.Status != ValidationFailed {
		return fmt.Errorf("record validation: status %q", v.Status)
	}
	rcpts, err := json.Marshal(nonNil(v.Recipients))
	if err != nil {
		return err
	}
	steps, err := json.Marshal(v.Steps)
	if err != nil {
		return err
	}
	if v.Steps == nil {
		steps = []byte("[]")
	}
	return s.configChange(ctx, func(tx *gorm.DB) error {
		row, err := s.connectorRow(tx, dir, v.ConnectorID)
		if err != nil {
			return err
		}
		if v.Revision < 1 || v.Revision > row.LatestRevision {
			return ErrNotFound
		}
		vr := &validationRow{
			ConnectorID: v.ConnectorID, Revision: v.Revision, Status: v.Status, StartedAt: v.StartedAt.UTC(), FinishedAt: v.FinishedAt.UTC(),
			Sender: v.Sender, Recipients: string(rcpts), Steps: string(steps), Transcript: CleanText(v.Transcript), CreatedBy: actor.String(),
		}
		if err := tx.Create(vr).Error; err != nil {
			return fmt.Errorf("record validation: %w", err)
		}
		v.ID, v.CreatedBy = vr.ID, vr.CreatedBy
		changes := map[string]any{
			"last_validation_id": vr.ID, "last_validation_revision": v.Revision,
			"last_validation_status": v.Status, "last_validation_at": vr.FinishedAt,
		}
		if v.Status == ValidationPassed && (row.ValidatedRevision == nil || *row.ValidatedRevision < v.Revision) {
			changes["validated_revision"] = v.Revision
		}
		if err := tx.Model(&connectorRow{}).Where("id = ?", row.ID).Updates(changes).Error; err != nil {
			return fmt.Errorf("record validation: %w", err)
		}
		_, err = audit(tx, actor, "validate", "connector", row.ID, row.Name, map[string]any{
			"direction": dir, "revision": v.Revision, "status": v.Status, "validation_id": vr.ID,
		})
		return err
	})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// GetValidation returns one validation run of a connector.
func (s *Store) GetValidation(ctx context.Context, connectorID, id int64) (*Validation, error) {
	var r validationRow
	err := s.db.WithContext(ctx).Where("id = ? AND connector_id = ?", id, connectorID).Take(&r).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load validation: %w", err)
	}
	return r.toValidation()
}

// ListValidations returns a connector's validation runs, newest first.
func (s *Store) ListValidations(ctx context.Context, connectorID int64, limit int) ([]*Validation, error) {
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	var rows []validationRow
	if err := s.db.WithContext(ctx).Where("connector_id = ?", connectorID).Order("id DESC").Limit(limit).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list validations: %w", err)
	}
	out := make([]*Validation, 0, len(rows))
	for i := range rows {
		v, err := rows[i].toValidation()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// newestRun loads the newest run of one revision (gorm.ErrRecordNotFound
// when there is none).
func newestRun(db *gorm.DB, connectorID int64, revision int) (*validationRow, error) {
	var r validationRow
	if err := db.Where("connector_id = ? AND revision = ?", connectorID, revision).Order("id DESC").Take(&r).Error; err != nil {
		return nil, err
	}
	return &r, nil
}

// NewestValidation returns the newest run of one revision, or ErrNotFound.
func (s *Store) NewestValidation(ctx context.Context, connectorID int64, revision int) (*Validation, error) {
	r, err := newestRun(s.db.WithContext(ctx), connectorID, revision)
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load validation: %w", err)
	}
	return r.toValidation()
}

// revisionPassed reports whether the newest validation of a revision
// passed.
func revisionPassed(tx *gorm.DB, connectorID int64, revision int) (bool, error) {
	r, err := newestRun(tx, connectorID, revision)
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("load validation: %w", err)
	}
	return r.Status == ValidationPassed, nil
}
