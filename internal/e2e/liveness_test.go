package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// TestKilledProcessMailDeliveredWithinSeconds (PostgreSQL): a process is
// killed with SIGKILL under load while it holds delivery leases — the
// default 5-minute lease, so only liveness can free them — and every
// message it acknowledged is delivered within 5 s of the kill: by the
// other process, or by the killed one started again at once. Duplicates
// are counted: only messages in flight at the kill may arrive twice.
func TestKilledProcessMailDeliveredWithinSeconds(t *testing.T) {
	for _, restart := range []bool{false, true} {
		name := "survivor delivers"
		if restart {
			name = "restarted process delivers"
		}
		t.Run(name, func(t *testing.T) {
			url := testutil.PostgresDatabase(t)
			env := baseEnv{"FLOWGATE_DATA_DIR=" + t.TempDir(), "DATABASE_URL=" + url}
			tok := env.token(t)
			sink := testutil.NewSink(t, testutil.SinkOptions{})
			sink.SetDelay(300 * time.Millisecond) // a slow next hop: the victim holds leases when it dies
			opts := []string{"FLOWGATE_RETRY_SCHEDULE=1s", "FLOWGATE_DELIVERY_CONCURRENCY=8"}
			victim := start(t, env, opts...)
			st := testutil.OpenStoreWith(t, store.Options{DatabaseURL: url})
			relayToSink(t, victim, tok, st, sink.Addr)
			targets := []*proc{victim}
			if !restart {
				survivor := start(t, env, opts...)
				waitAccepted(t, survivor, "john@contoso.com")
				targets = append(targets, survivor)
			}

			const sessions, perSession = 6, 30
			var (
				mu     sync.Mutex
				acked  = map[string]bool{}
				wg     sync.WaitGroup
				killAt time.Time
				once   sync.Once
			)
			kill := func() {
				once.Do(func() {
					victim.kill()
					<-victim.finished
					mu.Lock()
					killAt = time.Now()
					mu.Unlock()
				})
			}
			for s := range sessions {
				target := targets[s%len(targets)]
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := dialSMTP(fmt.Sprintf("127.0.0.%d", 60+s), target.SMTP)
					if err != nil {
						t.Errorf("dial: %v", err)
						return
					}
					defer c.close()
					for i := range perSession {
						mid := fmt.Sprintf("<live-%d-%d@e2e.test>", s, i)
						code, _, err := c.mail("sender@e2e.test", "john@contoso.com", "Message-ID: "+mid+"\r\nSubject: liveness\r\n\r\nbody\r\n")
						if err != nil {
							return // the victim was killed
						}
						if code == 250 {
							mu.Lock()
							acked[mid] = true
							n := len(acked)
							mu.Unlock()
							if n == sessions*perSession/3 {
								go kill()
							}
						}
					}
				}()
			}
			wg.Wait()
			kill()
			mu.Lock()
			killed := killAt
			mu.Unlock()
			var leased int
			st.DB().Raw(`SELECT COUNT(*) FROM messages WHERE lease_owner IS NOT NULL AND status IN ('queued', 'deferred')`).Scan(&leased)
			sink.SetDelay(0)
			if restart {
				start(t, env, opts...)
			}
			t.Logf("%d messages acknowledged; %d leased when the load ended", len(acked), leased)

			counts, missing := awaitAtSink(sink, acked, killed.Add(5*time.Second))
			if missing > 0 {
				t.Fatalf("%d of %d acknowledged messages not delivered within 5 s of the kill", missing, len(acked))
			}
			dups := 0
			for _, n := range counts {
				if n > 1 {
					dups++
				}
			}
			t.Logf("every acknowledged message delivered %.1f s after the kill; %d delivered twice (in flight at the kill)", time.Since(killed).Seconds(), dups)
			if dups > 8 {
				t.Fatalf("%d duplicates, more than the killed process delivers at once (8)", dups)
			}
		})
	}
}
