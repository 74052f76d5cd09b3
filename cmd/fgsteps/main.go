// Command fgsteps measures where one SMTP session's time goes: it sends
// messages one connection at a time (as smtp-source does at one session)
// and prints the latency of each step — connect and greeting, EHLO, MAIL,
// RCPT, DATA, the content up to the final reply (for flowgate: including
// the durable commit), QUIT — as p50, p90 and mean.
//
//	go run ./cmd/fgsteps -addr 127.0.0.1:2626 -n 2000 -size 2048 -to user@bench.test
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:2626", "SMTP server")
	n := flag.Int("n", 1000, "messages, one connection each")
	size := flag.Int("size", 2048, "approximate content size in bytes")
	to := flag.String("to", "user@bench.test", "recipient")
	twice := flag.Bool("ehlo-twice", false, "send EHLO twice and time the second (no session setup)")
	flag.Parse()
	steps := []string{"connect+greeting", "EHLO", "MAIL", "RCPT", "DATA", "content+reply", "QUIT", "total"}
	d := make([][]time.Duration, len(steps))
	line := "La de da de da 1234567890.\r\n"
	body := strings.Repeat(line, max(1, *size/len(line)))
	for range *n {
		if err := session(*addr, *to, body, *twice, d); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	for k, s := range steps {
		x := d[k]
		slices.Sort(x)
		var sum time.Duration
		for _, v := range x {
			sum += v
		}
		fmt.Printf("%-17s p50 %7.0f µs   p90 %7.0f µs   mean %7.0f µs\n", s,
			us(x[len(x)/2]), us(x[len(x)*9/10]), us(sum/time.Duration(len(x))))
	}
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func session(addr, to, body string, twice bool, d [][]time.Duration) error {
	t0 := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	r := bufio.NewReader(c)
	reply := func(want string) error {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			if len(l) < 4 || l[3] != '-' {
				if !strings.HasPrefix(l, want) {
					return fmt.Errorf("unexpected reply %q", strings.TrimSpace(l))
				}
				return nil
			}
		}
	}
	t := time.Now()
	mark := func(k int) {
		now := time.Now()
		d[k] = append(d[k], now.Sub(t))
		t = now
	}
	cmd := func(k int, text, want string) error {
		if _, err := fmt.Fprint(c, text); err != nil {
			return err
		}
		if err := reply(want); err != nil {
			return err
		}
		mark(k)
		return nil
	}
	if err := reply("220"); err != nil {
		return err
	}
	mark(0)
	if twice {
		if err := cmd(1, "EHLO steps.test\r\n", "250"); err != nil {
			return err
		}
		d[1] = d[1][:len(d[1])-1]
	}
	for _, s := range []struct {
		k          int
		text, want string
	}{
		{1, "EHLO steps.test\r\n", "250"},
		{2, "MAIL FROM:<steps@sender.test>\r\n", "250"},
		{3, "RCPT TO:<" + to + ">\r\n", "250"},
		{4, "DATA\r\n", "354"},
		{5, "From: steps@sender.test\r\nTo: " + to + "\r\nSubject: steps\r\n\r\n" + body + ".\r\n", "250"},
		{6, "QUIT\r\n", "221"},
	} {
		if err := cmd(s.k, s.text, s.want); err != nil {
			return err
		}
	}
	d[7] = append(d[7], time.Since(t0))
	return nil
}
