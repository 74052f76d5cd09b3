package relay_test

import (
	"crypto/tls"
	"fmt"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/relay"
	"github.com/flowgate/flowgate/internal/testutil"
)

// SPEC 3.1 limits and SPEC 3.3 end-of-data smuggling, over real sessions.

func limitsHarness(t *testing.T, mod func(*relay.Config)) *harness {
	t.Helper()
	h := newHarness(t, testutil.Engines[0], mod)
	h.acceptedDomain("contoso.com")
	return h
}

// gwWaitSession dials from src until the relay greets with 220 (a slot is
// released when the server has processed the close of an earlier
// connection, which the client cannot observe directly).
func gwWaitSession(t *testing.T, h *harness, src, helo string) *lineClient {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, code, text := gwConnect(t, h, src)
		if code == 220 {
			gwExpect(t, "EHLO", 250, "")(c.cmd("EHLO %s", helo))
			return c
		}
		c.conn.Close()
		if time.Now().After(deadline) {
			t.Fatalf("no 220 greeting from %s within 5s; last: %s", src, text)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// gwSimpleMessage sends one small message and checks it is queued.
func gwSimpleMessage(t *testing.T, c *lineClient) string {
	t.Helper()
	gwExpect(t, "MAIL", 250, "2.0.0")(c.cmd("MAIL FROM:<alice@fabrikam.test>"))
	gwExpect(t, "RCPT", 250, "2.0.0")(c.cmd("RCPT TO:<john@contoso.com>"))
	return c.data(t, "Subject: hello\r\n\r\nhello\r\n")
}

func TestConnectionsPerIP(t *testing.T) {
	h := limitsHarness(t, func(c *relay.Config) { c.MaxConnectionsPerIP = 2 })
	a := gwSession(t, h, "127.0.0.80", "a.client.test", false, nil)
	b := gwSession(t, h, "127.0.0.80", "b.client.test", false, nil)

	third, code, text := gwConnect(t, h, "127.0.0.80")
	gwExpect(t, "third connection from one IP", 421, "4.7.0")(code, text)
	third.expectClosed(t)

	other := gwSession(t, h, "127.0.0.81", "other.client.test", false, nil)
	gwSimpleMessage(t, other)
	// The two sessions at the limit still work.
	gwSimpleMessage(t, a)
	gwExpect(t, "NOOP", 250, "2.0.0")(b.cmd("NOOP"))

	a.quit()
	again := gwWaitSession(t, h, "127.0.0.80", "again.client.test")
	gwSimpleMessage(t, again)
	// And the IP is at its limit again.
	fourth, code, text := gwConnect(t, h, "127.0.0.80")
	gwExpect(t, "connection over the limit again", 421, "4.7.0")(code, text)
	fourth.expectClosed(t)
}

func TestConnectionsTotal(t *testing.T) {
	h := limitsHarness(t, func(c *relay.Config) { c.MaxConnections = 3 })
	var open []*lineClient
	for i := range 3 {
		open = append(open, gwSession(t, h, fmt.Sprintf("127.0.0.%d", 82+i), "c.client.test", false, nil))
	}
	over, code, text := gwConnect(t, h, "127.0.0.85")
	gwExpect(t, "fourth connection", 421, "4.7.0")(code, text)
	over.expectClosed(t)
	// The total cap applies to an IP that is already connected too.
	over2, code, text := gwConnect(t, h, "127.0.0.82")
	gwExpect(t, "fourth connection from a connected IP", 421, "4.7.0")(code, text)
	over2.expectClosed(t)

	gwSimpleMessage(t, open[2])
	open[0].quit()
	c := gwWaitSession(t, h, "127.0.0.85", "late.client.test")
	gwSimpleMessage(t, c)
}

func TestMaxRecipients(t *testing.T) {
	h := limitsHarness(t, func(c *relay.Config) { c.MaxRecipients = 3 })
	c := gwSession(t, h, "127.0.0.86", "rcpt.client.test", false, nil)
	gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<alice@fabrikam.test>"))
	// A refused recipient does not use up the limit.
	gwExpect(t, "relay attempt", 550, "5.7.64")(c.cmd("RCPT TO:<x@nmap.scanme.org>"))
	for i := range 3 {
		gwExpect(t, "RCPT", 250, "2.0.0")(c.cmd("RCPT TO:<r%d@contoso.com>", i))
	}
	gwExpect(t, "4th RCPT", 452, "4.5.3")(c.cmd("RCPT TO:<r3@contoso.com>"))
	uid := c.data(t, "Subject: many\r\n\r\nhello\r\n")
	if got := gwRecipientsOf(t, h, uid); !equalSorted(got, []string{"r0@contoso.com", "r1@contoso.com", "r2@contoso.com"}) {
		t.Fatalf("queued for %q", got)
	}
	// The count starts again with the next message.
	gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<alice@fabrikam.test>"))
	for i := range 3 {
		gwExpect(t, "RCPT", 250, "2.0.0")(c.cmd("RCPT TO:<s%d@contoso.com>", i))
	}
	gwExpect(t, "4th RCPT", 452, "4.5.3")(c.cmd("RCPT TO:<s3@contoso.com>"))
}

// body returns header + lines of text adding up to exactly n bytes of
// message content (CRLFs included), as RFC 1870 counts it.
func sizedContent(n int) string {
	const head = "Subject: size\r\n\r\n"
	var b strings.Builder
	b.WriteString(head)
	for b.Len() < n {
		line := 78
		if rest := n - b.Len() - 2; rest < line {
			line = rest
		}
		if line < 1 {
			line = 1
		}
		b.WriteString(strings.Repeat("x", line) + "\r\n")
	}
	s := b.String()
	if len(s) != n {
		panic(fmt.Sprintf("sizedContent(%d) made %d bytes", n, len(s)))
	}
	return s
}

func TestMessageSizeDeclared(t *testing.T) {
	h := limitsHarness(t, func(c *relay.Config) { c.MaxMessageBytes = 2000 })
	c := gwSession(t, h, "127.0.0.87", "size.client.test", false, nil)
	gwExpect(t, "MAIL with SIZE over the limit", 552, "5.3.4")(c.cmd("MAIL FROM:<alice@fabrikam.test> SIZE=2001"))
	gwExpect(t, "RCPT after a refused MAIL", 502, "5.5.1")(c.cmd("RCPT TO:<john@contoso.com>"))
	// The connection stays usable; SIZE at the limit is fine.
	gwExpect(t, "MAIL with SIZE at the limit", 250, "2.0.0")(c.cmd("MAIL FROM:<alice@fabrikam.test> SIZE=2000"))
	gwExpect(t, "RCPT", 250, "2.0.0")(c.cmd("RCPT TO:<john@contoso.com>"))
	c.data(t, sizedContent(500))
	gwSimpleMessage(t, c)
}

// SPEC 3.7: rejected messages are traced too, including one refused for
// its declared size at MAIL FROM.
func TestMessageSizeDeclaredIsTraced(t *testing.T) {
	h := limitsHarness(t, func(c *relay.Config) { c.MaxMessageBytes = 2000 })
	c := gwSession(t, h, "127.0.0.87", "declared-size.client.test", false, nil)
	gwExpect(t, "MAIL with SIZE over the limit", 552, "5.3.4")(c.cmd("MAIL FROM:<alice@fabrikam.test> SIZE=5000"))
	c.quit()
	gwExpectRejected(t, h, "declared-size.client.test", "552 5.3.4")
}

func TestMessageSizeData(t *testing.T) {
	h := limitsHarness(t, func(c *relay.Config) { c.MaxMessageBytes = 2000 })
	c := gwSession(t, h, "127.0.0.88", "bigdata.client.test", false, nil)
	gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<alice@fabrikam.test>"))
	gwExpect(t, "RCPT", 250, "")(c.cmd("RCPT TO:<john@contoso.com>"))
	gwExpect(t, "end of an oversized DATA", 552, "5.3.4")(c.dataReply(t, sizedContent(3000)))
	gwExpectRejected(t, h, "bigdata.client.test", "552 5.3.4")

	// The rest of the oversized data was consumed: the session goes on.
	gwExpect(t, "EHLO", 250, "")(c.cmd("EHLO bigdata2.client.test"))
	gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<alice@fabrikam.test>"))
	gwExpect(t, "RCPT", 250, "")(c.cmd("RCPT TO:<john@contoso.com>"))
	uid := c.data(t, sizedContent(1500))
	if b := h.body(uid); !strings.HasSuffix(b, sizedContent(1500)) {
		t.Fatalf("stored body does not end with the content sent")
	}
}

// A message larger than queue.ChunkSize is stored in pieces as it is
// read, each ending with a line end; one refused for its size part-way
// leaves no piece behind.
func TestLargeMessageStoredInPieces(t *testing.T) {
	h := limitsHarness(t, func(c *relay.Config) { c.MaxMessageBytes = 3 * queue.ChunkSize })
	c := gwSession(t, h, "127.0.0.89", "large.client.test", false, nil)
	gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<alice@fabrikam.test>"))
	gwExpect(t, "RCPT", 250, "")(c.cmd("RCPT TO:<john@contoso.com>"))
	gwExpect(t, "end of a DATA over the limit", 552, "5.3.4")(c.dataReply(t, sizedContent(4*queue.ChunkSize)))
	var left int
	h.st.DB().Raw("SELECT COUNT(*) FROM message_chunks").Scan(&left)
	if left != 0 {
		t.Fatalf("%d pieces of a refused message left in the queue", left)
	}

	gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<alice@fabrikam.test>"))
	gwExpect(t, "RCPT", 250, "")(c.cmd("RCPT TO:<john@contoso.com>"))
	content := sizedContent(5 * queue.ChunkSize / 2)
	uid := c.data(t, content)
	pieces := h.pieces(uid)
	if len(pieces) != 3 {
		t.Fatalf("%d pieces for %d bytes, want 3 of about %d", len(pieces), len(content), queue.ChunkSize)
	}
	for i, p := range pieces {
		if !strings.HasSuffix(p, "\r\n") {
			t.Fatalf("piece %d does not end with a line end", i)
		}
	}
	if b := h.body(uid); !strings.HasSuffix(b, content) || !strings.HasPrefix(b, "Received: ") {
		t.Fatalf("the pieces do not make the message (%d bytes for %d sent)", len(b), len(content))
	}
	var size int64
	h.st.DB().Raw("SELECT size FROM messages WHERE uid = ?", uid).Scan(&size)
	if size != int64(len(h.body(uid))) {
		t.Fatalf("message size %d, pieces %d bytes", size, len(h.body(uid)))
	}
}

// RFC 1870: a message of exactly the advertised SIZE is accepted.
func TestMessageSizeAtLimit(t *testing.T) {
	h := limitsHarness(t, func(c *relay.Config) { c.MaxMessageBytes = 2000 })
	c := gwSession(t, h, "127.0.0.88", "atlimit.client.test", false, nil)
	for _, n := range []int{1999, 2000} {
		gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<alice@fabrikam.test> SIZE=%d", n))
		gwExpect(t, "RCPT", 250, "")(c.cmd("RCPT TO:<john@contoso.com>"))
		code, text := c.dataReply(t, sizedContent(n))
		if code != 250 {
			t.Errorf("a message of %d bytes with SIZE 2000 advertised: %d %s", n, code, text)
		}
	}
}

func receivedLines(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "Received: from hop%d.example ([192.0.2.%d])\r\n\tby hop%d.example; Mon, 1 Jan 2024 00:00:00 +0000\r\n", i, i+1, i+1)
	}
	return b.String()
}

