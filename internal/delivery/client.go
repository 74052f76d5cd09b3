// Package delivery is flowgate's outbound SMTP client. It delivers one
// message to one route — a connector's smart hosts in order, or the MX
// hosts of a domain by preference — and applies the route's TLS setting
// explicitly: go-smtp's client has no opportunistic STARTTLS, so this
// package speaks the greeting, EHLO and STARTTLS itself, verifies the peer
// with the policy (opportunistic, encryption_only, certificate_validation,
// domain_validation + tls_domain), and hands the established connection to
// go-smtp for the transaction. A TLS policy failure defers with a reason
// that names it; it never downgrades to plain text. Sessions are reused
// for later messages to the same host and policy.
package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/flowgate/flowgate/internal/smtpreply"
)

// Attempt is one connection attempt to one host.
type Attempt struct {
	Host       string
	Addr       string
	Start      time.Time
	Duration   time.Duration
	TLSVersion string
	TLSCipher  string
	PeerChain  []PeerCert
	Note       string // e.g. an opportunistic TLS fallback
	Reply      string // the deciding reply or error
	OK         bool
}

// RcptResult is the outcome for one recipient: delivered, or not with
// the reply that says why (a 5xx bounces it, anything else defers it).
type RcptResult struct {
	Address   string
	Delivered bool
	Reply     smtpreply.Reply
}

// Result is the outcome of one delivery.
type Result struct {
	Attempts []Attempt
	Rcpts    []RcptResult
}

// Client delivers messages.
type Client struct {
	Hostname    string         // EHLO name
	Roots       *x509.CertPool // system roots plus FLOWGATE_OUTBOUND_CA
	Resolver    *Resolver
	DialTimeout time.Duration
	Port        int // default port for MX hosts (25); tests change it
	// GreetingTimeout is how long a host may take to greet (default 1
	// minute); DownFor how long a host that timed out or greeted with an
	// error is skipped (default 1 minute). See downhosts.go.
	GreetingTimeout time.Duration
	DownFor         time.Duration

	mu   sync.Mutex
	idle map[string][]*session
	down downHosts
}

// session is an established SMTP session to one address under one policy.
type session struct {
	c          *smtp.Client
	conn       net.Conn
	key        string
	host, addr string
	tlsVer     string
	cipher     string
	chain      []PeerCert
	note       string
	idleSince  time.Time
}

const (
	maxIdlePerKey = 32 // the default delivery concurrency: fewer reconnections under load
	idleTimeout   = 30 * time.Second
)

func (c *Client) port() int {
	if c.Port == 0 {
		return 25
	}
	return c.Port
}

// Deliver sends content from `from` to rcpts through t. Hosts are tried in
// order; the next host is tried after a connection, greeting, TLS policy
// or transaction-level temporary failure. Recipient-level replies are
// final for this attempt.
func (c *Client) Deliver(ctx context.Context, t Target, from string, rcpts []string, content Content) Result {
	var res Result
	fail := func(reply smtpreply.Reply) Result {
		res.Rcpts = res.Rcpts[:0]
		for _, r := range rcpts {
			res.Rcpts = append(res.Rcpts, RcptResult{Address: r, Reply: reply})
		}
		return res
	}
	hosts := t.Hosts
	if len(hosts) == 0 {
		var err error
		hosts, err = c.Resolver.MXHosts(ctx, t.MXDomain, c.port())
		if err != nil {
			var de *DNSError
			if errors.As(err, &de) && de.Permanent {
				return fail(smtpreply.Reply{Code: 550, Enhanced: [3]int{5, 1, 2}, Text: err.Error()})
			}
			return fail(smtpreply.Reply{Code: 451, Enhanced: [3]int{4, 4, 3}, Text: err.Error()})
		}
	}
	lastReply := smtpreply.Reply{Code: 451, Enhanced: [3]int{4, 4, 1}, Text: "no host could be reached"}
	for _, h := range hosts {
		addrs := []netip.Addr{h.IP}
		if !h.IP.IsValid() {
			var err error
			addrs, err = c.Resolver.LookupAddrs(ctx, h.Name)
			if err != nil {
				res.Attempts = append(res.Attempts, Attempt{Host: h.Name, Start: time.Now(), Reply: err.Error()})
				lastReply = smtpreply.Reply{Code: 451, Enhanced: [3]int{4, 4, 3}, Text: err.Error()}
				continue
			}
		}
		port := h.Port
		if port == 0 {
			port = c.port()
		}
		for _, ip := range addrs {
			addr := net.JoinHostPort(ip.String(), strconv.Itoa(port))
			att := Attempt{Host: h.Name, Addr: addr, Start: time.Now()}
			if why, down := c.down.check(addr, att.Start); down {
				att.Reply = why
				res.Attempts = append(res.Attempts, att)
				lastReply = smtpreply.Reply{Code: 451, Enhanced: [3]int{4, 4, 1}, Text: why}
				continue
			}
			out, done, reply := c.attempt(ctx, t, h.Name, addr, &att, from, rcpts, content)
			att.Duration = time.Since(att.Start)
			att.Reply = reply.String()
			att.OK = done
			res.Attempts = append(res.Attempts, att)
			if done {
				res.Rcpts = out
				return res
			}
			lastReply = reply
			if ctx.Err() != nil {
				return fail(smtpreply.Reply{Code: 451, Enhanced: [3]int{4, 4, 2}, Text: "delivery interrupted: " + ctx.Err().Error()})
			}
		}
	}
	return fail(lastReply)
}

