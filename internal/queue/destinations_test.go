package queue

import (
	"context"
	"testing"
	"time"
)

func TestDestinationTurns(t *testing.T) {
	ctx := context.Background()
	d := newDestinations(2)
	take := func(key string, wait time.Duration) bool { ok, _ := d.acquire(ctx, key, wait); return ok }
	if !take("a", 0) || !take("a", 0) {
		t.Fatal("two turns of a limit of 2 must be free")
	}
	if !take("b", 0) {
		t.Fatal("another destination has its own turns")
	}
	// a is at its limit but moving: a turn given back within the wait is taken.
	go func() { time.Sleep(20 * time.Millisecond); d.release("a") }()
	if !take("a", time.Second) {
		t.Fatal("a turn given back was not taken")
	}
	// a is at its limit and moving: waits, and no turn comes.
	if ok, stuck := d.acquire(ctx, "a", 300*time.Millisecond); ok || stuck {
		t.Fatalf("a third turn of a limit of 2: ok %v, stuck %v; want a wait that ends without a turn", ok, stuck)
	}
	// a has not moved for longer than the wait: stuck, no waiting at all.
	time.Sleep(100 * time.Millisecond)
	if ok, stuck := d.acquire(ctx, "a", 50*time.Millisecond); ok || !stuck {
		t.Fatalf("ok %v, stuck %v; want a stuck destination", ok, stuck)
	}
	// Its two turns are parked: they need not count against the slots; b,
	// below its limit, is not stuck.
	if n := d.stuckTurns(50 * time.Millisecond); n != 2 {
		t.Fatalf("stuck turns %d, want a's 2", n)
	}
	d.release("a")
	d.release("a")
	if d.busy["a"] != 0 || d.busy["b"] != 1 {
		t.Fatalf("busy %v", d.busy)
	}
}
