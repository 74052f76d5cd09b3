package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// engineEnv returns the environment for a fresh database of each engine,
// and a function that opens a store on it for inspection.
func engines(t *testing.T) map[string]func(t *testing.T) (baseEnv, store.Options) {
	return map[string]func(t *testing.T) (baseEnv, store.Options){
		"sqlite": func(t *testing.T) (baseEnv, store.Options) {
			dir := t.TempDir()
			return baseEnv{"FLOWGATE_DATA_DIR=" + dir, "DATABASE_URL="}, store.Options{DataDir: dir}
		},
		"postgres": func(t *testing.T) (baseEnv, store.Options) {
			url := testutil.PostgresDatabase(t)
			return baseEnv{"FLOWGATE_DATA_DIR=" + t.TempDir(), "DATABASE_URL=" + url}, store.Options{DatabaseURL: url}
		},
	}
}

// TestCrashLosesNoAcceptedMessage sends a few hundred messages over
// parallel sessions, kills flowgate with SIGKILL midway, restarts it on the
// same database and checks that every message that got 250 is in the queue
// exactly once.
func TestCrashLosesNoAcceptedMessage(t *testing.T) {
	for name, mk := range engines(t) {
		t.Run(name, func(t *testing.T) {
			env, opts := mk(t)
			tok := env.token(t)
			p := start(t, env)
			if code := p.api(tok, "POST", "/accepted-domains", map[string]string{"domain": "contoso.com"}, nil); code != 201 {
				t.Fatalf("accepted domain: %d", code)
			}
			waitAccepted(t, p, "john@contoso.com")

			const sessions, perSession = 8, 50
			var (
				mu       sync.Mutex
				acked    = map[string]bool{}
				attempts atomic.Int64
				wg       sync.WaitGroup
			)
			killAt := int64(sessions * perSession / 2)
			killed := make(chan struct{})
			var killOnce sync.Once
			for s := range sessions {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := dialSMTP(fmt.Sprintf("127.0.0.%d", 10+s), p.SMTP)
					if err != nil {
						t.Errorf("session %d: %v", s, err)
						return
					}
					defer c.close()
					for i := range perSession {
						id := fmt.Sprintf("<crash-%d-%d@e2e.test>", s, i)
						body := fmt.Sprintf("Message-ID: %s\r\nSubject: crash test %d/%d\r\n\r\n%s\r\n", id, s, i, strings.Repeat("line of text\r\n", 100))
						if attempts.Add(1) == killAt {
							killOnce.Do(func() { go func() { p.kill(); close(killed) }() })
						}
						code, text, err := c.mail("sender@e2e.test", "john@contoso.com", body)
						if err != nil {
							select {
							case <-killed:
							default:
								if attempts.Load() < killAt {
									t.Errorf("session %d message %d failed before the kill: %d %s %v", s, i, code, text, err)
								}
							}
							return // the process is gone
						}
						if code == 250 {
							mu.Lock()
							acked[id] = true
							mu.Unlock()
						}
					}
				}()
			}
			wg.Wait()
			select {
			case <-killed:
			case <-time.After(30 * time.Second):
				t.Fatal("the process was never killed")
			}
			if len(acked) == 0 || len(acked) >= sessions*perSession {
				t.Fatalf("%d of %d messages acknowledged; the kill should land midway", len(acked), sessions*perSession)
			}
			t.Logf("%d messages acknowledged before SIGKILL (%s)", len(acked), time.Now().Format(time.StampMilli))

			// Restart on the same database; it must come up and take mail.
			p2 := start(t, env)
			sendOne(t, "127.0.0.9", p2.SMTP, "sender@e2e.test", "john@contoso.com", "Message-ID: <after-restart@e2e.test>\r\n\r\nhi\r\n")
			p2.kill()

			st := testutil.OpenStoreWith(t, opts)
			var rows []struct {
				MessageIDHeader string
				N               int
				Bodies          int
			}
			// Accepted messages are queued or, once a worker looked at them,
			// deferred (contoso.com has no route here); either way they
			// hold their body until they are finished.
			err := st.DB().WithContext(context.Background()).Raw(`SELECT m.message_id_header, COUNT(*) AS n, COUNT(b.message_id) AS bodies
				FROM messages m LEFT JOIN message_bodies b ON b.message_id = m.id
				WHERE m.status IN ('queued', 'deferred') GROUP BY m.message_id_header`).Scan(&rows).Error
			if err != nil {
				t.Fatal(err)
			}
			inQueue := map[string]int{}
			for _, r := range rows {
				inQueue[r.MessageIDHeader] = r.N
				if r.Bodies != r.N {
					t.Errorf("%s: %d rows but %d bodies", r.MessageIDHeader, r.N, r.Bodies)
				}
				if r.N > 1 {
					t.Errorf("%s is in the queue %d times", r.MessageIDHeader, r.N)
				}
			}
			for id := range acked {
				if inQueue[id] != 1 {
					t.Errorf("acknowledged message %s is in the queue %d times, want exactly once", id, inQueue[id])
				}
			}
			if inQueue["<after-restart@e2e.test>"] != 1 {
				t.Error("the message sent after the restart is not queued")
			}
			t.Logf("queue holds %d messages (acknowledged %d; the rest were in flight at the kill)", len(inQueue), len(acked))
		})
	}
}
