package validation

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/textproto"
	"strings"
	"sync"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/liveconfig"
	"github.com/flowgate/flowgate/internal/relay"
	"github.com/flowgate/flowgate/internal/routing"
	"github.com/flowgate/flowgate/internal/store"
)

// Inbound validates inbound connector revisions through flowgate's own,
// live SMTP listener.
type Inbound struct {
	Relay    *relay.Relay
	Port     int // the relay's listening port; probes connect to 127.0.0.1 on it
	Store    *store.Store
	Hostname string
	Timeout  time.Duration // per network step; default 30 s
}

func (in *Inbound) timeout() time.Duration {
	if in.Timeout == 0 {
		return 30 * time.Second
	}
	return in.Timeout
}

// probeFacts is who a probe pretends to be.
type probeFacts struct {
	client routing.Client
	sender string
	broken string // for the negative probe: the restriction it breaks
	expect string // the enhanced status code the negative probe must get
}

// documentation addresses for probes that must not match the connector.
var outsideIPs = []string{"192.0.2.77", "198.51.100.77", "203.0.113.77", "2001:db8::77"}

func firstIP(spec connector.ParsedInbound) (netip.Addr, bool) {
	for _, s := range spec.SenderIPs {
		from := s.Range.From()
		if p := s.Prefixes(); len(p) == 1 && p[0].Bits() < from.BitLen()-1 {
			return from.Next(), true // a host inside the network, not its network address
		}
		return from, true
	}
	return netip.Addr{}, false
}

// nameFor turns a pattern into a concrete name that it matches.
func nameFor(pattern string) string {
	if rest, ok := strings.CutPrefix(pattern, "*."); ok {
		return "probe." + rest
	}
	return pattern
}

// Validate runs the inbound validation of one revision: a positive probe
// that must be accepted, attributed to this revision and routed, and a
// negative probe that breaks one restriction and must be refused.
func (in *Inbound) Validate(ctx context.Context, connectorID int64, name string, revision int, spec *connector.InboundSpec, sender string, rcpts []string) *store.Validation {
	r := newRun(ctx)
	r.logf("validating revision %d of inbound connector %q through flowgate's SMTP listener on 127.0.0.1:%d", revision, name, in.Port)

	began := time.Now()
	cfg, err := liveconfig.LoadRouting(ctx, in.Store)
	if err != nil {
		r.logf("load the configuration: %v", err)
		r.fail("load the configuration", began, "flowgate could not read its active configuration from the database — the transcript has the error")
		return r.result(connectorID, revision, sender, rcpts)
	}
	cand := routing.Inbound{ID: connectorID, Name: name, Revision: revision, Spec: *spec}
	kept := cfg.Inbound[:0]
	for _, c := range cfg.Inbound {
		if c.ID != connectorID {
			kept = append(kept, c)
		}
	}
	cfg.Inbound = append(kept, cand)
	ix := routing.Build(cfg)
	r.pass("load the configuration", began, fmt.Sprintf("the active configuration, with revision %d of %q in place of its active revision", revision, name))

	accepted := ""
	for _, d := range cfg.AcceptedDomains {
		accepted = d.Domain
		break
	}
	parsed := spec.Parse()
	pos := probeFacts{client: routing.Client{IP: netip.MustParseAddr("192.0.2.10"), TLS: true}}
	if ip, ok := firstIP(parsed); ok {
		pos.client.IP = ip
	}
	if spec.TLSSenderCertificateName != "" {
		pos.client.CertNames = []string{nameFor(spec.TLSSenderCertificateName)}
	}
	switch {
	case sender != "":
		pos.sender = sender
	case spec.ConnectorType == connector.OnPremises && accepted != "":
		pos.sender = "flowgate-validation@" + accepted
	case len(spec.SenderDomains) > 0 && spec.SenderDomains[0] != "*":
		pos.sender = "flowgate-validation@" + nameFor(spec.SenderDomains[0])
	default:
		pos.sender = "flowgate-validation@partner.example"
	}
	if len(rcpts) == 0 && accepted != "" {
		rcpts = []string{"postmaster@" + accepted}
	}
	if len(rcpts) == 0 {
		r.fail("recipients", time.Now(), "flowgate has no accepted domain to send the test message to — add an accepted domain, or enter recipients")
		return r.result(connectorID, revision, pos.sender, rcpts)
	}

	// The positive probe.
	r.logf("--- positive probe: standing in for %s; sender %s", pos.describe(), pos.sender)
	in.positive(ctx, r, ix, pos, connectorID, name, revision, rcpts)

	// The negative probe breaks one restriction.
	neg := pos
	neg.expect = "5.7.51"
	switch {
	case spec.ConnectorType == connector.OnPremises && len(spec.SenderIPAddresses) == 0:
		// Identified by certificate only: without it, it is not your
		// server, and must not relay.
		neg.client = routing.Client{IP: netip.MustParseAddr(outsideIPs[0])}
		neg.expect = "5.7.64"
		neg.broken = "not your email server (no certificate " + spec.TLSSenderCertificateName + ") relaying to the Internet"
	case spec.RequireTLS:
		neg.client.TLS, neg.client.CertNames = false, nil
		neg.broken = "not sent over TLS (require_tls)"
	case spec.RestrictDomainsToCertificate:
		neg.client.CertNames = nil
		neg.broken = "no certificate named " + spec.TLSSenderCertificateName + " (restrict_domains_to_certificate)"
	case spec.RestrictDomainsToIPAddresses:
		neg.broken = "sent from outside the partner's IP addresses (restrict_domains_to_ip_addresses)"
		for _, o := range outsideIPs {
			ip := netip.MustParseAddr(o)
			inside := false
			for _, s := range parsed.SenderIPs {
				inside = inside || s.Contains(ip)
			}
			if !inside {
				neg.client.IP = ip
				break
			}
		}
	default:
		// An on-premises connector without restrictions: an unidentified
		// client must not be able to relay as if it were your server.
		neg.client = routing.Client{IP: netip.MustParseAddr(outsideIPs[0])}
		neg.expect = "5.7.64"
		neg.broken = "not your email server (unknown IP, no certificate) relaying to the Internet"
	}
	if neg.expect == "5.7.64" {
		// The relay probe sends from outside the accepted domains: a
		// stranger sending as one of them is refused at MAIL FROM already
		// (SPEC 3.3), which would hide whether relaying is refused.
		neg.sender = "flowgate-validation@probe.example"
	}
	r.logf("--- negative probe: %s; standing in for %s", neg.broken, neg.describe())
	in.negative(ctx, r, ix, neg, name, revision)
	return r.result(connectorID, revision, pos.sender, rcpts)
}

