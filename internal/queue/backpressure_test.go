package queue_test

import (
	"fmt"
	"net"
	"net/textproto"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testutil"
)

// On SQLite, which takes one write at a time, delivery keeps its share of
// the database while acceptance is saturated: when senders flood the
// relay for a few seconds, most of what was accepted has been delivered
// by the time they stop — not a backlog that grows as long as mail
// arrives (the delivery workers' claims and outcomes used to wait while
// the relay's writer took the database again and again).
func TestSQLiteDeliveryKeepsPaceWithAcceptance(t *testing.T) {
	p, sink := newSinkPipeline(t, testutil.Engines[0], pipelineOpts{})
	if testutil.Engines[0].Name != "sqlite" {
		t.Fatalf("engine %s, want sqlite", testutil.Engines[0].Name)
	}
	const sessions, flood = 16, 3 * time.Second
	var accepted atomic.Int64
	stop := time.Now().Add(flood)
	var wg sync.WaitGroup
	for s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := net.Dial("tcp", p.relay)
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			c := textproto.NewConn(conn)
			step := func(want int, format string, args ...any) bool {
				if format != "" {
					if err := c.PrintfLine(format, args...); err != nil {
						return false
					}
				}
				_, _, err := c.ReadResponse(want)
				return err == nil
			}
			if !step(220, "") || !step(250, "EHLO flood.test") {
				t.Error("session start failed")
				return
			}
			for i := 0; time.Now().Before(stop); i++ {
				if !step(250, "MAIL FROM:<sun@internet.test>") || !step(250, "RCPT TO:<u%d@contoso.com>", s) || !step(354, "DATA") {
					t.Error("transaction refused")
					return
				}
				w := c.DotWriter()
				fmt.Fprintf(w, "Subject: flood %d-%d\r\n\r\nbody\r\n", s, i)
				w.Close()
				if !step(250, "") {
					t.Error("message refused")
					return
				}
				accepted.Add(1)
			}
			step(221, "QUIT")
		}()
	}
	wg.Wait()
	acc, del := accepted.Load(), int64(len(sink.Messages()))
	t.Logf("%d messages accepted in %s, %d delivered by then", acc, flood, del)
	if acc < 500 {
		t.Fatalf("only %d messages accepted: the flood did not saturate anything", acc)
	}
	if del < acc/2 {
		t.Fatalf("delivery fell behind acceptance: %d of %d delivered when the senders stopped", del, acc)
	}
}
