package testutil

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// DialFrom connects to addr from the loopback source address src (for
// example "127.0.0.7"), so one test machine can stand for many clients.
func DialFrom(t testing.TB, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	return c
}

// RawSMTP is a line-level SMTP client for tests that need to send exactly
// what they mean (malformed addresses, bare LFs, pipelining).
type RawSMTP struct {
	t    testing.TB
	Conn net.Conn
	r    *bufio.Reader
}

// NewRawSMTP dials from src and reads the greeting.
func NewRawSMTP(t testing.TB, src, addr string) *RawSMTP {
	t.Helper()
	c := &RawSMTP{t: t, Conn: DialFrom(t, src, addr)}
	c.r = bufio.NewReader(c.Conn)
	t.Cleanup(func() { c.Conn.Close() })
	if code, text := c.Read(); code != 220 {
		t.Fatalf("greeting: %d %s", code, text)
	}
	return c
}

// Read reads one (possibly multi-line) reply.
func (c *RawSMTP) Read() (int, string) {
	c.t.Helper()
	_ = c.Conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var lines []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read reply: %v (so far %q)", err, lines)
		}
		line = strings.TrimRight(line, "\r\n")
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			var code int
			fmt.Sscanf(line, "%d", &code)
			return code, strings.Join(lines, "\n")
		}
	}
}

// Cmd sends a command line and reads the reply.
func (c *RawSMTP) Cmd(format string, args ...any) (int, string) {
	c.t.Helper()
	c.Send(format+"\r\n", args...)
	return c.Read()
}

// Send writes raw bytes.
func (c *RawSMTP) Send(format string, args ...any) {
	c.t.Helper()
	_ = c.Conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c.Conn, format, args...); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// StartTLS runs STARTTLS and the handshake; EHLO must be sent again.
func (c *RawSMTP) StartTLS(cfg *tls.Config) {
	c.t.Helper()
	if code, text := c.Cmd("STARTTLS"); code != 220 {
		c.t.Fatalf("STARTTLS: %d %s", code, text)
	}
	tc := tls.Client(c.Conn, cfg)
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.Conn = tc
	c.r = bufio.NewReader(tc)
}
