package app

import (
	"context"
	"net"
	"syscall"
	"testing"
)

// Relay connections are ended by the relay's own timeouts, not by TCP
// keepalive probes (which cost system calls on every accepted connection).
func TestRelayConnectionsHaveNoKeepalive(t *testing.T) {
	ln, err := listenSMTP(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	keepalive := -1
	var serr error
	if err := raw.Control(func(fd uintptr) {
		keepalive, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	if keepalive != 0 {
		t.Fatalf("SO_KEEPALIVE = %d on an accepted relay connection, want 0", keepalive)
	}
}