// probeSession is one SMTP session with the relay as a validation probe.
type probeSession struct {
	c      *smtpConn
	events []relay.ProbeEvent
	mu     *sync.Mutex
}

// open connects to the relay, starts TLS and authenticates as a probe
// with the given facts; it records the steps under prefix.
func (in *Inbound) open(ctx context.Context, r *run, ix *routing.Index, f probeFacts, label, prefix string) (*probeSession, func(), bool) {
	ps := &probeSession{mu: &sync.Mutex{}}
	secret, unregister := in.Relay.RegisterProbe(&relay.Probe{
		Client: f.client, Index: ix, Label: label,
		Observe: func(e relay.ProbeEvent) { ps.mu.Lock(); ps.events = append(ps.events, e); ps.mu.Unlock() },
	})
	began := time.Now()
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(in.Port))
	step := prefix + "connect to flowgate's SMTP listener"
	d := net.Dialer{Timeout: in.timeout(), LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
	r.waiting("flowgate's SMTP listener", "to accept the connection on "+addr, in.timeout())
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		unregister()
		r.logf("connect to %s: %v", addr, err)
		r.fail(step, began, connectProblem("flowgate's SMTP listener", addr, in.Port, err, in.timeout())+
			" (inbound validation reaches this process's own listener on 127.0.0.1: FLOWGATE_SMTP_ADDR must listen on all addresses or on loopback)")
		return nil, nil, false
	}
	closeAll := func() { unregister(); conn.Close() }
	c := &smtpConn{r: r, conn: conn, tp: textproto.NewConn(conn), who: "[flowgate " + addr + "]",
		host: "flowgate's SMTP listener", speaker: "flowgate's listener", timeout: in.timeout()}
	c.limit, _ = ctx.Deadline()
	ps.c = c
	// failed records the failed step: what went wrong (a network error,
	// or a reply other than the one expected, quoted).
	failed := func(what, msg string, err error) (*probeSession, func(), bool) {
		detail := c.problem(msg, err)
		if err == nil {
			detail = what + ": " + detail
		}
		r.fail(step, began, detail)
		closeAll()
		return nil, nil, false
	}
	c.expect("to greet", "no greeting")
	if code, msg, err := c.reply(); err != nil || code != 220 {
		return failed("the listener turned the probe away instead of greeting it", msg, err)
	}
	c.expect("to answer EHLO", "no answer to EHLO")
	if code, msg, err := c.do("EHLO %s", in.Hostname); err != nil || code != 250 {
		return failed("the listener refused the probe's EHLO", msg, err)
	}
	c.expect("to answer STARTTLS", "no answer to STARTTLS")
	if code, msg, err := c.do("STARTTLS"); err != nil || code != 220 {
		return failed("the listener refused to start TLS", msg, err)
	}
	// The probe talks to this very process over loopback; its own
	// certificate may be self-signed, so it is not verified here.
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	c.conn = tc
	c.expect("to finish the TLS handshake", "the TLS handshake did not finish")
	if err := tc.HandshakeContext(ctx); err != nil {
		r.logf("%s TLS: handshake failed: %v", c.who, err)
		r.fail(step, began, "the TLS handshake with flowgate's SMTP listener failed — check FLOWGATE_TLS_CERT and FLOWGATE_TLS_KEY; the transcript has the error")
		closeAll()
		return nil, nil, false
	}
	c.tp = textproto.NewConn(tc)
	cs := tc.ConnectionState()
	c.expect("to answer EHLO", "no answer to EHLO after STARTTLS")
	if code, msg, err := c.do("EHLO %s", in.Hostname); err != nil || code != 250 {
		return failed("the listener refused the probe's EHLO after STARTTLS", msg, err)
	}
	r.logf("%s C: AUTH %s (the run's secret)", c.who, relay.ProbeMechanism)
	c.expect("to accept the probe's credentials", "no answer to AUTH")
	if err := c.tp.PrintfLine("AUTH %s %s", relay.ProbeMechanism, base64.StdEncoding.EncodeToString([]byte(secret))); err != nil {
		return failed("", "", err)
	}
	if code, msg, err := c.reply(); err != nil || code != 235 {
		return failed("the probe could not authenticate", msg, err)
	}
	r.pass(step, began, fmt.Sprintf("connected to %s over %s; the probe stands in for %s", addr, tls.VersionName(cs.Version), f.describe()))
	return ps, closeAll, true
}

