package smtp

// Tests of flowgate's addition SendEnvelope (pipelining.go) against a
// scripted server on a real loopback TCP connection.

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// scriptStep is one step of a scripted server: read lines until one
// starting with expect (when set), then write reply (when set).
type scriptStep struct {
	expect []string // lines read in order, each checked by prefix
	reply  string   // written after the lines were read
	data   bool     // read a message content up to "." before replying
}

type scriptServer struct {
	addr   string
	done   chan error
	gotMsg chan string
}

func startScript(t *testing.T, ehlo string, steps []scriptStep) *scriptServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &scriptServer{addr: ln.Addr().String(), done: make(chan error, 1), gotMsg: make(chan string, 4)}
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			s.done <- err
			return
		}
		defer conn.Close()
		// A client that waits for a reply the script has not sent yet
		// (one that does not pipeline where it should) stalls the
		// script: the deadline turns that into a failure.
		conn.SetDeadline(time.Now().Add(3 * time.Second))
		r := textproto.NewReader(bufio.NewReader(conn))
		w := bufio.NewWriter(conn)
		send := func(s string) {
			w.WriteString(s)
			w.Flush()
		}
		send("220 script ready\r\n")
		if line, err := r.ReadLine(); err != nil || !strings.HasPrefix(line, "EHLO") {
			s.done <- errors.New("no EHLO: " + line)
			return
		}
		send(ehlo)
		for i, st := range steps {
			for _, want := range st.expect {
				line, err := r.ReadLine()
				if err != nil {
					s.done <- errors.New("step " + string(rune('0'+i)) + ": waiting for " + want + ": " + err.Error())
					return
				}
				if !strings.HasPrefix(line, want) {
					s.done <- errors.New("step " + string(rune('0'+i)) + ": got " + line + ", want " + want)
					return
				}
			}
			if st.data {
				lines, err := r.ReadDotLines()
				if err != nil {
					s.done <- err
					return
				}
				s.gotMsg <- strings.Join(lines, "\n")
			}
			if st.reply != "" {
				send(st.reply)
			}
		}
		s.done <- nil
	}()
	return s
}