// attempt runs one transaction on one address. done is false when the
// next host should be tried; reply then says why.
func (c *Client) attempt(ctx context.Context, t Target, host, addr string, att *Attempt, from string, rcpts []string, content Content) ([]RcptResult, bool, smtpreply.Reply) {
	key := fmt.Sprintf("%s|%s|%s|%v", addr, host, t.TLS, t.TLSDomain)
	s, reused := c.takeIdle(key), true
	if s == nil {
		reused = false
		var err error
		s, err = c.open(ctx, t, host, addr, key)
		if err != nil {
			var ue *unavailableError
			if errors.As(err, &ue) {
				c.down.mark(addr, err.Error(), time.Now().Add(c.downFor()))
			}
			return nil, false, errorReply(err)
		}
	}
	att.TLSVersion, att.TLSCipher, att.PeerChain, att.Note = s.tlsVer, s.cipher, s.chain, s.note
	out, done, reply, healthy := c.transact(ctx, s, from, rcpts, content)
	if !healthy && reused && !done {
		// A pooled session may have been closed by the peer; retry once
		// on a fresh connection.
		s.c.Close()
		fresh, err := c.open(ctx, t, host, addr, key)
		if err != nil {
			return nil, false, errorReply(err)
		}
		s = fresh
		att.TLSVersion, att.TLSCipher, att.PeerChain, att.Note = s.tlsVer, s.cipher, s.chain, s.note
		out, done, reply, healthy = c.transact(ctx, s, from, rcpts, content)
	}
	if healthy {
		c.putIdle(s)
	} else {
		s.c.Close()
	}
	return out, done, reply
}

