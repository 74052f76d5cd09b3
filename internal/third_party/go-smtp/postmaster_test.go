package smtp

// Test of flowgate's patch 6: "<Postmaster>" without a domain reaches the
// session (RFC 5321 4.5.1).

import (
	"io"
	"net"
	"net/textproto"
	"sync"
	"testing"
)

type rcptSession struct {
	mu   *sync.Mutex
	rcpt *[]string
}

func (s rcptSession) Reset()                          {}
func (s rcptSession) Logout() error                   { return nil }
func (s rcptSession) Mail(string, *MailOptions) error { return nil }
func (s rcptSession) Data(r io.Reader) error          { _, err := io.Copy(io.Discard, r); return err }
func (s rcptSession) Rcpt(to string, _ *RcptOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	*s.rcpt = append(*s.rcpt, to)
	return nil
}

func TestPostmasterWithoutDomain(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := NewServer(BackendFunc(func(*Conn) (Session, error) { return rcptSession{&mu, &got}, nil }))
	srv.Domain = "postmaster.test"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go srv.Serve(ln)
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := textproto.NewConn(conn)
	defer c.Close()
	step := func(want int, line string) {
		t.Helper()
		if line != "" {
			if err := c.PrintfLine("%s", line); err != nil {
				t.Fatal(err)
			}
		}
		if code, msg, err := c.ReadResponse(0); code != want {
			t.Fatalf("%q: %d %s %v, want %d", line, code, msg, err, want)
		}
	}
	step(220, "")
	step(250, "EHLO client.test")
	step(250, "MAIL FROM:<a@b.test>")
	step(250, "RCPT TO:<Postmaster>")
	step(250, "RCPT TO:<POSTMASTER>")
	step(250, "rcpt to: <postmaster@b.test>")
	step(501, "RCPT TO:<postmaster")   // still a malformed path
	step(501, "RCPT TO:<postmasterx>") // a local part alone is no address
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 || got[0] != "Postmaster" || got[1] != "Postmaster" || got[2] != "postmaster@b.test" {
		t.Fatalf("recipients the session saw: %q", got)
	}
}
