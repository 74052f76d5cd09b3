package testutil

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// SinkMessage is one message a Sink received.
type SinkMessage struct {
	From string
	To   []string
	Data string
	TLS  bool
}

// Sink is a real SMTP server that records what it receives. It can offer
// STARTTLS with a given certificate, refuse chosen recipients, fail
// temporarily, and be stopped and started again on the same address.
type Sink struct {
	t    testing.TB
	Addr string
	cert *tls.Certificate

	mu         sync.Mutex
	msgs       []SinkMessage
	rejectRcpt map[string]*smtp.SMTPError
	tempFail   *smtp.SMTPError
	hold       *sinkHold
	delay      time.Duration
	srv        *smtp.Server
	ln         net.Listener // closed by Stop too: Close may run before Serve has taken the listener
}

type sinkHold struct{ arrived, release chan struct{} }

// SinkOptions configure NewSink.
type SinkOptions struct {
	Addr string           // listen address; default 127.0.0.1:0
	Cert *tls.Certificate // offer STARTTLS with this certificate
}

// NewSink starts a sink.
func NewSink(t testing.TB, o SinkOptions) *Sink {
	t.Helper()
	s := &Sink{t: t, cert: o.Cert, rejectRcpt: map[string]*smtp.SMTPError{}}
	addr := o.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	s.start(addr)
	t.Cleanup(s.Stop)
	return s
}

func (s *Sink) start(addr string) {
	s.t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the address may linger briefly after Stop
		ln, err = net.Listen("tcp", addr)
		if err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("sink listen %s: %v", addr, err)
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, isTLS := c.TLSConnectionState()
		return &sinkSession{s: s, tls: isTLS}, nil
	}))
	srv.Domain = "sink.test"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	if s.cert != nil {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*s.cert}}
	}
	s.mu.Lock()
	s.srv, s.ln = srv, ln
	s.Addr = ln.Addr().String()
	s.mu.Unlock()
	go srv.Serve(ln)
}

// Stop closes the sink (an outage).
func (s *Sink) Stop() {
	s.mu.Lock()
	srv, ln := s.srv, s.ln
	s.srv, s.ln = nil, nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
		_ = ln.Close()
	}
}

// Start brings a stopped sink back on the same address.
func (s *Sink) Start() { s.start(s.Addr) }

// RejectRcpt makes the sink refuse a recipient with code and text.
func (s *Sink) RejectRcpt(addr string, code int, enhanced [3]int, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejectRcpt[strings.ToLower(addr)] = &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode(enhanced), Message: text}
}

// Messages returns what the sink received so far.
func (s *Sink) Messages() []SinkMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SinkMessage(nil), s.msgs...)
}

// Wait waits until the sink holds at least n messages and returns them.
func (s *Sink) Wait(t testing.TB, n int, timeout time.Duration) []SinkMessage {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m := s.Messages()
		if len(m) >= n {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink %s has %d messages after %s, want %d", s.Addr, len(m), timeout, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type sinkSession struct {
	s    *Sink
	tls  bool
	from string
	to   []string
}

func (ss *sinkSession) Reset()        { ss.from, ss.to = "", nil }
func (ss *sinkSession) Logout() error { return nil }
func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if ss.s.tempFail != nil {
		return ss.s.tempFail
	}
	ss.from = from
	return nil
}
func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	delay := ss.s.delay
	ss.s.mu.Unlock()
	time.Sleep(delay)
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	if e := ss.s.rejectRcpt[strings.ToLower(to)]; e != nil {
		return e
	}
	ss.to = append(ss.to, to)
	return nil
}
func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	h := ss.s.hold
	ss.s.hold = nil
	ss.s.mu.Unlock()
	if h != nil {
		close(h.arrived)
		<-h.release
	}
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	ss.s.msgs = append(ss.s.msgs, SinkMessage{From: ss.from, To: ss.to, Data: string(b), TLS: ss.tls})
	return nil
}

// Hold makes the sink wait before it answers the next message's content:
// arrived is closed when the content has been read, and the sink keeps the
// message and answers 250 once release is called.
func (s *Sink) Hold() (arrived <-chan struct{}, release func()) {
	h := &sinkHold{arrived: make(chan struct{}), release: make(chan struct{})}
	s.mu.Lock()
	s.hold = h
	s.mu.Unlock()
	var once sync.Once
	return h.arrived, func() { once.Do(func() { close(h.release) }) }
}

// SetDelay makes the sink wait d before it answers each RCPT (0: answer at
// once), like a slow next hop; a client that goes away meanwhile has
// delivered nothing.
func (s *Sink) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// SetTempFail makes every MAIL FROM fail with 451 (on) or work (off).
func (s *Sink) SetTempFail(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.tempFail = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
	} else {
		s.tempFail = nil
	}
}

// String names the sink.
func (s *Sink) String() string { return fmt.Sprintf("sink %s", s.Addr) }
