package queue

import (
	"testing"
	"time"
)

// The backoff rule of the package comment: after n failed attempts the
// next one is RetrySchedule[min(n, len)-1] later.
func TestNextRetry(t *testing.T) {
	sched := []time.Duration{time.Minute, 5 * time.Minute, time.Hour}
	for _, tc := range []struct {
		attempts int
		want     time.Duration
	}{
		{0, time.Minute}, {1, time.Minute}, {2, 5 * time.Minute}, {3, time.Hour}, {4, time.Hour}, {100, time.Hour},
	} {
		if got := NextRetry(sched, tc.attempts); got != tc.want {
			t.Errorf("NextRetry(%d) = %s, want %s", tc.attempts, got, tc.want)
		}
	}
	if got := NextRetry([]time.Duration{time.Second}, 7); got != time.Second {
		t.Errorf("one-entry schedule: %s", got)
	}
}
