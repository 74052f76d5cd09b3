package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// sendUnderLoad sends perSession messages on each of sessions SMTP
// sessions — session s from 127.0.0.(srcBase+s) to targets[s % len] —
// each with its own Message-ID <tag-s-i@e2e.test>, and calls atThreshold
// once, on a goroutine of its own, when threshold messages have been
// acknowledged (to kill a process under load). A session whose process
// died stops. It returns the acknowledged Message-IDs.
func sendUnderLoad(t *testing.T, targets []*proc, sessions, perSession, srcBase int, tag string, threshold int, atThreshold func()) map[string]bool {
	t.Helper()
	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		wg    sync.WaitGroup
		once  sync.Once
	)
	for s := range sessions {
		target := targets[s%len(targets)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dialSMTP(fmt.Sprintf("127.0.0.%d", srcBase+s), target.SMTP)
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			defer c.close()
			for i := range perSession {
				mid := fmt.Sprintf("<%s-%d-%d@e2e.test>", tag, s, i)
				code, _, err := c.mail("sender@e2e.test", "john@contoso.com", "Message-ID: "+mid+"\r\nSubject: "+tag+"\r\n\r\nbody\r\n")
				if err != nil {
					return // the process was killed
				}
				if code == 250 {
					mu.Lock()
					acked[mid] = true
					n := len(acked)
					mu.Unlock()
					if n == threshold {
						once.Do(func() { go atThreshold() })
					}
				}
			}
		}()
	}
	wg.Wait()
	return acked
}

var midRE = regexp.MustCompile(`Message-ID: (<[^>]+>)`)

// awaitAtSink waits until every message of acked (by Message-ID) has
// reached the sink, or until the deadline. It returns how many copies of
// each message arrived, and how many of acked are missing.
func awaitAtSink(sink *testutil.Sink, acked map[string]bool, deadline time.Time) (counts map[string]int, missing int) {
	for {
		counts, missing = map[string]int{}, 0
		for _, m := range sink.Messages() {
			if mm := midRE.FindStringSubmatch(m.Data); mm != nil {
				counts[mm[1]]++
			}
		}
		for mid := range acked {
			if counts[mid] == 0 {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			return counts, missing
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var ownerRE = regexp.MustCompile(`delivery workers started".*? owner=(\S+)`)

func ownerOf(t *testing.T, p *proc) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if m := ownerRE.FindStringSubmatch(p.log()); m != nil {
			return m[1]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no owner in the log:\n%s", p.log())
	return ""
}

// TestTwoProcessesShareTheQueue runs two flowgate processes on one
// PostgreSQL database, both accepting and delivering to one sink; one is
// killed with SIGKILL mid-load. Every accepted message must arrive. A
// message may arrive twice only if the killed process had delivered it
// but not yet recorded it (in flight at the kill): such a message has no
// trace event from the killed process, and there can be at most as many as
// it delivers at once.
func TestTwoProcessesShareTheQueue(t *testing.T) {
	url := testutil.PostgresDatabase(t)
	env := baseEnv{"FLOWGATE_DATA_DIR=" + t.TempDir(), "DATABASE_URL=" + url}
	tok := env.token(t)
	sink := testutil.NewSink(t, testutil.SinkOptions{})
	opts := []string{"FLOWGATE_DELIVERY_LEASE=2s", "FLOWGATE_RETRY_SCHEDULE=1s", "FLOWGATE_DELIVERY_CONCURRENCY=8"}
	a, b := start(t, env, opts...), start(t, env, opts...)
	ownerA := ownerOf(t, a)

	st := testutil.OpenStoreWith(t, store.Options{DatabaseURL: url})
	relayToSink(t, a, tok, st, sink.Addr)
	waitAccepted(t, b, "john@contoso.com")

	const perSession, sessions = 40, 6
	killed := make(chan struct{})
	acked := sendUnderLoad(t, []*proc{a, b}, sessions, perSession, 20, "two", sessions*perSession/3, func() { a.kill(); close(killed) })
	<-killed
	t.Logf("%d messages accepted; process A killed after %d", len(acked), sessions*perSession/3)

	// Every accepted message arrives, through B (A's claims expire).
	counts, missing := awaitAtSink(sink, acked, time.Now().Add(60*time.Second))
	if missing > 0 {
		t.Fatalf("%d of %d accepted messages never arrived", missing, len(acked))
	}
	var dups []string
	for mid, n := range counts {
		if n > 1 {
			dups = append(dups, mid)
		}
	}
	t.Logf("all %d accepted messages arrived; %d arrived twice (in flight in process A at the kill)", len(acked), len(dups))
	if len(dups) > 8 {
		t.Fatalf("%d duplicates, more than process A delivers at once (8): %v", len(dups), dups)
	}
	for _, mid := range dups {
		var events []string
		err := st.DB().Raw(`SELECT e.detail FROM message_events e JOIN messages m ON m.id = e.message_id
			WHERE m.message_id_header = ? AND e.type = 'attempt'`, mid).Scan(&events).Error
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			if strings.Contains(e, ownerA) {
				t.Fatalf("duplicate %s was recorded as delivered by the killed process, so it was not in flight: %v", mid, events)
			}
		}
	}
	// B delivered at least part of A's share: both processes delivered.
	var byB int
	st.DB().Raw(`SELECT COUNT(*) FROM message_events WHERE type = 'attempt' AND detail NOT LIKE ?`, "%"+ownerA+"%").Scan(&byB)
	var byA int
	st.DB().Raw(`SELECT COUNT(*) FROM message_events WHERE type = 'attempt' AND detail LIKE ?`, "%"+ownerA+"%").Scan(&byA)
	if byA == 0 || byB == 0 {
		t.Fatalf("deliveries by A %d, by B %d: both processes should deliver", byA, byB)
	}
	t.Logf("attempts recorded: by A %d, by B %d", byA, byB)
}
