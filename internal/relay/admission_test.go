package relay

import (
	"os"
	"testing"
	"time"
)

func TestAdmission(t *testing.T) {
	const max, perIP = 1000, 50
	reserveAt := percentOf(max, reservePercent)
	for _, c := range []struct {
		name               string
		total, held, addrs int
		want               *Reply
	}{
		{"below the mark", 899, 49, 20, nil},
		{"at the per-IP limit", 10, 50, 1, &replyTooManyFromIP},
		{"at the limit", 1000, 0, 20, &replyTooManyConns},
		{"past the mark, at its share", 900, 45, 20, &replyTooManyFromIP},
		{"past the mark, below its share", 900, 44, 20, nil},
		{"past the mark, below its share, many connected", 990, 44, 20, nil},
		{"a newcomer", 999, 0, 20, nil},
		{"a newcomer among 999 addresses", 999, 0, 999, nil},
		{"one connection among many addresses", 950, 1, 600, nil},
		{"two connections among many addresses", 950, 2, 600, &replyTooManyFromIP},
	} {
		got := admission(c.total, c.held, c.addrs, max, perIP, reserveAt)
		if got != c.want {
			t.Errorf("%s: admission(%d, %d, %d) = %v, want %v", c.name, c.total, c.held, c.addrs, got, c.want)
		}
	}
	for _, c := range []struct{ n, p, want int }{{1000, 90, 900}, {1000, 80, 800}, {3, 90, 3}, {10, 70, 7}, {1, 80, 1}} {
		if got := percentOf(c.n, c.p); got != c.want {
			t.Errorf("percentOf(%d, %d) = %d, want %d", c.n, c.p, got, c.want)
		}
	}
}

// deadlineConn records the read deadlines set on it.
type deadlineConn struct {
	recordingConn
	read time.Time
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error { c.read = t; return nil }

// The socket's read deadline is the earliest of the bounds in deadline.go.
func TestReadDeadlines(t *testing.T) {
	l := &limitListener{deadlines: deadlines{session: time.Hour, stress: 10 * time.Second}}
	sock := &deadlineConn{}
	start := time.Now()
	c := &countedConn{Conn: sock, l: l, sessionEnd: start.Add(time.Hour)}
	near := func(what string, want time.Time) {
		t.Helper()
		if d := sock.read.Sub(want); d < -time.Second || d > time.Second {
			t.Errorf("%s: read deadline %v after start, want %v", what, sock.read.Sub(start), want.Sub(start))
		}
	}
	_ = c.SetReadDeadline(start.Add(5 * time.Minute))
	near("a command line", start.Add(5*time.Minute))
	_ = c.SetReadDeadline(start.Add(2 * time.Hour))
	near("a command line past the session deadline", start.Add(time.Hour))
	c.beginData(10*time.Minute, 20*time.Minute)
	near("in DATA", start.Add(10*time.Minute))
	c.beginData(10*time.Minute, time.Minute)
	near("in DATA, the DATA deadline first", start.Add(time.Minute))
	l.stressSince.Store(start.UnixNano())
	c.reapplyDeadline()
	near("in DATA, under stress", start.Add(10*time.Second))
	c.endData()
	_ = c.SetReadDeadline(start.Add(5 * time.Minute))
	near("a command line under stress", start.Add(10*time.Second))
	l.stressSince.Store(0)

	// After a timeout, every read fails at once.
	c.mu.Lock()
	c.cut = c.cutText()
	c.mu.Unlock()
	if _, err := c.Read(make([]byte, 1)); err != os.ErrDeadlineExceeded {
		t.Errorf("read after a timeout: %v, want os.ErrDeadlineExceeded", err)
	}
}
