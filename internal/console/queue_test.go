package console_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// waitingMail enqueues messages routed through connector id (they wait:
// the console's test server runs no delivery workers).
func waitingMail(t *testing.T, st *store.Store, connID int64, conn string, uids ...string) {
	t.Helper()
	w := queue.NewWriter(st, slog.New(slog.DiscardHandler))
	defer w.Close()
	now := time.Now().UTC()
	for i, uid := range uids {
		m := &queue.Message{UID: uid, ReceivedAt: now.Add(time.Duration(i) * time.Second), Status: queue.Queued, ClientIP: "192.0.2.1",
			Sender: "alice@fabrikam.com", ExpiresAt: now.Add(48 * time.Hour), Body: []byte("Subject: x\r\n\r\nx\r\n"),
			Recipients: []queue.Recipient{{Address: "john@contoso.com", Status: queue.Queued, ConnectorID: &connID, Connector: conn, RouteReason: "test"}}}
		if err := w.Enqueue(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
}

// TestQueuePageAndActions: the queue page counts waiting mail per
// connector and next hop; hold, release, re-route, retry, bounce (after a
// confirmation) and delete (after a confirmation) work from it, each
// leaves an audit sentence; a viewer sees the page without the buttons
// and gets 403 on every action.
func TestQueuePageAndActions(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		b := adminBrowser(t, st)
		connID := testutil.ActivateConnector(t, st, &connector.OutboundSpec{
			Common:     connector.Common{Name: "On-prem", ConnectorType: connector.OnPremises},
			SmartHosts: []string{"mail.contoso.com:2525"}, AllAcceptedDomains: true})
		waitingMail(t, st, connID, "On-prem", "msgone", "msgtwo", "msgthree")
		hold := fmt.Sprintf("/queue/connectors/%d/hold", connID)

		p := b.get("/queue")
		p.has(t, "3 messages", "On-prem", "mail.contoso.com:2525", `data-count="queued">3<`, "Hold", "Re-route", "Retry now", "msgone", "not attempted yet")

		// Viewer: reads, no buttons, 403 on every action.
		createUser(t, st, "viewer@contoso.com", store.RoleViewer)
		v := newBrowser(t, b.srv)
		v.signIn("viewer@contoso.com")
		vp := v.get("/queue")
		vp.has(t, "On-prem", "msgone")
		vp.lacks(t, "Retry now", ">Hold<", "Re-route")
		for _, path := range []string{hold, fmt.Sprintf("/queue/connectors/%d/release", connID), fmt.Sprintf("/queue/connectors/%d/reroute", connID),
			"/queue/messages/msgone/retry", "/queue/messages/msgone/bounce", "/queue/messages/msgone/delete"} {
			if r := v.post(path); r.Status != http.StatusForbidden {
				t.Errorf("viewer POST %s: %d, want 403", path, r.Status)
			}
		}
		if r := v.get("/queue/messages/msgone/delete"); r.Status != http.StatusForbidden {
			t.Errorf("viewer GET the delete confirmation: %d, want 403", r.Status)
		}

		// Hold, then release.
		p = b.follow(b.post(hold, "back", "/queue"))
		p.has(t, `Connector "On-prem" is on hold`, "held", "on hold since", "by user:admin@contoso.com", `data-count="held">3<`, `data-count="queued">0<`, "Release")
		p.lacks(t, "Held mail of On-prem reaches")
		// Held mail with less than a quarter of the lifetime left: a warning.
		st.DB().Exec("UPDATE messages SET expires_at = ? WHERE uid = 'msgone'", queue.Micros(time.Now().Add(3*time.Hour)))
		b.get("/queue").has(t, "Held mail of On-prem reaches the queue lifetime (48h0m0s) at", "release the connector or re-route its mail")
		p = b.follow(b.post(fmt.Sprintf("/queue/connectors/%d/release", connID), "back", "/queue?connector="+fmt.Sprint(connID)))
		if p.Status != 200 {
			t.Fatalf("after release: %d", p.Status)
		}
		p.has(t, `Connector "On-prem" is released`, `Waiting messages: On-prem`)
		p = b.follow(b.post(fmt.Sprintf("/queue/connectors/%d/reroute", connID), "back", "/queue"))
		p.has(t, "3 waiting recipients were re-routed")

		// Retry.
		p = b.follow(b.post("/queue/messages/msgone/retry", "back", "/queue"))
		p.has(t, "Message msgone is being tried now.")
		b.get("/trace/msgone").has(t, "Retry now", `/queue/messages/msgone/bounce`, `/queue/messages/msgone/delete`)
		v.get("/trace/msgone").lacks(t, "Retry now", `/queue/messages/msgone/delete`)

		// Bounce: a confirmation first, then the trace of the bounced message.
		c := b.get("/queue/messages/msgtwo/bounce")
		c.has(t, "Return message msgtwo to its sender?", "alice@fabrikam.com", "john@contoso.com", "Bounce it")
		p = b.follow(b.post("/queue/messages/msgtwo/bounce"))
		p.has(t, "Message msgtwo was returned to its sender.", "bounced")

		// Delete: a confirmation, then gone.
		c = b.get("/queue/messages/msgthree/delete")
		c.has(t, "Delete message msgthree?", "no DSN goes to the sender", "Delete it")
		p = b.follow(b.post("/queue/messages/msgthree/delete"))
		p.has(t, "Message msgthree was deleted; no DSN was sent.")
		p.lacks(t, "msgthree</")
		if r := b.get("/trace/msgthree"); r.Status != http.StatusNotFound {
			t.Errorf("the deleted message's trace: %d, want 404", r.Status)
		}

		// Refusals are warnings on the page, not errors.
		p = b.follow(b.post("/queue/messages/msgtwo/retry", "back", "/queue"))
		p.has(t, "Message msgtwo is bounced already")
		p = b.follow(b.post("/queue/messages/msgthree/delete"))
		p.has(t, "Message msgthree is no longer in the queue")

		a := b.get("/audit")
		a.has(t, "held the outbound connector ", ": its mail is queued but not attempted until released",
			"released the outbound connector ", " from hold (held since ", "re-routed the waiting mail of the outbound connector ",
			": 3 recipient(s) routed again under today's connectors",
			"asked for message ", "msgone</a> to be tried now", "returned message ", "msgtwo</a> to its sender alice@fabrikam.com",
			"deleted message ", "msgthree</strong> from the queue without a DSN: from alice@fabrikam.com to john@contoso.com")
	})
}
