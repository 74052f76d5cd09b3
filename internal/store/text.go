package store

import (
	"strings"
	"unicode/utf8"
)

// CleanText makes client- or server-supplied text storable in a text
// column on every engine: PostgreSQL refuses NUL bytes and invalid UTF-8.
// NUL becomes the visible escape \x00 and invalid bytes become \xNN, so
// the trace still shows what was sent. Valid text is returned unchanged.
func CleanText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			b.WriteString(`\x`)
			b.WriteString(hexByte(s[i]))
		case r == 0:
			b.WriteString(`\x00`)
		default:
			b.WriteString(s[i : i+size])
		}
		i += max(size, 1)
	}
	return b.String()
}

func hexByte(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}