func TestHopCount(t *testing.T) {
	h := limitsHarness(t, func(c *relay.Config) { c.MaxHops = 3 })
	c := gwSession(t, h, "127.0.0.89", "hops.client.test", false, nil)
	gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<alice@fabrikam.test>"))
	gwExpect(t, "RCPT", 250, "")(c.cmd("RCPT TO:<john@contoso.com>"))
	gwExpect(t, "4 Received fields with MaxHops 3", 554, "5.4.6")(c.dataReply(t, receivedLines(4)+"Subject: loop\r\n\r\nloop\r\n"))
	gwExpectRejected(t, h, "hops.client.test", "554 5.4.6")

	gwExpect(t, "EHLO", 250, "")(c.cmd("EHLO hops2.client.test"))
	gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<alice@fabrikam.test>"))
	gwExpect(t, "RCPT", 250, "")(c.cmd("RCPT TO:<john@contoso.com>"))
	uid := c.data(t, receivedLines(3)+"Subject: three hops\r\n\r\n"+"Received: in the body does not count\r\n")
	header, _, _ := strings.Cut(h.body(uid), "\r\n\r\n")
	if n := strings.Count(header, "\nReceived: ") + 1; n != 4 {
		t.Errorf("stored message has %d Received fields, want 3 + the relay's own", n)
	}
}

