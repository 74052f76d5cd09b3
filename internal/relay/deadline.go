package relay

import (
	"fmt"
	"os"
	"time"
)

// Read deadlines. A client that sends a byte now and then is never idle,
// so idle timeouts alone let it hold a connection for ever. Every read of
// a countedConn therefore waits at most until the earliest of:
//
//   - the session deadline: Config.SessionDeadline after the connection
//     was accepted;
//   - between commands: the deadline go-smtp sets when it starts reading a
//     command line (CommandTimeout from then), for the whole line, so a
//     line trickled byte by byte must still be complete in time;
//   - in DATA (and BDAT): DataTimeout from the start of each read, and the
//     DATA deadline, Config.DataDeadline after the content began, however
//     slowly it trickles;
//   - under stress (admission.go): Config.StressTimeout from the start of
//     the wait, or from when the stress began if that is later.
//
// Once a read has timed out, every later read fails at once: go-smtp then
// answers the command in progress (451 4.4.2 for DATA, traced by the
// session) and ends the session with 421 4.4.2, and the rest of a cut-off
// message is never read as commands.

// deadlines are a listener's settings for the deadlines above that do not
// come from go-smtp or the session.
type deadlines struct{ session, stress time.Duration }

// readCap is which of the bounds above a deadline is.
type readCap int

const (
	capNone readCap = iota
	capSession
	capLine
	capIdle
	capData
	capStress
)

// SetReadDeadline is called by go-smtp (directly, or through tls.Conn
// after STARTTLS) before each command line.
func (c *countedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.waitFrom, c.lineEnd = time.Now(), t
	return c.applyLocked()
}

func (c *countedConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}

func (c *countedConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if c.cut != "" {
		c.mu.Unlock()
		return 0, os.ErrDeadlineExceeded
	}
	if c.idle > 0 {
		c.waitFrom = time.Now() // in DATA, each read waits anew
	}
	err := c.applyLocked()
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	if err != nil && isTimeout(err) {
		c.mu.Lock()
		c.cut = c.cutText()
		c.mu.Unlock()
	}
	return n, err
}

// beginData bounds the reads of message content: each may wait idle, and
// all of them together total.
func (c *countedConn) beginData(idle, total time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.idle, c.dataLimit, c.waitFrom = idle, total, now
	if total > 0 {
		c.dataEnd = now.Add(total)
	}
	_ = c.applyLocked()
}

// endData goes back to command deadlines, which go-smtp sets for the
// next command line.
func (c *countedConn) endData() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.idle, c.dataEnd = 0, time.Time{}
}

// cutReason says why a read timed out; "" if none has.
func (c *countedConn) cutReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cut
}

// reapplyDeadline recomputes the deadline of a read in progress (when
// stress begins).
func (c *countedConn) reapplyDeadline() {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.applyLocked()
}

// applyLocked sets the socket's read deadline to the earliest bound, when
// that changed.
func (c *countedConn) applyLocked() error {
	d, which := c.deadlineLocked()
	if d.Equal(c.applied) {
		return nil
	}
	c.applied, c.appliedCap = d, which
	return c.Conn.SetReadDeadline(d)
}

// deadlineLocked is the earliest bound of the read now waiting or about
// to wait, and which bound it is; the zero time for none.
func (c *countedConn) deadlineLocked() (time.Time, readCap) {
	d, which := c.sessionEnd, capSession
	if d.IsZero() {
		which = capNone
	}
	earlier := func(t time.Time, w readCap) {
		if !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d, which = t, w
		}
	}
	if c.idle > 0 {
		earlier(c.waitFrom.Add(c.idle), capIdle)
	} else {
		earlier(c.lineEnd, capLine)
	}
	earlier(c.dataEnd, capData)
	if since := c.stressSince(); !since.IsZero() && c.l.deadlines.stress > 0 {
		from := c.waitFrom
		if since.After(from) {
			from = since
		}
		earlier(from.Add(c.l.deadlines.stress), capStress)
	}
	return d, which
}

func (c *countedConn) stressSince() time.Time {
	if c.l == nil {
		return time.Time{}
	}
	if ns := c.l.stressSince.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// cutText describes the bound that ended a read, for the trace.
func (c *countedConn) cutText() string {
	switch c.appliedCap {
	case capSession:
		return fmt.Sprintf("session not complete within %v (session deadline)", c.l.deadlines.session)
	case capData:
		return fmt.Sprintf("DATA not complete within %v (DATA deadline)", c.dataLimit)
	case capIdle:
		return fmt.Sprintf("no data for %v", c.idle)
	case capStress:
		return fmt.Sprintf("no data for %v while the relay was under stress", c.l.deadlines.stress)
	}
	return "command timeout"
}
