package queue

import (
	"bytes"
	"context"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// TestWriterBatch commits one batch of several messages — each with
// several recipients and trace events, a body or none, text that needs
// cleaning — and reads every row back. On PostgreSQL this is the one
// statement of acceptPostgres, on SQLite the transaction of insertBatch.
func TestWriterBatch(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		w := NewWriter(st, slog.New(slog.DiscardHandler))
		defer w.Close()
		at := time.Date(2026, 11, 23, 10, 0, 0, 123456000, time.UTC)
		connID, rev := int64(7), 3
		rcptConn := int64(9)
		body1 := []byte("Subject: one\r\n\r\nfirst body\x00\xff\r\n")
		body2 := bytes.Repeat([]byte("x"), 70000)
		msgs := []*Message{{
			UID: "batch-1", ReceivedAt: at, Status: Queued, ClientIP: "192.0.2.1", Helo: "bad\x00helo\xff",
			TLSVersion: "TLS 1.3", TLSCipher: "TLS_AES_128_GCM_SHA256", ClientCert: "CN=client", Sender: "a@fabrikam.com",
			MessageIDHeader: "<1@fabrikam.com>", InboundConnectorID: &connID, InboundConnector: "Partner",
			InboundRevision: &rev, Attribution: "partner", Reply: "250 2.0.0 queued", ExpiresAt: at.Add(48 * time.Hour),
			Recipients: []Recipient{
				{Address: "john@contoso.com", Status: Queued, ConnectorID: &rcptConn, Connector: "Exchange", RouteReason: "smart host"},
				{Address: "jane@contoso.com", Status: Queued, RouteReason: "MX \xfe"},
			},
			Events: []Event{
				{At: at, Type: "received", Detail: "from 192.0.2.1"},
				{At: at.Add(time.Millisecond), Type: "routed", Detail: "john → Exchange"},
				{At: at.Add(2 * time.Millisecond), Type: "routed", Detail: "jane \x00 MX"},
			},
			Body: body1,
		}, {
			UID: "batch-2", ReceivedAt: at.Add(time.Second), Status: Queued, ClientIP: "192.0.2.2", Sender: "",
			Recipients: []Recipient{
				{Address: "a@contoso.com", Status: Queued}, {Address: "b@contoso.com", Status: Queued}, {Address: "c@contoso.com", Status: Queued},
			},
			Events: []Event{{At: at, Type: "received"}, {At: at, Type: "routed", Detail: "three"}},
			Body:   body2,
		}, {
			UID: "batch-3", ReceivedAt: at.Add(2 * time.Second), Status: Rejected, ClientIP: "192.0.2.3", Sender: "spam\xc3@example.net",
			Reply:      "550 5.7.1 no",
			Recipients: []Recipient{{Address: "x@contoso.com", Status: Rejected, LastReply: "550 5.7.1 relay denied\x00"}},
			Events:     []Event{{At: at, Type: "rejected", Detail: "relay denied"}, {At: at, Type: "recipient_rejected", Detail: "x\xff"}},
		}}
		batch := make([]request, len(msgs))
		for i, m := range msgs {
			batch[i] = request{m: m}
		}
		// The second message is delivered by this process: inserted leased.
		batch[1].leased = true
		ls := &lease{owner: "test/1", until: Micros(at.Add(5 * time.Minute))}
		for i, err := range w.commitEach(batch, ls) {
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
		}
		if batches, committed, _ := w.Stats(); batches != 1 || committed != 3 {
			t.Fatalf("batches, committed = %d, %d; want 1, 3", batches, committed)
		}

		db := st.DB()
		var rows []messageRow
		if err := db.Order("id").Find(&rows).Error; err != nil {
			t.Fatal(err)
		}
		if len(rows) != 3 {
			t.Fatalf("%d messages, want 3", len(rows))
		}
		m0, m1, m2 := rows[0], rows[1], rows[2]
		if m0.UID != "batch-1" || m1.UID != "batch-2" || m2.UID != "batch-3" {
			t.Fatalf("uids in id order: %s %s %s", m0.UID, m1.UID, m2.UID)
		}
		next, exp := Micros(at), Micros(at.Add(48*time.Hour))
		want0 := messageRow{ID: m0.ID, UID: "batch-1", ReceivedAt: Micros(at), Status: Queued, ClientIP: "192.0.2.1", Helo: `bad\x00helo\xff`,
			TLSVersion: "TLS 1.3", TLSCipher: "TLS_AES_128_GCM_SHA256", ClientCert: "CN=client", Sender: "a@fabrikam.com",
			MessageIDHeader: "<1@fabrikam.com>", Size: int64(len(body1)), InboundConnectorID: &connID, InboundConnector: "Partner",
			InboundRevision: &rev, Attribution: "partner", Reply: "250 2.0.0 queued", NextAttemptAt: &next, ExpiresAt: &exp,
			UpdatedAt: m0.UpdatedAt}
		if !reflect.DeepEqual(m0, want0) {
			t.Errorf("message 1:\n got %+v\nwant %+v", m0, want0)
		}
		if m0.UpdatedAt < Micros(time.Now().Add(-time.Minute)) || m1.UpdatedAt != m0.UpdatedAt {
			t.Errorf("updated_at %d, %d", m0.UpdatedAt, m1.UpdatedAt)
		}
		if m1.NextAttemptAt == nil || *m1.NextAttemptAt != Micros(at.Add(time.Second)) || m1.ExpiresAt != nil || m1.Size != 70000 ||
			m1.InboundConnectorID != nil || m1.InboundRevision != nil ||
			m1.LeaseOwner == nil || *m1.LeaseOwner != "test/1" || m1.LeaseUntil == nil || *m1.LeaseUntil != ls.until {
			t.Errorf("message 2: %+v", m1)
		}
		if m2.Status != Rejected || m2.NextAttemptAt != nil || m2.ExpiresAt != nil || m2.Size != 0 || m2.Sender != `spam\xc3@example.net` ||
			m2.Reply != "550 5.7.1 no" {
			t.Errorf("message 3: %+v", m2)
		}

		var bodies []bodyRow
		if err := db.Order("message_id").Find(&bodies).Error; err != nil {
			t.Fatal(err)
		}
		if len(bodies) != 2 || bodies[0].MessageID != m0.ID || !bytes.Equal(bodies[0].Data, body1) ||
			bodies[1].MessageID != m1.ID || !bytes.Equal(bodies[1].Data, body2) {
			t.Errorf("bodies: %d rows", len(bodies))
		}

		var rcpts []recipientRow
		if err := db.Order("id").Find(&rcpts).Error; err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rcpts {
			id := "-"
			if r.ConnectorID != nil {
				id = "9"
			}
			got = append(got, strings.Join([]string{uidOf(rows, r.MessageID), r.Address, string(r.Status), id, r.Connector, r.RouteReason, r.LastReply}, "|"))
			if r.UpdatedAt != m0.UpdatedAt || r.Attempts != 0 {
				t.Errorf("recipient %s: updated_at %d, attempts %d", r.Address, r.UpdatedAt, r.Attempts)
			}
		}
		wantRcpts := []string{
			"batch-1|john@contoso.com|queued|9|Exchange|smart host|",
			`batch-1|jane@contoso.com|queued|-||MX \xfe|`,
			"batch-2|a@contoso.com|queued|-|||", "batch-2|b@contoso.com|queued|-|||", "batch-2|c@contoso.com|queued|-|||",
			`batch-3|x@contoso.com|rejected|-|||550 5.7.1 relay denied\x00`,
		}
		if !reflect.DeepEqual(got, wantRcpts) {
			t.Errorf("recipients in id order:\n got %q\nwant %q", got, wantRcpts)
		}
		// The insert reports each message's id and its recipients' ids in
		// order, and the job built from them is what a claim would load.
		k := 0
		for i := range batch {
			if batch[i].id != rows[i].ID || len(batch[i].rcptIDs) != len(msgs[i].Recipients) {
				t.Fatalf("request %d: id %d, recipient ids %v; stored id %d", i, batch[i].id, batch[i].rcptIDs, rows[i].ID)
			}
			for _, id := range batch[i].rcptIDs {
				if id != rcpts[k].ID {
					t.Errorf("request %d: recipient ids %v, stored %d at %d", i, batch[i].rcptIDs, rcpts[k].ID, k)
				}
				k++
			}
		}
		if db.Dialector.Name() == "postgres" {
			// Bodies are TOASTed with lz4 where the server has it (migration 00006).
			var lz4, method string
			db.Raw(`SELECT COALESCE((SELECT 'yes' FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)), 'no')`).Scan(&lz4)
			if err := db.Raw(`SELECT COALESCE(pg_column_compression(data), 'none') FROM message_bodies WHERE message_id = ?`, m1.ID).Scan(&method).Error; err != nil {
				t.Fatal(err)
			}
			if want := map[string]string{"yes": "lz4", "no": "pglz"}[lz4]; method != want {
				t.Errorf("70,000-byte body compressed with %q, want %q (server has lz4: %s)", method, want, lz4)
			}
		}
		j := batch[1].job(ls)
		j.msg.UpdatedAt = m1.UpdatedAt
		if !reflect.DeepEqual(j.msg, m1) || !bytes.Equal(j.body, body2) || len(j.rcpts) != 3 {
			t.Errorf("job:\n got %+v\nwant %+v", j.msg, m1)
		}
		for i, rc := range j.rcpts {
			want := rcpts[2+i]
			want.UpdatedAt = 0
			if !reflect.DeepEqual(*rc, want) {
				t.Errorf("job recipient %d:\n got %+v\nwant %+v", i, *rc, want)
			}
		}

		var events []eventRow
		if err := db.Order("id").Find(&events).Error; err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, e := range events {
			got = append(got, strings.Join([]string{uidOf(rows, e.MessageID), FromMicros(e.At).Format(time.StampMicro), e.Type, e.Detail}, "|"))
		}
		wantEvents := []string{
			"batch-1|Nov 23 10:00:00.123456|received|from 192.0.2.1",
			"batch-1|Nov 23 10:00:00.124456|routed|john → Exchange",
			`batch-1|Nov 23 10:00:00.125456|routed|jane \x00 MX`,
			"batch-2|Nov 23 10:00:00.123456|received|", "batch-2|Nov 23 10:00:00.123456|routed|three",
			"batch-3|Nov 23 10:00:00.123456|rejected|relay denied", `batch-3|Nov 23 10:00:00.123456|recipient_rejected|x\xff`,
		}
		if !reflect.DeepEqual(got, wantEvents) {
			t.Errorf("events in id order:\n got %q\nwant %q", got, wantEvents)
		}

		// A batch that fails as a whole (a uid already stored) falls back to
		// one message at a time: only the duplicate fails.
		dup := []request{
			{m: &Message{UID: "batch-4", ReceivedAt: at, Status: Queued, ClientIP: "192.0.2.4", Recipients: []Recipient{{Address: "d@contoso.com", Status: Queued}}, Body: []byte("four")}},
			{m: &Message{UID: "batch-2", ReceivedAt: at, Status: Queued, ClientIP: "192.0.2.2", Body: []byte("again")}},
			{m: &Message{UID: "batch-5", ReceivedAt: at, Status: Rejected, ClientIP: "192.0.2.5"}},
		}
		errs := w.commitEach(dup, nil)
		if errs[0] != nil || errs[1] == nil || errs[2] != nil {
			t.Fatalf("fallback errors: %v", errs)
		}
		var n int64
		db.Model(&messageRow{}).Where("uid IN ?", []string{"batch-4", "batch-5"}).Count(&n)
		var nr int64
		db.Model(&recipientRow{}).Where("address = ?", "d@contoso.com").Count(&nr)
		if n != 2 || nr != 1 {
			t.Errorf("after the fallback %d of 2 messages and %d of 1 recipient stored", n, nr)
		}
		if batches, committed, _ := w.Stats(); batches != 3 || committed != 5 {
			t.Errorf("batches, committed = %d, %d; want 3, 5", batches, committed)
		}
	})
}

