package queue

import (
	"bytes"
	"strings"
)

// MaxKeptHeader bounds the header section kept with a message's trace
// (migration 00011): past it the section is cut at a line's end, and a
// rule preview counts a header it needs beyond the cut as undecidable.
const MaxKeptHeader = 32 << 10

// HeaderSection returns the header section of content: everything up to
// and including the empty line that ends it (or all of content when there
// is none), bounded by MaxKeptHeader at the end of a line. A section that
// was cut therefore neither ends with an empty line nor is all of the
// content. It shares content's array; the caller copies what it keeps.
func HeaderSection(content []byte) []byte {
	end := len(content)
	if i := bytes.Index(content, []byte("\r\n\r\n")); i >= 0 {
		end = i + 4
	} else if i := bytes.Index(content, []byte("\n\n")); i >= 0 {
		end = i + 2
	}
	if end > MaxKeptHeader {
		end = MaxKeptHeader
		if i := bytes.LastIndexByte(content[:end], '\n'); i >= 0 {
			end = i + 1
		}
	}
	return content[:end]
}

// headerText is a header section as the message_headers table keeps it:
// text, so invalid UTF-8 (raw 8-bit header fields, which no header
// condition can match reliably anyway) becomes U+FFFD, and NUL, which
// PostgreSQL's text cannot hold, is dropped.
func headerText(section []byte) string {
	s := strings.ToValidUTF8(string(section), "\uFFFD")
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	return s
}
