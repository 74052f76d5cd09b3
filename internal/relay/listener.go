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

// limitListener caps connections in total and per client IP. A connection
// over a cap gets "421 4.7.0" and is closed before go-smtp sees it.
type limitListener struct {
	net.Listener
	max, perIP int
	hostname   string
	log        *slog.Logger

	mu    sync.Mutex
	total int
	per   map[netip.Addr]int
}

func newLimitListener(ln net.Listener, max, perIP int, hostname string, log *slog.Logger) *limitListener {
	return &limitListener{Listener: ln, max: max, perIP: perIP, hostname: hostname, log: log, per: map[netip.Addr]int{}}
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
		l.mu.Lock()
		var refuse *Reply
		switch {
		case l.total >= l.max:
			refuse = &replyTooManyConns
		case l.per[ip] >= l.perIP:
			refuse = &replyTooManyFromIP
		default:
			l.total++
			l.per[ip]++
		}
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
		return &countedConn{Conn: c, l: l, ip: ip}, nil
	}
}

func (l *limitListener) release(ip netip.Addr) {
	l.mu.Lock()
	l.total--
	if l.per[ip]--; l.per[ip] <= 0 {
		delete(l.per, ip)
	}
	l.mu.Unlock()
}

type countedConn struct {
	net.Conn
	l    *limitListener
	ip   netip.Addr
	once sync.Once
	idle atomic.Int64 // while > 0 (DATA), every read may wait this long (ns)

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

// Read refreshes the read deadline before every read while an idle
// timeout is set, so DATA may take long in total but never stall longer
// than the timeout between packets.
func (c *countedConn) Read(p []byte) (int, error) {
	if d := c.idle.Load(); d > 0 {
		_ = c.Conn.SetReadDeadline(time.Now().Add(time.Duration(d)))
	}
	return c.Conn.Read(p)
}

// setIdleTimeout switches the per-read deadline on (d > 0) or off.
func (c *countedConn) setIdleTimeout(d time.Duration) { c.idle.Store(int64(d)) }

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
	c.once.Do(func() { c.l.release(c.ip) })
	return c.Conn.Close()
}
