package relay_test

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/relay"
	"github.com/flowgate/flowgate/internal/testutil"
)

// Trace flooding: what an unauthenticated client sends may grow the trace
// only by bounded amounts (limits.go).

// pipeline sends all lines at once and reads every reply until the relay
// closes the connection.
func pipeline(t *testing.T, h *harness, src string, lines []string) []string {
	t.Helper()
	c := testutil.NewRawSMTP(t, src, h.addr)
	if code, text := c.Cmd("EHLO flood.test"); code != 250 {
		t.Fatalf("EHLO: %d %s", code, text)
	}
	go func() { _, _ = io.WriteString(c.Conn, strings.Join(lines, "\r\n")+"\r\n") }()
	_ = c.Conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	var replies []string
	br := bufio.NewReader(c.Conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return replies
		}
		replies = append(replies, strings.TrimRight(line, "\r\n"))
	}
}

// traceFrom waits (up to 5 s) for the newest trace of a session from
// client address ip and returns it.
func (h *harness) traceFrom(ip string) traceRow {
	h.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		rows := h.traces()
		for i := len(rows) - 1; i >= 0; i-- {
			if rows[i].ClientIP == ip {
				return rows[i]
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("no trace from %s", ip)
		}
	}
}

func (h *harness) countRows(query string, args ...any) int {
	h.t.Helper()
	h.traces() // let rejected traces land
	var n int
	if err := h.st.DB().Raw(query, args...).Row().Scan(&n); err != nil {
		h.t.Fatal(err)
	}
	return n
}

func TestErrorLimitClosesTheSession(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			h := newHarness(t, e, nil)
			h.acceptedDomain("contoso.com")
			// 300 pipelined MAILs with oversize senders, each a refused message.
			var lines []string
			for i := range 300 {
				lines = append(lines, fmt.Sprintf("MAIL FROM:<%d%s@fabrikam.test>", i, strings.Repeat("x", 400)))
			}
			// (The client may not read every reply: the relay closes the
			// connection with commands unread, and the client's system may
			// then drop what it had received.)
			replies := pipeline(t, h, "127.0.0.21", lines)
			if n := len(replies); n > relay.DefaultMaxErrors+1 {
				t.Errorf("%d replies before the relay closed the connection, want at most %d", n, relay.DefaultMaxErrors+1)
			}
			// The last trace is written as the session ends, which may be
			// just after the client saw the connection close.
			n := 0
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				if n = len(h.traces()); n >= relay.DefaultMaxErrors+1 || time.Now().After(deadline) {
					break
				}
			}
			if n != relay.DefaultMaxErrors+1 {
				t.Errorf("%d traces, want %d", n, relay.DefaultMaxErrors+1)
			}
			_ = replies
			last := h.lastTrace()
			if !strings.HasPrefix(last.Reply, "421 4.7.0") {
				t.Errorf("last trace reply %q, want the 421", last.Reply)
			}
			if d := h.event(last.UID, "error_limit"); !strings.Contains(d, "more than 20 refused commands") {
				t.Errorf("error_limit event %q", d)
			}

			// One command at a time, the client sees the 421 and the close.
			c := h.dial(clientOpts{src: "127.0.0.25"})
			for i := range relay.DefaultMaxErrors {
				if code, text := c.Cmd("%s", lines[i]); code != 501 {
					t.Fatalf("refused command %d: %d %s", i+1, code, text)
				}
			}
			if code, text := c.Cmd("MAIL FROM:<alice@fabrikam.test>"); code != 250 {
				t.Errorf("a good command after %d refusals: %d %s", relay.DefaultMaxErrors, code, text)
			}
			if code, text := c.Cmd("RCPT TO:<v@elsewhere.test>"); code != 421 || !strings.HasPrefix(text, "421 4.7.0") {
				t.Errorf("refused command %d: %d %s, want 421 4.7.0", relay.DefaultMaxErrors+1, code, text)
			}
			_ = c.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := c.Conn.Read(make([]byte, 1)); err == nil {
				t.Errorf("the connection is still open after the 421 (read %d bytes)", n)
			}

			// Refused recipients count too: the 21st gets the 421 and the
			// abandoned transaction is traced with it.
			lines = []string{"MAIL FROM:<alice@fabrikam.test>"}
			for i := range 100 {
				lines = append(lines, fmt.Sprintf("RCPT TO:<v%d@elsewhere.test>", i))
			}
			replies = pipeline(t, h, "127.0.0.22", lines)
			if n := len(replies); n > relay.DefaultMaxErrors+2 {
				t.Errorf("%d replies, want at most MAIL's and %d RCPTs'", n, relay.DefaultMaxErrors+1)
			}
			// The session traces its abandoned transaction as it ends, which
			// may be just after the client saw the connection close.
			// (The session from 127.0.0.25 above is traced as it ends too,
			// so its trace may land after this one: look this one up.)
			last = h.traceFrom("127.0.0.22")
			if !strings.HasPrefix(last.Reply, "421 4.7.0") || last.Sender != "alice@fabrikam.test" {
				t.Errorf("last trace %+v, want alice's with the 421", last)
			}
			if n := h.countRows(`SELECT COUNT(*) FROM message_events e JOIN messages m ON m.id = e.message_id
				WHERE m.uid = ? AND e.type = 'recipient_rejected'`, last.UID); n != relay.DefaultMaxErrors+1 {
				t.Errorf("%d recipient_rejected events, want %d", n, relay.DefaultMaxErrors+1)
			}
		})
	}
}

