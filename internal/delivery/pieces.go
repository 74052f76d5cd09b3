package delivery

import (
	"bytes"
	"context"
	"io"
	"net"
	"time"
)

// Content is a message's content as delivery sends it: in memory (Bytes),
// or read piece by piece from the queue for a message too large to hold
// whole.
type Content interface {
	// Size is the content's length in bytes, for MAIL's SIZE=.
	Size() int64
	// Pieces calls fn with the content in order. Every piece but the last
	// ends with a line end (CRLF). It may be called again, for another
	// host; a piece is valid only during its call.
	Pieces(ctx context.Context, fn func(piece []byte) error) error
}

// Bytes is content held in memory, as one piece.
type Bytes []byte

func (b Bytes) Size() int64 { return int64(len(b)) }

func (b Bytes) Pieces(_ context.Context, fn func([]byte) error) error { return fn(b) }

// sendContent sends c after DATA's 354, as writeContent sends content
// held in memory: every piece but the last dot-stuffed in bulk past the
// dot writer w, the last through writeContent. It holds two pieces at
// most. A piece that is not whole CRLF lines (never stored by the relay)
// goes through w, and so does everything after it.
func sendContent(ctx context.Context, conn net.Conn, raw, w io.Writer, c Content) error {
	if b, ok := c.(Bytes); ok {
		return writeContent(conn, raw, w, b)
	}
	var prev []byte
	viaDot, started := false, false
	send := func(p []byte) error {
		if !viaDot && wholeLines(p) {
			if err := conn.SetWriteDeadline(time.Now().Add(10 * time.Minute)); err != nil {
				return err
			}
			_, err := raw.Write(dotStuff(p))
			_ = conn.SetWriteDeadline(time.Time{})
			return err
		}
		viaDot = true
		_, err := w.Write(p)
		return err
	}
	err := c.Pieces(ctx, func(p []byte) error {
		if started {
			if err := send(prev); err != nil {
				return err
			}
		}
		started = true
		prev = append(prev[:0], p...)
		return nil
	})
	if err != nil {
		return err
	}
	if viaDot {
		_, err := w.Write(prev)
		return err
	}
	return writeContent(conn, raw, w, prev)
}

// wholeLines reports whether p is whole lines, each ending with CRLF, with
// no bare CR or LF.
func wholeLines(p []byte) bool {
	if !bytes.HasSuffix(p, []byte("\r\n")) {
		return false
	}
	crlf := bytes.Count(p, []byte("\r\n"))
	return bytes.Count(p, []byte("\n")) == crlf && bytes.Count(p, []byte("\r")) == crlf
}