func TestDataLineLength(t *testing.T) {
	h := limitsHarness(t, func(c *relay.Config) { c.MaxLineLength = 300 })
	c := gwSession(t, h, "127.0.0.90", "line.client.test", false, nil)
	gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<alice@fabrikam.test>"))
	gwExpect(t, "RCPT", 250, "")(c.cmd("RCPT TO:<john@contoso.com>"))
	gwExpect(t, "a 301-byte content line", 554, "5.6.0")(c.dataReply(t, "Subject: long\r\n\r\n"+strings.Repeat("y", 301)+"\r\nmore\r\n"))
	gwExpectRejected(t, h, "line.client.test", "554 5.6.0")

	gwExpect(t, "EHLO", 250, "")(c.cmd("EHLO line2.client.test"))
	gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<alice@fabrikam.test>"))
	gwExpect(t, "RCPT", 250, "")(c.cmd("RCPT TO:<john@contoso.com>"))
	c.data(t, "Subject: at the limit\r\n\r\n"+strings.Repeat("y", 300)+"\r\n")
}

// One limit, MaxLineLength, covers content and commands. A content line
// over it gets 554 5.6.0 and the session goes on; a line over twice the
// limit is stopped by the SMTP library itself, which answers and closes.
func TestLineFarOverTheLimitEndsTheSession(t *testing.T) {
	h := limitsHarness(t, func(c *relay.Config) { c.MaxLineLength = 300 })
	c := gwSession(t, h, "127.0.0.91", "dl2.client.test", false, nil)
	gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<alice@fabrikam.test>"))
	gwExpect(t, "RCPT", 250, "")(c.cmd("RCPT TO:<john@contoso.com>"))
	gwExpect(t, "a 5000-byte content line with MaxLineLength 300", 554, "5.6.0")(
		c.dataReply(t, "Subject: long\r\n\r\n"+strings.Repeat("y", 5000)+"\r\n"))
	gwExpectRejected(t, h, "dl2.client.test", "554 5.6.0")
}

