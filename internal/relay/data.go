package relay

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"sync"
)

var (
	errLineTooLong = errors.New("line too long")
	errTooManyHops = errors.New("too many Received headers")
	errTooBig      = errors.New("message too large")
)

// readBuffers recycles readContent's read buffer, which never leaves it.
var readBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// contentInfo is what the relay reads from the header section on the way.
type contentInfo struct {
	Hops      int    // Received: header fields
	MessageID string // the Message-ID field, trimmed
}

// readContent copies message data from r into out, normalizing line
// endings: CRLF stays, a bare LF and a bare CR each become CRLF. The
// message is therefore stored, and later relayed, with one unambiguous
// line ending, so no end-of-data variant (<LF>.<LF>, <CR>.<CR>,
// <LF>.<CR><LF>) can be smuggled past the next hop: a "." line inside the
// content is dot-stuffed like any other when it is sent on. It refuses
// lines longer than maxLine bytes, more than maxHops Received fields, and
// content of more than maxBytes bytes (as stored).
//
// With spill set, whenever out holds spillAt bytes or more at the end of a
// line, readContent hands them to spill and empties out, so that a large
// message is never held whole (queue.Spool stores the pieces); what is
// left in out at the end is the content's last piece. An error from spill
// ends the reading.
func readContent(r io.Reader, out *bytes.Buffer, maxLine, maxHops int, maxBytes int64, spillAt int, spill func([]byte) error) (contentInfo, error) {
	start := out.Len()
	var (
		spilled   int64 // content handed to spill
		info      contentInfo
		bufp      = readBuffers.Get().(*[]byte)
		buf       = *bufp
		pendingCR bool
		lineStart = out.Len()
		inHeader  = true
		lastField string // header field the current line continues
	)
	defer readBuffers.Put(bufp)
	endLine := func() error {
		line := out.Bytes()[lineStart:]
		out.WriteString("\r\n")
		if inHeader {
			switch {
			case len(line) == 0:
				inHeader = false
			case line[0] == ' ' || line[0] == '\t':
				if lastField == "message-id" && len(info.MessageID) < 998 {
					info.MessageID = strings.TrimSpace(info.MessageID + " " + strings.TrimSpace(string(line)))
				}
			default:
				name, value, ok := bytes.Cut(line, []byte(":"))
				if !ok {
					inHeader = false // not a header line: the body starts here
					break
				}
				lastField = strings.ToLower(strings.TrimSpace(string(name)))
				switch lastField {
				case "received":
					info.Hops++
					if info.Hops > maxHops {
						return errTooManyHops
					}
				case "message-id":
					if info.MessageID == "" {
						info.MessageID = strings.TrimSpace(string(value))
					}
				}
			}
		}
		lineStart = out.Len()
		if spill != nil && out.Len() >= spillAt {
			spilled += int64(out.Len() - start)
			if err := spill(out.Bytes()); err != nil {
				return err
			}
			out.Reset()
			start, lineStart = 0, 0
		}
		return nil
	}
	for {
		n, rerr := r.Read(buf)
		chunk := buf[:n]
		// Offsets in buf of the next CR and the next LF (n: none left),
		// found with vectorised IndexByte scans and reused until passed,
		// so each byte is scanned at most once per kind (bytes.IndexAny
		// with a two-byte set goes a byte at a time).
		crAt, lfAt := -1, -1
		if spilled+int64(out.Len()-start) > maxBytes {
			return info, errTooBig // stop early; the rest is drained unread
		}
		for len(chunk) > 0 {
			if pendingCR {
				pendingCR = false
				if chunk[0] == '\n' {
					chunk = chunk[1:]
				}
				if err := endLine(); err != nil {
					return info, err
				}
				continue
			}
			pos := n - len(chunk)
			if crAt < pos {
				crAt = nextByte(chunk, '\r', pos, n)
			}
			if lfAt < pos {
				lfAt = nextByte(chunk, '\n', pos, n)
			}
			i := min(crAt, lfAt) - pos
			if i == len(chunk) {
				i = -1
			}
			run := chunk
			if i >= 0 {
				run = chunk[:i]
			}
			if out.Len()-lineStart+len(run) > maxLine {
				return info, errLineTooLong
			}
			out.Write(run)
			if i < 0 {
				break
			}
			if chunk[i] == '\r' {
				pendingCR = true
				chunk = chunk[i+1:]
				continue
			}
			chunk = chunk[i+1:] // a bare LF
			if err := endLine(); err != nil {
				return info, err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return info, rerr
		}
	}
	if pendingCR || out.Len() > lineStart {
		if err := endLine(); err != nil {
			return info, err
		}
	}
	if spilled+int64(out.Len()-start) > maxBytes {
		return info, errTooBig
	}
	return info, nil
}

// nextByte is the offset in buf of the first c in chunk, which starts at
// offset pos of buf[:n], or n when chunk has none.
func nextByte(chunk []byte, c byte, pos, n int) int {
	if k := bytes.IndexByte(chunk, c); k >= 0 {
		return pos + k
	}
	return n
}
