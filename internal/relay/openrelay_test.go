package relay_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/testutil"
)

// SPEC 3.3: never an open relay. Every address trick is tried from an
// unidentified client, from a client attributed to a partner connector and
// from the organization's own server (with senders outside the accepted
// domains), and no recipient outside the accepted domains may ever get a
// 250 or end up queued.

const (
	relayTarget   = "nmap.scanme.org"  // an Internet domain the relay must not relay to
	relayHostname = "gw.flowgate.test" // the harness relay's own name
	relayIP       = "127.0.0.1"        // the harness relay's address
)

type relayAttempt struct{ from, to string }

// nmapOpenRelayTests are the 16 MAIL FROM / RCPT TO combinations of nmap's
// smtp-open-relay.nse, in the script's order: domain is the script's
// "domain" (the Internet target), srv its "srvname" (the name the server
// greets with) and ip its "ip" (the server's address).
func nmapOpenRelayTests(domain, srv, ip string) []relayAttempt {
	const from, to = "antispam", "relaytest"
	lit := "[" + ip + "]"
	return []relayAttempt{
		{"", to + "@" + domain},
		{from + "@" + domain, to + "@" + domain},
		{from + "@" + srv, to + "@" + domain},
		{from + "@" + lit, to + "@" + domain},
		{from + "@" + lit, to + "%" + domain + "@" + lit},
		{from + "@" + lit, to + "%" + domain + "@" + srv},
		{from + "@" + lit, `"` + to + "@" + domain + `"`},
		{from + "@" + lit, `"` + to + "%" + domain + `"`},
		{from + "@" + lit, to + "@" + domain + "@" + lit},
		{from + "@" + lit, `"` + to + "@" + domain + `"@` + lit},
		{from + "@" + lit, to + "@" + domain + "@" + srv},
		{from + "@" + lit, "@" + lit + ":" + to + "@" + domain},
		{from + "@" + lit, "@" + srv + ":" + to + "@" + domain},
		{from + "@" + lit, domain + "!" + to},
		{from + "@" + lit, domain + "!" + to + "@" + lit},
		{from + "@" + lit, domain + "!" + to + "@" + srv},
	}
}

// relayTricks are the address tricks of SPEC 3.3 beyond nmap's list, with
// contoso.com (an accepted domain) on the right wherever a next hop might
// honour what is on the left.
func relayTricks() []relayAttempt {
	const s = "antispam@[" + relayIP + "]"
	tos := []string{
		// trailing dots, case, IP literals
		"relaytest@nmap.scanme.org.",
		"relaytest@NMAP.SCANME.ORG",
		"relaytest@NMAP.scanme.org.",
		"relaytest@nmap.scanme.org..",
		"relaytest@[127.0.0.1]",
		"user@[192.0.2.1]",
		"relaytest@[IPv6:::1]",
		"relaytest@[IPv6:2001:db8::1]",
		"relaytest@[contoso.com]",
		// %-hack and bang paths with an accepted domain on the right
		"user%nmap.scanme.org@contoso.com",
		"user%nmap.scanme.org@CONTOSO.COM.",
		"user%nmap.scanme.org%contoso.com@contoso.com",
		"user%[192.0.2.1]@contoso.com",
		"nmap.scanme.org!user@contoso.com",
		"contoso.com!nmap.scanme.org!user@contoso.com",
		"user!nmap.scanme.org@contoso.com",
		// source routes: ignored, so the mailbox decides
		"@contoso.com:relaytest@nmap.scanme.org",
		"@contoso.com,@gw.flowgate.test:relaytest@nmap.scanme.org",
		"@[127.0.0.1]:relaytest@nmap.scanme.org.",
		// quoted local parts containing @, % or !
		`"relaytest@nmap.scanme.org"@contoso.com`,
		`"relaytest%nmap.scanme.org"@contoso.com`,
		`"nmap.scanme.org!relaytest"@contoso.com`,
		`"relaytest\@nmap.scanme.org"@contoso.com`,
		`"relaytest@nmap.scanme.org@"@contoso.com`,
		`"@nmap.scanme.org:relaytest"@contoso.com`,
		// double @
		"relaytest@nmap.scanme.org@contoso.com",
		"relaytest@contoso.com@nmap.scanme.org",
		"relaytest@@contoso.com",
		// (a NUL byte: see TestNULAndNonUTF8BytesLoseNothing)
		// look-alike domains
		"relaytest@sub.contoso.com",
		"relaytest@contoso.com.nmap.scanme.org",
		"relaytest@nmap.scanme.org%contoso.com",
		"relaytest@contoso.com%nmap.scanme.org",
		"relaytest@nmap\u3002scanme\u3002org",
		"relaytest@gw.flowgate.test",
		"relaytest@localhost",
		"postmaster@nmap.scanme.org",
	}
	var out []relayAttempt
	for _, to := range tos {
		out = append(out, relayAttempt{s, to})
	}
	return append(out,
		relayAttempt{"", "user%nmap.scanme.org@contoso.com"},
		relayAttempt{"", "@contoso.com:relaytest@nmap.scanme.org"},
		relayAttempt{"", "relaytest@[127.0.0.1]"},
		relayAttempt{"", "relaytest@nmap.scanme.org."},
		// A sender in an accepted domain does not make an outsider internal.
		relayAttempt{"antispam@contoso.com", "relaytest@nmap.scanme.org"},
		relayAttempt{"antispam@CONTOSO.COM.", "relaytest@nmap.scanme.org"},
		relayAttempt{"antispam@contoso.com", "user%nmap.scanme.org@contoso.com"},
	)
}

