package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testutil"
)

// TestRestartDeliversWhatTheKilledProcessHeld (SQLite, which one process
// serves): a second `flowgate serve` on the same database is refused while
// the first runs. The first is then killed while a delivery is under way —
// the sink has the content and has not answered. The process started next
// releases the dead one's delivery lease at start and delivers the message
// at once, instead of after FLOWGATE_DELIVERY_LEASE (5 minutes).
func TestRestartDeliversWhatTheKilledProcessHeld(t *testing.T) {
	env, opts := engines(t)["sqlite"](t)
	tok := env.token(t)
	sink := testutil.NewSink(t, testutil.SinkOptions{})
	p := start(t, env)
	relayToSink(t, p, tok, testutil.OpenStoreWith(t, opts), sink.Addr)
	waitRoute(t, p, tok, "127.0.0.40", "sender@fabrikam.com", "john@contoso.com", sink.Addr)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	second := exec.CommandContext(ctx, binary, "serve")
	second.Env = append(os.Environ(), append(env, "FLOWGATE_HTTP_ADDR="+freePort(t), "FLOWGATE_SMTP_ADDR="+freePort(t))...)
	if out, err := second.CombinedOutput(); err == nil || ctx.Err() != nil || !strings.Contains(string(out), "another flowgate serve is using") {
		t.Fatalf("a second serve on the same SQLite database: %v\n%s", err, out)
	}

	arrived, release := sink.Hold()
	defer release()
	sendOne(t, "127.0.0.40", p.SMTP, "sender@fabrikam.com", "john@contoso.com", "Subject: held\r\nMessage-ID: <held@e2e.test>\r\n\r\nhi\r\n")
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the message did not reach the sink")
	}
	p.kill()
	release() // the sink keeps this copy; its 250 reaches no one

	p2 := start(t, env)
	msgs := sink.Wait(t, 2, 15*time.Second) // the copy above, and the delivery after the restart
	for _, m := range msgs {
		if !strings.Contains(m.Data, "Message-ID: <held@e2e.test>") {
			t.Fatalf("unexpected message at the sink:\n%s", m.Data)
		}
	}
	if !strings.Contains(p2.log(), "delivery leases of a previous run released") {
		t.Errorf("the restarted process did not say it released the lease:\n%s", p2.log())
	}
}
