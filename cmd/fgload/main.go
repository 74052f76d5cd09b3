// Command fgload puts SMTP load on a relay and reports how many messages it
// accepted per second and how long the DATA step took.
//
//	fgload -addr 127.0.0.1:2525 -sessions 32 -messages 20000 -size 2048 \
//	    -from load@fabrikam.com -to john@contoso.com -src 127.0.0.1,127.0.0.2
//
// Each of -sessions workers claims messages from a shared count of
// -messages until none is left. With -reuse (the default) a worker keeps
// one connection and sends its messages back to back, with RSET between
// them; with -reuse=false it opens a connection per message. A message is
// "accepted" when the reply to its end of data is 250, "refused" when any
// step got a 4xx/5xx reply, and an "error" when the connection failed.
// The latency is that of the DATA step: from sending DATA to the final
// reply, so it covers the body transfer and the relay's durable commit.
// fgload exits 1 when any message was not accepted.
//
// Only point it at a relay you run yourself.
package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type options struct {
	addr     string
	sessions int
	messages int
	size     int
	from, to string
	helo     string
	tls      bool
	reuse    bool
	timeout  time.Duration
	srcs     []string
}

func main() {
	var o options
	var src string
	flag.StringVar(&o.addr, "addr", "127.0.0.1:2525", "relay `host:port`")
	flag.IntVar(&o.sessions, "sessions", 8, "parallel SMTP sessions")
	flag.IntVar(&o.messages, "messages", 1000, "messages to send in total")
	flag.IntVar(&o.size, "size", 2048, "message body size in `bytes` (headers come on top)")
	flag.StringVar(&o.from, "from", "load@fabrikam.com", "envelope sender")
	flag.StringVar(&o.to, "to", "john@contoso.com", "envelope recipient (a comma list for several)")
	flag.StringVar(&o.helo, "helo", "fgload.test", "EHLO name")
	flag.BoolVar(&o.tls, "tls", false, "STARTTLS (the server certificate is not verified)")
	flag.BoolVar(&o.reuse, "reuse", true, "send a session's messages over one connection (false: one connection per message)")
	flag.DurationVar(&o.timeout, "timeout", time.Minute, "time allowed for each read or write")
	flag.StringVar(&src, "src", "", "comma list of local source addresses (127.0.0.x) to spread sessions over")
	flag.Parse()
	if o.sessions < 1 || o.messages < 1 || o.size < 0 {
		fmt.Fprintln(os.Stderr, "fgload: -sessions and -messages must be at least 1, -size at least 0")
		os.Exit(2)
	}
	if src != "" {
		o.srcs = strings.Split(src, ",")
	}
	r := run(o)
	r.print(o)
	if r.accepted.Load() != int64(o.messages) {
		os.Exit(1)
	}
}

// results are counted by all workers.
type results struct {
	sent, accepted, refused, errors atomic.Int64
	elapsed                         time.Duration

	mu        sync.Mutex
	latencies []time.Duration
	problems  []string // the first few refusals and errors, for the report
}

func (r *results) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.problems) < 10 {
		r.problems = append(r.problems, fmt.Sprintf(format, args...))
	}
}

func run(o options) *results {
	r := &results{}
	body := makeBody(o.size)
	var next atomic.Int64 // messages claimed so far
	var wg sync.WaitGroup
	start := time.Now()
	for i := range o.sessions {
		src := ""
		if len(o.srcs) > 0 {
			src = strings.TrimSpace(o.srcs[i%len(o.srcs)])
		}
		wg.Go(func() {
			w := worker{o: o, r: r, src: src, body: body}
			defer w.close()
			var lat []time.Duration
			for n := next.Add(1); n <= int64(o.messages); n = next.Add(1) {
				if d, ok := w.send(fmt.Sprintf("%d.%d.%d", start.UnixNano(), i, n)); ok {
					lat = append(lat, d)
				}
				if !o.reuse {
					w.close()
				}
			}
			r.mu.Lock()
			r.latencies = append(r.latencies, lat...)
			r.mu.Unlock()
		})
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	return r
}

func (r *results) print(o options) {
	mode := "one connection per session"
	if !o.reuse {
		mode = "one connection per message"
	}
	fmt.Printf("target    %s, %d sessions (%s), %d-byte bodies, tls=%v\n", o.addr, o.sessions, mode, o.size, o.tls)
	fmt.Printf("sent      %d\n", r.sent.Load())
	fmt.Printf("accepted  %d\n", r.accepted.Load())
	fmt.Printf("refused   %d\n", r.refused.Load())
	fmt.Printf("errors    %d\n", r.errors.Load())
	fmt.Printf("elapsed   %s\n", r.elapsed.Round(time.Millisecond))
	fmt.Printf("msg/s     %.1f\n", float64(r.accepted.Load())/r.elapsed.Seconds())
	slices.Sort(r.latencies)
	fmt.Printf("DATA→250  p50 %s  p99 %s  max %s\n", pct(r.latencies, 50), pct(r.latencies, 99), pct(r.latencies, 100))
	for _, p := range r.problems {
		fmt.Fprintln(os.Stderr, "problem:", p)
	}
}

// pct is the p-th percentile of sorted latencies (nearest rank).
func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p+99)/100 - 1
	return sorted[max(i, 0)].Round(10 * time.Microsecond)
}