// senderTricks are envelope senders that must not count as an accepted
// sender domain when the organization's own server relays.
func senderTricks() []relayAttempt {
	froms := []string{
		"",
		"antispam@[127.0.0.1]",
		"antispam@" + relayHostname,
		"antispam@sub.contoso.com",
		"antispam@contoso.com.nmap.scanme.org",
		"@contoso.com:antispam@nmap.scanme.org",
		`"antispam@contoso.com"@nmap.scanme.org`,
		"antispam@contoso.com@nmap.scanme.org",
		"antispam%contoso.com@nmap.scanme.org",
		"contoso.com!antispam@nmap.scanme.org",
		"antispam@[contoso.com]",
	}
	var out []relayAttempt
	for _, f := range froms {
		out = append(out, relayAttempt{f, "relaytest@nmap.scanme.org"})
	}
	return out
}

// relayLegit are recipients that must still be accepted, with the address
// they are queued under.
var relayLegit = []struct{ to, queued string }{
	{"john@contoso.com", "john@contoso.com"},
	{"John@CONTOSO.COM.", "John@contoso.com"},
	{"@relay.test:john@contoso.com", "john@contoso.com"},
	{"@relay.test,@nmap.scanme.org:john@contoso.com", "john@contoso.com"},
}

func TestNeverAnOpenRelay(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			h := newHarness(t, e, manyErrors) // every attack in one session
			h.acceptedDomain("contoso.com")
			h.activeConnector(&connector.InboundSpec{Common: partner("Partner by IP"), SenderIPAddresses: []string{"127.0.0.100"}, RequireTLS: true})
			h.activeConnector(&connector.InboundSpec{Common: connector.Common{Name: "Our server", ConnectorType: connector.OnPremises},
				SenderIPAddresses: []string{"127.0.0.101"}})

			attacks := nmapOpenRelayTests(relayTarget, relayHostname, relayIP)
			if len(attacks) != 16 {
				t.Fatalf("nmap's list has 16 tests, got %d", len(attacks))
			}
			// The same 16 with the accepted domain as the script's srvname:
			// relaytest%nmap.scanme.org@contoso.com and friends.
			attacks = append(attacks, nmapOpenRelayTests(relayTarget, "contoso.com", relayIP)...)
			attacks = append(attacks, relayTricks()...)

			queued := 0
			for _, tc := range []struct {
				name      string
				src       string
				tls       bool
				connector string
				attempts  []relayAttempt
			}{
				{"unidentified client", "127.0.0.99", false, "", attacks},
				{"unidentified client over TLS", "127.0.0.98", true, "", attacks},
				{"partner connector by IP with TLS", "127.0.0.100", true, "Partner by IP", attacks},
				// The own server relays only for accepted sender domains: every
				// sender here is outside them, so nothing may relay.
				{"on_premises connector with foreign senders", "127.0.0.101", false, "Our server",
					append(nmapOpenRelayTests(relayTarget, relayHostname, relayIP), senderTricks()...)},
			} {
				t.Run(tc.name, func(t *testing.T) {
					tag := strings.NewReplacer(" ", "-", "_", "-").Replace(tc.name)
					c := gwSession(t, h, tc.src, "probe."+tag+".test", tc.tls, nil)
					for i, a := range tc.attempts {
						tryRelay(t, h, c, fmt.Sprintf("probe%d.%s.test", i, tag), a, tc.connector)
					}

					// Every trick in one transaction next to a legitimate
					// recipient: only the legitimate one is queued.
					from := "antispam@[" + relayIP + "]"
					if code, text := c.cmd("MAIL FROM:<%s>", from); code != 250 {
						t.Fatalf("MAIL FROM:<%s>: %d %s", from, code, text)
					}
					var legit []string
					for i, a := range tc.attempts {
						if code, text := c.cmd("RCPT TO:<%s>", a.to); code == 250 {
							t.Errorf("OPEN RELAY: RCPT TO:<%s> accepted in a mixed transaction: %s", a.to, text)
						}
						if i%10 == 0 {
							l := relayLegit[(i/10)%len(relayLegit)]
							gwExpect(t, "RCPT TO:<"+l.to+">", 250, "2.0.0")(c.cmd("RCPT TO:<%s>", l.to))
							legit = append(legit, l.queued)
						}
					}
					uid := c.data(t, "Subject: mixed\r\n\r\nhello\r\n")
					queued++
					if got := gwRecipientsOf(t, h, uid); !equalSorted(got, legit) {
						t.Errorf("message %s queued for %q, want only %q", uid, got, legit)
					}
					if tc.connector != "" {
						if tr := gwTraceByUID(t, h, uid); tr.InboundConnector != tc.connector {
							t.Errorf("mixed message attributed to %q, want %q", tr.InboundConnector, tc.connector)
						}
					}

					// Legitimate recipients are still accepted, one message each.
					for _, l := range relayLegit {
						if code, text := c.cmd("MAIL FROM:<antispam@[%s]>", relayIP); code != 250 {
							t.Fatalf("MAIL FROM: %d %s", code, text)
						}
						gwExpect(t, "RCPT TO:<"+l.to+">", 250, "2.0.0")(c.cmd("RCPT TO:<%s>", l.to))
						uid := c.data(t, "Subject: legit\r\n\r\nhello\r\n")
						queued++
						if got := gwRecipientsOf(t, h, uid); len(got) != 1 || got[0] != l.queued {
							t.Errorf("RCPT TO:<%s> queued as %q, want %q", l.to, got, l.queued)
						}
					}
					c.quit()
				})
			}

			// Nothing outside the accepted domain was ever queued or traced as
			// a recipient.
			for _, r := range gwAllRecipients(t, h) {
				local, domain, ok := strings.Cut(r.Address, "@")
				if !ok || strings.Contains(domain, "@") || domain != "contoso.com" || connector.CheckLocalPart(local) != nil {
					t.Errorf("message %s (%s) has recipient %q outside contoso.com", r.UID, r.Status, r.Address)
				}
			}
			if n := gwCountQueued(t, h); n != queued {
				t.Errorf("%d messages queued, want %d", n, queued)
			}
		})
	}
}

