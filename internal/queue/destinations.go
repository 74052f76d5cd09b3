package queue

import (
	"context"
	"sync"
	"time"
)

// Isolation between destinations. A destination is where a group of
// recipients goes (delivery.Target.Key: an outbound connector, or the MX
// hosts of one domain). One destination may hold at most limit of this
// process's delivery slots at once, so a next hop that accepts the
// connection and then hangs cannot take every slot: the other
// destinations' mail keeps flowing. A delivery whose destination is at its
// limit waits for a turn, up to destinationWait, while the destination is
// moving (a turn was taken or given back within destinationWait: under
// normal load turns come within milliseconds, and mail to one busy
// destination stays in memory). Otherwise it goes back to the queue
// without holding a slot, as not attempted (its retry count and backoff
// are untouched): for postponeDelay after a wait, and for stuckDelay when
// the destination is stuck (none of its deliveries has ended lately), so
// that its mail does not cycle through the queue while it hangs. The
// delivery client, for its part, marks a host that times out or greets
// with an error as down for a while, so the mail waiting for it then
// fails fast instead of taking slots (delivery/downhosts.go).
const (
	destinationWait = time.Second
	postponeDelay   = 5 * time.Second
	stuckDelay      = 30 * time.Second
)

// destinations counts the deliveries under way per destination.
type destinations struct {
	limit int
	mu    sync.Mutex
	busy  map[string]int
	moved map[string]time.Time // when a turn was last taken or given back, per destination
	freed chan struct{}        // closed and replaced whenever a turn comes free
}

func newDestinations(limit int) *destinations {
	return &destinations{limit: max(1, limit), busy: map[string]int{}, moved: map[string]time.Time{}, freed: make(chan struct{})}
}

// acquire takes a turn for key, waiting up to wait for one while key is
// moving. ok is false when none came (or ctx ended); stuck says that key
// had not moved for wait, so acquire did not wait at all.
func (d *destinations) acquire(ctx context.Context, key string, wait time.Duration) (ok, stuck bool) {
	var timeout <-chan time.Time
	for {
		d.mu.Lock()
		if d.busy[key] < d.limit {
			d.busy[key]++
			d.moved[key] = time.Now()
			d.mu.Unlock()
			return true, false
		}
		freed, moved := d.freed, d.moved[key]
		d.mu.Unlock()
		if timeout == nil {
			if time.Since(moved) > wait {
				return false, true
			}
			t := time.NewTimer(wait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-freed:
		case <-timeout:
			return false, false
		case <-ctx.Done():
			return false, false
		}
	}
}

// stuckTurns counts the turns held by destinations that are stuck: at
// their limit, and none of their turns taken or given back for longer
// than wait. Those deliveries wait on a silent peer and use no CPU, so
// they need not keep other mail from the process's slots.
func (d *destinations) stuckTurns(wait time.Duration) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for key, busy := range d.busy {
		if busy >= d.limit && time.Since(d.moved[key]) > wait {
			n += busy
		}
	}
	return n
}

// release gives key's turn back.
func (d *destinations) release(key string) {
	d.mu.Lock()
	if d.busy[key]--; d.busy[key] <= 0 {
		delete(d.busy, key)
		delete(d.moved, key)
	} else {
		d.moved[key] = time.Now()
	}
	close(d.freed)
	d.freed = make(chan struct{})
	d.mu.Unlock()
}
