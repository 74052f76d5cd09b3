package smtp

// Test of flowgate's addition Server.AdvertisedMessageBytes.

import (
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
)

func TestAdvertisedMessageBytes(t *testing.T) {
	for _, tc := range []struct {
		max, advertised int64
		want            string
	}{
		{0, 0, "SIZE"},
		{0, 2000, "SIZE 2000"},
		{1000, 2000, "SIZE 1000"}, // an enforced limit is what EHLO gives
	} {
		var mu sync.Mutex
		var seen []string
		srv := NewServer(BackendFunc(func(*Conn) (Session, error) { return observingSession{&mu, &seen}, nil }))
		srv.Domain = "size.test"
		srv.MaxMessageBytes, srv.AdvertisedMessageBytes = tc.max, tc.advertised
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(ln)
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c := textproto.NewConn(conn)
		if _, _, err := c.ReadResponse(220); err != nil {
			t.Fatal(err)
		}
		if err := c.PrintfLine("EHLO client.test"); err != nil {
			t.Fatal(err)
		}
		_, msg, err := c.ReadResponse(250)
		if err != nil {
			t.Fatal(err)
		}
		var size string
		for _, line := range strings.Split(msg, "\n") {
			if line == "SIZE" || strings.HasPrefix(line, "SIZE ") {
				size = line
			}
		}
		if size != tc.want {
			t.Errorf("MaxMessageBytes %d, AdvertisedMessageBytes %d: EHLO gives %q, want %q", tc.max, tc.advertised, size, tc.want)
		}
		// Only an enforced limit refuses a larger declared SIZE here.
		want := 250
		if tc.max > 0 {
			want = 552
		}
		if err := c.PrintfLine("MAIL FROM:<a@size.test> SIZE=1500"); err != nil {
			t.Fatal(err)
		}
		if code, msg, _ := c.ReadResponse(0); code != want {
			t.Errorf("MaxMessageBytes %d: MAIL SIZE=1500 → %d %s, want %d", tc.max, code, msg, want)
		}
		c.Close()
		srv.Close()
	}
}
