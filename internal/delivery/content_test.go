package delivery

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// wire records what is written to a connection.
type wire struct {
	net.Conn
	buf    bytes.Buffer
	writes int
}

func (w *wire) Write(p []byte) (int, error)      { w.writes++; return w.buf.Write(p) }
func (w *wire) SetWriteDeadline(time.Time) error { return nil }

// sendBoth returns the bytes on the wire for body sent by net/textproto's
// dot writer alone (as go-smtp does) and by writeContent.
func sendBoth(t *testing.T, body []byte) (want, got []byte) {
	t.Helper()
	var ref bytes.Buffer
	rw := bufio.NewWriter(&ref)
	dw := textproto.NewWriter(rw).DotWriter()
	if _, err := dw.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := dw.Close(); err != nil {
		t.Fatal(err)
	}
	return ref.Bytes(), send(t, body).buf.Bytes()
}

// send sends body with writeContent as the delivery client does — the bulk
// part through the buffer of go-smtp's data writer, the rest through the
// dot writer, which Close ends — and returns the wire it went to.
func send(t *testing.T, body []byte) *wire {
	t.Helper()
	c := &wire{}
	bw := bufio.NewWriter(c)
	w := textproto.NewWriter(bw).DotWriter()
	if err := writeContent(c, bw, w, body); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return c
}

// The bulk content writer puts on the wire exactly what go-smtp's dot
// writer would, for ordinary messages, dot lines, a lone dot line (which
// must not end the content early), bare CR and LF, and random content.
func TestWriteContentMatchesDotWriter(t *testing.T) {
	cases := []string{
		"", "x", "\r\n", ".", ".\r\n", "Subject: a\r\n\r\nbody\r\n",
		"Subject: a\r\n\r\n.\r\n..\r\n.x\r\nlast\r\n", ".start\r\nmid\r\n.\r\nend",
		"a\r\nb\r\n.\r\n", "a\nb\r\nc\r\n", "a\r\nb\rc\r\nd\r\n", "a\r\r\nb\r\nc\r\n", "a\r\n\r\n\r\n",
		"no final line end\r\nsecond", "a\r\nb\r\n\r\n",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{".", "\r\n", "\r", "\n", "a", "..", "\r\n.", "xyz "}
	for range 3000 {
		var b strings.Builder
		for range rng.IntN(30) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		cases = append(cases, b.String())
	}
	for _, c := range cases {
		want, got := sendBoth(t, []byte(c))
		if !bytes.Equal(want, got) {
			t.Fatalf("content %q:\n dot writer %q\n bulk       %q", c, want, got)
		}
	}
}

// The bulk path is taken for a stored message (CRLF line ends), dots
// included, leaving only the last line to the dot writer.
func TestWriteContentBulkPath(t *testing.T) {
	body := []byte("Subject: a\r\n\r\n" + strings.Repeat("line\r\n.dot\r\n", 1000) + "last\r\n")
	if k := bulkPrefix(body); k != len(body)-len("last\r\n") {
		t.Fatalf("bulk prefix %d of %d", k, len(body))
	}
	want, got := sendBoth(t, body)
	if !bytes.Equal(want, got) || bytes.Count(got, []byte("\r\n..dot\r\n")) != 1000 || !bytes.HasSuffix(got, []byte("last\r\n.\r\n")) {
		t.Fatalf("bulk output differs (%d vs %d bytes)", len(got), len(want))
	}
}

// A message smaller than the client's buffer leaves in one write, content
// and end marker together; a larger one in as few writes as its size
// needs. (The bulk part used to be written to the connection on its own.)
func TestContentLeavesInFewWrites(t *testing.T) {
	line := "La de da de da 1234567890.\r\n"
	for _, tc := range []struct {
		size, maxWrites int
	}{{2048, 1}, {100 << 10, 2}} {
		body := []byte(strings.Repeat(line, tc.size/len(line)))
		c := send(t, body)
		if c.writes > tc.maxWrites {
			t.Errorf("%d bytes of content: %d writes, want at most %d", len(body), c.writes, tc.maxWrites)
		}
		if !bytes.HasSuffix(c.buf.Bytes(), []byte("\r\n.\r\n")) || c.buf.Len() != len(body)+3 {
			t.Errorf("%d bytes of content: %d bytes on the wire, want the content and the end marker", len(body), c.buf.Len())
		}
	}
}
