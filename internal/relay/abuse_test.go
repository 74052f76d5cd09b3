package relay_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/relay"
)

// Client abuse: idle and trickling clients must not lock others out
// (deadline.go, admission.go).

// trickler is one abusive connection's behaviour: what it sends at once
// after the greeting, and the endless stream it then sends a byte at a time.
type trickler struct {
	prefix string
	stream func(i int) byte
}

var tricklers = []trickler{
	// Whole NOOP commands, a byte a second: never idle, never done.
	{"EHLO trickle.test\r\n", func(i int) byte { return "NOOP\r\n"[i%6] }},
	// A command line that never ends.
	{"EHLO trickle.test\r\n", func(i int) byte { return "MAIL FROM:<aaaa"[min(i, 14)] }},
	// Message content that never ends.
	{"EHLO trickle.test\r\nMAIL FROM:<alice@fabrikam.test>\r\nRCPT TO:<john@contoso.com>\r\nDATA\r\n",
		func(i int) byte { return "x\r\n"[i%3] }},
}

// runTrickler keeps one connection from src open to addr, trickling a byte
// about every second, and opens a new one soon after the relay refuses or
// closes it, until ctx ends. tried is counted once, after the first
// greeting.
func runTrickler(ctx context.Context, addr, src string, tr trickler, tried *atomic.Int64) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	counted := false
	for ctx.Err() == nil {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			stop := context.AfterFunc(ctx, func() { conn.Close() })
			_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			br := bufio.NewReader(conn)
			greeting, _ := br.ReadString('\n')
			if !counted {
				counted = true
				tried.Add(1)
			}
			if strings.HasPrefix(greeting, "220") {
				trickle(ctx, conn, br, tr)
			}
			stop()
			conn.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(200+rand.IntN(100)) * time.Millisecond):
		}
	}
}

// trickle sends tr on conn until the relay closes it or ctx ends.
func trickle(ctx context.Context, conn net.Conn, br *bufio.Reader, tr trickler) {
	closed := make(chan struct{})
	go func() {
		_ = conn.SetReadDeadline(time.Time{})
		_, _ = io.Copy(io.Discard, br) // the replies, until the close
		close(closed)
	}()
	defer func() { conn.Close(); <-closed }()
	if _, err := conn.Write([]byte(tr.prefix)); err != nil {
		return
	}
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-closed:
			return
		case <-time.After(time.Duration(700+rand.IntN(600)) * time.Millisecond):
		}
		if _, err := conn.Write([]byte{tr.stream(i)}); err != nil {
			return
		}
	}
}

// The acceptance test of the lock-out: 1,000 connections from 20
// addresses (50 each, the per-IP limit), trickling a byte about every
// second, some between commands, some in a command line, some in DATA,
// against a relay with a limit of 1,000. A client from another address is
// still served, and a trickling DATA is cut off at the DATA deadline.
func TestTricklingClientsDoNotLockOut(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1,000 connections")
	}
	const dataDeadline = 2 * time.Second
	h := limitsHarness(t, func(c *relay.Config) {
		c.MaxConnections, c.MaxConnectionsPerIP = 1000, 50
		c.DataDeadline = dataDeadline
	})
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { stop(); wg.Wait() }) // before the harness's cleanup
	var tried atomic.Int64
	const addrs, perAddr = 20, 50
	for a := range addrs {
		for k := range perAddr {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Spread the connects over a second.
				time.Sleep(time.Duration(rand.IntN(1000)) * time.Millisecond)
				runTrickler(ctx, h.addr, fmt.Sprintf("127.0.1.%d", a+1), tricklers[k%len(tricklers)], &tried)
			}()
		}
	}
	for deadline := time.Now().Add(60 * time.Second); tried.Load() < addrs*perAddr; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d trickling connections were greeted or refused within 60s", tried.Load(), addrs*perAddr)
		}
	}
	// The trickling is under way and holds the relay under stress (80% of
	// its connections), the DATA tricklers reconnecting as they are cut off.
	time.Sleep(time.Second)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		total, n := h.relay.Connections()
		if total >= 800 {
			t.Logf("the relay holds %d connections from %d addresses", total, n)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the trickling clients hold only %d connections; the test needs at least 800", total)
		}
	}
	// A client from another address is served.
	start := time.Now()
	c, code, text := gwConnect(t, h, "127.0.2.1")
	gwExpect(t, "greeting to a client from another address", 220, "")(code, text)
	gwExpect(t, "EHLO", 250, "")(c.cmd("EHLO legit.client.test"))
	gwSimpleMessage(t, c)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the client from another address was served in %v, want within 10s", took.Round(time.Millisecond))
	}

	// A trickling DATA is cut off at the DATA deadline and traced.
	d := gwSession(t, h, "127.0.2.2", "slow-data.client.test", false, nil)
	gwExpect(t, "MAIL", 250, "")(d.cmd("MAIL FROM:<alice@fabrikam.test>"))
	gwExpect(t, "RCPT", 250, "")(d.cmd("RCPT TO:<john@contoso.com>"))
	gwExpect(t, "DATA", 354, "")(d.cmd("DATA"))
	expectDataCut(t, h, d, "slow-data.client.test", dataDeadline+8*time.Second)
	if n := gwCountQueued(t, h); n != 1 {
		t.Errorf("%d messages queued, want 1 (the other client's)", n)
	}
}

