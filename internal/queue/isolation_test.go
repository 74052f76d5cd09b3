package queue_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/testutil"
)

// hungHost accepts connections and never says a word.
func hungHost(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// A next hop that accepts the connection and never greets takes at most
// its destination's share of the delivery slots: the other connectors'
// mail flows meanwhile, and the hung destination's mail beyond its share
// waits in the queue, traced as waiting.
func TestHungNextHopDoesNotStallOthers(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			// 4 slots, at most 2 per destination.
			p, healthy := newSinkPipeline(t, e, pipelineOpts{concurrency: 4})
			p.accepted("hung.test")
			p.outbound(&connector.OutboundSpec{Common: partnerOut("Hung"), RecipientDomains: []string{"hung.test"}, SmartHosts: []string{hungHost(t)}})
			var hung []string
			for i := range 6 {
				hung = append(hung, p.submit("sun@internet.test", []string{fmt.Sprintf("h%d@hung.test", i)}, "to the hung host"))
			}
			time.Sleep(300 * time.Millisecond) // the hung host's deliveries start first
			start := time.Now()
			for i := range 20 {
				p.submit("sun@internet.test", []string{fmt.Sprintf("u%d@contoso.com", i)}, "to the healthy host")
			}
			healthy.Wait(t, 20, 15*time.Second)
			t.Logf("20 messages through the healthy connector in %s while the hung host holds its share", time.Since(start).Round(time.Millisecond))
			waiting := 0
			for _, uid := range hung {
				if strings.Contains(p.events(uid), "the most this process makes at once to one destination") {
					waiting++
				}
			}
			if waiting == 0 {
				t.Fatalf("no message for the hung host says why it waits:\n%s", p.events(hung[len(hung)-1]))
			}
		})
	}
}
