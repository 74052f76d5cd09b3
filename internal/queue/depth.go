package queue

import (
	"context"
	"fmt"

	"github.com/flowgate/flowgate/internal/store"
)

// Depths counts the recipients waiting for delivery (queued or deferred)
// per outbound connector id; key 0 is mail routed without a connector (MX
// delivery, or an accepted domain with no route). The query starts from
// the messages that are waiting (the partial index messages_due), so its
// cost follows the queue, not the trace.
func Depths(ctx context.Context, st *store.Store) (map[int64]int64, error) {
	var rows []struct {
		ConnectorID *int64
		N           int64
	}
	err := st.DB().WithContext(ctx).Raw(`SELECT r.connector_id, COUNT(*) AS n
		FROM messages m JOIN message_recipients r ON r.message_id = m.id
		WHERE m.status IN ('queued', 'deferred') AND r.status IN ('queued', 'deferred')
		GROUP BY r.connector_id`).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("queue depths: %w", err)
	}
	out := make(map[int64]int64, len(rows))
	for _, r := range rows {
		var id int64
		if r.ConnectorID != nil {
			id = *r.ConnectorID
		}
		out[id] += r.N
	}
	return out, nil
}
