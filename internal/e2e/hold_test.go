package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// twoProcessesToAPartner starts two processes on one new PostgreSQL
// database that relay for Contoso's servers (127.0.0.80/28) to the partner
// fabrikam.test, whose server is the sink (outbound connector "Partners",
// id partners); tok is an admin API token, st a store on the database.
func twoProcessesToAPartner(t *testing.T) (tok string, sink *testutil.Sink, a, b *proc, st *store.Store, partners int64) {
	t.Helper()
	dbURL := testutil.PostgresDatabase(t)
	env := baseEnv{"FLOWGATE_DATA_DIR=" + t.TempDir(), "DATABASE_URL=" + dbURL}
	tok = env.token(t)
	sink = testutil.NewSink(t, testutil.SinkOptions{})
	a, b = start(t, env), start(t, env)
	st = testutil.OpenStoreWith(t, store.Options{DatabaseURL: dbURL})
	if _, err := st.CreateAcceptedDomain(context.Background(), testutil.TestActor, "contoso.com", connector.Authoritative); err != nil {
		t.Fatal(err)
	}
	partners = testutil.ActivateConnector(t, st, &connector.OutboundSpec{Common: connector.Common{Name: "Partners", ConnectorType: connector.Partner},
		RecipientDomains: []string{"fabrikam.test"}, SmartHosts: []string{sink.Addr}})
	testutil.ActivateConnector(t, st, &connector.InboundSpec{Common: connector.Common{Name: "Contoso servers", ConnectorType: connector.OnPremises},
		SenderIPAddresses: []string{"127.0.0.80/28"}})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("process A:\n%s\nprocess B:\n%s", a.log(), b.log())
		}
	})
	return tok, sink, a, b, st, partners
}

// TestHoldReachesSecondProcess: two processes on one PostgreSQL database;
// a hold made through process A's API stops delivery on process B within
// a second: every message B accepts from then on is queued and not
// delivered (B delivers what it accepts itself, from memory). Released
// through A, the held mail is delivered.
func TestHoldReachesSecondProcess(t *testing.T) {
	tok, sink, a, b, _, id := twoProcessesToAPartner(t)
	n := 0
	send := func(p *proc) string {
		t.Helper()
		n++
		mid := fmt.Sprintf("<hold-%d@e2e.test>", n)
		if code, msg := sendVia(t, "127.0.0.82", p.SMTP, "alice@contoso.com", []string{"bob@fabrikam.test"}, ruleBody(mid)); code != 250 {
			t.Fatalf("process did not accept %s: %d %s", mid, code, msg)
		}
		return mid
	}
	// B relays to the partner before the hold (its index has the connectors).
	deadline := time.Now().Add(10 * time.Second)
	for {
		mid := ""
		if code, _ := sendVia(t, "127.0.0.82", b.SMTP, "alice@contoso.com", []string{"bob@fabrikam.test"}, ruleBody("<warmup@e2e.test>")); code == 250 {
			mid = "<warmup@e2e.test>"
		}
		if mid != "" {
			waitAtSink(t, sink, "Partners", mid, "bob@fabrikam.test")
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("process B does not relay to the partner")
		}
		time.Sleep(50 * time.Millisecond)
	}

	begun := time.Now()
	var held map[string]any
	if code := a.api(tok, "POST", fmt.Sprintf("/outbound-connectors/%d/hold", id), nil, &held); code != 200 || held["held"] != true {
		t.Fatalf("hold through A: %d %v", code, held)
	}
	committed := time.Since(begun)
	// Send through B for 1.5 s; note what was sent after the first second.
	type sent struct {
		mid string
		at  time.Duration
	}
	var probes []sent
	for time.Since(begun) < 1500*time.Millisecond {
		at := time.Since(begun)
		probes = append(probes, sent{send(b), at})
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // time for any delivery that was going to happen
	firstHeld := time.Duration(-1)
	late := 0
	for _, p := range probes {
		arrived := len(atSink(sink, p.mid)) > 0
		if !arrived && firstHeld < 0 {
			firstHeld = p.at
		}
		if p.at >= time.Second {
			late++
			if arrived {
				t.Errorf("%s, sent through B %s after the hold began, was delivered: B did not have the hold within 1 s", p.mid, p.at.Round(time.Millisecond))
			}
		}
	}
	if late == 0 {
		t.Fatal("no message was sent through B after the first second")
	}
	t.Logf("hold committed through A in %s; the first message B held was sent %s after the hold began; %d messages sent to B after 1 s, none delivered",
		committed.Round(time.Millisecond), firstHeld.Round(time.Millisecond), late)

	// The queue through A counts them as held.
	var q struct {
		Connectors []struct {
			Connector *string `json:"connector"`
			Held      int     `json:"held"`
		} `json:"connectors"`
	}
	if code := a.api(tok, "GET", "/queue", nil, &q); code != 200 {
		t.Fatalf("GET /queue: %d", code)
	}
	heldN := 0
	for _, r := range q.Connectors {
		if r.Connector != nil && *r.Connector == "Partners" {
			heldN = r.Held
		}
	}
	if heldN < late {
		t.Errorf("the queue counts %d held recipients, want at least %d", heldN, late)
	}

	// Released through A: everything is delivered.
	if code := a.api(tok, "POST", fmt.Sprintf("/outbound-connectors/%d/release", id), nil, nil); code != 200 {
		t.Fatalf("release through A: %d", code)
	}
	for _, p := range probes {
		waitAtSink(t, sink, "Partners", p.mid, "bob@fabrikam.test")
	}
}
