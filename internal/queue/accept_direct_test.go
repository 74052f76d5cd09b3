package queue

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// onOneConn runs fn with one pgx connection of st's pool, pinned for fn.
func onOneConn(t *testing.T, st *store.Store, fn func(c *pgx.Conn)) {
	t.Helper()
	conn, err := testutil.RawDB(t, st).Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Raw(func(dc any) error { fn(dc.(*stdlib.Conn).Conn()); return nil }); err != nil {
		t.Fatal(err)
	}
}

func directBatch(uids ...string) []request {
	batch := make([]request, len(uids))
	for i, u := range uids {
		batch[i] = request{m: &Message{UID: u, ReceivedAt: time.Now(), Status: Queued, ClientIP: "192.0.2.9",
			Recipients: []Recipient{{Address: u + "@contoso.com", Status: Queued}}, Body: []byte("body of " + u + "\r\n")}}
	}
	return batch
}

// TestAcceptDirectBodies: a batch whose bodies go to the socket one by one
// — large, empty, missing — is stored byte for byte, and the ids come back
// for every message.
func TestAcceptDirectBodies(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[1])
	big := []byte(strings.Repeat("0123456789abcdef", 20000)) // 320,000 bytes, more than a socket buffer
	batch := directBatch("d-1", "d-2", "d-3", "d-4")
	batch[0].m.Body = big
	batch[1].m.Body = []byte{}
	batch[2].m.Body = nil
	onOneConn(t, st, func(c *pgx.Conn) {
		if err := acceptDirect(context.Background(), c, batch, nil); err != nil {
			t.Fatal(err)
		}
	})
	for _, r := range batch {
		if r.id == 0 || len(r.rcptIDs) != 1 || r.rcptIDs[0] == 0 {
			t.Fatalf("%s: ids %d %v not filled in", r.m.UID, r.id, r.rcptIDs)
		}
	}
	want := map[string]string{"d-1": string(big), "d-2": "", "d-4": "body of d-4\r\n"}
	var rows []struct {
		UID  string
		Data []byte
	}
	if err := st.DB().Raw(`SELECT m.uid, b.data FROM messages m JOIN message_bodies b ON b.message_id = m.id`).Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(want) {
		t.Fatalf("%d bodies stored, want %d", len(rows), len(want))
	}
	for _, r := range rows {
		if w, ok := want[r.UID]; !ok || string(r.Data) != w {
			t.Errorf("%s: body of %d bytes stored, want %d (in want: %v)", r.UID, len(r.Data), len(w), ok)
		}
	}
}

// TestAcceptDirectLostConnection: when the server side of the connection
// goes away, acceptDirect fails and closes the connection, so that the pool
// drops it and the writer's retry commits on another one.
func TestAcceptDirectLostConnection(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[1])
	ctx := context.Background()
	onOneConn(t, st, func(c *pgx.Conn) {
		if err := acceptDirect(ctx, c, directBatch("l-1"), nil); err != nil {
			t.Fatal(err)
		}
		admin, err := pgx.Connect(ctx, testutil.PostgresAdminURL())
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1::int)", int(c.PgConn().PID())); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if err := acceptDirect(ctx, c, directBatch("l-2"), nil); err == nil {
			t.Fatal("accept on a terminated connection succeeded")
		}
		if !c.PgConn().IsClosed() {
			t.Fatal("the broken connection was left open")
		}
	})
	w := NewWriter(st, slog.New(slog.DiscardHandler))
	defer w.Close()
	if err := w.commitEach(directBatch("l-3"), nil)[0]; err != nil {
		t.Fatalf("commit after a lost connection: %v", err)
	}
	var n int64
	st.DB().Model(&messageRow{}).Count(&n)
	if n != 2 {
		t.Fatalf("%d messages stored, want 2 (l-1, l-3)", n)
	}
}

// TestAcceptDirectPreparesAgain: if the server forgets the prepared
// statement behind pgx's back, one accept fails with that error and the
// next prepares it again.
func TestAcceptDirectPreparesAgain(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[1])
	ctx := context.Background()
	onOneConn(t, st, func(c *pgx.Conn) {
		if err := acceptDirect(ctx, c, directBatch("p-1"), nil); err != nil {
			t.Fatal(err)
		}
		if err := c.PgConn().Exec(ctx, "DEALLOCATE "+acceptStatement).Close(); err != nil {
			t.Fatal(err)
		}
		err := acceptDirect(ctx, c, directBatch("p-2"), nil)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "26000" {
			t.Fatalf("accept without the statement: %v, want SQLSTATE 26000", err)
		}
		if err := acceptDirect(ctx, c, directBatch("p-3"), nil); err != nil {
			t.Fatalf("accept after the statement was forgotten: %v", err)
		}
	})
}

// TestAcceptDirectTimeout: an accept that runs out of time while the
// server has not answered leaves the connection mid-statement; it is
// closed, never reused with the late answer still to come.
func TestAcceptDirectTimeout(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[1])
	ctx := context.Background()
	onOneConn(t, st, func(c *pgx.Conn) {
		// Prepared first: preparing would itself wait for the lock.
		if err := acceptDirect(ctx, c, directBatch("t-0"), nil); err != nil {
			t.Fatal(err)
		}
		locker, err := testutil.RawDB(t, st).BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer locker.Rollback()
		if _, err := locker.ExecContext(ctx, "LOCK TABLE messages IN EXCLUSIVE MODE"); err != nil {
			t.Fatal(err)
		}
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if err := acceptDirect(short, c, directBatch("t-1"), nil); err == nil {
			t.Fatal("accept behind a table lock succeeded within the timeout")
		}
		if !c.PgConn().IsClosed() {
			t.Fatal("the connection was left open with the statement's answer still to come")
		}
	})
}
