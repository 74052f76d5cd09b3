package e2e

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/testutil"
)

// mailFromCode opens a transaction on an existing session and returns the
// MAIL FROM reply code, resetting the transaction afterwards.
func mailFromCode(t *testing.T, s *sender, from string) int {
	t.Helper()
	_ = s.cmd(250, "RSET")
	if err := s.tp.PrintfLine("MAIL FROM:<%s>", from); err != nil {
		t.Fatal(err)
	}
	code, _, _ := s.tp.ReadResponse(0)
	return code
}

// waitCode polls an open session until MAIL FROM answers want, and returns
// how long that took.
func waitCode(t *testing.T, s *sender, from string, want int, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if mailFromCode(t, s, from) == want {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("MAIL FROM did not answer %d within %s", want, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConfigChangeReachesOpenSessions changes a connector through the API
// while sessions are open: the next message sees the new rule within one
// second — in the same process, and (PostgreSQL) in a second process that
// shares the database.
func TestConfigChangeReachesOpenSessions(t *testing.T) {
	for name, mk := range engines(t) {
		t.Run(name, func(t *testing.T) {
			env, opts := mk(t)
			tok := env.token(t)
			procs := []*proc{start(t, env)}
			if name == "postgres" {
				procs = append(procs, start(t, env))
			}
			a := procs[0]
			if code := a.api(tok, "POST", "/accepted-domains", map[string]string{"domain": "contoso.com"}, nil); code != 201 {
				t.Fatalf("accepted domain: %d", code)
			}
			spec := map[string]any{"name": "Contoso Bank", "connector_type": "partner", "sender_domains": []string{"contosobank.com"}, "require_tls": true}
			var created map[string]any
			if code := a.api(tok, "POST", "/inbound-connectors", spec, &created); code != 201 {
				t.Fatalf("create connector: %d", code)
			}
			id := int64(created["id"].(float64))
			// Validation and activation arrive with their own issue; drive
			// the store directly, as a third writer on the same database.
			activateFirst(t, testutil.OpenStoreWith(t, opts), connector.Inbound, id)

			var sessions []*sender
			for _, p := range procs {
				s, err := dialSMTP("127.0.0.5", p.SMTP)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(s.close)
				sessions = append(sessions, s)
			}
			for i, s := range sessions {
				waitCode(t, s, "alice@contosobank.com", 550, 2*time.Second)
				t.Logf("process %d enforces the connector on an open session", i)
			}

			// Turn the connector off through the API of the first process.
			spec["enabled"] = false
			if code := a.api(tok, "PUT", "/inbound-connectors/"+itoa(id), spec, nil); code != 200 {
				t.Fatalf("disable: %d", code)
			}
			for i, s := range sessions {
				took := waitCode(t, s, "alice@contosobank.com", 250, time.Second)
				t.Logf("process %d: the change applied to the next message after %s", i, took)
			}

			// Turn it on again through the other process (PostgreSQL).
			spec["enabled"] = true
			last := procs[len(procs)-1]
			if code := last.api(tok, "PUT", "/inbound-connectors/"+itoa(id), spec, nil); code != 200 {
				t.Fatalf("enable: %d", code)
			}
			for i, s := range sessions {
				took := waitCode(t, s, "alice@contosobank.com", 550, time.Second)
				t.Logf("process %d: re-enabled after %s", i, took)
			}
			if !strings.Contains(a.log(), "flowgate started") {
				t.Fatalf("log:\n%s", a.log())
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