// transact runs MAIL, RCPT…, DATA. healthy says whether the session can be
// reused.
func (c *Client) transact(ctx context.Context, s *session, from string, rcpts []string, content Content) (out []RcptResult, done bool, reply smtpreply.Reply, healthy bool) {
	// MAIL, RCPT and DATA go in one write when the server offers
	// PIPELINING (RFC 2920), one at a time otherwise.
	env, err := s.c.SendEnvelope(from, &smtp.MailOptions{Size: content.Size()}, rcpts)
	if err != nil {
		return nil, false, errorReply(err), false
	}
	if env.Mail != nil {
		if errorReply(env.Mail).Permanent() {
			for _, r := range rcpts {
				out = append(out, RcptResult{Address: r, Reply: errorReply(env.Mail)})
			}
			_ = s.c.Reset()
			return out, true, errorReply(env.Mail), true
		}
		return nil, false, errorReply(env.Mail), false
	}
	var accepted []string
	for i, r := range rcpts {
		if err := env.Rcpt[i]; err != nil {
			out = append(out, RcptResult{Address: r, Reply: errorReply(err)})
			continue
		}
		accepted = append(accepted, r)
	}
	if len(accepted) == 0 {
		_ = s.c.Reset()
		return out, true, smtpreply.Reply{Text: "no recipient accepted"}, true
	}
	if env.DataErr != nil {
		for _, r := range accepted {
			out = append(out, RcptResult{Address: r, Reply: errorReply(env.DataErr)})
		}
		_ = s.c.Reset()
		return out, true, errorReply(env.DataErr), true
	}
	w := env.Data
	if werr := sendContent(ctx, s.conn, writerFunc(w.WriteRaw), w, content); werr != nil {
		// Never end the content with its final dot after a failure (a
		// piece that could not be read, a broken connection): the next
		// hop would take the part sent for the whole message. Closing the
		// connection makes it discard the part.
		_ = s.conn.Close()
		return nil, false, errorReply(fmt.Errorf("sending the content: %w", werr)), false
	}
	resp, cerr := w.CloseWithResponse()
	if cerr != nil {
		if !isSMTP(cerr) {
			return nil, false, errorReply(cerr), false
		}
		for _, r := range accepted {
			out = append(out, RcptResult{Address: r, Reply: errorReply(cerr)})
		}
		return out, true, errorReply(cerr), true
	}
	final := smtpreply.Reply{Code: 250, Text: resp.StatusText}
	for _, r := range accepted {
		out = append(out, RcptResult{Address: r, Delivered: true, Reply: final})
	}
	return out, true, final, true
}

func isSMTP(err error) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se)
}

// errorReply is the reply an error of a delivery step stands for: the
// server's reply, or (Code 0) what went wrong without one.
func errorReply(err error) smtpreply.Reply {
	var pe *PolicyError
	if !isSMTP(err) && errors.As(err, &pe) {
		return smtpreply.Reply{Text: "TLS policy: " + pe.Reason}
	}
	return smtpreply.FromError(err)
}

// open connects and establishes the session under the TLS setting.
func (c *Client) open(ctx context.Context, t Target, host, addr, key string) (*session, error) {
	timeout := c.DialTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && strings.Contains(err.Error(), "refused") {
			return nil, fmt.Errorf("connection refused on %s", addr)
		}
		return nil, unavailable(fmt.Errorf("connect to %s: %w", addr, err), false)
	}
	s, err := c.handshake(conn, t, host, addr, false)
	if err != nil {
		conn.Close()
		var pe *PolicyError
		if t.TLS.RequiresTLS() || !errors.As(err, &pe) {
			return nil, err
		}
		// Opportunistic TLS whose handshake failed: like Postfix, try once
		// more without STARTTLS, and say so in the trace.
		conn, derr := d.DialContext(ctx, "tcp", addr)
		if derr != nil {
			return nil, err
		}
		s, err = c.handshake(conn, t, host, addr, true)
		if err != nil {
			conn.Close()
			return nil, err
		}
		s.note = "STARTTLS failed (" + pe.Reason + "); sent without TLS, as opportunistic TLS allows"
	}
	s.key = key
	return s, nil
}

