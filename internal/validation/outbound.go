package validation

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/textproto"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/delivery"
	"github.com/flowgate/flowgate/internal/store"
)

// Outbound validates outbound connector revisions.
type Outbound struct {
	Hostname string             // EHLO name and the default sender's domain
	Roots    *x509.CertPool     // as delivery: system roots plus FLOWGATE_OUTBOUND_CA
	Resolver *delivery.Resolver // MX and address lookups (FLOWGATE_DNS_SERVER)
	Port     int                // port of MX hosts; 25 unless tests change it
	Timeout  time.Duration      // per network step; default 30 s
}

func (o *Outbound) timeout() time.Duration {
	if o.Timeout == 0 {
		return 30 * time.Second
	}
	return o.Timeout
}

// DefaultSender is the envelope sender when the admin chooses none.
func DefaultSender(hostname string) string {
	if !strings.Contains(hostname, ".") {
		hostname += ".localdomain"
	}
	return "flowgate-validation@" + strings.ToLower(hostname)
}

// host is one next hop to validate, with the recipients it would carry.
type host struct {
	name  string
	ip    netip.Addr
	port  int
	rcpts []string
}

// Validate runs the outbound validation of one revision and returns its
// record (not yet stored).
func (o *Outbound) Validate(ctx context.Context, connectorID int64, name string, revision int, spec *connector.OutboundSpec, sender string, rcpts []string) *store.Validation {
	r := newRun(ctx)
	r.logf("validating revision %d of outbound connector %q from %s (%s)", revision, name, o.Hostname, hostnameOrPID())
	// Where this revision sends mail, and how, as delivery decides it.
	target := delivery.ConnectorTarget(name, spec, spec.Parse(), "")
	var hosts []host
	if spec.UseMXRecord {
		hosts = o.mxHosts(ctx, r, rcpts)
	} else {
		for _, sh := range target.Hosts {
			h := host{name: sh.Name, ip: sh.IP, port: sh.Port, rcpts: rcpts}
			if h.port == 0 {
				h.port = 25
			}
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 && !r.failed {
		r.fail("routing", time.Now(), "this revision names no host to deliver to")
	}
	setting, tlsDomain := target.TLS, target.TLSDomain
	for _, h := range hosts {
		if err := ctx.Err(); err != nil {
			r.logf("stopped: %v", err)
			detail := fmt.Sprintf("the validation reached its time limit before it could check %s", h.name)
			if errors.Is(err, context.Canceled) {
				detail = fmt.Sprintf("the validation was stopped before it could check %s", h.name)
			}
			r.fail("time limit", time.Now(), detail)
			break
		}
		o.validateHost(ctx, r, h, setting, tlsDomain, sender, name, revision)
	}
	return r.result(connectorID, revision, sender, rcpts)
}

func hostnameOrPID() string {
	h, err := os.Hostname()
	if err != nil {
		return "pid " + strconv.Itoa(os.Getpid())
	}
	return h
}

// mxHosts looks up the MX hosts of each recipient domain.
func (o *Outbound) mxHosts(ctx context.Context, r *run, rcpts []string) []host {
	byDomain := map[string][]string{}
	var domains []string
	for _, a := range rcpts {
		d := strings.ToLower(a[strings.LastIndexByte(a, '@')+1:])
		if _, ok := byDomain[d]; !ok {
			domains = append(domains, d)
		}
		byDomain[d] = append(byDomain[d], a)
	}
	sort.Strings(domains)
	var out []host
	for _, d := range domains {
		began := time.Now()
		r.waiting("DNS", "to look up the MX records of "+d, o.timeout())
		lctx, cancel := context.WithTimeout(ctx, o.timeout())
		mx, err := o.Resolver.MXHosts(lctx, d, o.mxPort())
		cancel()
		step := "MX lookup for " + d
		if err != nil {
			r.logf("MX lookup for %s: %v", d, err)
			detail := dnsProblem(d, err, o.timeout()) + " — check that " + d + " has MX records (or an address) in DNS"
			if strings.Contains(err.Error(), "null MX") {
				detail = d + " publishes a null MX: it accepts no mail"
			}
			r.fail(step, began, detail)
			continue
		}
		if len(mx) == 0 {
			r.fail(step, began, d+" has a null MX: it accepts no mail")
			continue
		}
		var names []string
		for _, m := range mx {
			names = append(names, m.String())
			out = append(out, host{name: m.Name, port: m.Port, rcpts: byDomain[d]})
		}
		r.pass(step, began, d+" receives mail at "+strings.Join(names, ", "))
	}
	return out
}

func (o *Outbound) mxPort() int {
	if o.Port == 0 {
		return 25
	}
	return o.Port
}

// smtpConn is a transcript-recording SMTP client connection.
type smtpConn struct {
	r       *run
	conn    net.Conn
	tp      *textproto.Conn
	who     string // the transcript's name of the peer: "[203.0.113.5:25]"
	host    string // the admin's name of the peer: "mail.contoso.com"
	speaker string // whose text a reply is: "the server"
	timeout time.Duration
	limit   time.Time // the run's own deadline, if any

	window  time.Duration // how long the current wait may last
	byRun   bool          // the run's deadline, not timeout, bounds it
	missing string        // what has not come if the wait fails: "no greeting"
}

// deadline bounds the next network step by d, and never past the run's
// deadline.
func (c *smtpConn) deadline(d time.Duration) {
	now := time.Now()
	t := now.Add(d)
	c.byRun = false
	if !c.limit.IsZero() && c.limit.Before(t) {
		t, c.byRun = c.limit, true
	}
	c.window = t.Sub(now)
	_ = c.conn.SetDeadline(t)
}

// expect starts a wait for the peer: it bounds it by the timeout and
// tells the run what it waits for (doing: "to greet") and what is
// missing if the wait fails ("no greeting").
func (c *smtpConn) expect(doing, missing string) {
	c.deadline(c.timeout)
	c.missing = missing
	c.r.waiting(c.host, doing, c.window)
}

// problem words a failed reply: a network error, or a reply other than
// the one expected, quoted as the peer's.
func (c *smtpConn) problem(msg string, err error) string {
	if err != nil {
		return netProblem(c.host, c.missing, err, c.window, c.byRun)
	}
	return reply(c.speaker, msg)
}

func (c *smtpConn) cmd(format string, args ...any) error {
	line := fmt.Sprintf(format, args...)
	c.r.logf("%s C: %s", c.who, line)
	return c.tp.PrintfLine("%s", line)
}

// reply reads a (multi-line) reply, logging every line.
func (c *smtpConn) reply() (int, string, error) {
	var lines []string
	code := 0
	for {
		line, err := c.tp.ReadLine()
		if err != nil {
			c.r.logf("%s S: (%v)", c.who, err)
			return 0, strings.Join(lines, "\n"), err
		}
		c.r.logf("%s S: %s", c.who, line)
		if len(line) < 3 {
			return 0, line, fmt.Errorf("malformed reply %q", line)
		}
		n, err := strconv.Atoi(line[:3])
		if err != nil {
			return 0, line, fmt.Errorf("malformed reply %q", line)
		}
		code = n
		lines = append(lines, line)
		if len(line) == 3 || line[3] != '-' {
			return code, strings.Join(lines, "\n"), nil
		}
	}
}

// validateHost runs the steps against one host.
func (o *Outbound) validateHost(ctx context.Context, r *run, h host, setting connector.TLSSettings, tlsDomain *connector.DomainPattern, sender, name string, revision int) {
	label := net.JoinHostPort(h.name, strconv.Itoa(h.port))
	r.logf("--- host %s, port %d, recipients %s", h.name, h.port, strings.Join(h.rcpts, ", "))

	// Resolve.
	addrs := []netip.Addr{h.ip}
	began := time.Now()
	if !h.ip.IsValid() {
		r.waiting("DNS", "to resolve "+h.name, o.timeout())
		lctx, cancel := context.WithTimeout(ctx, o.timeout())
		got, err := o.Resolver.LookupAddrs(lctx, h.name)
		cancel()
		if err != nil || len(got) == 0 {
			if err == nil {
				err = &delivery.DNSError{Name: h.name, Permanent: true, Err: errors.New("no A or AAAA records")}
			}
			r.logf("resolve %s: %v", h.name, err)
			r.fail("resolve "+h.name, began, dnsProblem(h.name, err, o.timeout())+" — check the host name and its DNS records")
			return
		}
		addrs = got
		var texts []string
		for _, a := range got {
			texts = append(texts, a.String())
		}
		r.pass("resolve "+h.name, began, h.name+" resolves to "+strings.Join(texts, ", "))
	} else {
		r.pass("resolve "+h.name, began, "given as an IP address, so there is nothing to look up")
	}

	// Connect: the addresses in order, as delivery does.
	began = time.Now()
	var conn net.Conn
	var addr string
	var errs []string
	for _, a := range addrs {
		addr = net.JoinHostPort(a.String(), strconv.Itoa(h.port))
		window := o.timeout()
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < window {
			window = time.Until(dl)
		}
		r.waiting(h.name, "to accept the connection on "+addr, window)
		d := net.Dialer{Timeout: o.timeout()}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			conn = c
			break
		}
		r.logf("connect to %s: %v", addr, err)
		errs = append(errs, connectProblem(h.name, addr, h.port, err, window))
	}
	if conn == nil {
		r.fail("connect to "+label, began, strings.Join(errs, "; "))
		return
	}
	defer conn.Close()
	r.pass("connect to "+label, began, "connected to "+addr)
	c := &smtpConn{r: r, conn: conn, tp: textproto.NewConn(conn), who: "[" + addr + "]", host: h.name, speaker: "the server", timeout: o.timeout()}
	c.limit, _ = ctx.Deadline()

	began = time.Now()
	c.expect("to greet", "no greeting")
	code, msg, err := c.reply()
	switch {
	case err != nil:
		r.fail("greeting from "+label, began, c.problem(msg, err)+" — an SMTP server greets with 220 as soon as it accepts a connection")
		return
	case code != 220:
		r.fail("greeting from "+label, began, fmt.Sprintf("%s turned flowgate away instead of greeting it: %s", h.name, c.problem(msg, nil)))
		return
	}
	greeted := h.name + " greeted flowgate (220)"
	if t := said(c.speaker, msg); t != "" {
		greeted += "; " + t
	}
	r.pass("greeting from "+label, began, greeted)

	// EHLO.
	began = time.Now()
	ext, ok := o.ehlo(c, r, "EHLO to "+label, began)
	if !ok {
		return
	}

	// STARTTLS and the certificate.
	required := setting.RequiresTLS()
	began = time.Now()
	if !ext["STARTTLS"] {
		if required {
			r.fail("STARTTLS with "+label, began, fmt.Sprintf("%s does not offer TLS (no STARTTLS in its answer to EHLO), and this revision's TLS setting, %s, requires TLS — enable TLS on that server, or choose opportunistic", h.name, setting))
			c.quit()
			return
		}
		r.skip("STARTTLS with "+label, fmt.Sprintf("%s does not offer TLS (no STARTTLS in its answer to EHLO); with opportunistic TLS, this connector's mail to it travels unencrypted", h.name))
		r.skip("certificate of "+label, "no TLS, so there is no certificate to check")
	} else {
		c.expect("to answer STARTTLS", "no answer to STARTTLS")
		if err := c.cmd("STARTTLS"); err != nil {
			r.fail("STARTTLS with "+label, began, c.problem("", err))
			return
		}
		code, msg, err := c.reply()
		if err != nil || code != 220 {
			detail := fmt.Sprintf("%s offers TLS but refused to start it: %s", h.name, c.problem(msg, err))
			if err != nil {
				detail = c.problem(msg, err)
			}
			if !required {
				detail += " (opportunistic delivery would send without TLS)"
			}
			r.fail("STARTTLS with "+label, began, detail)
			c.quit()
			return
		}
		serverName := h.name
		if h.ip.IsValid() {
			serverName = ""
		}
		tc := tls.Client(conn, &tls.Config{ServerName: serverName, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) // the policy check below decides
		c.conn = tc
		c.expect("to finish the TLS handshake", "the TLS handshake did not finish")
		if err := tc.HandshakeContext(ctx); err != nil {
			r.logf("%s TLS: handshake failed: %v", c.who, err)
			var ne net.Error
			detail := fmt.Sprintf("the TLS handshake with %s failed — the two sides may share no TLS version or cipher (flowgate needs TLS 1.2 or newer); the transcript has the error", h.name)
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
				detail = c.problem("", err)
			}
			r.fail("STARTTLS with "+label, began, detail)
			return
		}
		c.tp, c.conn = textproto.NewConn(tc), tc
		cs := tc.ConnectionState()
		r.logf("%s TLS: %s, %s", c.who, tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite))
		for i, pc := range delivery.DescribeChain(cs) {
			r.logf("%s TLS: certificate %d: subject %q, issuer %q, names %s, expires %s", c.who, i, pc.Subject, pc.Issuer, strings.Join(pc.DNSNames, ", "), pc.NotAfter.UTC().Format(time.RFC3339))
		}
		r.pass("STARTTLS with "+label, began, fmt.Sprintf("connected over %s (cipher %s)", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite)))

		began = time.Now()
		facts := readCert(cs.PeerCertificates, o.Roots, time.Now())
		if err := delivery.PolicyCheck(setting, tlsDomain, o.Roots, h.name)(cs); err != nil {
			r.logf("%s TLS: policy %s: %v", c.who, setting, err)
			r.fail("certificate of "+label, began, certRefusal(facts, setting, tlsDomain))
			c.quit()
			return
		}
		switch setting {
		case connector.TLSOpportunistic, connector.TLSEncryptionOnly:
			r.pass("certificate of "+label, began, fmt.Sprintf("%s; the TLS setting %s encrypts without checking it", facts.describe(), setting))
		default:
			r.pass("certificate of "+label, began, fmt.Sprintf("%s; it meets the TLS setting %s", facts.describe(), setting))
		}
		if _, ok := o.ehlo(c, r, "EHLO after STARTTLS to "+label, time.Now()); !ok {
			return
		}
	}

	// The test message.
	began = time.Now()
	c.expect("to answer MAIL FROM", "no answer to MAIL FROM")
	if code, msg, err := c.do("MAIL FROM:<%s>", sender); err != nil || code != 250 {
		detail := c.problem(msg, err)
		if err == nil {
			detail = fmt.Sprintf("%s refused the sender %s: %s — it may not accept mail from flowgate; check its relay settings", h.name, sender, detail)
		}
		r.fail("MAIL FROM at "+label, began, detail)
		c.quit()
		return
	}
	r.pass("MAIL FROM at "+label, began, fmt.Sprintf("%s accepted the sender %s", h.name, sender))
	accepted := 0
	for _, rcpt := range h.rcpts {
		began = time.Now()
		c.expect("to answer RCPT TO", "no answer to RCPT TO")
		code, msg, err := c.do("RCPT TO:<%s>", rcpt)
		if err != nil || (code != 250 && code != 251) {
			detail := c.problem(msg, err)
			if err == nil {
				detail = fmt.Sprintf("%s refused the recipient %s: %s — check that the recipient exists and that %s accepts mail for it from flowgate", h.name, rcpt, detail, h.name)
			}
			r.fail("RCPT TO "+rcpt+" at "+label, began, detail)
			continue
		}
		accepted++
		r.pass("RCPT TO "+rcpt+" at "+label, began, fmt.Sprintf("%s accepted the recipient: %s", h.name, reply(c.speaker, msg)))
	}
	if accepted == 0 {
		c.quit()
		return
	}
	began = time.Now()
	c.expect("to answer DATA", "no answer to DATA")
	if code, msg, err := c.do("DATA"); err != nil || code != 354 {
		detail := c.problem(msg, err)
		if err == nil {
			detail = fmt.Sprintf("%s refused to take a message (DATA): %s", h.name, detail)
		}
		r.fail("test message to "+label, began, detail)
		c.quit()
		return
	}
	id := randomID()
	body := testMessage(o.Hostname, sender, h.rcpts, "outbound", name, revision, id)
	c.expect("to accept the test message", "no answer after the test message")
	w := c.tp.DotWriter()
	_, werr := w.Write(body)
	if cerr := w.Close(); werr == nil {
		werr = cerr
	}
	r.logf("%s C: (test message, %d bytes, Message-ID <validation-%s@%s>)", c.who, len(body), id, o.Hostname)
	r.logf("%s C: .", c.who)
	code, msg, err = c.reply()
	if werr != nil || err != nil || code != 250 {
		if werr != nil {
			r.logf("%s C: (sending the message: %v)", c.who, werr)
		}
		detail := c.problem(msg, errors.Join(werr, err))
		if werr == nil && err == nil {
			detail = fmt.Sprintf("%s refused the test message: %s", h.name, detail)
		}
		r.fail("test message to "+label, began, detail)
		c.quit()
		return
	}
	r.pass("test message to "+label, began, fmt.Sprintf("the test message was accepted for %d recipient(s): %s", accepted, reply(c.speaker, msg)))
	c.quit()
}

