//go:build unix

package relay_test

import (
	"fmt"
	"net"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testutil"
)

// BenchmarkAccept measures messages accepted per second into the durable
// queue: SMTP sessions over loopback, each on one connection sending
// messages back to back (RSET, MAIL, RCPT, DATA), to a relay whose 250 is
// sent only after the queue has committed the message. b.N is the number
// of messages, shared out among the sessions as they go. Every run gets a
// fresh, empty database; the connections are open before the timer starts.
// Reported: msgs/s; the p50/p99 of the DATA step (DATA sent → final 250)
// in milliseconds; msgs/commit, the queue's mean group-commit size; and
// cpu-us/msg, this process's CPU time per message (relay, queue writer,
// database driver, SQLite, and the clients; not the PostgreSQL server),
// which a busy machine disturbs less than msgs/s.
func BenchmarkAccept(b *testing.B) {
	sizes := []struct {
		name  string
		bytes int
	}{{"2KiB", 2 << 10}, {"100KiB", 100 << 10}}
	for _, e := range testutil.Engines {
		b.Run("engine="+e.Name, func(b *testing.B) {
			for _, sessions := range []int{1, 8, 32} {
				b.Run(fmt.Sprintf("sessions=%d", sessions), func(b *testing.B) {
					for _, size := range sizes {
						b.Run("size="+size.name, func(b *testing.B) {
							benchAccept(b, e, sessions, size.bytes)
						})
					}
				})
			}
		})
	}
}

func benchAccept(b *testing.B, e testutil.Engine, sessions, size int) {
	b.StopTimer()
	h := newHarness(b, e, nil)
	h.acceptedDomain("contoso.com")
	body := benchBody(size)
	b.SetBytes(int64(size))

	clients := make([]*benchClient, sessions)
	for i := range clients {
		c, err := dialBench(h.addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.close()
		clients[i] = c
	}
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		mu      sync.Mutex
		latency []time.Duration
	)
	cpu0 := processCPU()
	b.ResetTimer()
	b.StartTimer()
	start := time.Now()
	for i, c := range clients {
		wg.Go(func() {
			var lat []time.Duration
			for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
				d, err := c.send(fmt.Sprintf("%d.%d.%d", start.UnixNano(), i, n), body)
				if err != nil {
					b.Error(err)
					return
				}
				lat = append(lat, d)
			}
			mu.Lock()
			latency = append(latency, lat...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(processCPU()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-us/msg")
	slices.Sort(latency)
	if len(latency) > 0 {
		p := func(q int) float64 {
			return float64(latency[(len(latency)*q+99)/100-1]) / float64(time.Millisecond)
		}
		b.ReportMetric(p(50), "p50-ms")
		b.ReportMetric(p(99), "p99-ms")
	}
	batches, committed, _ := h.q.Stats()
	if committed < int64(b.N) {
		b.Fatalf("queue committed %d messages, want %d", committed, b.N)
	}
	b.ReportMetric(float64(committed)/float64(batches), "msgs/commit")
}

// processCPU is the user and system CPU time this process has used: the
// relay, the queue writer, the database driver (and SQLite itself) and
// the benchmark's own clients, but not the PostgreSQL server.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchBody is size (≥ 2) bytes of text lines ending in CRLF, none
// starting with a dot.
func benchBody(size int) string {
	const line = "the quarterly report is attached please review the figures before thursday\r\n"
	s := strings.TrimSuffix(strings.Repeat(line, size/len(line)+1)[:size-2], "\r")
	return s + strings.Repeat("x", size-2-len(s)) + "\r\n"
}

// benchClient is a minimal SMTP client that may be used from any
// goroutine (testutil.RawSMTP stops the test with Fatal, which only the
// test's own goroutine may do).
type benchClient struct {
	raw  net.Conn
	c    *textproto.Conn
	used bool // a message was sent: the next one starts with RSET
}

func dialBench(addr string) (*benchClient, error) {
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &benchClient{raw: raw, c: textproto.NewConn(raw)}
	if _, _, err := c.c.ReadResponse(220); err != nil {
		raw.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	if err := c.cmd(250, "EHLO bench.client.test"); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

func (c *benchClient) cmd(want int, format string, args ...any) error {
	_ = c.raw.SetDeadline(time.Now().Add(time.Minute))
	if err := c.c.PrintfLine(format, args...); err != nil {
		return err
	}
	if code, msg, err := c.c.ReadResponse(want); err != nil {
		return fmt.Errorf("%s: %d %s: %w", strings.Fields(format)[0], code, msg, err)
	}
	return nil
}

// send runs one transaction and returns the time from DATA to the 250.
func (c *benchClient) send(id, body string) (time.Duration, error) {
	if c.used {
		if err := c.cmd(250, "RSET"); err != nil {
			return 0, err
		}
	}
	c.used = true
	if err := c.cmd(250, "MAIL FROM:<bench@fabrikam.com>"); err != nil {
		return 0, err
	}
	if err := c.cmd(250, "RCPT TO:<john@contoso.com>"); err != nil {
		return 0, err
	}
	start := time.Now()
	if err := c.cmd(354, "DATA"); err != nil {
		return 0, err
	}
	w := c.c.W
	fmt.Fprintf(w, "From: Bench <bench@fabrikam.com>\r\nTo: John <john@contoso.com>\r\nSubject: benchmark %s\r\n", id)
	fmt.Fprintf(w, "Date: %s\r\nMessage-ID: <%s@bench.client.test>\r\n", time.Now().Format(time.RFC1123Z), id)
	w.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
	w.WriteString(body)
	w.WriteString(".\r\n")
	if err := w.Flush(); err != nil {
		return 0, err
	}
	if code, msg, err := c.c.ReadResponse(250); err != nil {
		return 0, fmt.Errorf("end of data: %d %s: %w", code, msg, err)
	}
	return time.Since(start), nil
}

func (c *benchClient) close() {
	_ = c.raw.SetDeadline(time.Now().Add(time.Second))
	_ = c.c.PrintfLine("QUIT")
	_ = c.c.Close()
}
