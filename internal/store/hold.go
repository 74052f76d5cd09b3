package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/flowgate/flowgate/internal/connector"
)

// HoldConnector puts an outbound connector on hold (hold true) or
// releases it (SPEC 3.6): its mail is still accepted and queued, but not
// attempted while it is held. It is a configuration change, so every
// process's routing index has it within a second; it makes no revision.
// Holding a held connector or releasing one that is not held changes
// nothing and writes no audit row.
func (s *Store) HoldConnector(ctx context.Context, actor Actor, id int64, hold bool) (*Connector, error) {
	err := s.configChange(ctx, func(tx *gorm.DB) error {
		row, err := s.connectorRow(tx, connector.Outbound, id)
		if err != nil {
			return err
		}
		if (row.HeldAt != nil) == hold {
			return nil
		}
		changes := map[string]any{"held_at": nil, "held_by": ""}
		action, detail := "release", map[string]any{}
		if hold {
			changes = map[string]any{"held_at": tx.NowFunc(), "held_by": actor.String()}
			action = "hold"
		} else {
			detail["held_since"] = row.HeldAt.UTC().Format(time.RFC3339)
			detail["held_by"] = row.HeldBy
		}
		if err := tx.Model(&connectorRow{}).Where("id = ?", id).Updates(changes).Error; err != nil {
			return fmt.Errorf("hold connector: %w", err)
		}
		_, err = audit(tx, actor, action, "connector", id, row.Name, detail)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.GetConnector(ctx, connector.Outbound, id)
}

// HeldConnector is an outbound connector on hold.
type HeldConnector struct {
	ID     int64
	Name   string
	HeldAt time.Time
	HeldBy string
}

// HeldConnectors lists the outbound connectors on hold.
func (s *Store) HeldConnectors(ctx context.Context) ([]HeldConnector, error) {
	var rows []connectorRow
	if err := s.db.WithContext(ctx).Where("direction = ? AND held_at IS NOT NULL", connector.Outbound).Order("id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list held connectors: %w", err)
	}
	out := make([]HeldConnector, len(rows))
	for i, r := range rows {
		out[i] = HeldConnector{ID: r.ID, Name: r.Name, HeldAt: *r.HeldAt, HeldBy: r.HeldBy}
	}
	return out, nil
}

// AuditTx writes an audit row inside tx, the transaction of the change it
// records, for changes made outside the store (the queue's controls).
func AuditTx(tx *gorm.DB, actor Actor, action, objectType string, objectID int64, objectName string, detail any) error {
	_, err := audit(tx, actor, action, objectType, objectID, objectName, detail)
	return err
}