// expectDataCut trickles content on c (in DATA) and expects 451 4.4.2
// within bound, the end of the session, and a trace of the refusal that
// names the DATA deadline.
func expectDataCut(t *testing.T, h *harness, c *lineClient, helo string, bound time.Duration) {
	t.Helper()
	done := make(chan struct{})
	defer close(done)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := c.conn.Write([]byte{"y\r\n"[i%3]}); err != nil {
				return
			}
		}
	}()
	code, text, err := c.readReply(bound)
	if err != nil {
		t.Fatalf("a trickling DATA got no reply within %v: %v", bound, err)
	}
	gwExpect(t, "trickling DATA", 451, "4.4.2")(code, text)
	// The rest of the message is not read as commands: the session ends.
	code, text, err = c.readReply(5 * time.Second)
	if err == nil {
		gwExpect(t, "after the cut-off DATA", 421, "4.4.2")(code, text)
	}
	c.expectClosed(t)
	gwExpectRejected(t, h, helo, "451 4.4.2")
	if ev := h.event(gwTraceByHelo(t, h, helo).UID, "rejected"); !strings.Contains(ev, "DATA deadline") {
		t.Errorf("trace event %q does not name the DATA deadline", ev)
	}
}

// A DATA that never stalls for DataTimeout is still cut off at the DATA
// deadline.
func TestDataDeadline(t *testing.T) {
	h := limitsHarness(t, func(c *relay.Config) { c.DataDeadline = time.Second })
	c := gwSession(t, h, "127.0.2.10", "data-deadline.client.test", false, nil)
	gwExpect(t, "MAIL", 250, "")(c.cmd("MAIL FROM:<alice@fabrikam.test>"))
	gwExpect(t, "RCPT", 250, "")(c.cmd("RCPT TO:<john@contoso.com>"))
	gwExpect(t, "DATA", 354, "")(c.cmd("DATA"))
	c.write("Subject: slow\r\n\r\n")
	expectDataCut(t, h, c, "data-deadline.client.test", 10*time.Second)
	if n := gwCountQueued(t, h); n != 0 {
		t.Errorf("%d messages queued, want none", n)
	}
}

// A client that keeps sending commands is still disconnected at the
// session deadline.
func TestSessionDeadline(t *testing.T) {
	h := limitsHarness(t, func(c *relay.Config) { c.SessionDeadline = time.Second })
	c := gwSession(t, h, "127.0.2.11", "session-deadline.client.test", false, nil)
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
		c.write("NOOP\r\n")
		code, text := c.read()
		if code == 421 {
			gwExpect(t, "NOOP after the session deadline", 421, "4.4.2")(code, text)
			c.expectClosed(t)
			return
		}
		gwExpect(t, "NOOP", 250, "")(code, text)
	}
	t.Fatal("a session sending NOOP every 100ms was not ended by a session deadline of 1s")
}

// CommandTimeout bounds a whole command line, not the time between its
// bytes: a line trickled byte by byte ends the session. (go-smtp may first
// answer the part of the line that came in time as if it were a command;
// nothing after it is read.)
func TestTrickledCommandLine(t *testing.T) {
	h := limitsHarness(t, func(c *relay.Config) { c.CommandTimeout = time.Second })
	c := gwSession(t, h, "127.0.2.12", "trickled-line.client.test", false, nil)
	line := "MAIL FROM:<alice@fabrikam.test>"
	for i := 0; i < 50; i++ { // 10s at most
		time.Sleep(200 * time.Millisecond)
		_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := c.conn.Write([]byte{line[i%len(line)]}); err != nil {
			break
		}
	}
	var last string
	for {
		_, text, err := c.readReply(time.Second)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("a command line trickled for 10s with CommandTimeout 1s did not end the session (last reply %q): %v", last, err)
			}
			break
		}
		last = text
	}
	if !strings.HasPrefix(last, "421 4.4.2") {
		t.Errorf("last reply before the close %q, want 421 4.4.2", last)
	}
}

// Under stress, connections that wait for a command, including those
// that began waiting before, are cut off after StressTimeout.
func TestStressShortensTimeouts(t *testing.T) {
	// Limit 10: stress from 8 connections until fewer than 7.
	h := limitsHarness(t, func(c *relay.Config) { c.MaxConnections, c.StressTimeout = 10, 500*time.Millisecond })
	var idle []*lineClient
	for i := range 7 {
		idle = append(idle, gwSession(t, h, fmt.Sprintf("127.0.2.%d", 20+i), "idle.client.test", false, nil))
	}
	time.Sleep(time.Second)
	gwExpect(t, "NOOP from an idle session before stress", 250, "")(idle[0].cmd("NOOP"))
	gwSession(t, h, "127.0.2.27", "eighth.client.test", false, nil)
	for i, c := range idle[1:] {
		code, text, err := c.readReply(5 * time.Second)
		if err != nil {
			t.Fatalf("idle session %d was not cut off under stress: %v", i+1, err)
		}
		gwExpect(t, "an idle session under stress", 421, "4.4.2")(code, text)
	}
}

// The last 10% of the slots are kept for addresses below their fair share.
func TestFairShare(t *testing.T) {
	h := limitsHarness(t, func(c *relay.Config) {
		c.MaxConnections, c.MaxConnectionsPerIP, c.StressTimeout = 10, 10, time.Minute
	})
	var open []*lineClient
	for range 9 {
		open = append(open, gwSession(t, h, "127.0.2.40", "heavy.client.test", false, nil))
	}
	tenth, code, text := gwConnect(t, h, "127.0.2.40")
	gwExpect(t, "a tenth connection from the address holding nine", 421, "4.7.0")(code, text)
	tenth.expectClosed(t)
	other := gwSession(t, h, "127.0.2.41", "light.client.test", false, nil)
	gwSimpleMessage(t, other)
	full, code, text := gwConnect(t, h, "127.0.2.42")
	gwExpect(t, "an eleventh connection", 421, "4.7.0")(code, text)
	full.expectClosed(t)
	gwSimpleMessage(t, open[0])
}