// tryRelay runs one attempt in its own transaction and checks that the
// recipient is refused and, when the relay refused it, that the abandoned
// transaction is traced as rejected with 5.7.64.
func tryRelay(t *testing.T, h *harness, c *lineClient, helo string, a relayAttempt, wantConnector string) {
	t.Helper()
	// EHLO resets the transaction and names it in the trace.
	gwExpect(t, "EHLO "+helo, 250, "")(c.cmd("EHLO %s", helo))
	code, text := c.cmd("MAIL FROM:<%s>", a.from)
	if code != 250 {
		// A sender refused outright relays nothing either.
		if code/100 != 5 {
			t.Errorf("MAIL FROM:<%s>: %d %s, want 250 or a permanent refusal", a.from, code, text)
		}
		c.cmd("RSET")
		return
	}
	code, text = c.cmd("RCPT TO:<%s>", a.to)
	switch {
	case code == 250:
		t.Errorf("OPEN RELAY: MAIL FROM:<%s> RCPT TO:<%s> accepted: %s", a.from, a.to, text)
	case code/100 != 5:
		t.Errorf("MAIL FROM:<%s> RCPT TO:<%s>: %d %s, want a permanent refusal", a.from, a.to, code, text)
	case code == 550 && !strings.Contains(text, "5.7.64"):
		t.Errorf("MAIL FROM:<%s> RCPT TO:<%s>: %q, want 550 5.7.64", a.from, a.to, text)
	}
	if dc, dt := c.cmd("DATA"); dc == 354 {
		t.Errorf("DATA accepted after RCPT TO:<%s> was refused: %s", a.to, dt)
		c.write("Subject: relayed\r\n\r\nrelayed\r\n.\r\n")
		c.read()
	}
	gwExpect(t, "RSET", 250, "")(c.cmd("RSET"))

	// Every refusal is traced with the reply the client got: the relay's
	// own (550 5.7.64, 501 5.1.3) and go-smtp's parser's (501 5.5.x, which
	// reach the session through the patched go-smtp's RefusalObserver).
	tr := gwTraceByHelo(t, h, helo)
	if tr.Status != "rejected" || tr.Reply != text {
		t.Errorf("attempt %s -> %s (refused %d %s) traced as %q %q, want rejected with that reply", a.from, a.to, code, text, tr.Status, tr.Reply)
	}
	want := a.from
	if strings.HasPrefix(want, "@") { // a source route is ignored
		want = want[strings.IndexByte(want, ':')+1:]
	}
	if !strings.EqualFold(strings.TrimSuffix(tr.Sender, "."), strings.TrimSuffix(want, ".")) {
		t.Errorf("attempt %s -> %s traced with sender %q", a.from, a.to, tr.Sender)
	}
	if tr.InboundConnector != wantConnector {
		t.Errorf("attempt %s -> %s traced with connector %q, want %q", a.from, a.to, tr.InboundConnector, wantConnector)
	}
}

