package browsertest

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// queued sends one message through the flow's relay and returns its
// queue id (the last word of "250 2.0.0 OK: queued as <id>").
func (f *mailFlow) queued(subject, from string, rcpts ...string) string {
	f.t.Helper()
	c := testutil.NewRawSMTP(f.t, "127.0.0.3", f.relay)
	defer c.Cmd("QUIT")
	c.Cmd("EHLO mail.contosobank.com")
	if code, text := c.Cmd("MAIL FROM:<%s>", from); code != 250 {
		f.t.Fatalf("MAIL: %d %s", code, text)
	}
	for _, r := range rcpts {
		if code, text := c.Cmd("RCPT TO:<%s>", r); code != 250 {
			f.t.Fatalf("RCPT %s: %d %s", r, code, text)
		}
	}
	c.Cmd("DATA")
	c.Send("Subject: %s\r\nMessage-ID: <%d@contosobank.com>\r\n\r\nHello.\r\n.\r\n", subject, time.Now().UnixNano())
	code, text := c.Read()
	if code != 250 {
		f.t.Fatalf("DATA: %d %s", code, text)
	}
	return text[strings.LastIndex(text, " ")+1:]
}

// withSubject is the sink's messages with the subject.
func withSubject(s *testutil.Sink, subject string) []testutil.SinkMessage {
	var out []testutil.SinkMessage
	for _, m := range s.Messages() {
		if strings.Contains(m.Data, "Subject: "+subject+"\r\n") {
			out = append(out, m)
		}
	}
	return out
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
	}
}