func (s *scriptServer) client(t *testing.T) *Client {
	t.Helper()
	c, err := Dial(s.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	return c
}

func (s *scriptServer) wait(t *testing.T) {
	t.Helper()
	if err := <-s.done; err != nil {
		t.Fatalf("server script: %v", err)
	}
}

func code(err error) int {
	var se *SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

const ehloPipelining = "250-script\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250 8BITMIME\r\n"
const ehloPlain = "250-script\r\n250 8BITMIME\r\n"

func TestSendEnvelopePipelined(t *testing.T) {
	// The script reads all four commands before it answers any: a client
	// that waited for the MAIL reply would stall it.
	s := startScript(t, ehloPipelining, []scriptStep{
		{expect: []string{"MAIL FROM:<a@x.test> BODY=8BITMIME SIZE=5", "RCPT TO:<b@y.test>", "RCPT TO:<c@y.test>", "DATA"},
			reply: "250 sender ok\r\n250 b ok\r\n550 5.1.1 no such user c\r\n354 go ahead\r\n"},
		{data: true, reply: "250 2.0.0 queued as 1\r\n"},
		{expect: []string{"QUIT"}, reply: "221 bye\r\n"},
	})
	c := s.client(t)
	env, err := c.SendEnvelope("a@x.test", &MailOptions{Size: 5}, []string{"b@y.test", "c@y.test"})
	if err != nil {
		t.Fatal(err)
	}
	if env.Mail != nil || env.Rcpt[0] != nil || code(env.Rcpt[1]) != 550 || env.DataErr != nil || env.Data == nil {
		t.Fatalf("envelope: %+v", env)
	}
	if _, err := io.WriteString(env.Data, "Subject: hi\r\n\r\n.dot\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := env.Data.CloseWithResponse()
	if err != nil || resp.StatusText != "2.0.0 queued as 1" {
		t.Fatalf("final reply %+v, %v", resp, err)
	}
	if got := <-s.gotMsg; got != "Subject: hi\n\n.dot" {
		t.Errorf("server got content %q", got)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
}

func TestSendEnvelopePipelinedRefusals(t *testing.T) {
	s := startScript(t, ehloPipelining, []scriptStep{
		// MAIL refused: the server refuses the rest; the client reads
		// every reply, so the next command is in step.
		{expect: []string{"MAIL FROM:<a@x.test>", "RCPT TO:<b@y.test>", "DATA"},
			reply: "451 4.3.0 try later\r\n503 5.5.1 sender first\r\n503 5.5.1 no valid recipients\r\n"},
		{expect: []string{"RSET"}, reply: "250 reset\r\n"},
		// go-smtp's Reset makes the client send EHLO again.
		{expect: []string{"EHLO"}, reply: ehloPipelining},
		// Every recipient refused, DATA refused.
		{expect: []string{"MAIL FROM:<a@x.test>", "RCPT TO:<b@y.test>", "RCPT TO:<c@y.test>", "DATA"},
			reply: "250 ok\r\n550 no b\r\n450 not now c\r\n554 5.5.1 no valid recipients\r\n"},
		{expect: []string{"RSET"}, reply: "250 reset\r\n"},
		{expect: []string{"EHLO"}, reply: ehloPipelining},
		// Every recipient refused, but DATA accepted anyway: the client
		// ends an empty message at once.
		{expect: []string{"MAIL FROM:<a@x.test>", "RCPT TO:<b@y.test>", "DATA"},
			reply: "250 ok\r\n550 no b\r\n354 go ahead\r\n"},
		{data: true, reply: "554 5.5.1 no recipients\r\n"},
		{expect: []string{"RSET"}, reply: "250 reset\r\n"},
		{expect: []string{"EHLO"}, reply: ehloPipelining},
		{expect: []string{"QUIT"}, reply: "221 bye\r\n"},
	})
	c := s.client(t)
	env, err := c.SendEnvelope("a@x.test", nil, []string{"b@y.test"})
	if err != nil {
		t.Fatal(err)
	}
	if code(env.Mail) != 451 || code(env.Rcpt[0]) != 503 || code(env.DataErr) != 503 || env.Data != nil {
		t.Fatalf("MAIL refused: %+v", env)
	}
	if err := c.Reset(); err != nil {
		t.Fatalf("RSET after a refused MAIL: %v", err)
	}
	env, err = c.SendEnvelope("a@x.test", nil, []string{"b@y.test", "c@y.test"})
	if err != nil {
		t.Fatal(err)
	}
	if env.Mail != nil || code(env.Rcpt[0]) != 550 || code(env.Rcpt[1]) != 450 || code(env.DataErr) != 554 || env.Data != nil {
		t.Fatalf("recipients refused: %+v", env)
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	env, err = c.SendEnvelope("a@x.test", nil, []string{"b@y.test"})
	if err != nil {
		t.Fatal(err)
	}
	if code(env.Rcpt[0]) != 550 || !errors.Is(env.DataErr, errEmptyData) || env.Data != nil {
		t.Fatalf("DATA accepted without recipients: %+v", env)
	}
	if got := <-s.gotMsg; got != "" {
		t.Errorf("server got content %q, want an empty message", got)
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
}

func TestSendEnvelopeInTurnWithoutPipelining(t *testing.T) {
	// Each step answers one command before the next is read: a client
	// that pipelined would still work here, so the checks are that no
	// RCPT follows a refused MAIL and no DATA follows refused recipients
	// (the next line read must be RSET).
	s := startScript(t, ehloPlain, []scriptStep{
		{expect: []string{"MAIL FROM:<a@x.test> BODY=8BITMIME"}, reply: "250 ok\r\n"},
		{expect: []string{"RCPT TO:<b@y.test>"}, reply: "250 ok\r\n"},
		{expect: []string{"RCPT TO:<c@y.test>"}, reply: "550 no\r\n"},
		{expect: []string{"DATA"}, reply: "354 go\r\n"},
		{data: true, reply: "250 queued\r\n"},
		{expect: []string{"MAIL FROM:<a@x.test>"}, reply: "550 5.7.1 sender refused\r\n"},
		{expect: []string{"RSET"}, reply: "250 reset\r\n"},
		{expect: []string{"EHLO"}, reply: ehloPlain},
		{expect: []string{"MAIL FROM:<a@x.test>"}, reply: "250 ok\r\n"},
		{expect: []string{"RCPT TO:<b@y.test>"}, reply: "550 no\r\n"},
		{expect: []string{"RSET"}, reply: "250 reset\r\n"},
		{expect: []string{"EHLO"}, reply: ehloPlain},
		{expect: []string{"QUIT"}, reply: "221 bye\r\n"},
	})
	c := s.client(t)
	env, err := c.SendEnvelope("a@x.test", nil, []string{"b@y.test", "c@y.test"})
	if err != nil {
		t.Fatal(err)
	}
	if env.Mail != nil || env.Rcpt[0] != nil || code(env.Rcpt[1]) != 550 || env.Data == nil {
		t.Fatalf("envelope: %+v", env)
	}
	io.WriteString(env.Data, "x\r\n")
	if _, err := env.Data.CloseWithResponse(); err != nil {
		t.Fatal(err)
	}
	<-s.gotMsg
	env, err = c.SendEnvelope("a@x.test", nil, []string{"b@y.test"})
	if err != nil || code(env.Mail) != 550 || len(env.Rcpt) != 0 || env.Data != nil {
		t.Fatalf("MAIL refused: %+v, %v", env, err)
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	env, err = c.SendEnvelope("a@x.test", nil, []string{"b@y.test"})
	if err != nil || code(env.Rcpt[0]) != 550 || env.Data != nil || env.DataErr != nil {
		t.Fatalf("recipient refused: %+v, %v", env, err)
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
}

func TestSendEnvelopeConnectionLost(t *testing.T) {
	s := startScript(t, ehloPipelining, []scriptStep{
		{expect: []string{"MAIL", "RCPT", "DATA"}, reply: "250 ok\r\n"}, // then the server hangs up
	})
	c := s.client(t)
	env, err := c.SendEnvelope("a@x.test", nil, []string{"b@y.test"})
	if err == nil {
		t.Fatalf("no error when the server hung up mid-reply: %+v", env)
	}
	if _, err := c.SendEnvelope("a@x.test\r\nRCPT TO:<evil@x.test>", nil, nil); err == nil {
		t.Fatal("a sender with CR LF was sent")
	}
	if _, err := c.SendEnvelope("a@x.test", nil, []string{"b@y.test\nDATA"}); err == nil {
		t.Fatal("a recipient with LF was sent")
	}
	s.wait(t)
}
