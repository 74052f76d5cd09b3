package console

import (
	"net/netip"
	"slices"
	"sync"
	"time"
)

// signInThrottle slows down password guessing without letting a guesser
// lock an account's owner out. It is per process and in memory; bcrypt
// already makes each guess slow. The rule, per sign-in attempt for an
// account (the normalized e-mail address) from a client address (an IPv4
// address, or the /64 of an IPv6 address):
//
//   - Pair: after signInPairMax failed attempts for this account from this
//     address within signInWindow, that address may not try this account
//     again until the oldest failure is signInWindow old.
//   - Address: after signInAddrMax failed attempts from this address, for
//     any accounts, within signInWindow, that address may not try any
//     account until the oldest failure is signInWindow old.
//   - Account: failures for an account from all addresses only slow it
//     down, never lock it: once it has signInAccountFree failures within
//     signInWindow, an address that has not signed in to it successfully
//     within signInKnownFor may try it at most once per delay, where delay
//     doubles with every further failure from 1 s up to signInMaxDelay
//     ("try again in N s"). An address that has signed in to the account
//     before is not slowed down at all, so its owner still signs in from
//     the usual place while someone else guesses from many addresses; and
//     no address that has not failed itself waits longer than
//     signInMaxDelay.
//
// An attempt is reserved — counted as a failure — before its password is
// checked, under the same lock as the check of the limits, so parallel
// attempts cannot exceed them; a successful sign-in takes its reservation
// back and clears the pair's failures.
//
// Memory is bounded: at most signInMaxEntries keys are kept; entries
// whose failures have all left the window are evicted as time passes
// (at most every signInSweepEvery, on use), and when the table is full the
// least recently used entries go first. (So an attacker who fills the
// table from many addresses makes it forget older entries, known
// addresses included; that takes tens of thousands of attempts from
// hundreds of addresses, each limited as above.)
type signInThrottle struct {
	mu        sync.Mutex
	entries   map[string]*throttleEntry
	now       func() time.Time
	lastSweep time.Time
	max       int // signInMaxEntries; smaller in tests
}

// throttleEntry is what the throttle keeps for one key.
type throttleEntry struct {
	failures []time.Time // within the window, oldest first; reservations included
	next     time.Time   // account: earliest attempt from an address not known to it
	known    time.Time   // pair: last successful sign-in
	touched  time.Time   // last use, for eviction when full
}

const (
	signInWindow      = 15 * time.Minute
	signInPairMax     = 10
	signInAddrMax     = 20
	signInAccountFree = 10
	signInMaxDelay    = 60 * time.Second
	signInKnownFor    = 30 * 24 * time.Hour
	signInMaxEntries  = 20000
	signInSweepEvery  = time.Minute
	signInMaxFailures = 64 // failures kept per key; the limits above are lower
)

func newSignInThrottle() *signInThrottle {
	return &signInThrottle{entries: map[string]*throttleEntry{}, now: time.Now, max: signInMaxEntries}
}

// reservation is one attempt counted before its password was checked.
type reservation struct {
	keys []string // pair, address, account
	at   time.Time
}

