package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testutil"
)

// TestTraceRetentionPrunesAtStart starts flowgate on a database holding
// finished and unfinished messages older than FLOWGATE_TRACE_RETENTION and
// checks that the running process deletes exactly the old finished ones,
// with their recipients and events.
func TestTraceRetentionPrunesAtStart(t *testing.T) {
	for name, mk := range engines(t) {
		t.Run(name, func(t *testing.T) {
			env, opts := mk(t)
			env.run(t, "migrate")
			db := testutil.RawDB(t, testutil.OpenStoreWith(t, opts))
			now := time.Now()
			old, recent := now.Add(-40*24*time.Hour).UnixMicro(), now.Add(-24*time.Hour).UnixMicro()
			for i, m := range []struct {
				uid    string
				at     int64
				status string
			}{
				{"old-delivered", old, "delivered"}, {"old-bounced", old, "bounced"}, {"old-rejected", old, "rejected"},
				{"old-deferred", old, "deferred"}, {"recent-delivered", recent, "delivered"},
			} {
				q := fmt.Sprintf(`INSERT INTO messages (id, uid, received_at, status, client_ip, updated_at) VALUES (%d, '%s', %d, '%s', '192.0.2.1', %d)`,
					i+1, m.uid, m.at, m.status, m.at)
				if _, err := db.Exec(q); err != nil {
					t.Fatal(err)
				}
				for _, q := range []string{
					fmt.Sprintf(`INSERT INTO message_recipients (message_id, address, status, updated_at) VALUES (%d, 'x@contoso.com', '%s', %d)`, i+1, m.status, m.at),
					fmt.Sprintf(`INSERT INTO message_events (message_id, at, type) VALUES (%d, %d, 'received')`, i+1, m.at),
				} {
					if _, err := db.Exec(q); err != nil {
						t.Fatal(err)
					}
				}
			}

			p := start(t, env, "FLOWGATE_TRACE_RETENTION=30d")
			var left []string
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				left = left[:0]
				rows, err := db.Query(`SELECT uid FROM messages ORDER BY uid`)
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					var u string
					_ = rows.Scan(&u)
					left = append(left, u)
				}
				rows.Close()
				if len(left) <= 2 || time.Now().After(deadline) {
					break
				}
			}
			if got := strings.Join(left, ","); got != "old-deferred,recent-delivered" {
				t.Fatalf("messages left after the start: %s, want old-deferred,recent-delivered\n%s", got, p.log())
			}
			for _, table := range []string{"message_recipients", "message_events"} {
				var n int
				if err := db.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil || n != 2 {
					t.Errorf("%s: %d rows left (%v), want 2", table, n, err)
				}
			}
			// The log line follows the deletion (and the pruning of orphan
			// message pieces after it).
			for deadline := time.Now().Add(5 * time.Second); !strings.Contains(p.log(), "trace retention: deleted finished messages"); time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Errorf("no log line for the pruning:\n%s", p.log())
					break
				}
			}
		})
	}
}
