package relay

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/routing"
)

// session is one SMTP session (until STARTTLS, which starts a new one).
type session struct {
	r      *Relay
	conn   *smtp.Conn
	log    *slog.Logger
	ip     netip.Addr
	client routing.Client
	tlsVer string
	cipher string
	cert   clientCert
	probe  *Probe // set once a validation probe authenticated
	errs   errorLimit

	tx *transaction // the message being received, after MAIL FROM
}

// transaction is the state of one message.
type transaction struct {
	uid         string
	started     time.Time
	helo        string         // as it was when the transaction began
	ix          *routing.Index // one index for the whole message
	from        string         // "" for the null sender
	fromDomain  string
	attribution routing.Attribution
	rcpts       []queue.Recipient
	events      []queue.Event
	refused     int    // recipients refused
	lastRefusal *Reply // the last recipient refusal, the reply a trace of the abandoned transaction records
	done        bool
	rcptEvents  int            // per-recipient events kept (at most maxRecipientEvents)
	omitted     map[string]int // per-recipient events left out, by type
	lastEvent   time.Time
	header      []byte // the header section, kept with the trace of a message rules rejected
}

func newSession(r *Relay, c *smtp.Conn) *session {
	s := &session{r: r, conn: c, ip: remoteIP(c.Conn()), errs: errorLimit{max: r.cfg.MaxErrors}}
	s.client.IP = s.ip
	if state, ok := c.TLSConnectionState(); ok {
		s.client.TLS = true
		s.tlsVer = tls.VersionName(state.Version)
		s.cipher = tls.CipherSuiteName(state.CipherSuite)
		s.cert = verifyClientCert(state, r.cfg.ClientRoots)
		if s.cert.Verified {
			s.client.CertNames = s.cert.Names
		}
	}
	s.log = r.log.With("client_ip", s.ip.String(), "tls", s.tlsVer)
	return s
}

func (s *session) certText() string {
	switch {
	case s.cert.Subject == "":
		return ""
	case s.cert.Verified:
		return s.cert.Subject + " (verified)"
	}
	return s.cert.Subject + " (not verified: " + s.cert.Problem + ")"
}

// connectText is the connect event of the trace: the client, its HELO
// name, the TLS in use and the client certificate, e.g. `client 127.0.0.5
// helo "mail.contoso.com", TLS 1.3 TLS_AES_128_GCM_SHA256, client
// certificate CN=mail.contoso.com (verified)` or `…, no TLS`.
func (s *session) connectText() string {
	t := fmt.Sprintf("client %s helo %q", s.ip, clip(s.conn.Hostname(), maxHeloLength))
	if s.tlsVer == "" {
		return t + ", no TLS"
	}
	t += ", " + s.tlsVer + " " + s.cipher
	if c := s.certText(); c != "" {
		return t + ", client certificate " + c
	}
	return t + ", no client certificate"
}

// event adds an event to the current transaction's trace, its detail
// bounded; per-recipient events beyond maxRecipientEvents are only
// counted, for the summary event (limits.go).
func (s *session) event(typ, format string, args ...any) {
	tx := s.tx
	if tx == nil {
		return
	}
	tx.lastEvent = time.Now()
	if recipientEvent(typ) {
		if tx.rcptEvents >= maxRecipientEvents {
			if tx.omitted == nil {
				tx.omitted = map[string]int{}
			}
			tx.omitted[typ]++
			return
		}
		tx.rcptEvents++
	}
	tx.events = append(tx.events, queue.Event{At: tx.lastEvent, Type: typ, Detail: clip(fmt.Sprintf(format, args...), maxEventDetail)})
}

// traceMessage builds the trace record of the current transaction.
func (s *session) traceMessage(status queue.Status, reply Reply) *queue.Message {
	tx := s.tx
	m := &queue.Message{
		UID: tx.uid, ReceivedAt: tx.started, Status: status, ClientIP: s.ip.String(), Helo: tx.helo,
		TLSVersion: s.tlsVer, TLSCipher: s.cipher, ClientCert: s.certText(), Sender: tx.from,
		Attribution: tx.attribution.Reason, Reply: reply.String(), Recipients: tx.rcpts, Events: append(tx.events, tx.summaryEvents()...),
		Header: tx.header,
	}
	if c := tx.attribution.Connector; c != nil {
		id, rev := c.ID, c.Revision
		m.InboundConnectorID, m.InboundConnector, m.InboundRevision = &id, c.Name, &rev
	}
	return m
}

