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
			r.fail("time limit", time.Now(), "the validation was stopped: "+err.Error())
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
		lctx, cancel := context.WithTimeout(ctx, o.timeout())
		mx, err := o.Resolver.MXHosts(lctx, d, o.mxPort())
		cancel()
		step := "MX lookup for " + d
		if err != nil {
			r.fail(step, began, fmt.Sprintf("%v — check that %s has MX records (or an address) in DNS", err, d))
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
		r.pass(step, began, strings.Join(names, ", "))
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
	r     *run
	conn  net.Conn
	tp    *textproto.Conn
	who   string
	limit time.Time // the run's own deadline, if any
}

// deadline bounds the next network step by d, and never past the run's
// deadline.
func (c *smtpConn) deadline(d time.Duration) {
	t := time.Now().Add(d)
	if !c.limit.IsZero() && c.limit.Before(t) {
		t = c.limit
	}
	_ = c.conn.SetDeadline(t)
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

func lastLine(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// validateHost runs the steps against one host.
func (o *Outbound) validateHost(ctx context.Context, r *run, h host, setting connector.TLSSettings, tlsDomain *connector.DomainPattern, sender, name string, revision int) {
	label := net.JoinHostPort(h.name, strconv.Itoa(h.port))
	r.logf("--- host %s, port %d, recipients %s", h.name, h.port, strings.Join(h.rcpts, ", "))

	// Resolve.
	addrs := []netip.Addr{h.ip}
	began := time.Now()
	if !h.ip.IsValid() {
		lctx, cancel := context.WithTimeout(ctx, o.timeout())
		got, err := o.Resolver.LookupAddrs(lctx, h.name)
		cancel()
		if err != nil || len(got) == 0 {
			detail := fmt.Sprintf("%s does not resolve", h.name)
			if err != nil {
				detail += ": " + err.Error()
			}
			r.fail("resolve "+h.name, began, detail+" — check the host name and its DNS records")
			return
		}
		addrs = got
		var texts []string
		for _, a := range got {
			texts = append(texts, a.String())
		}
		r.pass("resolve "+h.name, began, strings.Join(texts, ", "))
	} else {
		r.pass("resolve "+h.name, began, "given as an IP address")
	}

	// Connect: the addresses in order, as delivery does.
	began = time.Now()
	var conn net.Conn
	var addr string
	var errs []string
	for _, a := range addrs {
		addr = net.JoinHostPort(a.String(), strconv.Itoa(h.port))
		d := net.Dialer{Timeout: o.timeout()}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			conn = c
			break
		}
		errs = append(errs, connectError(addr, h.port, err))
	}
	if conn == nil {
		r.fail("connect to "+label, began, strings.Join(errs, "; "))
		return
	}
	defer conn.Close()
	r.pass("connect to "+label, began, "connected to "+addr)
	c := &smtpConn{r: r, conn: conn, tp: textproto.NewConn(conn), who: "[" + addr + "]"}
	c.limit, _ = ctx.Deadline()

	began = time.Now()
	c.deadline(o.timeout())
	code, msg, err := c.reply()
	if err != nil || code != 220 {
		r.fail("greeting from "+label, began, fmt.Sprintf("expected a 220 greeting, got %s", replyOrErr(msg, err)))
		return
	}
	r.pass("greeting from "+label, began, lastLine(msg))

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
			r.fail("STARTTLS with "+label, began, fmt.Sprintf("%s does not offer STARTTLS; tls_settings %s requires TLS — enable TLS on that server, or choose opportunistic", h.name, setting))
			c.quit()
			return
		}
		r.skip("STARTTLS with "+label, fmt.Sprintf("%s does not offer STARTTLS; opportunistic TLS sends this connector's mail unencrypted", h.name))
		r.skip("certificate of "+label, "no TLS")
	} else {
		c.deadline(o.timeout())
		if err := c.cmd("STARTTLS"); err != nil {
			r.fail("STARTTLS with "+label, began, err.Error())
			return
		}
		code, msg, err := c.reply()
		if err != nil || code != 220 {
			detail := fmt.Sprintf("STARTTLS refused: %s", replyOrErr(msg, err))
			if required {
				r.fail("STARTTLS with "+label, began, detail)
				c.quit()
				return
			}
			r.fail("STARTTLS with "+label, began, detail+" (opportunistic delivery would send without TLS)")
			c.quit()
			return
		}
		serverName := h.name
		if h.ip.IsValid() {
			serverName = ""
		}
		tc := tls.Client(conn, &tls.Config{ServerName: serverName, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) // the policy check below decides
		c.conn = tc
		c.deadline(o.timeout())
		if err := tc.HandshakeContext(ctx); err != nil {
			r.fail("STARTTLS with "+label, began, fmt.Sprintf("TLS handshake with %s failed: %v", addr, err))
			return
		}
		c.tp, c.conn = textproto.NewConn(tc), tc
		cs := tc.ConnectionState()
		r.logf("%s TLS: %s, %s", c.who, tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite))
		for i, pc := range delivery.DescribeChain(cs) {
			r.logf("%s TLS: certificate %d: subject %q, issuer %q, names %s, expires %s", c.who, i, pc.Subject, pc.Issuer, strings.Join(pc.DNSNames, ", "), pc.NotAfter.UTC().Format(time.RFC3339))
		}
		r.pass("STARTTLS with "+label, began, fmt.Sprintf("%s, %s", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite)))

		began = time.Now()
		leaf := "(no certificate)"
		if len(cs.PeerCertificates) > 0 {
			p := cs.PeerCertificates[0]
			leaf = fmt.Sprintf("%s, issued by %s, expires %s", p.Subject.CommonName, p.Issuer.CommonName, p.NotAfter.UTC().Format(time.DateOnly))
		}
		if err := delivery.PolicyCheck(setting, tlsDomain, o.Roots, h.name)(cs); err != nil {
			r.fail("certificate of "+label, began, err.Error())
			c.quit()
			return
		}
		switch setting {
		case connector.TLSOpportunistic, connector.TLSEncryptionOnly:
			r.pass("certificate of "+label, began, fmt.Sprintf("%s; not checked under %s", leaf, setting))
		default:
			r.pass("certificate of "+label, began, fmt.Sprintf("%s; meets %s", leaf, setting))
		}
		if _, ok := o.ehlo(c, r, "EHLO after STARTTLS to "+label, time.Now()); !ok {
			return
		}
	}

	// The test message.
	began = time.Now()
	c.deadline(o.timeout())
	if code, msg, err := c.do("MAIL FROM:<%s>", sender); err != nil || code != 250 {
		r.fail("MAIL FROM at "+label, began, fmt.Sprintf("sender %s refused: %s — the smart host may not accept mail from flowgate; check its relay settings", sender, replyOrErr(msg, err)))
		c.quit()
		return
	}
	r.pass("MAIL FROM at "+label, began, sender)
	accepted := 0
	for _, rcpt := range h.rcpts {
		began = time.Now()
		code, msg, err := c.do("RCPT TO:<%s>", rcpt)
		if err != nil || (code != 250 && code != 251) {
			r.fail("RCPT TO "+rcpt+" at "+label, began, fmt.Sprintf("recipient %s refused: %s — check that the validation recipient exists and that %s accepts mail for it from flowgate", rcpt, replyOrErr(msg, err), h.name))
			continue
		}
		accepted++
		r.pass("RCPT TO "+rcpt+" at "+label, began, lastLine(msg))
	}
	if accepted == 0 {
		c.quit()
		return
	}
	began = time.Now()
	if code, msg, err := c.do("DATA"); err != nil || code != 354 {
		r.fail("test message to "+label, began, "DATA refused: "+replyOrErr(msg, err))
		c.quit()
		return
	}
	id := randomID()
	body := testMessage(o.Hostname, sender, h.rcpts, "outbound", name, revision, id)
	w := c.tp.DotWriter()
	_, werr := w.Write(body)
	if cerr := w.Close(); werr == nil {
		werr = cerr
	}
	r.logf("%s C: (test message, %d bytes, Message-ID <validation-%s@%s>)", c.who, len(body), id, o.Hostname)
	r.logf("%s C: .", c.who)
	code, msg, err = c.reply()
	if werr != nil || err != nil || code != 250 {
		r.fail("test message to "+label, began, "the message was not accepted: "+replyOrErr(msg, errors.Join(werr, err)))
		c.quit()
		return
	}
	r.pass("test message to "+label, began, fmt.Sprintf("accepted for %d recipient(s): %s", accepted, lastLine(msg)))
	c.quit()
}

