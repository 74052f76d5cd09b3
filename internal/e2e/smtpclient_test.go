package e2e

import (
	"context"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// sender is an error-returning SMTP client: after a crash, failures are
// expected and counted, not fatal.
type sender struct {
	conn net.Conn
	tp   *textproto.Conn
}

func dialSMTP(src, addr string) (*sender, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &sender{conn: c, tp: textproto.NewConn(c)}
	if _, _, err := s.read(220); err != nil {
		c.Close()
		return nil, err
	}
	if err := s.cmd(250, "EHLO e2e.test"); err != nil {
		c.Close()
		return nil, err
	}
	return s, nil
}

func (s *sender) read(want int) (int, string, error) {
	_ = s.conn.SetDeadline(time.Now().Add(30 * time.Second))
	return s.tp.ReadResponse(want)
}

func (s *sender) cmd(want int, format string, args ...any) error {
	_ = s.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := s.tp.PrintfLine(format, args...); err != nil {
		return err
	}
	_, _, err := s.read(want)
	return err
}

// mail sends one message; it returns the final reply code and text.
func (s *sender) mail(from, to, body string) (int, string, error) {
	if err := s.cmd(250, "MAIL FROM:<%s>", from); err != nil {
		return 0, "", err
	}
	if err := s.cmd(250, "RCPT TO:<%s>", to); err != nil {
		return 0, "", err
	}
	if err := s.cmd(354, "DATA"); err != nil {
		return 0, "", err
	}
	w := s.tp.DotWriter()
	if _, err := fmt.Fprint(w, body); err != nil {
		return 0, "", err
	}
	if err := w.Close(); err != nil {
		return 0, "", err
	}
	return s.read(250)
}

// sendOne sends one message on a session of its own from src and fails
// the test unless the relay answers 250.
func sendOne(t testing.TB, src, addr, from, to, body string) {
	t.Helper()
	c, err := dialSMTP(src, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if code, text, err := c.mail(from, to, body); err != nil || code != 250 {
		t.Fatalf("message from %s to %s: %d %s %v", from, to, code, text, err)
	}
}

func (s *sender) close() {
	_ = s.tp.PrintfLine("QUIT")
	s.conn.Close()
}

// waitAccepted waits (up to the one second the live configuration promises,
// with margin) until the relay accepts a recipient.
func waitAccepted(t testing.TB, p *proc, rcpt string) {
	t.Helper()
	s, err := dialSMTP("127.0.0.2", p.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	deadline := time.Now().Add(2 * time.Second)
	for {
		_ = s.cmd(250, "RSET")
		if err := s.cmd(250, "MAIL FROM:<probe@e2e.test>"); err != nil {
			t.Fatal(err)
		}
		if s.cmd(250, "RCPT TO:<%s>", rcpt) == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the relay does not accept %s within 2s of the change", rcpt)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// activateFirst marks revision 1 of a connector validated and active
// through the store, as a third writer on the processes' database.
func activateFirst(t testing.TB, st *store.Store, dir connector.Direction, id int64) {
	t.Helper()
	ctx := context.Background()
	if err := st.MarkValidated(ctx, testutil.TestActor, dir, id, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Activate(ctx, testutil.TestActor, dir, id, 1); err != nil {
		t.Fatal(err)
	}
}

// waitRoute waits until p's live configuration, as its route test sees it,
// relays mail from clientIP and sender to rcpt through host.
func waitRoute(t testing.TB, p *proc, token, clientIP, sender, rcpt, host string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		var rt struct {
			Accepted bool `json:"accepted"`
			Routes   []struct {
				NextHops []string `json:"next_hops"`
			} `json:"routes"`
		}
		p.api(token, "POST", "/route-test", map[string]any{"client_ip": clientIP, "sender": sender, "recipients": []string{rcpt}}, &rt)
		if rt.Accepted && len(rt.Routes) == 1 && strings.Contains(strings.Join(rt.Routes[0].NextHops, " "), host) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the live configuration does not route %s to %s: %+v", rcpt, host, rt)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// relayToSink sets p up to relay mail for contoso.com to sinkAddr: the
// accepted domain and an active on-premises outbound connector for all
// accepted domains (activated through st: validation has tests of its
// own), and waits until p accepts mail for john@contoso.com.
func relayToSink(t testing.TB, p *proc, token string, st *store.Store, sinkAddr string) {
	t.Helper()
	if code := p.api(token, "POST", "/accepted-domains", map[string]string{"domain": "contoso.com"}, nil); code != 201 {
		t.Fatalf("accepted domain: %d", code)
	}
	spec := map[string]any{"name": "On-prem", "connector_type": "on_premises", "all_accepted_domains": true, "smart_hosts": []string{sinkAddr}}
	var created map[string]any
	if code := p.api(token, "POST", "/outbound-connectors", spec, &created); code != 201 {
		t.Fatalf("connector: %d", code)
	}
	activateFirst(t, st, connector.Outbound, int64(created["id"].(float64)))
	waitAccepted(t, p, "john@contoso.com")
}