// describe says who a probe stands in for, in an admin's words: "a
// client at 192.0.2.10 that sends over TLS with a certificate named
// mail.partner.test".
func (f probeFacts) describe() string {
	s := "a client at " + f.client.IP.String()
	if f.client.TLS {
		s += " that sends over TLS"
	} else {
		s += " that sends without TLS"
	}
	switch len(f.client.CertNames) {
	case 0:
		return s + " and has no certificate"
	case 1:
		return s + " with a certificate named " + f.client.CertNames[0]
	}
	return s + " with a certificate naming " + strings.Join(f.client.CertNames, ", ")
}

func (ps *probeSession) snapshot() []relay.ProbeEvent {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return append([]relay.ProbeEvent(nil), ps.events...)
}

func (in *Inbound) positive(ctx context.Context, r *run, ix *routing.Index, f probeFacts, id int64, name string, revision int, rcpts []string) {
	label := fmt.Sprintf("validation of inbound connector %q revision %d", name, revision)
	ps, done, ok := in.open(ctx, r, ix, f, label, "")
	if !ok {
		return
	}
	defer done()
	c := ps.c

	began := time.Now()
	c.expect("to answer MAIL FROM", "no answer to MAIL FROM")
	code, msg, err := c.do("MAIL FROM:<%s>", f.sender)
	var sd *relay.SenderDecision
	for _, e := range ps.snapshot() {
		if e.Sender != nil {
			sd = e.Sender
		}
	}
	switch {
	case err != nil || code != 250:
		detail := c.problem(msg, err)
		if err == nil {
			detail = "flowgate refused the probe's sender: " + detail
		}
		r.fail("MAIL FROM "+f.sender, began, detail)
		c.quit()
		return
	case sd == nil || sd.Attribution.Connector == nil:
		r.fail("attribution", began, "the probe was not attributed to any inbound connector — another connector identifies this sender first, or the identity is incomplete")
		c.quit()
		return
	case sd.Attribution.Connector.ID != id || sd.Attribution.Connector.Revision != revision:
		r.fail("attribution", began, fmt.Sprintf("the probe was attributed to %q revision %d, not to this revision: %s — two connectors claim the same sender", sd.Attribution.Connector.Name, sd.Attribution.Connector.Revision, sd.Attribution.Reason))
		c.quit()
		return
	}
	r.pass("attribution", began, sd.Attribution.Reason)
	r.pass("MAIL FROM "+f.sender, began, "flowgate accepted the sender: "+reply(c.speaker, msg))

	okRcpts, undeliverable := 0, 0
	for _, a := range rcpts {
		began = time.Now()
		c.expect("to answer RCPT TO", "no answer to RCPT TO")
		code, msg, err := c.do("RCPT TO:<%s>", a)
		if err != nil || (code != 250 && code != 251) {
			detail := c.problem(msg, err)
			if err == nil {
				detail = "flowgate refused the recipient: " + detail
			}
			r.fail("RCPT TO "+a, began, detail)
			continue
		}
		detail := "flowgate accepted the recipient: " + reply(c.speaker, msg)
		deferred := false
		for _, e := range ps.snapshot() {
			if e.Recipient != nil && strings.EqualFold(e.Recipient.Address, a) {
				rt := e.Recipient.Route
				switch rt.Kind {
				case routing.ViaConnector:
					detail = fmt.Sprintf("%s; routed through outbound connector %q (%s)", e.Recipient.Reason, rt.Connector.Name, rt.Reason)
				case routing.ViaMX:
					detail = fmt.Sprintf("%s; delivered by MX (%s)", e.Recipient.Reason, rt.Reason)
				default:
					deferred = true
					detail = fmt.Sprintf("flowgate accepts %s but could not deliver it: %s — add an outbound connector that routes it (for your own server, one for all accepted domains), then validate again", a, rt.Reason)
				}
			}
		}
		if deferred {
			undeliverable++
			r.fail("RCPT TO "+a, began, detail)
			continue
		}
		okRcpts++
		r.pass("RCPT TO "+a, began, detail)
	}
	if undeliverable > 0 {
		// The test message would wait in the queue and arrive by surprise
		// once a route exists: it is not sent at all.
		r.fail("test message", time.Now(), fmt.Sprintf("not sent: %d of its recipients could not be delivered, and a test message must not wait in the queue to arrive later", undeliverable))
		c.quit()
		return
	}
	if okRcpts == 0 {
		c.quit()
		return
	}
	began = time.Now()
	c.expect("to answer DATA", "no answer to DATA")
	if code, msg, err := c.do("DATA"); err != nil || code != 354 {
		detail := c.problem(msg, err)
		if err == nil {
			detail = "flowgate refused to take the message (DATA): " + detail
		}
		r.fail("test message", began, detail)
		c.quit()
		return
	}
	vid := randomID()
	body := testMessage(in.Hostname, f.sender, rcpts, "inbound", name, revision, vid)
	c.expect("to accept the test message", "no answer after the test message")
	w := c.tp.DotWriter()
	_, werr := w.Write(body)
	if cerr := w.Close(); werr == nil {
		werr = cerr
	}
	r.logf("%s C: (test message, %d bytes)", c.who, len(body))
	code, msg, err = c.reply()
	if werr != nil || err != nil || code != 250 {
		detail := c.problem(msg, errors.Join(werr, err))
		if werr == nil && err == nil {
			detail = "flowgate refused the test message: " + detail
		}
		r.fail("test message", began, detail)
		c.quit()
		return
	}
	r.pass("test message", began, "flowgate accepted the test message and queued it: "+reply(c.speaker, msg))
	c.quit()
}

