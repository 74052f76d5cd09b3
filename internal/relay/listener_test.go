package relay

import (
	"net"
	"strings"
	"testing"
)

// recordingConn records each Write it gets as one string.
type recordingConn struct {
	net.Conn
	writes []string
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, string(p))
	return len(p), nil
}

// A multi-line reply, written a line at a time as go-smtp does, reaches the
// socket as one write; single-line replies and anything that is not a
// reply line (TLS records after STARTTLS) go out as they come.
func TestReplyLinesCoalesced(t *testing.T) {
	rec := &recordingConn{}
	c := &countedConn{Conn: rec}
	for _, w := range []string{"250-relay.test Hello\r\n", "250-PIPELINING\r\n", "250-8BITMIME\r\n", "250 SIZE\r\n",
		"354 go ahead\r\n", "\x17\x03\x03\x00\x05250-x\r\n", "221 2.0.0 Bye\r\n"} {
		if n, err := c.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", w, n, err)
		}
	}
	want := []string{"250-relay.test Hello\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE\r\n", "354 go ahead\r\n",
		"\x17\x03\x03\x00\x05250-x\r\n", "221 2.0.0 Bye\r\n"}
	if strings.Join(rec.writes, "|") != strings.Join(want, "|") {
		t.Fatalf("writes:\n got %q\nwant %q", rec.writes, want)
	}
	for _, p := range []string{"250-a\r\n", "250-a\r\n250-b\r\n", "25x-a\r\n", "250-a", "250 a\r\n"} {
		got := isContinuationLine([]byte(p))
		if want := p == "250-a\r\n"; got != want {
			t.Errorf("isContinuationLine(%q) = %v, want %v", p, got, want)
		}
	}
}
