package api_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/api"
	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/delivery"
	"github.com/flowgate/flowgate/internal/liveconfig"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// TestQueueAPI exercises every queue endpoint on both engines: the
// summary, retry, bounce, delete, hold, release and reroute, with 404 for
// an unknown id, 409 for a message that no longer waits or is being
// delivered, 403 for a viewer token, and an audit row for each action.
// The workers do not run: the messages wait, and the actions act on them.
func TestQueueAPI(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		log := slog.New(slog.DiscardHandler)
		lctx, cancel := context.WithCancel(ctx)
		defer cancel()
		if _, err := st.CreateAcceptedDomain(ctx, store.System("test"), "contoso.com", connector.Authoritative); err != nil {
			t.Fatal(err)
		}
		connID := testutil.ActivateConnector(t, st, &connector.OutboundSpec{
			Common:     connector.Common{Name: "On-prem", ConnectorType: connector.OnPremises},
			SmartHosts: []string{"mail.contoso.com:2525"}, AllAcceptedDomains: true})
		live, err := liveconfig.Load(lctx, st, log)
		if err != nil {
			t.Fatal(err)
		}
		go live.Run(lctx)
		wk := queue.NewWorkers(st, live, &delivery.Client{Hostname: "gw.test"}, queue.WorkerConfig{Hostname: "gw.test"}, log)
		admin, viewer := newAPIWith(t, st, func(s *api.Server) { s.WithQueue(queue.NewControl(wk)) })
		w := queue.NewWriter(st, log)
		defer w.Close()
		now := time.Now().UTC()
		enqueue := func(uid string, status queue.Status, rcpts ...string) {
			t.Helper()
			m := &queue.Message{UID: uid, ReceivedAt: now, Status: status, ClientIP: "192.0.2.1", Sender: "alice@fabrikam.com",
				ExpiresAt: now.Add(48 * time.Hour), Body: []byte("Subject: " + uid + "\r\n\r\nx\r\n")}
			for _, r := range rcpts {
				m.Recipients = append(m.Recipients, queue.Recipient{Address: r, Status: status, ConnectorID: &connID, Connector: "On-prem", RouteReason: "test"})
			}
			if err := w.Enqueue(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		enqueue("waiting1", queue.Queued, "john@contoso.com", "ann@contoso.com")
		enqueue("waiting2", queue.Queued, "bob@contoso.com")
		enqueue("waiting3", queue.Queued, "eve@contoso.com")
		enqueue("done1", queue.Delivered, "zed@contoso.com")

		type row struct {
			Connector *string `json:"connector"`
			NextHop   string  `json:"next_hop"`
			Queued    int     `json:"queued"`
			Deferred  int     `json:"deferred"`
			Held      int     `json:"held"`
			OldestAt  *string `json:"oldest_at"`
			LastError *string `json:"last_error"`
		}
		summary := func() (total int, rows []row) {
			t.Helper()
			r := viewer.do("GET", "/queue", "")
			if r.Status != 200 {
				t.Fatalf("GET /queue: %d %s", r.Status, r.Body)
			}
			var out struct {
				Total      *int  `json:"total"`
				Connectors []row `json:"connectors"`
			}
			if err := json.Unmarshal(r.Body, &out); err != nil || out.Total == nil {
				t.Fatalf("GET /queue: %v %s", err, r.Body)
			}
			return *out.Total, out.Connectors
		}
		total, rows := summary()
		if total != 3 || len(rows) != 1 || rows[0].Connector == nil || *rows[0].Connector != "On-prem" || rows[0].NextHop != "mail.contoso.com:2525" ||
			rows[0].Queued != 4 || rows[0].Held != 0 || rows[0].OldestAt == nil || rows[0].LastError == nil {
			t.Fatalf("GET /queue = %d %+v, want 3 messages, one row: On-prem via mail.contoso.com:2525, 4 queued", total, rows)
		}

		// A viewer reads but may not act.
		for _, c := range []struct{ method, path string }{
			{"POST", "/messages/waiting1/retry"}, {"POST", "/messages/waiting1/bounce"}, {"DELETE", "/messages/waiting1"},
			{"POST", "/outbound-connectors/" + itoa(connID) + "/hold"}, {"POST", "/outbound-connectors/" + itoa(connID) + "/release"},
			{"POST", "/outbound-connectors/" + itoa(connID) + "/reroute"},
		} {
			if r := viewer.do(c.method, c.path, ""); r.Status != 403 {
				t.Errorf("viewer %s %s: %d %s, want 403", c.method, c.path, r.Status, r.Body)
			}
		}
		// Unknown ids: 404.
		for _, c := range []struct{ method, path string }{
			{"POST", "/messages/nosuch/retry"}, {"POST", "/messages/nosuch/bounce"}, {"DELETE", "/messages/nosuch"},
			{"POST", "/outbound-connectors/99999/hold"}, {"POST", "/outbound-connectors/99999/release"}, {"POST", "/outbound-connectors/99999/reroute"},
		} {
			if r := admin.do(c.method, c.path, ""); r.Status != 404 {
				t.Errorf("%s %s: %d %s, want 404", c.method, c.path, r.Status, r.Body)
			}
		}
		// A delivered message: 409.
		for _, c := range []struct{ method, path string }{
			{"POST", "/messages/done1/retry"}, {"POST", "/messages/done1/bounce"}, {"DELETE", "/messages/done1"},
		} {
			if r := admin.do(c.method, c.path, ""); r.Status != 409 {
				t.Errorf("%s %s (delivered): %d %s, want 409", c.method, c.path, r.Status, r.Body)
			}
		}
		// A message a delivery holds right now: 409 for bounce and delete.
		if err := st.DB().Exec("UPDATE messages SET lease_owner = 'other/1', lease_until = ? WHERE uid = 'waiting3'", queue.Micros(time.Now().Add(time.Minute))).Error; err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ method, path string }{{"POST", "/messages/waiting3/bounce"}, {"DELETE", "/messages/waiting3"}} {
			if r := admin.do(c.method, c.path, ""); r.Status != 409 {
				t.Errorf("%s %s (in flight): %d %s, want 409", c.method, c.path, r.Status, r.Body)
			}
		}

		// Retry: due now.
		st.DB().Exec("UPDATE messages SET next_attempt_at = ? WHERE uid = 'waiting1'", queue.Micros(time.Now().Add(time.Hour)))
		r := admin.do("POST", "/messages/waiting1/retry", "")
		if r.Status != 200 || r.json(t)["id"] != "waiting1" {
			t.Fatalf("retry: %d %s", r.Status, r.Body)
		}
		var next int64
		st.DB().Raw("SELECT next_attempt_at FROM messages WHERE uid = 'waiting1'").Scan(&next)
		if time.Until(queue.FromMicros(next)) > time.Second {
			t.Errorf("after retry the next attempt is at %s, want now", queue.FromMicros(next))
		}
		// Bounce: bounced, with a DSN to the sender.
		r = admin.do("POST", "/messages/waiting2/bounce", "")
		if r.Status != 200 || r.json(t)["status"] != "bounced" {
			t.Fatalf("bounce: %d %s", r.Status, r.Body)
		}
		var dsns int
		st.DB().Raw("SELECT COUNT(*) FROM messages m JOIN message_recipients r ON r.message_id = m.id WHERE m.attribution = 'delivery status notification for waiting2' AND r.address = 'alice@fabrikam.com'").Scan(&dsns)
		if dsns != 1 {
			t.Errorf("%d DSNs to the sender, want 1", dsns)
		}
		if r := admin.do("POST", "/messages/waiting2/bounce", ""); r.Status != 409 {
			t.Errorf("bounce twice: %d, want 409", r.Status)
		}
		// Delete: gone, 404 afterwards.
		if r := admin.do("DELETE", "/messages/waiting1", ""); r.Status != 204 {
			t.Fatalf("delete: %d %s", r.Status, r.Body)
		}
		if r := admin.do("GET", "/messages/waiting1", ""); r.Status != 404 {
			t.Errorf("GET a deleted message: %d, want 404", r.Status)
		}
		if r := admin.do("DELETE", "/messages/waiting1", ""); r.Status != 404 {
			t.Errorf("delete twice: %d, want 404", r.Status)
		}

		// Hold: the connector says so and its waiting recipients count as held.
		r = admin.do("POST", "/outbound-connectors/"+itoa(connID)+"/hold", "")
		if r.Status != 200 || r.json(t)["held"] != true || r.json(t)["held_by"] != "token:admin-token" {
			t.Fatalf("hold: %d %s", r.Status, r.Body)
		}
		testutil.AfterReload(t, live, func() {})
		// Rows: On-prem (held), then the DSN to alice, by MX.
		if _, rows := summary(); len(rows) != 2 || rows[0].Held != 1 || rows[0].Queued != 0 ||
			rows[1].Connector != nil || rows[1].NextHop != "MX of fabrikam.com" || rows[1].Queued != 1 {
			t.Errorf("GET /queue while held = %s, want On-prem with 1 held, then the DSN by MX of fabrikam.com", jsonString(rows))
		}
		if r := admin.do("POST", "/inbound-connectors/"+itoa(connID)+"/hold", ""); r.Status != 404 && r.Status != 405 {
			t.Errorf("hold on the inbound path: %d, want 404 or 405", r.Status)
		}
		r = admin.do("POST", "/outbound-connectors/"+itoa(connID)+"/release", "")
		if r.Status != 200 || r.json(t)["held"] != false {
			t.Fatalf("release: %d %s", r.Status, r.Body)
		}
		// Reroute: the waiting recipients of the connector.
		r = admin.do("POST", "/outbound-connectors/"+itoa(connID)+"/reroute", "")
		if r.Status != 200 || r.json(t)["rerouted"] != float64(1) {
			t.Fatalf("reroute: %d %s, want 1 recipient (waiting3's)", r.Status, r.Body)
		}

		var actions []string
		st.DB().Raw("SELECT action FROM audit_log WHERE actor = 'token:admin-token' ORDER BY id").Scan(&actions)
		if got, want := jsonString(actions), `["retry","bounce","delete","hold","release","reroute"]`; got != want {
			t.Errorf("audit actions = %s, want %s", got, want)
		}
	})
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
