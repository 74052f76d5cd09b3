package relay_test

import (
	"strings"
	"testing"
)

// RFC 5321 4.5.1: "<Postmaster>" without a domain is accepted, for the
// postmaster of the relay's accepted domain; with the domain it is an
// ordinary recipient.
func TestPostmasterWithoutDomainIsAccepted(t *testing.T) {
	h := limitsHarness(t, nil)
	c := gwSession(t, h, "127.0.0.91", "postmaster.client.test", false, nil)
	gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<alice@fabrikam.test>"))
	gwExpect(t, "RCPT TO:<Postmaster>", 250, "")(c.cmd("RCPT TO:<Postmaster>"))
	uid := c.data(t, "Subject: to the postmaster\r\n\r\nhello\r\n")
	var rcpts []string
	h.st.DB().Raw("SELECT r.address FROM message_recipients r JOIN messages m ON m.id = r.message_id WHERE m.uid = ?", uid).Scan(&rcpts)
	if len(rcpts) != 1 || !strings.EqualFold(rcpts[0], "postmaster@contoso.com") {
		t.Fatalf("recipients %q, want postmaster@contoso.com", rcpts)
	}
}
