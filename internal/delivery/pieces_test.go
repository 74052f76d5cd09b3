package delivery

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net/textproto"
	"strings"
	"testing"
)

// piecewise is content in the given pieces, as the queue reads a large
// message's chunks.
type piecewise struct {
	pieces [][]byte
	fail   error // returned after the pieces, when set
}

func (p piecewise) Size() int64 {
	n := 0
	for _, x := range p.pieces {
		n += len(x)
	}
	return int64(n)
}

func (p piecewise) Pieces(_ context.Context, fn func([]byte) error) error {
	for _, x := range p.pieces {
		buf := bytes.Clone(x)
		if err := fn(buf); err != nil {
			return err
		}
		clear(buf) // valid only during the call
	}
	return p.fail
}

// Content sent in pieces puts on the wire exactly what go-smtp's dot
// writer puts there for the whole content: split at line ends as the relay
// stores it, and split anywhere (a piece with bare CR or LF, or not ending
// a line, sends the rest through the dot writer).
func TestPiecesMatchDotWriter(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	bits := []string{".", "\r\n", "\r", "\n", "a", "..", "\r\n.", "xyz ", "line\r\n", ".dot\r\n"}
	for i := range 3000 {
		var b strings.Builder
		for range rng.IntN(60) {
			b.WriteString(bits[rng.IntN(len(bits))])
		}
		body := []byte(b.String())
		var pieces [][]byte
		for rest := body; len(rest) > 0; {
			n := 1 + rng.IntN(len(rest))
			if i%2 == 0 { // at line ends only, as stored
				if k := bytes.Index(rest[min(n, len(rest))-1:], []byte("\r\n")); k >= 0 {
					n = min(n, len(rest)) - 1 + k + 2
				} else {
					n = len(rest)
				}
			}
			pieces = append(pieces, rest[:n])
			rest = rest[n:]
		}
		want, _ := sendBoth(t, body)
		c := &wire{}
		bw := bufio.NewWriter(c)
		w := textproto.NewWriter(bw).DotWriter()
		if err := sendContent(context.Background(), c, bw, w, piecewise{pieces: pieces}); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if got := c.buf.Bytes(); !bytes.Equal(want, got) {
			t.Fatalf("pieces %q:\n dot writer %q\n pieces     %q", pieces, want, got)
		}
	}
}

// A piece that cannot be read fails the sending: the caller must not end
// the content.
func TestPiecesFailure(t *testing.T) {
	c := &wire{}
	bw := bufio.NewWriter(c)
	w := textproto.NewWriter(bw).DotWriter()
	boom := errors.New("chunk 3 is gone")
	err := sendContent(context.Background(), c, bw, w, piecewise{pieces: [][]byte{[]byte("a\r\n"), []byte("b\r\n")}, fail: boom})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v, want the piece's", err)
	}
}