// handshake reads the greeting, sends EHLO, runs STARTTLS as the policy
// says, and returns a go-smtp client positioned after a fresh EHLO.
func (c *Client) handshake(conn net.Conn, t Target, host, addr string, plain bool) (*session, error) {
	_ = conn.SetDeadline(time.Now().Add(c.greetingTimeout()))
	defer conn.SetDeadline(time.Time{})
	tp := textproto.NewConn(conn)
	if _, msg, err := tp.ReadResponse(220); err != nil {
		return nil, unavailable(fmt.Errorf("greeting from %s: %s", addr, protoText(err, msg)), true)
	}
	_ = conn.SetDeadline(time.Now().Add(commandTimeout))
	id, err := tp.Cmd("EHLO %s", c.Hostname)
	if err != nil {
		return nil, err
	}
	tp.StartResponse(id)
	_, msg, err := tp.ReadResponse(250)
	tp.EndResponse(id)
	if err != nil {
		return nil, fmt.Errorf("EHLO to %s: %s", addr, protoText(err, msg))
	}
	offersTLS := false
	for _, line := range strings.Split(msg, "\n")[1:] {
		if strings.EqualFold(strings.TrimSpace(line), "STARTTLS") {
			offersTLS = true
		}
	}
	required := t.TLS.RequiresTLS()
	s := &session{host: host, addr: addr}
	if !offersTLS || plain {
		if required {
			return nil, &PolicyError{fmt.Sprintf("%s (%s) does not offer STARTTLS; tls_settings %s requires TLS", host, addr, t.TLS)}
		}
		return c.finish(s, conn, tp)
	}
	id, err = tp.Cmd("STARTTLS")
	if err != nil {
		return nil, err
	}
	tp.StartResponse(id)
	_, msg, err = tp.ReadResponse(220)
	tp.EndResponse(id)
	if err != nil {
		if required {
			return nil, &PolicyError{fmt.Sprintf("%s (%s) refused STARTTLS: %s", host, addr, protoText(err, msg))}
		}
		return c.finish(s, conn, tp)
	}
	serverName := host
	if _, err := netip.ParseAddr(host); err == nil {
		serverName = ""
	}
	tc := tls.Client(conn, &tls.Config{
		ServerName:         serverName,
		InsecureSkipVerify: true, // the policy verifies, in VerifyConnection
		VerifyConnection:   PolicyCheck(t.TLS, t.TLSDomain, c.Roots, host),
		MinVersion:         tls.VersionTLS12,
	})
	if err := tc.Handshake(); err != nil {
		var pe *PolicyError
		if errors.As(err, &pe) {
			return nil, pe
		}
		// Opportunistic TLS that fails mid-handshake leaves the session
		// unusable; the caller may retry. Required TLS: a policy failure.
		return nil, &PolicyError{fmt.Sprintf("TLS handshake with %s (%s) failed: %v", host, addr, err)}
	}
	st := tc.ConnectionState()
	s.tlsVer, s.cipher, s.chain = tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite), DescribeChain(st)
	return c.finish(s, tc, nil)
}

// finish wraps the connection for go-smtp, which expects a greeting, and
// sends EHLO again (required after STARTTLS).
func (c *Client) finish(s *session, conn net.Conn, tp *textproto.Conn) (*session, error) {
	var r io.Reader = conn
	if tp != nil {
		// Keep reading through textproto's buffer: bytes it already holds
		// belong to the session.
		r = tp.R
	}
	wrapped := &greetedConn{Conn: conn, r: io.MultiReader(strings.NewReader("220 resumed\r\n"), r)}
	sc := smtp.NewClient(wrapped)
	if err := sc.Hello(c.Hostname); err != nil {
		sc.Close()
		return nil, fmt.Errorf("EHLO to %s: %s", s.addr, errorReply(err))
	}
	s.c, s.conn = sc, conn
	return s, nil
}

func protoText(err error, msg string) string {
	var te *textproto.Error
	if errors.As(err, &te) {
		return fmt.Sprintf("%d %s", te.Code, te.Msg)
	}
	if msg != "" {
		return msg
	}
	return err.Error()
}

// greetedConn replays a synthetic greeting to go-smtp's client.
type greetedConn struct {
	net.Conn
	r io.Reader
}

func (g *greetedConn) Read(p []byte) (int, error) { return g.r.Read(p) }

func (c *Client) takeIdle(key string) *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	list := c.idle[key]
	for len(list) > 0 {
		s := list[len(list)-1]
		list = list[:len(list)-1]
		if time.Since(s.idleSince) < idleTimeout {
			c.idle[key] = list
			return s
		}
		go s.c.Close()
	}
	delete(c.idle, key)
	return nil
}

func (c *Client) putIdle(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.idle == nil {
		c.idle = map[string][]*session{}
	}
	if len(c.idle[s.key]) >= maxIdlePerKey {
		go func() { _ = s.c.Quit() }()
		return
	}
	s.idleSince = time.Now()
	c.idle[s.key] = append(c.idle[s.key], s)
}

// Close ends every idle session.
func (c *Client) Close() {
	c.mu.Lock()
	idle := c.idle
	c.idle = nil
	c.mu.Unlock()
	for _, list := range idle {
		for _, s := range list {
			_ = s.c.Quit()
		}
	}
}