// A command line may be up to twice MaxLineLength (the SMTP library's own
// line limit, set above the content limit so that an over-long content line
// can be refused with 554 5.6.0 without ending the session).
func TestCommandLineLength(t *testing.T) {
	h := limitsHarness(t, func(c *relay.Config) { c.MaxLineLength = 256 })
	c := gwSession(t, h, "127.0.0.92", "cmdline.client.test", false, nil)
	atLimit := "NOOP " + strings.Repeat("a", 512-len("NOOP "))
	gwExpect(t, "a 512-byte command line", 250, "2.0.0")(c.cmd("%s", atLimit))
	code, text := c.cmd("%s", atLimit+"a")
	if code != 500 || !strings.HasPrefix(text, "500 5.") {
		t.Fatalf("a 513-byte command line: %q, want 500 5.x.x", text)
	}
	c.expectClosed(t)
}

func TestCommandTimeout(t *testing.T) {
	h := limitsHarness(t, func(c *relay.Config) { c.CommandTimeout = 300 * time.Millisecond })
	c := gwSession(t, h, "127.0.0.93", "idle.client.test", false, nil)
	gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<alice@fabrikam.test>"))
	start := time.Now()
	code, text := c.read()
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Errorf("timeout reply after %v, want about 300ms", waited)
	}
	gwExpect(t, "idle client", 421, "4.4.2")(code, text)
	c.expectClosed(t)
}

func TestDataTimeout(t *testing.T) {
	h := limitsHarness(t, func(c *relay.Config) { c.DataTimeout = 300 * time.Millisecond })
	c := gwSession(t, h, "127.0.0.94", "stall.client.test", false, nil)
	gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<alice@fabrikam.test>"))
	gwExpect(t, "RCPT", 250, "")(c.cmd("RCPT TO:<john@contoso.com>"))
	gwExpect(t, "DATA", 354, "")(c.cmd("DATA"))
	c.write("Subject: stalled\r\n\r\nline 1\r\nline 2\r\n")
	start := time.Now()
	code, text := c.read()
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Errorf("timeout reply after %v, want about 300ms", waited)
	}
	gwExpect(t, "stalled DATA", 451, "4.4.2")(code, text)
	gwExpectRejected(t, h, "stall.client.test", "451 4.4.2")
}