func (in *Inbound) negative(ctx context.Context, r *run, ix *routing.Index, f probeFacts, name string, revision int) {
	label := fmt.Sprintf("negative probe for inbound connector %q revision %d", name, revision)
	ps, done, ok := in.open(ctx, r, ix, f, label, "negative probe: ")
	if !ok {
		return
	}
	defer done()
	c := ps.c
	step := "negative probe: " + f.broken
	began := time.Now()
	c.expect("to answer MAIL FROM", "no answer to MAIL FROM")
	code, msg, err := c.do("MAIL FROM:<%s>", f.sender)
	if err == nil && code == 250 && f.expect == "5.7.64" {
		c.expect("to answer RCPT TO", "no answer to RCPT TO")
		code, msg, err = c.do("RCPT TO:<%s>", "flowgate-validation@probe.example")
	}
	switch {
	case err != nil:
		r.fail(step, began, c.problem(msg, err))
	case code == 550 && strings.Contains(msg, f.expect):
		r.pass(step, began, "flowgate refused the probe, as it must: "+reply(c.speaker, msg))
	default:
		r.fail(step, began, fmt.Sprintf("flowgate should have refused the probe with 550 %s, but answered %s — this restriction would not protect you", f.expect, reply(c.speaker, msg)))
	}
	c.quit()
}