// certRefusal says why a certificate does not meet the TLS setting.
func certRefusal(f certFacts, setting connector.TLSSettings, tlsDomain *connector.DomainPattern) string {
	switch {
	case !f.present:
		return fmt.Sprintf("the server presented no certificate; the TLS setting %s needs one", setting)
	case !f.trusted:
		return fmt.Sprintf("%s — the TLS setting %s needs a certificate issued by a trusted CA: add %s to FLOWGATE_OUTBOUND_CA, or choose encryption_only", f.describe(), setting, f.issuer)
	case f.expired:
		return fmt.Sprintf("%s — the server must renew its certificate", f.describe())
	case setting == connector.TLSDomainValidation && tlsDomain != nil:
		return fmt.Sprintf("the certificate names %s, not %s, which the TLS setting %s requires; it is issued by %s", f.namesText(), tlsDomain, setting, f.issuerText())
	}
	return fmt.Sprintf("%s — it does not meet the TLS setting %s; the transcript has the reason", f.describe(), setting)
}

func (c *smtpConn) do(format string, args ...any) (int, string, error) {
	if err := c.cmd(format, args...); err != nil {
		return 0, "", err
	}
	return c.reply()
}

func (o *Outbound) ehlo(c *smtpConn, r *run, step string, began time.Time) (map[string]bool, bool) {
	c.expect("to answer EHLO", "no answer to EHLO")
	code, msg, err := c.do("EHLO %s", o.Hostname)
	if err != nil || code != 250 {
		detail := c.problem(msg, err)
		if err == nil {
			detail = fmt.Sprintf("%s refused flowgate's EHLO: %s", c.host, detail)
		}
		r.fail(step, began, detail)
		return nil, false
	}
	ext := map[string]bool{}
	lines := strings.Split(msg, "\n")
	for _, l := range lines[1:] {
		if len(l) > 4 {
			kw := strings.ToUpper(strings.Fields(l[4:])[0])
			ext[kw] = true
		}
	}
	var kws []string
	for k := range ext {
		kws = append(kws, k)
	}
	sort.Strings(kws)
	if len(kws) == 0 {
		r.pass(step, began, c.host+" answered EHLO and offers no extensions")
	} else {
		r.pass(step, began, c.host+" answered EHLO and offers "+strings.Join(kws, ", "))
	}
	return ext, true
}

func (c *smtpConn) quit() {
	c.deadline(5 * time.Second)
	if err := c.cmd("QUIT"); err == nil {
		_, _, _ = c.reply()
	}
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