func (c *smtpConn) do(format string, args ...any) (int, string, error) {
	if err := c.cmd(format, args...); err != nil {
		return 0, "", err
	}
	return c.reply()
}

func (o *Outbound) ehlo(c *smtpConn, r *run, step string, began time.Time) (map[string]bool, bool) {
	c.deadline(o.timeout())
	code, msg, err := c.do("EHLO %s", o.Hostname)
	if err != nil || code != 250 {
		r.fail(step, began, "EHLO refused: "+replyOrErr(msg, err))
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
	r.pass(step, began, "extensions: "+strings.Join(kws, " "))
	return ext, true
}

func (c *smtpConn) quit() {
	c.deadline(5 * time.Second)
	if err := c.cmd("QUIT"); err == nil {
		_, _, _ = c.reply()
	}
}

func replyOrErr(msg string, err error) string {
	if err != nil {
		if msg != "" {
			return lastLine(msg) + " (" + err.Error() + ")"
		}
		return err.Error()
	}
	return strings.ReplaceAll(msg, "\n", " / ")
}

// connectError words a dial failure so an admin knows where to look.
func connectError(addr string, port int, err error) string {
	var ne net.Error
	switch {
	case strings.Contains(err.Error(), "refused"):
		return fmt.Sprintf("connection refused on %s — is the mail server running, and is port %d open in the firewall?", addr, port)
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("no answer from %s — is a firewall dropping connections to port %d?", addr, port)
	case strings.Contains(err.Error(), "unreachable"):
		return fmt.Sprintf("%s is unreachable: %v — check the network route", addr, err)
	}
	return fmt.Sprintf("cannot connect to %s: %v", addr, err)
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