// clientKey is the part of a client address the throttle counts: the
// address itself for IPv4, its /64 for IPv6 (one host usually has a whole
// /64).
func clientKey(ip netip.Addr) string {
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

func throttleKeys(account string, client netip.Addr) (pair, addr, acct string) {
	ck := clientKey(client)
	return "p:" + account + "\x00" + ck, "c:" + ck, "a:" + account
}

// recent drops failures older than the window from e and returns those
// left; e may be nil.
func (e *throttleEntry) recent(now time.Time) []time.Time {
	if e == nil {
		return nil
	}
	i := 0
	for i < len(e.failures) && now.Sub(e.failures[i]) >= signInWindow {
		i++
	}
	e.failures = e.failures[i:]
	return e.failures
}

// idle reports whether e holds nothing worth keeping.
func (e *throttleEntry) idle(now time.Time) bool {
	return len(e.recent(now)) == 0 && !now.Before(e.next) && now.Sub(e.known) >= signInKnownFor
}

// reserve counts an attempt for account from client, or refuses it and
// says how long to wait.
func (t *signInThrottle) reserve(account string, client netip.Addr) (*reservation, time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	t.sweep(now)
	pk, ck, ak := throttleKeys(account, client)
	pair, addr, acct := t.entries[pk], t.entries[ck], t.entries[ak]
	if f := pair.recent(now); len(f) >= signInPairMax {
		return nil, signInWindow - now.Sub(f[len(f)-signInPairMax]), false
	}
	if f := addr.recent(now); len(f) >= signInAddrMax {
		return nil, signInWindow - now.Sub(f[len(f)-signInAddrMax]), false
	}
	known := pair != nil && now.Sub(pair.known) < signInKnownFor
	if f := acct.recent(now); !known && len(f) >= signInAccountFree {
		if now.Before(acct.next) {
			return nil, acct.next.Sub(now), false
		}
		acct.next = now.Add(accountDelay(len(f)))
	}
	res := &reservation{keys: []string{pk, ck, ak}, at: now}
	for _, k := range res.keys {
		e := t.entry(k, now)
		e.failures = append(e.recent(now), now)
		if len(e.failures) > signInMaxFailures {
			e.failures = e.failures[len(e.failures)-signInMaxFailures:]
		}
	}
	return res, 0, true
}

// accountDelay is the spacing of attempts for an account with n recent
// failures, n ≥ signInAccountFree: 1 s, 2 s, 4 s, … up to signInMaxDelay.
func accountDelay(n int) time.Duration {
	shift := n - signInAccountFree
	if shift > 6 {
		return signInMaxDelay
	}
	return min(time.Second<<shift, signInMaxDelay)
}

// entry returns the entry for key, creating it (and making room) if need
// be.
func (t *signInThrottle) entry(key string, now time.Time) *throttleEntry {
	e := t.entries[key]
	if e == nil {
		if len(t.entries) >= t.max {
			t.lastSweep = time.Time{}
			t.sweep(now)
			t.evictOldest(len(t.entries) - t.max + 1 + t.max/10)
		}
		e = &throttleEntry{}
		t.entries[key] = e
	}
	e.touched = now
	return e
}

// sweep evicts idle entries, at most every signInSweepEvery.
func (t *signInThrottle) sweep(now time.Time) {
	if now.Sub(t.lastSweep) < signInSweepEvery {
		return
	}
	t.lastSweep = now
	for k, e := range t.entries {
		if e.idle(now) {
			delete(t.entries, k)
		}
	}
}

// evictOldest removes the n least recently used entries.
func (t *signInThrottle) evictOldest(n int) {
	if n <= 0 {
		return
	}
	keys := make([]string, 0, len(t.entries))
	for k := range t.entries {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return t.entries[a].touched.Compare(t.entries[b].touched) })
	for _, k := range keys[:min(n, len(keys))] {
		delete(t.entries, k)
	}
}

// release takes a reservation back (the attempt did not fail: it
// succeeded, or the server could not check it).
func (t *signInThrottle) release(res *reservation) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.releaseLocked(res)
}

func (t *signInThrottle) releaseLocked(res *reservation) {
	for _, k := range res.keys {
		e := t.entries[k]
		if e == nil {
			continue
		}
		for i := len(e.failures) - 1; i >= 0; i-- {
			if e.failures[i].Equal(res.at) {
				e.failures = append(e.failures[:i], e.failures[i+1:]...)
				break
			}
		}
	}
}

// succeeded records a successful sign-in: the reservation is taken back,
// the pair's failures are cleared and its address becomes known to the
// account.
func (t *signInThrottle) succeeded(res *reservation) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.releaseLocked(res)
	now := t.now()
	e := t.entry(res.keys[0], now)
	e.failures = nil
	e.known = now
}
