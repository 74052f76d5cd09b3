package console

import (
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// fakeThrottle is a throttle on a clock the test moves.
func fakeThrottle() (*signInThrottle, *time.Time) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t := newSignInThrottle()
	t.now = func() time.Time { return now }
	return t, &now
}

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

// The rule written on signInThrottle, step by step.
func TestThrottleRule(t *testing.T) {
	th, now := fakeThrottle()
	guesser, owner := ip("198.51.100.1"), ip("192.0.2.1")
	// Pair: ten failures from one address for one account stop that pair.
	for i := range signInPairMax {
		if _, _, ok := th.reserve("a@x", guesser); !ok {
			t.Fatalf("attempt %d refused", i)
		}
	}
	if _, wait, ok := th.reserve("a@x", guesser); ok || wait != signInWindow {
		t.Fatalf("11th attempt of the pair: ok %v wait %v", ok, wait)
	}
	// … but not the owner's address, which has not failed: the account's
	// slow-down lets one attempt in per delay, and no delay is long.
	res, wait, ok := th.reserve("a@x", owner)
	if !ok {
		t.Fatalf("owner's fresh address refused for %v", wait)
	}
	th.succeeded(res)
	// Once known, the owner's address is not slowed down at all.
	for range 5 {
		res, _, ok := th.reserve("a@x", owner)
		if !ok {
			t.Fatal("known address slowed down")
		}
		th.succeeded(res)
	}
	// Unknown addresses are spaced out, with a delay that grows and stops
	// at signInMaxDelay.
	for i := range 12 {
		*now = now.Add(signInMaxDelay)
		if _, _, ok := th.reserve("a@x", ip("203.0.113."+strconv.Itoa(i+1))); !ok {
			t.Fatalf("new address %d refused after the longest delay", i)
		}
		if _, wait, ok := th.reserve("a@x", ip("203.0.114."+strconv.Itoa(i+1))); ok || wait > signInMaxDelay || wait < time.Second {
			t.Fatalf("second new address within the delay: ok %v wait %v", ok, wait)
		}
	}
	if got := accountDelay(signInAccountFree); got != time.Second {
		t.Fatalf("first delay %v", got)
	}
	if got := accountDelay(signInAccountFree + 3); got != 8*time.Second {
		t.Fatalf("fourth delay %v", got)
	}
	if got := accountDelay(signInAccountFree + 100); got != signInMaxDelay {
		t.Fatalf("long delay %v", got)
	}
	// Address: twenty failures for any accounts stop the address.
	other := ip("198.51.100.2")
	for i := range signInAddrMax {
		if _, _, ok := th.reserve("u"+strconv.Itoa(i)+"@x", other); !ok {
			t.Fatalf("address attempt %d refused", i)
		}
	}
	if _, _, ok := th.reserve("new@x", other); ok {
		t.Fatal("21st failure of an address allowed")
	}
	// IPv6 addresses count per /64.
	if _, _, ok := th.reserve("b@x", ip("2001:db8::1")); !ok {
		t.Fatal("ipv6 refused")
	}
	if clientKey(ip("2001:db8::1")) != clientKey(ip("2001:db8::ffff")) || clientKey(ip("::ffff:192.0.2.1")) != "192.0.2.1" {
		t.Fatal("client keys")
	}
	// After the window everything is forgotten but the known address.
	*now = now.Add(signInWindow)
	if _, _, ok := th.reserve("a@x", guesser); !ok {
		t.Fatal("pair still refused after the window")
	}
}

// A released reservation (a server error) does not count.
func TestThrottleRelease(t *testing.T) {
	th, _ := fakeThrottle()
	for range 3 * signInPairMax {
		res, _, ok := th.reserve("a@x", ip("192.0.2.1"))
		if !ok {
			t.Fatal("released attempts counted")
		}
		th.release(res)
	}
}

// The throttle's memory is bounded by a cap on entries and by timed
// eviction.
func TestThrottleMemoryIsBounded(t *testing.T) {
	th, now := fakeThrottle()
	th.max = 100
	for i := range 5000 {
		*now = now.Add(time.Millisecond)
		th.reserve("user"+strconv.Itoa(i)+"@x", ip("10.0."+strconv.Itoa(i/250)+"."+strconv.Itoa(i%250)))
		if len(th.entries) > th.max {
			t.Fatalf("%d entries after %d attempts, cap %d", len(th.entries), i+1, th.max)
		}
	}
	*now = now.Add(signInWindow + signInSweepEvery)
	th.reserve("last@x", ip("192.0.2.1"))
	if len(th.entries) != 3 {
		t.Fatalf("%d entries after the window, want only the last attempt's 3", len(th.entries))
	}
}