// DataTimeout bounds the idle time while reading DATA, not the total
// time: a client that keeps sending, never pausing as long as the
// timeout, gets its message through.
func TestDataTimeoutIsIdleTime(t *testing.T) {
	h := limitsHarness(t, func(c *relay.Config) { c.DataTimeout = 600 * time.Millisecond })
	c := gwSession(t, h, "127.0.0.95", "slow.client.test", false, nil)
	gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<alice@fabrikam.test>"))
	gwExpect(t, "RCPT", 250, "")(c.cmd("RCPT TO:<john@contoso.com>"))
	gwExpect(t, "DATA", 354, "")(c.cmd("DATA"))
	c.write("Subject: slow\r\n\r\n")
	// 15 lines, 100ms apart: 1.5s in total, never idle for 600ms. A write
	// error means the relay gave up early; its reply tells why.
	start := time.Now()
	for i := range 16 {
		time.Sleep(100 * time.Millisecond)
		line := fmt.Sprintf("line %d\r\n", i)
		if i == 15 {
			line = ".\r\n"
		}
		_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.conn.Write([]byte(line)); err != nil {
			break
		}
	}
	code, text, err := c.readReply(5 * time.Second)
	if err != nil || code != 250 {
		t.Fatalf("a DATA never idle for more than 100ms, with DataTimeout 600ms, took %v and got %q (%v), want 250 2.0.0",
			time.Since(start).Round(time.Millisecond), text, err)
	}
}

// hasBareLineEnding reports a CR not followed by LF or an LF not preceded
// by CR.
func hasBareLineEnding(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\r':
			if i+1 >= len(s) || s[i+1] != '\n' {
				return true
			}
		case '\n':
			if i == 0 || s[i-1] != '\r' {
				return true
			}
		}
	}
	return false
}

func TestEndOfDataSmuggling(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			h := newHarness(t, e, nil)
			h.acceptedDomain("contoso.com")
			smuggled := func(eod string) string {
				return "Subject: carrier\r\n\r\nhello" + eod +
					"MAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@contoso.com>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil" + eod +
					"QUIT\r\n"
			}
			variants := []struct{ name, eod string }{
				{"LF.LF", "\n.\n"},
				{"CR.CR", "\r.\r"},
				{"LF.CRLF", "\n.\r\n"},
				{"CR.LF", "\r.\n"},
				{"CRLF.LF", "\r\n.\n"},
				{"CRLF.CR", "\r\n.\r"},
				{"LF.CR", "\n.\r"},
				{"CR.CRLF", "\r.\r\n"},
				{"LF..LF", "\n..\n"},
				{"CR LF . space CRLF", "\r\n. \r\n"},
				{"NUL", "\n.\x00\r\n"},
			}
			queued := 0
			for i, v := range variants {
				t.Run(v.name, func(t *testing.T) {
					c := gwSession(t, h, "127.0.0.110", fmt.Sprintf("smuggle%d.client.test", i), i%2 == 1, nil)
					gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<alice@fabrikam.test>"))
					gwExpect(t, "RCPT", 250, "")(c.cmd("RCPT TO:<john@contoso.com>"))
					gwExpect(t, "DATA", 354, "")(c.cmd("DATA"))
					c.write(smuggled(v.eod) + "\r\n.\r\n")
					code, text := c.read()
					gwExpect(t, "end of DATA", 250, "2.0.0")(code, text)
					queued++
					// The next reply belongs to the next command: nothing in
					// the content was run as a command.
					if code, text := c.cmd("NOOP"); code != 250 || !strings.Contains(text, "nothing") {
						t.Fatalf("NOOP after the message got %q: part of the content ran as commands", text)
					}
					uid := uidOf(t, text)
					checkSmuggledBody(t, h, uid)
					c.quit()
				})
			}

			// CHUNKING: BDAT content is not dot-stuffed, so every variant
			// arrives raw.
			t.Run("BDAT", func(t *testing.T) {
				c := gwSession(t, h, "127.0.0.110", "smuggle-bdat.client.test", false, nil)
				var all strings.Builder
				for _, v := range variants {
					all.WriteString(smuggled(v.eod))
				}
				content := all.String() + "bare CR at the end\r"
				gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<alice@fabrikam.test>"))
				gwExpect(t, "RCPT", 250, "")(c.cmd("RCPT TO:<john@contoso.com>"))
				c.write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(content), content))
				code, text := c.read()
				if code == 502 || code == 500 {
					t.Skipf("BDAT not offered: %s", text)
				}
				gwExpect(t, "BDAT LAST", 250, "2.0.0")(code, text)
				queued++
				checkSmuggledBody(t, h, uidOf(t, text))
				c.quit()
			})

			if n := gwCountQueued(t, h); n != queued {
				t.Errorf("%d messages queued, want %d (one per session)", n, queued)
			}
			for _, r := range gwAllRecipients(t, h) {
				if r.Address != "john@contoso.com" {
					t.Errorf("message %s (%s) queued for %q: a smuggled envelope was accepted", r.UID, r.Status, r.Address)
				}
			}
		})
	}
}