// A refused relay attempt that the client abandons with EHLO (which resets
// the transaction) is traced with the HELO it was made under, not the next one.
func TestAbandonedTransactionTracedWithItsHelo(t *testing.T) {
	h := newHarness(t, testutil.Engines[0], nil)
	h.acceptedDomain("contoso.com")
	c := gwSession(t, h, "127.0.0.97", "first.client.test", false, nil)
	gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<antispam@first.client.test>"))
	gwExpect(t, "RCPT", 550, "5.7.64")(c.cmd("RCPT TO:<relaytest@nmap.scanme.org>"))
	gwExpect(t, "EHLO", 250, "")(c.cmd("EHLO second.client.test"))
	c.quit()
	tr := gwTraceBySender(t, h, "antispam@first.client.test")
	var helo string
	if err := h.st.DB().Raw(`SELECT helo FROM messages WHERE uid = ?`, tr.UID).Row().Scan(&helo); err != nil {
		t.Fatal(err)
	}
	if helo != "first.client.test" {
		t.Errorf("the relay attempt made after EHLO first.client.test is traced with HELO %q", helo)
	}
}

// Client-supplied text with a NUL byte or bytes that are not UTF-8 (HELO,
// Message-ID, an address the relay refuses) must neither lose a legitimate
// message nor the trace of a refused one, on either engine (PostgreSQL
// text holds neither).
func TestNULAndNonUTF8BytesLoseNothing(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			h := newHarness(t, e, nil)
			h.acceptedDomain("contoso.com")
			t.Run("HELO", func(t *testing.T) {
				c := gwSession(t, h, "127.0.0.96", "nul\x00helo.client.test", false, nil)
				gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<nulhelo@fabrikam.test>"))
				gwExpect(t, "RCPT", 250, "")(c.cmd("RCPT TO:<john@contoso.com>"))
				gwExpect(t, "end of DATA", 250, "2.0.0")(c.dataReply(t, "Subject: nul helo\r\n\r\nhello\r\n"))
			})
			t.Run("HELO not UTF-8", func(t *testing.T) {
				c := gwSession(t, h, "127.0.0.96", "\xff\xfe.client.test", false, nil)
				gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<badhelo@fabrikam.test>"))
				gwExpect(t, "RCPT", 250, "")(c.cmd("RCPT TO:<john@contoso.com>"))
				gwExpect(t, "end of DATA", 250, "2.0.0")(c.dataReply(t, "Subject: latin-1 helo\r\n\r\nhello\r\n"))
			})
			t.Run("Message-ID", func(t *testing.T) {
				c := gwSession(t, h, "127.0.0.96", "nulmsgid.client.test", false, nil)
				gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<nulmsgid@fabrikam.test>"))
				gwExpect(t, "RCPT", 250, "")(c.cmd("RCPT TO:<john@contoso.com>"))
				gwExpect(t, "end of DATA", 250, "2.0.0")(c.dataReply(t, "Subject: nul message-id\r\nMessage-ID: <a\x00b@client.test>\r\n\r\nhello\r\n"))
			})
			t.Run("refused recipient", func(t *testing.T) {
				c := gwSession(t, h, "127.0.0.96", "nulrcpt.client.test", false, nil)
				gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<nulrcpt@fabrikam.test>"))
				code, text := c.cmd("RCPT TO:<relaytest@nmap.scanme.org\x00@contoso.com>")
				if code/100 != 5 {
					t.Fatalf("RCPT with a NUL: %s", text)
				}
				c.quit()
				gwExpectRejected(t, h, "nulrcpt.client.test", "550 5.7.64")
			})
			t.Run("refused recipient next to an accepted one", func(t *testing.T) {
				c := gwSession(t, h, "127.0.0.96", "nulmixed.client.test", false, nil)
				gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<nulmixed@fabrikam.test>"))
				if code, text := c.cmd("RCPT TO:<relaytest@nmap.scanme.org\x00@contoso.com>"); code/100 != 5 {
					t.Fatalf("RCPT with a NUL: %s", text)
				}
				gwExpect(t, "RCPT", 250, "")(c.cmd("RCPT TO:<john@contoso.com>"))
				gwExpect(t, "end of DATA", 250, "2.0.0")(c.dataReply(t, "Subject: mixed\r\n\r\nhello\r\n"))
			})
			t.Run("refused sender", func(t *testing.T) {
				c := gwSession(t, h, "127.0.0.96", "nulsender.client.test", false, nil)
				gwExpect(t, "MAIL with a NUL", 501, "5.1.7")(c.cmd("MAIL FROM:<nul\x00sender@fabrikam.test>"))
				c.quit()
				gwExpectRejected(t, h, "nulsender.client.test", "501 5.1.7")
			})
		})
	}
}

