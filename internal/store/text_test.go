package store

import "testing"

func TestCleanText(t *testing.T) {
	for in, want := range map[string]string{
		"plain":            "plain",
		"bücher":           "bücher",
		"nul\x00helo":      `nul\x00helo`,
		"\xff\xfe.test":    `\xff\xfe.test`,
		"a\xc3":            `a\xc3`,
		"ok\u00e9\x00\xff": `oké\x00\xff`,
	} {
		if got := CleanText(in); got != want {
			t.Errorf("CleanText(%q) = %q, want %q", in, got, want)
		}
	}
}