func checkSmuggledBody(t *testing.T, h *harness, uid string) {
	t.Helper()
	b := h.body(uid)
	if hasBareLineEnding(b) {
		t.Errorf("stored body of %s has a bare CR or LF: %q", uid, b)
	}
	if !strings.HasSuffix(b, "\r\n") {
		t.Errorf("stored body of %s does not end with CRLF: %q", uid, b)
	}
	if !strings.Contains(b, "\r\nMAIL FROM:<evil@x.test>\r\n") || !strings.Contains(b, "\r\nRCPT TO:<victim@contoso.com>\r\n") {
		t.Errorf("the smuggled commands are not kept as content lines of %s: %q", uid, b)
	}
}

func TestEHLOCapabilities(t *testing.T) {
	h := limitsHarness(t, func(c *relay.Config) { c.MaxMessageBytes = 123456 })
	c, code, text := gwConnect(t, h, "127.0.0.111")
	gwExpect(t, "greeting", 220, "")(code, text)
	if !strings.Contains(text, relayHostname) {
		t.Errorf("greeting %q does not name the relay", text)
	}
	caps := func(text string) map[string]string {
		m := map[string]string{}
		for i, line := range strings.Split(text, "\n") {
			if i == 0 || len(line) < 4 {
				continue
			}
			kw, param, _ := strings.Cut(line[4:], " ")
			m[strings.ToUpper(kw)] = param
		}
		return m
	}
	code, text = c.cmd("EHLO caps.client.test")
	gwExpect(t, "EHLO", 250, "")(code, text)
	got := caps(text)
	for _, kw := range []string{"STARTTLS", "SIZE", "8BITMIME", "PIPELINING", "ENHANCEDSTATUSCODES"} {
		if _, ok := got[kw]; !ok {
			t.Errorf("EHLO does not advertise %s:\n%s", kw, text)
		}
	}
	// The session enforces the size (so a declared SIZE refusal is traced,
	// and a message of exactly the limit is accepted), and EHLO gives it.
	if got["SIZE"] != "123456" {
		t.Errorf("SIZE %q, want 123456 (the limit)", got["SIZE"])
	}
	c.startTLS(&tls.Config{RootCAs: h.ca.Pool(), ServerName: relayHostname})
	code, text = c.cmd("EHLO caps.client.test")
	gwExpect(t, "EHLO after STARTTLS", 250, "")(code, text)
	got = caps(text)
	if _, ok := got["STARTTLS"]; ok {
		t.Errorf("STARTTLS advertised inside TLS:\n%s", text)
	}
	for _, kw := range []string{"SIZE", "8BITMIME", "PIPELINING", "ENHANCEDSTATUSCODES"} {
		if _, ok := got[kw]; !ok {
			t.Errorf("EHLO after STARTTLS does not advertise %s:\n%s", kw, text)
		}
	}
	// 8BITMIME: 8-bit content is kept as sent.
	gwExpect(t, "MAIL BODY=8BITMIME", 250, "")(c.cmd("MAIL FROM:<alice@fabrikam.test> BODY=8BITMIME"))
	gwExpect(t, "RCPT", 250, "")(c.cmd("RCPT TO:<john@contoso.com>"))
	uid := c.data(t, "Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGrüße, 你好\r\n")
	if !strings.Contains(h.body(uid), "Grüße, 你好\r\n") {
		t.Errorf("8-bit content changed: %q", h.body(uid))
	}
}