// Refused relay attempts are traced through the same group commit as
// accepted mail: one client's refused attempts (here with a NUL byte in
// the address) must not make other clients' legitimate messages fail.
func TestRefusedAttemptsDoNotFailOtherMessages(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			h := newHarness(t, e, manyErrors) // 1000 refused attempts in one session
			h.acceptedDomain("contoso.com")
			stop := make(chan struct{})
			done := make(chan struct{})
			underway := make(chan struct{})
			attacker := gwSession(t, h, "127.0.0.120", "attacker.client.test", false, nil)
			// A burst of 1000 refused attempts, 20 per write, as fast as the
			// relay answers them.
			go func() {
				defer close(done)
				var b strings.Builder
				for range 20 {
					b.WriteString("MAIL FROM:<x@fabrikam.test>\r\nRCPT TO:<a\x00@nmap.scanme.org>\r\nRSET\r\n")
				}
				for round := range 50 {
					if round == 5 {
						close(underway)
					}
					select {
					case <-stop:
						return
					default:
					}
					_ = attacker.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
					if _, err := io.WriteString(attacker.conn, b.String()); err != nil {
						return
					}
					for range 60 {
						if _, _, err := attacker.readReply(30 * time.Second); err != nil {
							return
						}
					}
				}
			}()
			select {
			case <-underway:
			case <-done:
				t.Fatal("the attacking session ended early")
			}
			c := gwSession(t, h, "127.0.0.121", "legit.client.test", false, nil)
			failed := 0
			for range 3 {
				gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<alice@fabrikam.test>"))
				gwExpect(t, "RCPT", 250, "")(c.cmd("RCPT TO:<john@contoso.com>"))
				gwExpect(t, "DATA", 354, "")(c.cmd("DATA"))
				c.write("Subject: legit\r\n\r\nhello\r\n.\r\n")
				code, text, err := c.readReply(60 * time.Second)
				if err != nil {
					t.Fatalf("end of DATA: %v", err)
				}
				if code != 250 {
					failed++
					t.Logf("legitimate message refused: %s", text)
				}
			}
			close(stop)
			<-done
			if failed > 0 {
				t.Errorf("%d of 3 legitimate messages refused while another client's relay attempts were being traced", failed)
			}
		})
	}
}

