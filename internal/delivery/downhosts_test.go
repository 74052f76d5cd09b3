package delivery

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
)

// A host that does not greet in time is marked down: the next delivery
// skips it without connecting and defers at once with the reason.
func TestSilentHostIsMarkedDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			defer c.Close() // silent until the test ends
		}
	}()
	addr := ln.Addr().(*net.TCPAddr)
	c := &Client{Hostname: "gw.test", Resolver: &Resolver{}, GreetingTimeout: 200 * time.Millisecond, DownFor: time.Minute}
	defer c.Close()
	target := Target{Via: "test", Hosts: []Host{{Name: "127.0.0.1", IP: addr.AddrPort().Addr(), Port: addr.Port, Pref: -1}}, TLS: connector.TLSOpportunistic}

	first := c.Deliver(context.Background(), target, "a@b.test", []string{"x@y.test"}, Bytes("Subject: x\r\n\r\nx\r\n"))
	if len(first.Rcpts) != 1 || first.Rcpts[0].Delivered || first.Rcpts[0].Reply.Permanent() || !strings.Contains(first.Rcpts[0].Reply.Text, "greeting from") {
		t.Fatalf("first delivery: %+v", first.Rcpts)
	}
	second := c.Deliver(context.Background(), target, "a@b.test", []string{"x@y.test"}, Bytes("Subject: x\r\n\r\nx\r\n"))
	r := second.Rcpts[0].Reply
	if r.Code != 451 || !strings.Contains(r.Text, "is marked down until") || !strings.Contains(r.Text, "greeting from") {
		t.Fatalf("second delivery: %+v", r)
	}
	if n := accepted.Load(); n != 1 {
		t.Fatalf("%d connections to a host marked down, want only the first", n)
	}
}

// A refused connection costs nothing to find out again: it marks nothing.
func TestRefusedHostIsNotMarkedDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close()
	c := &Client{Hostname: "gw.test", Resolver: &Resolver{}}
	defer c.Close()
	target := Target{Via: "test", Hosts: []Host{{Name: "127.0.0.1", IP: addr.AddrPort().Addr(), Port: addr.Port, Pref: -1}}, TLS: connector.TLSOpportunistic}
	for range 2 {
		res := c.Deliver(context.Background(), target, "a@b.test", []string{"x@y.test"}, Bytes("x\r\n"))
		if txt := res.Rcpts[0].Reply.Text; !strings.Contains(txt, "connection refused") {
			t.Fatalf("reply %q, want a refused connection each time", txt)
		}
	}
}
