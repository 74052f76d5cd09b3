package browsertest

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/testutil"
)

// pick chooses the option value of a select.
func (b *tab) pick(sel, value string) {
	b.t.Helper()
	b.mustExist(sel)
	if err := chromedp.Do(b.ctx, chromedp.SetValue(chromedp.CSS(sel), value)); err != nil {
		b.fatalf("choose %s in %s: %v", value, sel, err)
	}
	b.wantValue(sel, value)
}

// seedTrace records messages in the trace as the relay does when it
// accepts them (queued, with their header sections kept for previews):
// one for each recipient and header section.
func (s *server) seedTrace(t *testing.T, msgs ...[2]string) {
	t.Helper()
	w := queue.NewWriter(s.st, slog.New(slog.DiscardHandler))
	defer w.Close()
	for i, m := range msgs {
		rcpt, header := m[0], m[1]
		content := []byte(header + "\r\nHello\r\n")
		msg := &queue.Message{
			UID: queue.NewUID(), ReceivedAt: time.Now().Add(-time.Duration(len(msgs)-i) * time.Minute), Status: queue.Queued,
			ClientIP: "203.0.113.5", Helo: "mail.contoso.com", Sender: "alice@contoso.com",
			ExpiresAt:  time.Now().Add(24 * time.Hour),
			Recipients: []queue.Recipient{{Address: rcpt, Status: queue.Queued}},
			Header:     queue.HeaderSection(content), Body: content, Size: int64(len(content)),
		}
		if err := w.Enqueue(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRulesInTheBrowser: from a rule-scoped connector marked unused to a
// rule for it: a field error next to its field, a preview over traced
// mail before saving, the save, a second rule moved above the first, and
// a deletion after its confirmation.
func TestRulesInTheBrowser(t *testing.T) {
	srv := startServer(t)
	srv.seedAdmin(t)
	gw := testutil.ActivateConnector(t, srv.st, &connector.OutboundSpec{
		Common:                connector.Common{Name: "Legal gateway", ConnectorType: connector.Partner},
		IsTransportRuleScoped: true, SmartHosts: []string{"gw.fabrikam.com"}, TLSSettings: connector.TLSOpportunistic,
	})
	gwID := strconv.FormatInt(gw, 10)
	srv.seedTrace(t,
		[2]string{"bob@fabrikam.com", "Subject: Contract\r\nX-Classification: Confidential\r\n"},
		[2]string{"ann@fabrikam.com", "Subject: Lunch\r\n"},
		[2]string{"joe@northwind.com", "Subject: Offer\r\nX-Classification: confidential\r\n"},
	)
	b := newTab(t, srv.url)
	b.signIn(adminEmail, password, "/connectors")

	// The rule-scoped connector is unused; its page starts a rule for it.
	b.wantText(`table.list tr:has(a[href="/connectors/outbound/`+gwID+`"]) .badge.unused`, "unused")
	b.shot("connectors-unused")
	b.clickOK(`a[href="/connectors/outbound/`+gwID+`"]`, "open the connector")
	b.wantText("#rules", "No mail flow rule routes to it.")
	b.shot("connector-rule-scoped")
	b.clickOK(`#rules a[href="/rules/new?connector=`+gwID+`"]`, "Create a rule for it")
	b.wantPath(`/rules/new\?connector=` + gwID)
	b.wantValue("#connector", gwID)
	b.wantChecked(`input[name=action][value=route]`, true)
	b.wantValue("#reject_code", "550")

	// A field error, next to its field, with what was typed kept.
	b.fill("#name", "Legal to the gateway")
	b.fill("#c_recipient_domain_is", "fabrikam.com\nfabrikam com")
	b.fill("#c_hc_header_0", "X-Classification")
	b.fill("#c_hc_words_0", "confidential, secret")
	// The exceptions are folded away until opened.
	b.wantAbsent("details.rule-exceptions[open]", "the new rule has no exceptions")
	if err := chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS("details.rule-exceptions > summary"))); err != nil {
		b.fatalf("open the exceptions: %v", err)
	}
	b.fill("#x_sender_address_is", "ceo@contoso.com")
	b.clickRefused(`button[name=nav][value=save]`, "Save with a bad domain")
	b.wantPath(`/rules/new`)
	b.wantFieldError("c_recipient_domain_is", "#c_recipient_domain_is", `Line 2: "fabrikam com" is not`)
	b.wantText("#rule-errors", "Fix the fields marked below")
	b.wantValue("#c_hc_words_0", "confidential, secret")
	b.wantValue("#x_sender_address_is", "ceo@contoso.com")
	b.wantValue("#connector", gwID)
	b.shot("rule-form-error")

	// Preview before saving: the draft would send bob's message, which
	// has the header, to the gateway; the form stays filled in.
	b.fill("#c_recipient_domain_is", "fabrikam.com")
	b.pick("#preview_since", "1h")
	b.clickRefused(`button[name=nav][value=preview]`, "Preview")
	b.wantPath(`/rules/new`)
	if h := js[string](b, `location.hash`); h != "#preview" {
		b.fatalf("the preview page is not at its preview: hash %q", h)
	}
	b.wantText("#preview-title", "Preview over the last hour")
	b.wantText("#preview-considered", "3")
	b.wantText("#preview-matched", "1")
	b.wantText("#preview-changed", "1")
	b.wantText("#preview-undecidable", "0")
	rows := b.rows("table.preview-changes tbody tr")
	if len(rows) != 1 || rows[0][1] != "bob@fabrikam.com" || rows[0][2] != "by MX" ||
		rows[0][3] != "“Legal gateway”, by the rule “Legal to the gateway”" || len(rows[0][0]) < 10 {
		b.fatalf("preview rows: %q", rows)
	}
	b.wantValue("#name", "Legal to the gateway")
	b.wantValue("#c_hc_header_0", "X-Classification")
	b.wantValue("#preview_since", "1h")
	b.shot("rule-preview")
	if list, _ := srv.st.ListRules(context.Background()); len(list) != 0 {
		b.fatalf("the preview saved the rule")
	}

	// Save: the list says what the rule does.
	b.clickOK(`button[name=nav][value=save]`, "Save the rule")
	b.wantPath(`/rules`)
	b.wantText(".notice", "Created the mail flow rule “Legal to the gateway” at priority 0.")
	b.wantText("td.rule-summary", "the recipient domain is fabrikam.com and the header X-Classification contains confidential or secret → route to “Legal gateway”; except when the sender is ceo@contoso.com")

	// A second rule, rejecting large mail, added last; then moved up.
	b.clickOK(`a[href="/rules/new"]`, "New rule")
	b.fill("#name", "No huge mail")
	b.fill("#c_message_size_over", "52428800")
	b.choose("action", "reject")
	b.fill("#reject_text", "Message too large for this organization")
	b.tick("stop_processing", true)
	b.clickOK(`button[name=nav][value=save]`, "Save the second rule")
	order := func() []string {
		var names []string
		for _, r := range b.rows("table.rules tbody tr") {
			names = append(names, r[0]+" "+strings.SplitN(r[1], "\n", 2)[0])
		}
		return names
	}
	if got := strings.Join(order(), ", "); got != "0 Legal to the gateway, 1 No huge mail" {
		b.fatalf("rules before the move: %s", got)
	}
	b.clickOK(`button[aria-label="Move No huge mail up"]`, "Move up")
	b.wantText(".notice", "Moved “No huge mail” up: it runs at priority 0 now.")
	if got := strings.Join(order(), ", "); got != "0 No huge mail, 1 Legal to the gateway" {
		b.fatalf("rules after the move: %s", got)
	}
	b.wantText("table.rules tbody tr:first-child td.rule-summary", "the message is larger than 50 MB (52428800 bytes) → reject with “550 5.7.1 Message too large for this organization”, and stop processing more rules")
	b.shot("rules-list")

	// The connector is used now.
	b.open("/connectors")
	b.wantAbsent(".badge.unused", "a rule routes to the rule-scoped connector")

	// Delete, after a confirmation that says what the rule does.
	b.open("/rules")
	b.clickOK(`a[aria-label="Delete Legal to the gateway"]`, "Delete")
	b.wantText("h1", "Delete the mail flow rule “Legal to the gateway”?")
	b.wantText(".card", "Action: route to “Legal gateway”")
	b.wantText(".banner", "This rule is turned on and enforced")
	b.shot("rule-delete-confirm")
	b.clickOK(`button.danger`, "Delete rule")
	b.wantPath(`/rules`)
	b.wantText(".notice", "Deleted the mail flow rule “Legal to the gateway”.")
	if got := strings.Join(order(), ", "); got != "0 No huge mail" {
		b.fatalf("rules after the delete: %s", got)
	}
	if d := b.openedDialogs(); len(d) > 0 {
		b.fatalf("dialogs opened: %v", d)
	}
}
