package queue

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

func TestPruneDeletesOnlyOldFinishedMessages(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		w := NewWriter(st, slog.New(slog.DiscardHandler))
		defer w.Close()
		now := time.Now()
		old, recent := now.Add(-100*24*time.Hour), now.Add(-time.Hour)
		cutoff := now.Add(-90 * 24 * time.Hour)
		type row struct {
			uid    string
			at     time.Time
			status Status
		}
		rows := []row{
			{"old-delivered-1", old, Delivered}, {"old-delivered-2", old.Add(time.Minute), Delivered},
			{"old-bounced", old, Bounced}, {"old-rejected", old, Rejected},
			{"old-deferred", old, Deferred}, {"old-queued", old, Queued}, // still in the queue: kept
			{"recent-delivered", recent, Delivered}, {"recent-rejected", recent, Rejected},
		}
		var batch []request
		for _, r := range rows {
			st := Queued
			if r.status == Rejected {
				st = Rejected
			}
			batch = append(batch, request{m: &Message{
				UID: r.uid, ReceivedAt: r.at, Status: st, ClientIP: "192.0.2.1", Sender: "a@fabrikam.com",
				Recipients: []Recipient{{Address: "x@contoso.com", Status: st}, {Address: "y@contoso.com", Status: st}},
				Events:     []Event{{At: r.at, Type: "received"}, {At: r.at, Type: "routed"}},
				Body:       []byte("Subject: " + r.uid + "\r\n\r\nbody\r\n"),
			}})
		}
		for i, err := range w.commitEach(batch, nil) {
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
		}
		db := st.DB()
		for _, r := range rows {
			if err := db.Exec(`UPDATE messages SET status = ? WHERE uid = ?`, string(r.status), r.uid).Error; err != nil {
				t.Fatal(err)
			}
		}

		// Batches of 2: the four old finished messages take three statements.
		n, err := Prune(context.Background(), st, cutoff, 2)
		if err != nil || n != 4 {
			t.Fatalf("Prune = %d, %v; want 4 deleted", n, err)
		}
		var left []string
		db.Raw(`SELECT uid FROM messages ORDER BY uid`).Scan(&left)
		want := []string{"old-deferred", "old-queued", "recent-delivered", "recent-rejected"}
		if fmt.Sprint(left) != fmt.Sprint(want) {
			t.Fatalf("messages left: %v, want %v", left, want)
		}
		// Recipients, events and bodies went with their messages.
		for _, table := range []string{"message_recipients", "message_events", "message_bodies"} {
			var orphans int64
			db.Raw(`SELECT COUNT(*) FROM ` + table + ` WHERE message_id NOT IN (SELECT id FROM messages)`).Scan(&orphans)
			var kept int64
			db.Raw(`SELECT COUNT(*) FROM ` + table).Scan(&kept)
			wantKept := int64(4 * 2) // two recipients, two events per message
			if table == "message_bodies" {
				wantKept = 4 // every message here was stored with a body
			}
			if orphans != 0 || kept != wantKept {
				t.Errorf("%s: %d rows of deleted messages left, %d rows in all (want %d)", table, orphans, kept, wantKept)
			}
		}
		// Nothing more to do: a second run deletes nothing.
		if n, err := Prune(context.Background(), st, cutoff, 0); err != nil || n != 0 {
			t.Fatalf("second Prune = %d, %v", n, err)
		}
	})
}

// The pieces of large messages that no waiting message needs — left by a
// crash mid-message, or by a finished message whose pieces could not be
// deleted — go once a day old; a waiting message keeps its pieces however
// old, and recent pieces stay (their message may be about to commit).
func TestPruneDeletesOrphanPieces(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		w := NewWriter(st, slog.New(slog.DiscardHandler))
		defer w.Close()
		ctx := context.Background()
		old := Micros(time.Now().Add(-2 * chunkOrphanAge))
		q := dialectFor(st)
		for _, p := range []struct {
			uid string
			at  int64
		}{{"waiting", old}, {"crashed", old}, {"delivered", old}, {"arriving", Micros(time.Now())}} {
			if err := q.putChunk(ctx, p.uid, 0, p.at, []byte("piece\r\n")); err != nil {
				t.Fatal(err)
			}
		}
		for uid, status := range map[string]Status{"waiting": Queued, "delivered": Delivered} {
			m := &Message{UID: uid, ReceivedAt: time.Now(), Status: Queued, ClientIP: "192.0.2.1", Sender: "a@fabrikam.com",
				Recipients: []Recipient{{Address: "x@contoso.com", Status: Queued}}, Chunks: 1, Size: 7}
			if err := w.Enqueue(ctx, m); err != nil {
				t.Fatal(err)
			}
			if err := st.DB().Exec("UPDATE messages SET status = ? WHERE uid = ?", string(status), uid).Error; err != nil {
				t.Fatal(err)
			}
		}
		if _, err := Prune(ctx, st, time.Now().Add(-90*24*time.Hour), 0); err != nil {
			t.Fatal(err)
		}
		var left []string
		st.DB().Raw("SELECT uid FROM message_chunks ORDER BY uid").Scan(&left)
		if fmt.Sprint(left) != "[arriving waiting]" {
			t.Fatalf("pieces left %v, want [arriving waiting]", left)
		}
	})
}