// ---- helpers shared by openrelay_test.go and limits_test.go ----

// lineClient is a line-level SMTP client whose reads can also report an
// error instead of failing the test (for closed connections and timeouts).
type lineClient struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
}

// gwConnect dials from src and reads the greeting without judging it.
func gwConnect(t testing.TB, h *harness, src string) (*lineClient, int, string) {
	t.Helper()
	c := &lineClient{t: t, conn: testutil.DialFrom(t, src, h.addr)}
	c.br = bufio.NewReader(c.conn)
	t.Cleanup(func() { c.conn.Close() })
	code, text, err := c.readReply(10 * time.Second)
	if err != nil {
		t.Fatalf("greeting from %s: %v", src, err)
	}
	return c, code, text
}

// gwSession opens a session: greeting 220, EHLO helo, and STARTTLS + EHLO
// when asked.
func gwSession(t testing.TB, h *harness, src, helo string, useTLS bool, cert *tls.Certificate) *lineClient {
	t.Helper()
	c, code, text := gwConnect(t, h, src)
	if code != 220 {
		t.Fatalf("greeting from %s: %d %s", src, code, text)
	}
	gwExpect(t, "EHLO", 250, "")(c.cmd("EHLO %s", helo))
	if useTLS {
		cfg := &tls.Config{RootCAs: h.ca.Pool(), ServerName: relayHostname}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		c.startTLS(cfg)
		gwExpect(t, "EHLO after STARTTLS", 250, "")(c.cmd("EHLO %s", helo))
	}
	return c
}

func (c *lineClient) readReply(timeout time.Duration) (int, string, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	var lines []string
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			return 0, strings.Join(lines, "\n"), err
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			var code int
			fmt.Sscanf(line, "%d", &code)
			return code, strings.Join(lines, "\n"), nil
		}
	}
}

func (c *lineClient) read() (int, string) {
	c.t.Helper()
	code, text, err := c.readReply(10 * time.Second)
	if err != nil {
		c.t.Fatalf("read reply: %v (so far %q)", err, text)
	}
	return code, text
}

func (c *lineClient) write(s string) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *lineClient) cmd(format string, args ...any) (int, string) {
	c.t.Helper()
	c.write(fmt.Sprintf(format, args...) + "\r\n")
	return c.read()
}

func (c *lineClient) startTLS(cfg *tls.Config) {
	c.t.Helper()
	gwExpect(c.t, "STARTTLS", 220, "")(c.cmd("STARTTLS"))
	tc := tls.Client(c.conn, cfg)
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	_ = tc.SetDeadline(time.Time{})
	c.conn = tc
	c.br = bufio.NewReader(tc)
}

// data sends DATA and the content (which must end with CRLF) and returns
// the queue id of the accepted message.
func (c *lineClient) data(t testing.TB, content string) string {
	t.Helper()
	gwExpect(t, "DATA", 354, "")(c.cmd("DATA"))
	c.write(content + ".\r\n")
	code, text := c.read()
	if code != 250 {
		t.Fatalf("end of DATA: %d %s", code, text)
	}
	return uidOf(t, text)
}

// dataReply sends DATA and the content and returns the final reply.
func (c *lineClient) dataReply(t testing.TB, content string) (int, string) {
	t.Helper()
	gwExpect(t, "DATA", 354, "")(c.cmd("DATA"))
	c.write(content + ".\r\n")
	return c.read()
}

func (c *lineClient) quit() {
	c.t.Helper()
	c.cmd("QUIT")
	c.conn.Close()
}

// expectClosed waits for the server to close the connection.
func (c *lineClient) expectClosed(t testing.TB) {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(c.br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection is still open (read %q)", rest)
	}
	if len(rest) > 0 {
		t.Errorf("unexpected data before the close: %q", rest)
	}
}