// makeBody returns size bytes of text in lines of at most 78 bytes (76 +
// CRLF), ending in CRLF and with no line starting with a dot, so that it
// needs no dot-stuffing. A size of 1 is rounded up to 2.
func makeBody(size int) string {
	const words = "the quarterly report is attached please review the figures before the meeting on thursday and send comments "
	var b strings.Builder
	b.Grow(size + 2)
	for i := 0; b.Len()+78 <= size; i++ {
		n := 76
		if size-b.Len()-78 == 1 {
			n = 75 // leave 2 bytes, not 1, for the last line
		}
		b.WriteString((words + words)[i*7%len(words):][:n])
		b.WriteString("\r\n")
	}
	if rem := size - b.Len(); rem > 0 {
		b.WriteString(words[:max(rem-2, 0)])
		b.WriteString("\r\n")
	}
	return b.String()
}

// errRefused marks a 4xx/5xx reply; the connection stays usable.
var errRefused = errors.New("refused")

// worker is one SMTP session.
type worker struct {
	o    options
	r    *results
	src  string
	body string
	raw  net.Conn
	c    *textproto.Conn
}

func (w *worker) close() {
	if w.c != nil {
		_ = w.raw.SetDeadline(time.Now().Add(time.Second))
		_ = w.c.PrintfLine("QUIT")
		_, _, _ = w.c.ReadResponse(221)
		_ = w.c.Close()
		w.c, w.raw = nil, nil
	}
}

// cmd sends a command and expects a reply with code want.
func (w *worker) cmd(want int, format string, args ...any) error {
	_ = w.raw.SetDeadline(time.Now().Add(w.o.timeout))
	if err := w.c.PrintfLine(format, args...); err != nil {
		return err
	}
	return w.reply(want, strings.Fields(format)[0])
}

func (w *worker) reply(want int, step string) error {
	code, msg, err := w.c.ReadResponse(want)
	var pe *textproto.Error
	if errors.As(err, &pe) {
		return fmt.Errorf("%w: %s: %d %s", errRefused, step, code, msg)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	return nil
}

// connect dials and runs the greeting, EHLO and STARTTLS when asked.
func (w *worker) connect() error {
	d := net.Dialer{Timeout: w.o.timeout}
	if w.src != "" {
		ip := net.ParseIP(w.src)
		if ip == nil {
			return fmt.Errorf("-src %q is not an IP address", w.src)
		}
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	raw, err := d.Dial("tcp", w.o.addr)
	if err != nil {
		return err
	}
	w.raw, w.c = raw, textproto.NewConn(raw)
	_ = raw.SetDeadline(time.Now().Add(w.o.timeout))
	if err := w.reply(220, "greeting"); err != nil {
		return err
	}
	if err := w.cmd(250, "EHLO %s", w.o.helo); err != nil {
		return err
	}
	if !w.o.tls {
		return nil
	}
	if err := w.cmd(220, "STARTTLS"); err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(w.o.addr)
	tc := tls.Client(raw, &tls.Config{ServerName: host, InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	w.raw, w.c = tc, textproto.NewConn(tc)
	return w.cmd(250, "EHLO %s", w.o.helo)
}

// send sends one message and reports the DATA latency when it was accepted.
func (w *worker) send(id string) (time.Duration, bool) {
	w.r.sent.Add(1)
	d, err := w.transaction(id)
	switch {
	case err == nil:
		w.r.accepted.Add(1)
		return d, true
	case errors.Is(err, errRefused): // the next message starts with RSET
		w.r.refused.Add(1)
		w.r.problem("%v", err)
	default:
		w.r.errors.Add(1)
		w.r.problem("%v", err)
		if w.c != nil {
			_ = w.c.Close()
			w.c, w.raw = nil, nil
		}
	}
	return 0, false
}

func (w *worker) transaction(id string) (time.Duration, error) {
	if w.c == nil {
		if err := w.connect(); err != nil {
			if w.c != nil {
				_ = w.c.Close()
				w.c, w.raw = nil, nil
			}
			return 0, err
		}
	} else if err := w.cmd(250, "RSET"); err != nil {
		return 0, err
	}
	header := fmt.Sprintf("From: Load Generator <%s>\r\nTo: <%s>\r\nSubject: fgload message %s\r\n"+
		"Date: %s\r\nMessage-ID: <%s@%s>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
		w.o.from, w.o.to, id, time.Now().Format(time.RFC1123Z), id, w.o.helo)
	if err := w.cmd(250, "MAIL FROM:<%s> SIZE=%d", w.o.from, len(header)+len(w.body)); err != nil {
		return 0, err
	}
	for _, to := range strings.Split(w.o.to, ",") {
		if err := w.cmd(250, "RCPT TO:<%s>", strings.TrimSpace(to)); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	if err := w.cmd(354, "DATA"); err != nil {
		return 0, err
	}
	bw := w.c.W
	bw.WriteString(header)
	bw.WriteString(w.body)
	bw.WriteString(".\r\n")
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	if err := w.reply(250, "end of data"); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