// refuseMessage traces the whole message as rejected and returns the reply
// (replyTooManyErrors once the session's error limit is exceeded).
func (s *session) refuseMessage(reply Reply, typ, detail string) error {
	s.event(typ, "%s", detail)
	reply = s.countRefusal(reply)
	s.r.rejected.Add(1)
	s.log.Info("message rejected", "msg_id", s.tx.uid, "sender", s.tx.from, "connector", s.tx.attribution.Reason, "reply", reply.String(), "detail", detail)
	s.tx.done = true
	s.r.queue.Trace(s.traceMessage(queue.Rejected, reply))
	return reply.Err()
}

// begin ends the previous transaction and starts a new one, tracing the
// connection's facts (and, for a validation probe, the client it acts as).
func (s *session) begin() *transaction {
	s.finish()
	tx := &transaction{uid: queue.NewUID(), started: time.Now().UTC(), ix: s.r.live.Index(), helo: clip(s.conn.Hostname(), maxHeloLength)}
	s.tx = tx
	s.event("connect", "%s", s.connectText())
	if p := s.probe; p != nil {
		tx.ix = p.Index
		s.event("probe", "%s: acting as client %s, tls %v, certificate names %v", p.Label, p.Client.IP, p.Client.TLS, p.Client.CertNames)
	}
	return tx
}

// Mail handles MAIL FROM: the sender's domain is known, so attribution and
// the connector's restrictions are decided here.
func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if s.errs.tripped {
		return replyTooManyErrors.Err()
	}
	tx := s.begin()
	d := DecideSender(tx.ix, s.client, from)
	if s.probe != nil && s.probe.Observe != nil {
		s.probe.Observe(ProbeEvent{Sender: &d})
	}
	tx.from, tx.fromDomain, tx.attribution = d.From, d.Domain, d.Attribution
	if d.Refusal != nil {
		if d.Attribution.Reason != "" {
			s.event("attributed", "%s", d.Attribution.Reason)
		}
		return s.refuseMessage(*d.Refusal, "rejected", d.Detail)
	}
	s.event("attributed", "%s", tx.attribution.Reason)
	if opts != nil && opts.Size > s.r.cfg.MaxMessageBytes {
		return s.refuseMessage(replyTooBig, "rejected", fmt.Sprintf("declared SIZE %d exceeds %d", opts.Size, s.r.cfg.MaxMessageBytes))
	}
	return nil
}

// Rcpt handles RCPT TO: relay authorization per recipient.
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	tx := s.tx
	if s.errs.tripped {
		return replyTooManyErrors.Err()
	}
	if tx == nil || tx.done {
		return s.countRefusal(Reply{Code: 503, Enhanced: [3]int{5, 5, 1}, Text: "Send MAIL FROM first"}).Err()
	}
	to = s.postmaster(tx.ix, to)
	d := DecideRecipient(tx.ix, tx.attribution, s.client, tx.fromDomain, to)
	if s.probe != nil && s.probe.Observe != nil {
		s.probe.Observe(ProbeEvent{Recipient: &d})
	}
	if d.Refusal != nil {
		return s.refuseRecipient(tx, d.Address, d.Reason, d.Refusal).Err()
	}
	tx.rcpts = append(tx.rcpts, queue.NewRecipient(d.Address, d.Route))
	s.event("recipient_accepted", "%s: %s; route: %s", d.Address, d.Reason, d.Route.Reason)
	return nil
}