func TestTraceEventsPerMessageBounded(t *testing.T) {
	h := newHarness(t, testutil.Engines[0], func(c *relay.Config) { c.MaxErrors = 10000 })
	h.acceptedDomain("contoso.com")
	lines := []string{"MAIL FROM:<alice@fabrikam.test>"}
	for i := range 1000 {
		lines = append(lines, fmt.Sprintf("RCPT TO:<v%d@elsewhere.test>", i))
	}
	lines = append(lines, "QUIT")
	replies := pipeline(t, h, "127.0.0.23", lines)
	if len(replies) != 1002 {
		t.Fatalf("%d replies, want 1002", len(replies))
	}
	// The abandoned transaction is traced as the session ends, which may
	// be just after the client read the reply to QUIT.
	uid := h.traceFrom("127.0.0.23").UID
	if n := h.countRows(`SELECT COUNT(*) FROM message_events e JOIN messages m ON m.id = e.message_id WHERE m.uid = ?`, uid); n > 110 {
		t.Errorf("%d events for one message, want at most 110", n)
	}
	if d := h.event(uid, "events_omitted"); d != "… and 900 more refused recipients" {
		t.Errorf("summary event %q", d)
	}
}

func TestClientStringsBounded(t *testing.T) {
	h := newHarness(t, testutil.Engines[0], nil)
	h.acceptedDomain("contoso.com")
	long := strings.Repeat("a", 120<<10) + ".test"

	// A long name at the first greeting is refused, and nothing is kept.
	c := testutil.NewRawSMTP(t, "127.0.0.24", h.addr)
	if code, text := c.Cmd("EHLO %s", long); code != 501 || !strings.HasPrefix(text, "501 5.5.2") {
		t.Errorf("EHLO with a 120 KB name: %d %s, want 501 5.5.2", code, text)
	}
	if code, text := c.Cmd("MAIL FROM:<alice@fabrikam.test>"); code != 502 {
		t.Errorf("MAIL without a greeting: %d %s, want 502", code, text)
	}
	// A later EHLO in a session is kept truncated.
	if code, text := c.Cmd("EHLO ok.test"); code != 250 {
		t.Fatalf("EHLO: %d %s", code, text)
	}
	if code, text := c.Cmd("EHLO %s", long); code != 250 {
		t.Fatalf("second EHLO: %d %s", code, text)
	}
	// A long sender is refused and kept truncated.
	sender := strings.Repeat("b", 2000) + "@fabrikam.test"
	if code, text := c.Cmd("MAIL FROM:<%s>", sender); code != 501 || !strings.HasPrefix(text, "501 5.1.7") {
		t.Errorf("MAIL with a 2 KB sender: %d %s, want 501 5.1.7", code, text)
	}
	var helo, from string
	h.traces()
	if err := h.st.DB().Raw(`SELECT helo, sender FROM messages ORDER BY id DESC LIMIT 1`).Row().Scan(&helo, &from); err != nil {
		t.Fatal(err)
	}
	if len(helo) > 300 || !strings.HasSuffix(helo, "(truncated)") {
		t.Errorf("stored HELO of %d bytes (%.40q…)", len(helo), helo)
	}
	if len(from) > 350 || !strings.HasSuffix(from, "(truncated)") {
		t.Errorf("stored sender of %d bytes", len(from))
	}
	// A long recipient likewise.
	if code, text := c.Cmd("MAIL FROM:<alice@fabrikam.test>"); code != 250 {
		t.Fatalf("MAIL: %d %s", code, text)
	}
	if code, text := c.Cmd("RCPT TO:<%s@contoso.com>", strings.Repeat("c", 2000)); code != 501 || !strings.HasPrefix(text, "501 5.1.3") {
		t.Errorf("RCPT with a 2 KB recipient: %d %s, want 501 5.1.3", code, text)
	}
	c.Cmd("QUIT")
	if n := h.countRows(`SELECT COALESCE(MAX(LENGTH(detail)), 0) FROM message_events`); n > 1100 {
		t.Errorf("an event detail of %d bytes", n)
	}
}

// manyErrors lifts the error limit for tests that make many refused
// attempts in one session on purpose.
func manyErrors(c *relay.Config) { c.MaxErrors = 1 << 20 }