// gwExpect checks a reply: its code, and that its last line carries the
// enhanced status code enh right after the code (when enh is not empty).
func gwExpect(t testing.TB, what string, wantCode int, enh string) func(int, string) {
	return func(code int, text string) {
		t.Helper()
		last := text[strings.LastIndexByte(text, '\n')+1:]
		if code != wantCode || enh != "" && !strings.HasPrefix(last, fmt.Sprintf("%d %s ", wantCode, enh)) {
			t.Fatalf("%s: got %q, want %d %s", what, text, wantCode, enh)
		}
	}
}

// gwTraces returns the trace rows matching where, once everything the
// relay handed to the queue writer so far (traces of refused messages are
// written without waiting) has been committed or has failed.
func gwTraces(t testing.TB, h *harness, where string, arg any) []traceRow {
	t.Helper()
	// The session traces a refused transaction when it ends (QUIT or
	// close), which the server may not have handled yet: poll.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := h.q.Sync(ctx)
		cancel()
		if err != nil {
			t.Fatalf("queue writer sync: %v", err)
		}
		var rows []traceRow
		err = h.st.DB().Raw(`SELECT uid, status, client_ip, tls_version, tls_cipher, client_cert, sender, inbound_connector,
			attribution, reply, message_id_header, size FROM messages WHERE `+where+` ORDER BY id`, arg).Scan(&rows).Error
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) > 0 {
			return rows
		}
		if time.Now().After(deadline) {
			t.Fatalf("no trace row where %s (%v)", where, arg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// gwTraceByHelo returns the one trace row of the transaction made under helo.
func gwTraceByHelo(t testing.TB, h *harness, helo string) traceRow {
	t.Helper()
	rows := gwTraces(t, h, "helo = ?", helo)
	if len(rows) != 1 {
		t.Fatalf("%d trace rows for HELO %q, want 1: %+v", len(rows), helo, rows)
	}
	return rows[0]
}

func gwTraceBySender(t testing.TB, h *harness, sender string) traceRow {
	t.Helper()
	rows := gwTraces(t, h, "sender = ?", sender)
	if len(rows) != 1 {
		t.Fatalf("%d trace rows for sender %q, want 1: %+v", len(rows), sender, rows)
	}
	return rows[0]
}

func gwTraceByUID(t testing.TB, h *harness, uid string) traceRow {
	t.Helper()
	return gwTraces(t, h, "uid = ?", uid)[0]
}

// gwExpectRejected checks that the transaction made under helo is traced
// as rejected with the reply wantReply ("552 5.3.4").
func gwExpectRejected(t testing.TB, h *harness, helo, wantReply string) {
	t.Helper()
	tr := gwTraceByHelo(t, h, helo)
	if tr.Status != "rejected" || !strings.HasPrefix(tr.Reply, wantReply) {
		t.Errorf("trace of %s: status %q reply %q, want rejected with %q", helo, tr.Status, tr.Reply, wantReply)
	}
}

type recipientRow struct{ UID, Status, Address string }

func gwAllRecipients(t testing.TB, h *harness) []recipientRow {
	t.Helper()
	var rows []recipientRow
	if err := h.st.DB().Raw(`SELECT m.uid, m.status, r.address FROM message_recipients r JOIN messages m ON m.id = r.message_id ORDER BY r.id`).Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	return rows
}

func gwRecipientsOf(t testing.TB, h *harness, uid string) []string {
	t.Helper()
	var out []string
	if err := h.st.DB().Raw(`SELECT r.address FROM message_recipients r JOIN messages m ON m.id = r.message_id WHERE m.uid = ? ORDER BY r.id`, uid).Scan(&out).Error; err != nil {
		t.Fatal(err)
	}
	return out
}

func gwCountQueued(t testing.TB, h *harness) int {
	t.Helper()
	var n int64
	if err := h.st.DB().Raw(`SELECT count(*) FROM messages WHERE status = 'queued'`).Row().Scan(&n); err != nil {
		t.Fatal(err)
	}
	return int(n)
}

func equalSorted(a, b []string) bool {
	a, b = append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(a)
	sort.Strings(b)
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}
