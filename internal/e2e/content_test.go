package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testutil"
)

// TestDeliveredContentIsExactlyAsSent: the relay reads content into
// recycled buffers and hands each accepted message to the delivery
// workers from memory. Messages sent back to back on parallel sessions, of
// different sizes (one of ~5 MB, stored in pieces), must each reach
// the next hop exactly as sent — never with the bytes of a message read
// into the same buffer later.
func TestDeliveredContentIsExactlyAsSent(t *testing.T) {
	for name, eng := range engines(t) {
		t.Run(name, func(t *testing.T) {
			env, opts := eng(t)
			tok := env.token(t)
			sink := testutil.NewSink(t, testutil.SinkOptions{})
			p := start(t, env)
			relayToSink(t, p, tok, testutil.OpenStoreWith(t, opts), sink.Addr)
			waitRoute(t, p, tok, "127.0.0.30", "sender@fabrikam.com", "john@contoso.com", sink.Addr)

			lines := []int{2000, 3, 110000, 40, 2000} // 110,000 lines: ~5 MB
			const sessions = 3
			var mu sync.Mutex
			sent := map[string]string{} // Subject → content
			var wg sync.WaitGroup
			for s := range sessions {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := dialSMTP(fmt.Sprintf("127.0.0.%d", 30+s), p.SMTP)
					if err != nil {
						t.Errorf("dial: %v", err)
						return
					}
					defer c.close()
					for i, n := range lines {
						tag := fmt.Sprintf("s%d-m%d", s, i)
						body := "Subject: " + tag + "\r\n\r\n" + strings.Repeat(tag+" 0123456789 abcdefghijklmnopqrstuvwxyz\r\n", n)
						if _, text, err := c.mail("sender@fabrikam.com", "john@contoso.com", body); err != nil {
							t.Errorf("%s: %v %s", tag, err, text)
							return
						}
						mu.Lock()
						sent[tag] = body
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			defer func() {
				if t.Failed() {
					t.Logf("flowgate log:\n%s", p.log())
				}
			}()
			got := sink.Wait(t, sessions*len(lines), 60*time.Second)
			seen := map[string]bool{}
			for _, m := range got {
				_, rest, ok := strings.Cut(m.Data, "\r\nSubject: ")
				tag, _, _ := strings.Cut(rest, "\r\n")
				want, known := sent[tag]
				switch {
				case !ok || !known:
					t.Errorf("a delivered message with no known subject (%d bytes)", len(m.Data))
				case !strings.HasSuffix(m.Data, want) || strings.Count(m.Data, "\r\nSubject: ") != 1:
					t.Errorf("%s: delivered %d bytes that do not end with the %d sent", tag, len(m.Data), len(want))
				case seen[tag]:
					t.Errorf("%s delivered twice", tag)
				}
				seen[tag] = true
			}
			if len(seen) != len(sent) {
				t.Errorf("%d of %d messages delivered", len(seen), len(sent))
			}

			// The metrics count every message accepted and taken up for
			// delivery, once each.
			m := scrapeMetrics(t, p)
			if got := m[`flowgate_smtp_messages_total{result="accepted"}`]; got != float64(len(sent)) {
				t.Errorf("accepted counter %v, want %d", got, len(sent))
			}
			memory, queued := m[`flowgate_delivery_messages_total{source="memory"}`], m[`flowgate_delivery_messages_total{source="queue"}`]
			if memory+queued != float64(len(sent)) || memory == 0 {
				t.Errorf("delivery counters: %v from memory, %v from the queue; want %d in all, most from memory", memory, queued, len(sent))
			}
		})
	}
}

// scrapeMetrics reads p's /metrics into a map from "name{labels}" (as
// written in the exposition format) to value.
func scrapeMetrics(t *testing.T, p *proc) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.HTTP + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); i > 0 && err == nil {
			out[line[:i]] = v
		}
	}
	return out
}
