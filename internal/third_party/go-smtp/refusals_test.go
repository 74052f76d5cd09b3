package smtp

// Test of flowgate's addition RefusalObserver (refusals.go).

import (
	"io"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
)

type observingSession struct {
	mu   *sync.Mutex
	seen *[]string
}

func (s observingSession) Reset()                          {}
func (s observingSession) Logout() error                   { return nil }
func (s observingSession) Mail(string, *MailOptions) error { return nil }
func (s observingSession) Rcpt(string, *RcptOptions) error { return nil }
func (s observingSession) Data(r io.Reader) error          { _, err := io.Copy(io.Discard, r); return err }
func (s observingSession) CommandRefused(cmd, arg string, reply *SMTPError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	*s.seen = append(*s.seen, cmd+" "+arg+" → "+reply.Error())
}

func TestRefusalObserverSeesUnparsableCommands(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := NewServer(BackendFunc(func(*Conn) (Session, error) { return observingSession{&mu, &seen}, nil }))
	srv.Domain = "observer.test"
	srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := textproto.NewConn(conn)
	defer c.Close()
	expect := func(code int, format string, args ...interface{}) {
		t.Helper()
		if format != "" {
			if err := c.PrintfLine(format, args...); err != nil {
				t.Fatal(err)
			}
		}
		if _, msg, err := c.ReadResponse(code); err != nil {
			t.Fatalf("%q: %v %s", format, err, msg)
		}
	}
	expect(220, "")
	expect(250, "EHLO client.test")
	expect(501, "MAIL FROM:<a@x.test")
	expect(501, "MAIL FROM:<a@x.test> A=B=C")
	expect(250, "MAIL FROM:<a@x.test>")
	expect(501, "RCPT TO:<@bad,route>")
	expect(501, "RCPT WHO:<b@y.test>")
	expect(250, "RCPT TO:<b@y.test>")
	expect(221, "QUIT")

	mu.Lock()
	defer mu.Unlock()
	want := []string{
		"MAIL FROM:<a@x.test → SMTP error 501: Was expecting MAIL arg syntax of FROM:<address>",
		"MAIL FROM:<a@x.test> A=B=C → SMTP error 501: Unable to parse MAIL ESMTP parameters",
		"RCPT TO:<@bad,route> → SMTP error 501: Was expecting RCPT arg syntax of TO:<address>",
		"RCPT WHO:<b@y.test> → SMTP error 501: Was expecting RCPT arg syntax of TO:<address>",
	}
	if strings.Join(seen, "\n") != strings.Join(want, "\n") {
		t.Errorf("observed:\n%s\nwant:\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
}