// postmaster turns the domainless "<Postmaster>" recipient, which RFC
// 5321 4.5.1 requires a server to accept, into postmaster@ the accepted
// domain of the relay's hostname (the hostname itself or its nearest
// parent that is accepted), or else the first accepted domain by name. With
// no accepted domain it is left as it is, and refused.
func (s *session) postmaster(ix *routing.Index, to string) string {
	if !strings.EqualFold(to, "postmaster") {
		return to
	}
	if d, ok := ix.PostmasterDomain(s.r.cfg.Hostname); ok {
		s.event("postmaster", "<%s> is postmaster@%s", to, d)
		return "postmaster@" + d
	}
	return to
}

// Data reads, normalizes and stamps the message, and answers 250 only after
// the queue committed it.
func (s *session) Data(r io.Reader) error {
	tx := s.tx
	if s.errs.tripped {
		return replyTooManyErrors.Err()
	}
	if tx == nil || tx.done || len(tx.rcpts) == 0 {
		return s.countRefusal(Reply{Code: 503, Enhanced: [3]int{5, 5, 1}, Text: "No valid recipients"}).Err()
	}
	body := contentBuffers.Get().(*bytes.Buffer)
	defer putContentBuffer(body)
	body.Reset()
	s.writeReceived(body)
	cc := baseConn(s.conn.Conn())
	if cc != nil {
		cc.beginData(s.r.cfg.DataTimeout, s.r.cfg.DataDeadline)
		defer cc.endData()
	}
	// Content beyond queue.ChunkSize goes to the queue in pieces as it
	// arrives (queue.Spool): a large message is never held whole.
	var spool *queue.Spool
	// The header section, for the mail flow rules and the trace: from the
	// first piece of a large message, which is not kept in body.
	var header []byte
	wantHeader := s.r.cfg.TraceHeaders || tx.ix.Rules().NeedsHeaders()
	spill := func(piece []byte) error {
		if spool == nil {
			spool = s.r.queue.Spool(tx.uid)
			if wantHeader {
				header = append([]byte(nil), queue.HeaderSection(piece)...)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return spool.Write(ctx, piece)
	}
	discard := func() {
		if spool != nil {
			if err := spool.Discard(); err != nil {
				s.log.Warn("delete the stored pieces of a refused message; the trace pruning will", "msg_id", tx.uid, "err", err)
			}
		}
	}
	info, err := readContent(r, body, s.r.cfg.MaxLineLength, s.r.cfg.MaxHops, s.r.cfg.MaxMessageBytes, queue.ChunkSize, spill)
	if err != nil {
		discard()
		// Drain what is left of the message under the data timeout, so
		// the session can go on after the refusal.
		if !isTimeout(err) && !errors.Is(err, smtp.ErrTooLongLine) {
			_, _ = io.Copy(io.Discard, r)
		}
		switch {
		case errors.Is(err, errTooBig):
			return s.refuseMessage(replyTooBig, "rejected", fmt.Sprintf("message larger than %d bytes", s.r.cfg.MaxMessageBytes))
		case errors.Is(err, errTooManyHops):
			return s.refuseMessage(replyLoop, "rejected", fmt.Sprintf("more than %d Received header fields", s.r.cfg.MaxHops))
		case errors.Is(err, errLineTooLong), errors.Is(err, smtp.ErrTooLongLine):
			return s.refuseMessage(replyLineTooLong, "rejected", fmt.Sprintf("a line longer than %d bytes", s.r.cfg.MaxLineLength))
		case cc != nil && cc.cutReason() != "":
			// A deadline passed (for BDAT, go-smtp saw the timeout and
			// reset the message, so err is not a timeout).
			return s.refuseMessage(replyDataTimeout, "rejected", "timeout reading DATA: "+cc.cutReason())
		case isTimeout(err):
			return s.refuseMessage(replyDataTimeout, "rejected", "timeout reading DATA")
		}
		return s.refuseMessage(replyTempFailure, "rejected", "reading DATA: "+err.Error())
	}
	reply := replyQueued(tx.uid)
	size := int64(body.Len())
	if spool != nil && body.Len() > 0 {
		if err := spill(body.Bytes()); err != nil {
			s.log.Error("message not queued", "msg_id", tx.uid, "err", err)
			discard()
			tx.done = true
			return replyTempFailure.Err()
		}
	}
	if spool != nil {
		size = spool.Size()
	}
	s.event("received", "%d bytes, message-id %s, %d recipients", size, orNone(info.MessageID), len(tx.rcpts))
	if wantHeader && header == nil {
		header = append([]byte(nil), queue.HeaderSection(body.Bytes())...)
	}
	if refusal := s.applyRules(header, size); refusal != nil {
		discard()
		if s.r.cfg.TraceHeaders {
			tx.header = header
		}
		return s.refuseMessage(*refusal, "rejected", "every recipient rejected by mail flow rules: "+refusal.String())
	}
	m := s.traceMessage(queue.Queued, reply)
	if s.r.cfg.TraceHeaders {
		m.Header = header
	}
	if spool != nil {
		m.Chunks, m.Size = spool.Chunks(), spool.Size()
	} else {
		m.Body = keepContent(body)
	}
	m.MessageIDHeader = info.MessageID
	m.ExpiresAt = tx.started.Add(s.r.cfg.QueueLifetime)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.r.queue.Enqueue(ctx, m); err != nil {
		s.log.Error("message not queued", "msg_id", tx.uid, "err", err)
		discard()
		tx.done = true
		return replyTempFailure.Err()
	}
	tx.done = true
	s.r.accepted.Add(1)
	if s.probe != nil && s.probe.Observe != nil {
		s.probe.Observe(ProbeEvent{Queued: tx.uid})
	}
	s.log.Info("message queued", "msg_id", tx.uid, "sender", tx.from, "rcpts", len(tx.rcpts), "size", size, "connector", inboundName(tx.attribution))
	return reply.Err()
}

// contentBuffers recycles the buffers Data reads content into. A message's
// body is then copied once into a slice of exactly its size, which the
// queue and the delivery workers keep; growing a fresh buffer for each
// message instead allocated, zeroed and copied about three times the
// message's size, and with 100 KiB messages that garbage (its collection,
// and the pages the runtime gave back to the OS and faulted in again) was
// a large share of flowgate's CPU (docs/perf.md). A buffer never holds
// much more than queue.ChunkSize: larger content goes to the queue in
// pieces as it arrives.
var contentBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func putContentBuffer(b *bytes.Buffer) { contentBuffers.Put(b) }

// keepContent is the content of b for the queue to keep: a copy of exactly
// its size (not zeroed first), as b goes back to the pool.
func keepContent(b *bytes.Buffer) []byte { return bytes.Clone(b.Bytes()) }

func inboundName(a routing.Attribution) string {
	if a.Connector == nil {
		return ""
	}
	return a.Connector.Name
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// writeReceived prepends this hop's trace field (RFC 5321 4.4), with the
// TLS version and cipher.
func (s *session) writeReceived(b *bytes.Buffer) {
	proto := "ESMTP"
	tlsInfo := ""
	if s.client.TLS {
		proto = "ESMTPS"
		tlsInfo = fmt.Sprintf("\r\n\t(version=%s cipher=%s)", s.tlsVer, s.cipher)
	}
	if s.cert.Subject != "" {
		tlsInfo += fmt.Sprintf("\r\n\t(client certificate %s)", sanitize(s.certText(), 200))
	}
	ipText := s.ip.String()
	if s.ip.Is6() {
		ipText = "IPv6:" + ipText
	}
	// The HELO name is the from-domain only when it is a domain or an
	// address literal; anything else is shown, defanged, in the comment.
	tcpInfo := "[" + ipText + "]"
	from := "unknown"
	helo := s.tx.helo
	if d, err := connector.NormalizeDomain(helo); err == nil && strings.TrimSpace(helo) == helo {
		from = d
	} else if lit, ok := parseAddressLiteral(helo); ok {
		from = lit
	} else {
		tcpInfo += " helo=" + sanitize(helo, 255)
	}
	fmt.Fprintf(b, "Received: from %s (%s)\r\n\tby %s (flowgate) with %s id %s%s;\r\n\t%s\r\n",
		from, tcpInfo, s.r.cfg.Hostname, proto, s.tx.uid, tlsInfo,
		time.Now().UTC().Format(time.RFC1123Z))
}

// sanitize keeps a client-supplied string safe inside a header comment.
func sanitize(v string, max int) string {
	var b strings.Builder
	for _, c := range []byte(v) {
		if b.Len() >= max {
			break
		}
		if c < 0x21 || c > 0x7e || c == '(' || c == ')' || c == '\\' || c == ';' || c == '"' {
			c = '?'
		}
		b.WriteByte(c)
	}
	if b.Len() == 0 {
		return "unknown"
	}
	return b.String()
}

// finish traces a transaction that ended without a message being accepted
// but with recipients refused (for example every recipient was a relay
// attempt), so that refused mail is never invisible.
func (s *session) finish() {
	tx := s.tx
	s.tx = nil
	if tx == nil || tx.done || tx.refused == 0 {
		return
	}
	s.tx = tx
	reply := replyRelayDenied
	if tx.lastRefusal != nil {
		reply = *tx.lastRefusal
	}
	for i := range tx.rcpts {
		tx.rcpts[i].Status = queue.Rejected
		tx.rcpts[i].LastReply = "the client ended the transaction without sending the message"
	}
	s.r.rejected.Add(1)
	s.r.queue.Trace(s.traceMessage(queue.Rejected, reply))
	s.tx = nil
}

// refuseRecipient counts and traces a refused recipient of tx and returns
// the reply to send; the transaction, if abandoned, is traced with the last
// such reply.
func (s *session) refuseRecipient(tx *transaction, rcpt, reason string, reply *Reply) Reply {
	tx.refused++
	tx.lastRefusal = reply
	s.event("recipient_rejected", "%s: %s (%s)", rcpt, reason, reply)
	s.log.Info("recipient rejected", "msg_id", tx.uid, "rcpt", clip(rcpt, maxAddressLength), "reply", reply.String(), "reason", clip(reason, maxEventDetail))
	r := s.countRefusal(*reply)
	if r != *reply {
		tx.lastRefusal = &r
	}
	return r
}

// countRefusal counts a refused command against the session's error limit
// and returns the reply to send: reply, or, once the limit is exceeded,
// replyTooManyErrors. The 421 is then written and the connection closed
// here, so that commands the client pipelined behind it are not served
// (they get the 421 too, untraced, until go-smtp sees the closed
// connection). The trip is traced with the current transaction.
func (s *session) countRefusal(reply Reply) Reply {
	if !s.errs.refuse() {
		return reply
	}
	s.event("error_limit", "%s", s.errs.limitText())
	s.log.Warn("error limit exceeded; connection closed", "limit", s.errs.max)
	if c := s.conn.Conn(); c != nil {
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Write([]byte(replyTooManyErrors.String() + "\r\n"))
		_ = c.Close()
	}
	return replyTooManyErrors
}

// CommandRefused traces the MAIL and RCPT commands go-smtp refuses itself
// because it cannot parse them (501 5.5.2, 501 5.5.4; the patch in
// internal/third_party/go-smtp): a refused sender is a rejected message, a
// refused recipient counts like any other refused recipient of the
// transaction, so such attempts are traced like every other refusal.
func (s *session) CommandRefused(command, arg string, e *smtp.SMTPError) {
	if s.errs.tripped {
		return
	}
	reply := Reply{Code: e.Code, Enhanced: [3]int(e.EnhancedCode), Text: e.Message}
	const maxArg = 300 // of the client's text kept in the trace
	arg = clip(arg, maxArg)
	switch command {
	case "MAIL":
		s.begin()
		_ = s.refuseMessage(reply, "rejected", fmt.Sprintf("MAIL %q: unparsable sender or parameters", arg))
	case "RCPT":
		if tx := s.tx; tx != nil && !tx.done {
			s.refuseRecipient(tx, fmt.Sprintf("RCPT %q", arg), "unparsable recipient or parameters", &reply)
		} else {
			s.countRefusal(reply)
		}
	}
}

// Reset is RSET (and the end of each message).
func (s *session) Reset() { s.finish() }

// Logout is QUIT or the end of the connection.
func (s *session) Logout() error {
	s.finish()
	return nil
}
