package console

import (
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// signInThrottle slows down password guessing: after maxFailures failed
// sign-ins within window, from one client address or for one e-mail
// address, further attempts are refused until the window has passed. It
// is per process; bcrypt already makes each guess slow.
type signInThrottle struct {
	mu       sync.Mutex
	failures map[string][]time.Time
	now      func() time.Time
}

const (
	signInMaxFailures = 10
	signInWindow      = 15 * time.Minute
)

func newSignInThrottle() *signInThrottle {
	return &signInThrottle{failures: map[string][]time.Time{}, now: time.Now}
}

func throttleKeys(r *http.Request, email string) []string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return []string{"ip:" + host, "email:" + strings.ToLower(strings.TrimSpace(email))}
}

// recent drops failures older than the window and returns those left.
func (t *signInThrottle) recent(key string, now time.Time) []time.Time {
	list := t.failures[key]
	i := 0
	for i < len(list) && now.Sub(list[i]) > signInWindow {
		i++
	}
	list = list[i:]
	if len(list) == 0 {
		delete(t.failures, key)
		return nil
	}
	t.failures[key] = list
	return list
}

// blocked reports whether a sign-in for email from r must wait, and how
// long.
func (t *signInThrottle) blocked(r *http.Request, email string) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for _, k := range throttleKeys(r, email) {
		if list := t.recent(k, now); len(list) >= signInMaxFailures {
			return signInWindow - now.Sub(list[0]), true
		}
	}
	return 0, false
}

func (t *signInThrottle) failed(r *http.Request, email string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for _, k := range throttleKeys(r, email) {
		t.failures[k] = append(t.recent(k, now), now)
	}
}

func (t *signInThrottle) succeeded(r *http.Request, email string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.failures, throttleKeys(r, email)[1])
}