// TestQueueInTheBrowser: with the real relay and delivery workers behind
// the console — hold a connector, send mail, see it counted as held and
// not delivered, release it and see it delivered; re-route deferred mail
// after the connector's smart host moved; retry, bounce (the DSN arrives)
// and delete (nothing arrives) deferred messages.
func TestQueueInTheBrowser(t *testing.T) {
	findChromium(t)
	srv := startServer(t)
	srv.seedAdmin(t)
	st := srv.st
	ctx := context.Background()
	admin := store.Actor{Kind: "user", Name: adminEmail}
	ca := testutil.NewCA(t, "Queue CA")
	mailboxes := testutil.NewSink(t, testutil.SinkOptions{})
	bank := testutil.NewSink(t, testutil.SinkOptions{}) // the partner's server: DSNs to its senders go there
	if _, err := st.CreateAcceptedDomain(ctx, admin, "contoso.com", connector.Authoritative); err != nil {
		t.Fatal(err)
	}
	spec := &connector.OutboundSpec{Common: connector.Common{Name: "Exchange on-premises", ConnectorType: connector.OnPremises},
		AllAcceptedDomains: true, SmartHosts: []string{mailboxes.Addr}}
	exchange := testutil.ActivateConnector(t, st, spec)
	testutil.ActivateConnector(t, st, &connector.OutboundSpec{Common: connector.Common{Name: "Contoso Bank", ConnectorType: connector.Partner},
		RecipientDomains: []string{"contosobank.com"}, SmartHosts: []string{bank.Addr}})
	flow := startMailFlow(t, st, ca)

	b := newTab(t, srv.url)
	b.signIn(adminEmail, password, "/connectors")
	b.clickOK(`nav a[href="/queue"]`, "open the queue")
	b.wantText("main", "Nothing is waiting")
	row := `tr[data-connector="Exchange on-premises"]`

	// Hold: mail is accepted and queued, counted as held, not delivered.
	// A connector's row appears with its first waiting mail: one message
	// waits (the mailbox server is down) when the admin holds it.
	mailboxes.Stop()
	first := flow.queued("before the hold", "alice@contosobank.com", "kim@contoso.com")
	waitFor(t, "the first message deferred", func() bool { return recipientStatus(t, st, first) == "deferred" })
	mailboxes.Start()
	b.open("/queue")
	b.clickOK(row+` button[aria-label="Hold Exchange on-premises"]`, "hold the connector")
	b.wantText(".notice", `Connector "Exchange on-premises" is on hold`)
	b.wantText(row, "held")
	held := []string{
		flow.queued("held one", "alice@contosobank.com", "kim@contoso.com"),
		flow.queued("held two", "bob@contosobank.com", "ap@contoso.com", "ar@contoso.com"),
	}
	time.Sleep(time.Second)
	b.open("/queue")
	if got := b.text(row + ` td[data-count="held"]`); got != "4" {
		b.fatalf("held count %q, want 4 (the deferred recipient and the three new ones)", got)
	}
	if got := b.text(row + ` td[data-count="queued"]`); got != "0" {
		b.fatalf("queued count %q, want 0 while held", got)
	}
	if n := len(mailboxes.Messages()); n != 0 {
		b.fatalf("%d messages delivered through a held connector", n)
	}
	b.wantNoSideScroll()
	b.shot("queue-held")
	b.clickOK(row+` button[aria-label="Release Exchange on-premises"]`, "release the connector")
	b.wantText(".notice", "is released")
	mailboxes.Wait(t, 3, 10*time.Second)
	for _, uid := range append(held, first) {
		waitFor(t, uid+" delivered", func() bool { return recipientStatus(t, st, uid) == "delivered" })
	}
	b.open("/queue")
	b.wantText("main", "Nothing is waiting")

	// Re-route: the smart host moved; the deferred mail goes to the new one.
	mailboxes.Stop()
	moved := flow.queued("after the move", "alice@contosobank.com", "kim@contoso.com")
	waitFor(t, "deferred at the old smart host", func() bool { return recipientStatus(t, st, moved) == "deferred" })
	newHost := testutil.NewSink(t, testutil.SinkOptions{})
	spec.SmartHosts = []string{newHost.Addr}
	if _, err := st.UpdateConnector(ctx, admin, exchange, spec, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.MarkValidated(ctx, admin, connector.Outbound, exchange, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Activate(ctx, admin, connector.Outbound, exchange, 2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the live index reloads
	b.open("/queue")
	b.wantText(row+" .queue-hop", newHost.Addr)
	if got := b.text(row + ` td[data-count="deferred"]`); got != "1" {
		b.fatalf("deferred count %q, want 1", got)
	}
	b.wantText(row, "connection refused")
	b.clickOK(row+` button[aria-label="Re-route the mail of Exchange on-premises"]`, "re-route")
	b.wantText(".notice", "1 waiting recipient was re-routed")
	waitFor(t, "delivered at the new smart host", func() bool { return len(withSubject(newHost, "after the move")) == 1 })

	// Retry, bounce and delete deferred messages.
	newHost.Stop()
	retry := flow.queued("retry me", "alice@contosobank.com", "kim@contoso.com")
	bounce := flow.queued("bounce me", "carol@contosobank.com", "kim@contoso.com")
	del := flow.queued("delete me", "dave@contosobank.com", "kim@contoso.com")
	for _, uid := range []string{retry, bounce, del} {
		waitFor(t, uid+" deferred", func() bool { return recipientStatus(t, st, uid) == "deferred" })
	}
	newHost.Start()
	b.open("/queue?connector=" + strconv.FormatInt(exchange, 10))
	if n := len(b.rows("table.queue-messages tbody tr")); n != 3 {
		b.fatalf("%d waiting messages listed, want 3", n)
	}
	b.shot("queue-deferred")
	b.clickOK(`tr[data-uid="`+retry+`"] button[aria-label="Retry message `+retry+` now"]`, "retry now")
	b.wantText(".notice", "is being tried now")
	waitFor(t, "the retried message arrives", func() bool { return len(withSubject(newHost, "retry me")) == 1 })

	b.clickOK(`tr[data-uid="`+bounce+`"] a[aria-label="Bounce message `+bounce+`"]`, "bounce")
	b.wantText("h1", "Return message "+bounce+" to its sender?")
	b.shot("queue-bounce-confirm")
	b.clickOK(`form button.danger`, "confirm the bounce")
	b.wantPath(`/trace/` + bounce)
	b.wantText("h1", "bounced")
	waitFor(t, "the DSN reaches the sender's server", func() bool {
		for _, m := range bank.Messages() {
			if len(m.To) == 1 && m.To[0] == "carol@contosobank.com" && m.From == "" && strings.Contains(m.Data, "multipart/report") &&
				strings.Contains(m.Data, "returned to the sender by the mail administrator") {
				return true
			}
		}
		return false
	})

	b.open("/queue?connector=" + strconv.FormatInt(exchange, 10))
	b.clickOK(`tr[data-uid="`+del+`"] a[aria-label="Delete message `+del+`"]`, "delete")
	b.wantText("h1", "Delete message "+del+"?")
	b.clickOK(`form button.danger`, "confirm the delete")
	b.wantText(".notice", "was deleted; no DSN was sent")
	b.wantAbsent(`tr[data-uid="`+del+`"]`, "the message was deleted")
	time.Sleep(time.Second)
	if n := len(withSubject(newHost, "delete me")); n != 0 {
		b.fatalf("the deleted message arrived (%d)", n)
	}
	for _, m := range bank.Messages() {
		if len(m.To) == 1 && m.To[0] == "dave@contosobank.com" {
			b.fatalf("a DSN went to the deleted message's sender")
		}
	}
	if n := len(withSubject(newHost, "bounce me")); n != 0 {
		b.fatalf("the bounced message was delivered (%d)", n)
	}
	b.open("/audit")
	b.wantText("main", "deleted message "+del+" from the queue without a DSN")
}

// recipientStatus is the status of a message's (first) recipient.
func recipientStatus(t *testing.T, st *store.Store, uid string) string {
	t.Helper()
	var s string
	if err := st.DB().Raw(`SELECT r.status FROM message_recipients r JOIN messages m ON m.id = r.message_id WHERE m.uid = ? ORDER BY r.id LIMIT 1`, uid).Scan(&s).Error; err != nil {
		t.Fatal(err)
	}
	return s
}
