package e2e

import (
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
				once   sync.Once
				killAt time.Time
			)
			kill := func() {
				once.Do(func() {
					victim.kill()
					<-victim.finished
					killAt = time.Now()
				})
			}
			acked := sendUnderLoad(t, targets, sessions, perSession, 60, "live", sessions*perSession/3, kill)
			kill() // if the load ended before the threshold; otherwise waits for the kill under way
			killed := killAt
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