func uidOf(rows []messageRow, id int64) string {
	for _, r := range rows {
		if r.ID == id {
			return r.UID
		}
	}
	return "?"
}

// Failing says that received mail is answered 451 right now: the last
// commit failed and none succeeded since.
func TestWriterFailing(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		w := NewWriter(st, slog.New(slog.DiscardHandler))
		defer w.Close()
		msg := func(uid string) *Message {
			return &Message{UID: uid, ReceivedAt: time.Now(), Status: Queued, ClientIP: "192.0.2.1", Sender: "a@fabrikam.com",
				Recipients: []Recipient{{Address: "john@contoso.com", Status: Queued}}, Body: []byte("Subject: x\r\n\r\nx\r\n")}
		}
		if err := w.Enqueue(context.Background(), msg("ok-1")); err != nil || w.Failing(time.Minute) {
			t.Fatalf("after a commit: err %v, failing %v", err, w.Failing(time.Minute))
		}
		if err := st.DB().Exec("ALTER TABLE messages RENAME TO messages_away").Error; err != nil {
			t.Fatal(err)
		}
		if err := w.Enqueue(context.Background(), msg("lost-1")); err == nil {
			t.Fatal("a commit into a missing table succeeded")
		}
		if !w.Failing(time.Minute) {
			t.Fatal("not failing after a failed commit")
		}
		if w.Failing(0) {
			t.Fatal("failing outside the window")
		}
		if err := st.DB().Exec("ALTER TABLE messages_away RENAME TO messages").Error; err != nil {
			t.Fatal(err)
		}
		if err := w.Enqueue(context.Background(), msg("ok-2")); err != nil || w.Failing(time.Minute) {
			t.Fatalf("after the table is back: err %v, failing %v", err, w.Failing(time.Minute))
		}
	})
}