func TestPipelining(t *testing.T) {
	h := limitsHarness(t, nil)
	c := gwSession(t, h, "127.0.0.112", "pipe.client.test", false, nil)
	c.write("MAIL FROM:<alice@fabrikam.test>\r\nRCPT TO:<john@contoso.com>\r\nRCPT TO:<relaytest@nmap.scanme.org>\r\nRCPT TO:<mary@contoso.com>\r\nDATA\r\n")
	gwExpect(t, "pipelined MAIL", 250, "2.0.0")(c.read())
	gwExpect(t, "pipelined RCPT 1", 250, "2.0.0")(c.read())
	gwExpect(t, "pipelined RCPT 2", 550, "5.7.64")(c.read())
	gwExpect(t, "pipelined RCPT 3", 250, "2.0.0")(c.read())
	gwExpect(t, "pipelined DATA", 354, "")(c.read())
	// The end of data, RSET, a whole second transaction and NOOP in one write.
	c.write("Subject: one\r\n\r\nfirst\r\n.\r\nRSET\r\nMAIL FROM:<bob@fabrikam.test>\r\nRCPT TO:<john@contoso.com>\r\nDATA\r\n")
	code, text := c.read()
	gwExpect(t, "first message", 250, "2.0.0")(code, text)
	first := uidOf(t, text)
	gwExpect(t, "RSET", 250, "2.0.0")(c.read())
	gwExpect(t, "MAIL", 250, "2.0.0")(c.read())
	gwExpect(t, "RCPT", 250, "2.0.0")(c.read())
	gwExpect(t, "DATA", 354, "")(c.read())
	c.write("Subject: two\r\n\r\nsecond\r\n.\r\nNOOP\r\n")
	code, text = c.read()
	gwExpect(t, "second message", 250, "2.0.0")(code, text)
	second := uidOf(t, text)
	gwExpect(t, "NOOP", 250, "2.0.0")(c.read())
	if got := gwRecipientsOf(t, h, first); !equalSorted(got, []string{"john@contoso.com", "mary@contoso.com"}) {
		t.Errorf("first message queued for %q", got)
	}
	if got := gwRecipientsOf(t, h, second); !equalSorted(got, []string{"john@contoso.com"}) {
		t.Errorf("second message queued for %q", got)
	}
}

// receivedField returns the first header field of a stored message,
// unfolded lines kept, and checks it is the relay's Received: field.
func receivedField(t *testing.T, body string) string {
	t.Helper()
	if !strings.HasPrefix(body, "Received: from ") {
		t.Fatalf("stored message does not start with the relay's Received field: %q", body)
	}
	end := 0
	for {
		i := strings.Index(body[end:], "\r\n")
		if i < 0 {
			t.Fatalf("unterminated header: %q", body)
		}
		end += i + 2
		if end >= len(body) || (body[end] != ' ' && body[end] != '\t') {
			return body[:end]
		}
	}
}

// checkReceived checks the relay's trace field is one well-formed header
// field (RFC 5321 4.4, RFC 5322 3.6.7).
func checkReceived(t *testing.T, field, uid, proto string) {
	t.Helper()
	for i := 0; i < len(field); i++ {
		c := field[i]
		if (c < 0x20 || c > 0x7e) && c != '\t' && c != '\r' && c != '\n' {
			t.Fatalf("Received field has the byte %#x: %q", c, field)
		}
	}
	if strings.Count(field, "\r\n") != strings.Count(field, "\n") || strings.Contains(field, "\r\n\r\n") {
		t.Fatalf("Received field has a bad line break: %q", field)
	}
	depth := 0
	for _, c := range field {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		}
		if depth < 0 || depth > 1 {
			t.Fatalf("Received field has unbalanced or nested comments: %q", field)
		}
	}
	if depth != 0 {
		t.Fatalf("Received field has an unclosed comment: %q", field)
	}
	// Outside comments (where any printable text is fine) the field is
	// received-tokens, one ";" and the date.
	var bare strings.Builder
	depth = 0
	for _, c := range field {
		switch {
		case c == '(':
			depth++
		case c == ')':
			depth--
		case depth == 0:
			bare.WriteRune(c)
		}
	}
	outside := bare.String()
	from, _, _ := strings.Cut(strings.TrimPrefix(outside, "Received: from "), " ")
	if strings.ContainsAny(from, "()<>,;\"\\") || from == "" {
		t.Errorf("Received field's from-domain %q holds RFC 5322 specials: %q", from, field)
	}
	if !strings.Contains(field, "by "+relayHostname+" ") || !strings.Contains(field, " with "+proto+" id "+uid) {
		t.Errorf("Received field lacks \"by %s\" or \"with %s id %s\": %q", relayHostname, proto, uid, field)
	}
	if strings.Count(outside, ";") != 1 {
		t.Fatalf("Received field has %d semicolons outside comments; the date must follow the only one: %q", strings.Count(outside, ";"), field)
	}
	semi := strings.LastIndexByte(field, ';')
	if _, err := mail.ParseDate(strings.TrimSpace(strings.ReplaceAll(field[semi+1:], "\r\n", ""))); err != nil {
		t.Errorf("Received field's date: %v: %q", err, field)
	}
}

