package relay

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// limitListener caps connections in total and per client IP, keeps the
// last slots for addresses holding less than their fair share, and puts
// the relay under stress when it is nearly full (admission.go). A refused
// connection gets "421 4.7.0" and is closed before go-smtp sees it. Every
// connection it hands out is a countedConn, whose reads are bounded by
// the deadlines in deadline.go.
type limitListener struct {
	net.Listener
	max, perIP int
	reserveAt  int // from here on, only addresses below their fair share get in
	stressOn   int // stress begins at this many connections…
	stressOff  int // …and ends below this many
	deadlines  deadlines
	log        *slog.Logger

	mu    sync.Mutex
	total int
	per   map[netip.Addr]int
	conns map[*countedConn]struct{} // to tighten their deadlines when stress begins

	stressSince atomic.Int64 // unix nanoseconds when stress began; 0 when not under stress
}

func newLimitListener(ln net.Listener, cfg Config, log *slog.Logger) *limitListener {
	l := &limitListener{
		Listener: ln, max: cfg.MaxConnections, perIP: cfg.MaxConnectionsPerIP,
		reserveAt: percentOf(cfg.MaxConnections, reservePercent),
		stressOn:  percentOf(cfg.MaxConnections, stressOnPercent),
		stressOff: percentOf(cfg.MaxConnections, stressOffPercent),
		deadlines: deadlines{session: cfg.SessionDeadline, stress: cfg.StressTimeout},
		log:       log, per: map[netip.Addr]int{}, conns: map[*countedConn]struct{}{},
	}
	return l
}

func remoteIP(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		now := time.Now()
		l.mu.Lock()
		refuse := l.admit(ip)
		var cc *countedConn
		var wake []*countedConn
		if refuse == nil {
			l.total++
			l.per[ip]++
			cc = &countedConn{Conn: c, l: l, ip: ip}
			if l.deadlines.session > 0 {
				cc.sessionEnd = now.Add(l.deadlines.session)
			}
			l.conns[cc] = struct{}{}
			if l.total >= l.stressOn && l.stressSince.Load() == 0 {
				l.stressSince.Store(now.UnixNano())
				wake = l.connList()
			}
		}
		total := l.total
		l.mu.Unlock()
		if refuse != nil {
			l.log.Warn("connection refused by limit", "client_ip", ip.String(), "reply", refuse.String())
			go func() {
				_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
				_, _ = c.Write([]byte(refuse.String() + "\r\n"))
				_ = c.Close()
			}()
			continue
		}
		if wake != nil {
			l.log.Warn("relay under stress: idle and command timeouts shortened", "connections", total,
				"limit", l.max, "timeout", l.deadlines.stress.String())
			// Connections already waiting got their long timeout when
			// the wait began; give them the short one from now.
			for _, w := range wake {
				w.reapplyDeadline()
			}
		}
		return cc, nil
	}
}

func (l *limitListener) connList() []*countedConn {
	list := make([]*countedConn, 0, len(l.conns))
	for c := range l.conns {
		list = append(list, c)
	}
	return list
}

func (l *limitListener) release(c *countedConn) {
	l.mu.Lock()
	l.total--
	if l.per[c.ip]--; l.per[c.ip] <= 0 {
		delete(l.per, c.ip)
	}
	delete(l.conns, c)
	ended := l.total < l.stressOff && l.stressSince.Load() != 0
	if ended {
		l.stressSince.Store(0)
	}
	total := l.total
	l.mu.Unlock()
	if ended {
		l.log.Info("relay no longer under stress", "connections", total, "limit", l.max)
	}
}

type countedConn struct {
	net.Conn
	l    *limitListener
	ip   netip.Addr
	once sync.Once

	// The read deadlines (deadline.go), guarded by mu.
	mu         sync.Mutex
	sessionEnd time.Time     // the session's total deadline
	waitFrom   time.Time     // when the current wait began: the command line's start, or the read's in DATA
	lineEnd    time.Time     // the deadline go-smtp set for the command line
	idle       time.Duration // in DATA: every read may wait this long
	dataEnd    time.Time     // in DATA: the whole content must be in by then
	dataLimit  time.Duration // the DATA deadline, for the trace
	applied    time.Time     // the deadline last set on the socket…
	appliedCap readCap       // …and which bound it is
	cut        string        // why a read timed out; from then on every read fails

	pending []byte // continuation lines of a multi-line reply not yet sent
}

// Write sends a reply. go-smtp writes (and flushes) a multi-line reply —
// EHLO's capabilities — one line at a time, a system call and a packet per
// line; the continuation lines ("250-…") are held here and sent together
// with the reply's last line, which always follows. TLS records (after
// STARTTLS) never look like reply lines and pass straight through.
func (c *countedConn) Write(p []byte) (int, error) {
	if isContinuationLine(p) && len(c.pending)+len(p) <= 64<<10 {
		c.pending = append(c.pending, p...)
		return len(p), nil
	}
	if len(c.pending) == 0 {
		return c.Conn.Write(p)
	}
	buf := append(c.pending, p...)
	c.pending = c.pending[:0]
	n, err := c.Conn.Write(buf)
	if err != nil {
		return max(0, n-(len(buf)-len(p))), err
	}
	return len(p), nil
}

// isContinuationLine reports whether p is one whole reply line that is not
// the last of its reply: three digits, '-', text, CRLF.
func isContinuationLine(p []byte) bool {
	return len(p) >= 6 && p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9' &&
		p[3] == '-' && p[len(p)-2] == '\r' && p[len(p)-1] == '\n' && bytes.IndexByte(p[:len(p)-2], '\n') < 0
}

// baseConn finds the countedConn under a session's connection (which is a
// *tls.Conn after STARTTLS).
func baseConn(c net.Conn) *countedConn {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	cc, _ := c.(*countedConn)
	return cc
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		if c.l != nil {
			c.l.release(c)
		}
	})
	return c.Conn.Close()
}
