// Package relay is flowgate's receiving SMTP relay (SPEC 3.1–3.4, 3.8),
// built on emersion/go-smtp. For every session it learns the client's
// facts (IP, TLS, a verified client certificate), attributes each message
// to an inbound connector through the live routing index, enforces the
// connector's restrictions and relay authorization at the earliest command
// where the facts are known, normalizes and size-limits the content, and
// answers 250 only after the queue has committed the message. Every
// accepted or refused message leaves a trace.
package relay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/liveconfig"
	"github.com/flowgate/flowgate/internal/queue"
)

// Config are the relay's settings; every limit is explicit.
type Config struct {
	Hostname            string
	TraceHeaders        bool // keep each message's header section with its trace (rule previews)
	MaxMessageBytes     int64
	MaxRecipients       int
	MaxConnections      int
	MaxConnectionsPerIP int
	CommandTimeout      time.Duration // idle time allowed between commands
	DataTimeout         time.Duration // idle time allowed while reading DATA
	DataDeadline        time.Duration // time allowed for the whole DATA content, however it trickles
	SessionDeadline     time.Duration // time allowed for a whole connection
	StressTimeout       time.Duration // replaces CommandTimeout and DataTimeout while the relay is under stress (admission.go)
	MaxLineLength       int           // bytes in a line, commands and content alike, without CRLF
	MaxHops             int           // Received: fields before a loop is declared
	MaxErrors           int           // refused commands a session may have; the next is answered 421 4.7.0 and the connection closed (limits.go)
	QueueLifetime       time.Duration
	Certificate         tls.Certificate
	ClientRoots         *x509.CertPool // trusted for client certificates
}

// Defaults fills the zero limits with flowgate's defaults.
func (c *Config) Defaults() {
	fill := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	fillDuration := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = config.DefaultMaxMessageSize
	}
	fill(&c.MaxRecipients, config.DefaultMaxRecipients)
	fill(&c.MaxConnections, config.DefaultMaxConnections)
	fill(&c.MaxConnectionsPerIP, config.DefaultMaxConnectionsPerIP)
	fill(&c.MaxLineLength, config.DefaultMaxLineLength)
	fill(&c.MaxHops, config.DefaultMaxHops)
	fill(&c.MaxErrors, DefaultMaxErrors)
	fillDuration(&c.CommandTimeout, config.DefaultCommandTimeout)
	fillDuration(&c.DataTimeout, config.DefaultDataTimeout)
	fillDuration(&c.DataDeadline, config.DefaultDataDeadline)
	fillDuration(&c.SessionDeadline, config.DefaultSessionDeadline)
	fillDuration(&c.StressTimeout, config.DefaultStressTimeout)
	fillDuration(&c.QueueLifetime, config.DefaultQueueLifetime)
}

// Relay is the receiving SMTP server.
type Relay struct {
	cfg    Config
	live   *liveconfig.Config
	queue  *queue.Writer
	log    *slog.Logger
	srv    *smtp.Server
	lim    atomic.Pointer[limitListener] // set by Serve; tests read its counts (export_test.go)
	closed atomic.Bool

	accepted, rejected atomic.Int64
	probes             probeRegistry
}

// New builds a relay; Serve starts it.
func New(cfg Config, live *liveconfig.Config, q *queue.Writer, log *slog.Logger) *Relay {
	cfg.Defaults()
	r := &Relay{cfg: cfg, live: live, queue: q, log: log}
	s := smtp.NewServer(r)
	s.Domain = cfg.Hostname
	// The size limit is enforced by the session, not by go-smtp: go-smtp
	// refuses a declared SIZE before the session sees it (so the refusal
	// could not be traced) and its data reader refuses a message of exactly
	// the limit. EHLO still gives the limit (SIZE n, RFC 1870), through
	// our go-smtp patch 5, so clients can refuse an over-size message
	// before sending it.
	s.MaxMessageBytes = 0
	s.AdvertisedMessageBytes = cfg.MaxMessageBytes
	s.MaxRecipients = cfg.MaxRecipients
	// go-smtp applies one line limit to commands and content, and a line
	// over it ends the session. Set it at twice ours (go-smtp also counts
	// the CR and the previous LF), so that a content line over our limit is
	// refused by the session with 554 5.6.0 and the session goes on;
	// commands may be up to twice MaxLineLength long.
	s.MaxLineLength = 2*cfg.MaxLineLength + 2
	s.ReadTimeout = cfg.CommandTimeout
	s.WriteTimeout = time.Minute
	s.EnableSMTPUTF8 = false
	s.ErrorLog = errorLog{log}
	if len(cfg.Certificate.Certificate) > 0 {
		s.TLSConfig = &tls.Config{
			Certificates: []tls.Certificate{cfg.Certificate},
			MinVersion:   tls.VersionTLS12,
			// Requested, not required, and verified by the session: a
			// partner with an untrusted certificate still gets TLS.
			ClientAuth: tls.RequestClientCert,
		}
	}
	r.srv = s
	return r
}

// Serve accepts connections on ln until Shutdown.
func (r *Relay) Serve(ln net.Listener) error {
	lim := newLimitListener(ln, r.cfg, r.log)
	r.lim.Store(lim)
	err := r.srv.Serve(lim)
	if r.closed.Load() {
		return nil
	}
	return err
}

// Shutdown stops accepting, lets sessions in flight finish until ctx ends,
// then closes the rest.
func (r *Relay) Shutdown(ctx context.Context) error {
	r.closed.Store(true)
	err := r.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return r.srv.Close()
	}
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Counts reports messages accepted and refused since start.
func (r *Relay) Counts() (accepted, rejected int64) { return r.accepted.Load(), r.rejected.Load() }

// NewSession is called by go-smtp at the first HELO/EHLO and again after
// STARTTLS, so the TLS facts are read here.
func (r *Relay) NewSession(c *smtp.Conn) (smtp.Session, error) {
	if r.closed.Load() {
		return nil, replyShuttingDown.Err()
	}
	if len(c.Hostname()) > maxHeloLength {
		// go-smtp answers the greeting with this reply and forgets the
		// name; nothing of it is kept.
		return nil, replyHeloTooLong.Err()
	}
	return newSession(r, c), nil
}

type errorLog struct{ log *slog.Logger }

func (e errorLog) Printf(format string, v ...any) {
	e.log.Debug("smtp", "msg", fmt.Sprintf(format, v...))
}
func (e errorLog) Println(v ...any) { e.log.Debug("smtp", "msg", fmt.Sprint(v...)) }