func TestReceivedHeader(t *testing.T) {
	h := limitsHarness(t, nil)
	send := func(t *testing.T, c *lineClient) string {
		t.Helper()
		gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<alice@fabrikam.test>"))
		gwExpect(t, "RCPT", 250, "")(c.cmd("RCPT TO:<john@contoso.com>"))
		return c.data(t, "Subject: trace\r\n\r\nhello\r\n")
	}
	t.Run("plain", func(t *testing.T) {
		c := gwSession(t, h, "127.0.0.113", "plain.client.test", false, nil)
		uid := send(t, c)
		f := receivedField(t, h.body(uid))
		checkReceived(t, f, uid, "ESMTP")
		if !strings.HasPrefix(f, "Received: from plain.client.test ([127.0.0.113])") || strings.Contains(f, "ESMTPS") || strings.Contains(f, "version=") {
			t.Errorf("Received field of a plain session: %q", f)
		}
	})
	t.Run("TLS", func(t *testing.T) {
		c := gwSession(t, h, "127.0.0.114", "tls.client.test", true, nil)
		state := c.conn.(*tls.Conn).ConnectionState()
		uid := send(t, c)
		f := receivedField(t, h.body(uid))
		checkReceived(t, f, uid, "ESMTPS")
		want := fmt.Sprintf("(version=%s cipher=%s)", tls.VersionName(state.Version), tls.CipherSuiteName(state.CipherSuite))
		if !strings.Contains(f, want) {
			t.Errorf("Received field lacks %q: %q", want, f)
		}
		tr := gwTraceByUID(t, h, uid)
		if tr.TLSVersion != tls.VersionName(state.Version) || tr.TLSCipher != tls.CipherSuiteName(state.CipherSuite) {
			t.Errorf("trace TLS facts %q %q, want %q", tr.TLSVersion, tr.TLSCipher, want)
		}
	})
	t.Run("TLS with a client certificate", func(t *testing.T) {
		cert := h.ca.Issue(t, "mail.evil(x)\\.test", "mail.fabrikam.test")
		c := gwSession(t, h, "127.0.0.114", "cert.client.test", true, &cert)
		uid := send(t, c)
		f := receivedField(t, h.body(uid))
		checkReceived(t, f, uid, "ESMTPS")
		if !strings.Contains(f, "client certificate") {
			t.Errorf("Received field does not mention the client certificate: %q", f)
		}
	})
	for i, helo := range []string{
		"evil(host.example",
		"evil)host.example",
		"((x))",
		"évil.example",
		"\xff\xfe.example",
		"a\\b.example",
		"a;b.example",
		"x;Mon,_1_Jan_2001",
		"x\"y.example",
		"a<b>.example",
		"a,b.example",
		strings.Repeat("h", 255), // longer is refused (TestClientStringsBounded)
	} {
		t.Run(fmt.Sprintf("hostile HELO %q", helo), func(t *testing.T) {
			c := gwSession(t, h, "127.0.0.115", helo, i%2 == 1, nil)
			uid := send(t, c)
			body := h.body(uid)
			f := receivedField(t, body)
			proto := "ESMTP"
			if i%2 == 1 {
				proto = "ESMTPS"
			}
			checkReceived(t, f, uid, proto)
			if !strings.HasPrefix(body[len(f):], "Subject: trace\r\n") {
				t.Errorf("the client's header does not follow the Received field: %q", body)
			}
		})
	}
}
