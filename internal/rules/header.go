package rules

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"strings"

	"golang.org/x/text/encoding/ianaindex"
)

// DecodeHeader returns the values of every field named name (any case) in
// a message's header section, in order, each unfolded, trimmed and with
// its RFC 2047 encoded-words decoded: the values header_contains and
// header_matches look at. The section may be followed by the body; it ends
// at the first empty line.
func DecodeHeader(section []byte, name string) []string {
	var out []string
	scanFields(section, func(n, v []byte) {
		if strings.EqualFold(string(n), name) {
			out = append(out, decodeValue(v))
		}
	})
	return out
}

// scanFields calls fn with the name and the raw (still folded) value of
// every field of a header section. Lines may end in CRLF or LF; a line
// starting with a space or tab continues the field before it; a line
// without a colon is skipped (with its continuation lines).
func scanFields(section []byte, fn func(name, value []byte)) {
	var name []byte
	valueStart, valueEnd := 0, 0
	flush := func() {
		if name != nil {
			fn(name, section[valueStart:valueEnd])
		}
		name = nil
	}
	for start := 0; start < len(section); {
		end, next := len(section), len(section)
		if i := bytes.IndexByte(section[start:], '\n'); i >= 0 {
			end, next = start+i, start+i+1
		}
		line := section[start:end]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		switch {
		case len(line) == 0:
			flush()
			return
		case line[0] == ' ' || line[0] == '\t':
			// A continuation line: the value runs on to its end, line
			// breaks included; decodeValue unfolds it.
			valueEnd = start + len(line)
		default:
			flush()
			if colon := bytes.IndexByte(line, ':'); colon > 0 {
				if n := bytes.TrimRight(line[:colon], " \t"); len(n) > 0 {
					name = n
					valueStart, valueEnd = start+colon+1, start+len(line)
				}
			}
		}
		start = next
	}
	flush()
}

// wordDecoder decodes RFC 2047 encoded-words. The standard library knows
// UTF-8, US-ASCII and ISO-8859-1; the IANA index supplies the others.
var wordDecoder = &mime.WordDecoder{CharsetReader: func(charset string, input io.Reader) (io.Reader, error) {
	enc, err := ianaindex.MIME.Encoding(charset)
	if err != nil || enc == nil {
		return nil, fmt.Errorf("unsupported charset %q", charset)
	}
	return enc.NewDecoder().Reader(input), nil
}}

// decodeValue unfolds a raw field value (removing the line breaks before
// continuation lines), trims it and decodes its encoded-words. A value
// whose encoded-words cannot be decoded (an unknown charset) is kept as
// it is, unfolded.
func decodeValue(raw []byte) string {
	var v string
	if bytes.IndexByte(raw, '\n') >= 0 {
		b := make([]byte, 0, len(raw))
		for i := 0; i < len(raw); i++ {
			switch {
			case raw[i] == '\n':
			case raw[i] == '\r' && i+1 < len(raw) && raw[i+1] == '\n':
			default:
				b = append(b, raw[i])
			}
		}
		v = string(bytes.Trim(b, " \t"))
	} else {
		v = string(bytes.Trim(raw, " \t"))
	}
	if !strings.Contains(v, "=?") {
		return v
	}
	if d, err := wordDecoder.DecodeHeader(v); err == nil {
		return d
	}
	return v
}
