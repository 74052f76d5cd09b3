package delivery

import (
	"bytes"
	"io"
	"net"
	"time"
)

// writeContent sends a message's content after DATA's 354 and leaves the
// last line for w, go-smtp's data writer (net/textproto's dot writer),
// whose Close ends the content.
//
// The dot writer handles one byte at a time (it stuffs dots and turns bare
// LF into CRLF as it goes); for a 100 KiB message that was one of the
// largest costs of delivery (docs/perf.md). So everything up to the last
// line is dot-stuffed here in bulk and written with raw, which puts it in
// the same buffer as w but past the dot writer (go-smtp's buffered writer
// is empty after the DATA command, so content larger than the buffer goes
// straight to the connection, content smaller leaves in one write with
// its last line and the end marker). Only the last line goes through w,
// so w ends in the state its Close expects and terminates the content
// exactly as if it had written all of it. Content with a bare CR or LF
// before its last line (never stored by the relay, which writes CRLF line
// ends) goes through w entirely, so its conversions stay the dot
// writer's.
func writeContent(conn net.Conn, raw, w io.Writer, body []byte) error {
	k := bulkPrefix(body)
	if k > 0 {
		if err := conn.SetWriteDeadline(time.Now().Add(10 * time.Minute)); err != nil {
			return err
		}
		_, err := raw.Write(dotStuff(body[:k]))
		_ = conn.SetWriteDeadline(time.Time{})
		if err != nil {
			return err
		}
	}
	_, err := w.Write(body[k:])
	return err
}

// writerFunc is a function as an io.Writer.
type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// bulkPrefix is the length of body's part before its last line, when that
// part can be sent dot-stuffed in bulk: it ends with CRLF and holds no bare
// CR or LF. Otherwise 0.
func bulkPrefix(body []byte) int {
	if len(body) < 2 {
		return 0
	}
	end := len(body)
	if bytes.HasSuffix(body, []byte("\r\n")) {
		end -= 2
	}
	k := bytes.LastIndexByte(body[:end], '\n') + 1
	if k < 2 || body[k-2] != '\r' {
		return 0
	}
	p := body[:k]
	crlf := bytes.Count(p, []byte("\r\n"))
	if bytes.Count(p, []byte("\n")) != crlf || bytes.Count(p, []byte("\r")) != crlf {
		return 0
	}
	return k
}

// dotStuff doubles the dot that starts any line of p (RFC 5321 4.5.2); p's
// lines end with CRLF. It returns p itself when no line starts with a dot.
func dotStuff(p []byte) []byte {
	dots := bytes.Count(p, []byte("\n."))
	if len(p) > 0 && p[0] == '.' {
		dots++
	}
	if dots == 0 {
		return p // nothing to stuff: sent as it is, not copied
	}
	out := make([]byte, 0, len(p)+dots)
	if len(p) > 0 && p[0] == '.' {
		out = append(out, '.')
	}
	for {
		i := bytes.Index(p, []byte("\n."))
		if i < 0 {
			return append(out, p...)
		}
		out = append(out, p[:i+1]...)
		out = append(out, '.')
		p = p[i+1:]
	}
}
