package delivery

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Dead next hops, as Postfix has them. A host address that does not
// answer a connection in time, does not greet within GreetingTimeout, or
// greets with an error (421: "come back later") is marked down for
// DownFor. Until then deliveries skip it without connecting — the next
// host is tried, or the mail is deferred at once with the reason — so mail
// for a dead host does not take delivery slots while it waits. A refused
// connection fails in a moment and costs no slot, so it marks nothing.
const (
	defaultGreetingTimeout = time.Minute // RFC 5321 suggests 5 minutes; a server silent for a minute is down or overloaded, and the mail is retried
	defaultDownFor         = time.Minute // about the first retry's delay (FLOWGATE_RETRY_SCHEDULE 1m)
	commandTimeout         = 5 * time.Minute
)

// unavailableError is a failure that says the host cannot take mail now.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return e.err.Error() }
func (e *unavailableError) Unwrap() error { return e.err }

// unavailable wraps err when it says the host is unavailable: a timeout,
// or an error greeting.
func unavailable(err error, greeting bool) error {
	var ne net.Error
	if greeting || errors.As(err, &ne) && ne.Timeout() {
		return &unavailableError{err}
	}
	return err
}

type downHost struct {
	until  time.Time
	reason string
}

// downHosts are the host addresses marked down, and until when.
type downHosts struct {
	mu sync.Mutex
	m  map[string]downHost
}

func (d *downHosts) mark(addr, reason string, until time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.m == nil {
		d.m = map[string]downHost{}
	}
	d.m[addr] = downHost{until: until, reason: reason}
}

// check reports whether addr is marked down now, and why.
func (d *downHosts) check(addr string, now time.Time) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	h, ok := d.m[addr]
	if !ok {
		return "", false
	}
	if !now.Before(h.until) {
		delete(d.m, addr)
		return "", false
	}
	return fmt.Sprintf("not tried: %s is marked down until %s UTC after: %s", addr, h.until.UTC().Format(time.TimeOnly), h.reason), true
}

func (c *Client) greetingTimeout() time.Duration {
	if c.GreetingTimeout == 0 {
		return defaultGreetingTimeout
	}
	return c.GreetingTimeout
}

func (c *Client) downFor() time.Duration {
	if c.DownFor == 0 {
		return defaultDownFor
	}
	return c.DownFor
}
