package rules_test

import (
	"slices"
	"testing"

	"github.com/flowgate/flowgate/internal/rules"
)

func TestDecodeHeader(t *testing.T) {
	cases := []struct {
		name    string
		section string
		field   string
		want    []string
	}{
		{"plain", "Subject: Hello\r\n\r\n", "Subject", []string{"Hello"}},
		{"any case", "SUBJECT: Hello\r\n", "subject", []string{"Hello"}},
		{"trimmed", "Subject:   Hello \t\r\n", "Subject", []string{"Hello"}},
		{"empty value", "Subject:\r\nTo: a\r\n", "Subject", []string{""}},
		{"absent", "To: a\r\n", "Subject", nil},
		{"UTF-8 base64", "Subject: =?UTF-8?B?w6l0w6k=?=\r\n", "Subject", []string{"été"}},
		{"utf-8 lowercase charset, Q", "Subject: =?utf-8?q?caf=C3=A9_cr=C3=A8me?=\r\n", "Subject", []string{"café crème"}},
		{"ISO-8859-1 Q", "Subject: =?ISO-8859-1?Q?caf=E9?=\r\n", "Subject", []string{"café"}},
		{"adjacent words join", "Subject: =?ISO-8859-1?Q?caf=E9?= =?ISO-8859-1?Q?_au_lait?=\r\n", "Subject", []string{"café au lait"}},
		{"words and text", "Subject: Re: =?UTF-8?Q?=C3=A9t=C3=A9?= plans\r\n", "Subject", []string{"Re: été plans"}},
		{"KOI8-R through the IANA index", "Subject: =?koi8-r?B?8NLJ18XU?=\r\n", "Subject", []string{"Привет"}},
		{"windows-1252", "Subject: =?windows-1252?Q?=80_5?=\r\n", "Subject", []string{"€ 5"}},
		{"Shift_JIS", "Subject: =?Shift_JIS?B?k/qWe4zq?=\r\n", "Subject", []string{"日本語"}},
		{"unknown charset is kept", "Subject: =?x-unknown?Q?abc?=\r\n", "Subject", []string{"=?x-unknown?Q?abc?="}},
		{"malformed word is kept", "Subject: =?UTF-8?B?***?=\r\n", "Subject", []string{"=?UTF-8?B?***?="}},
		{"folded CRLF", "Subject: the quarterly\r\n report\r\n\tfor Q3\r\nTo: a\r\n", "Subject", []string{"the quarterly report\tfor Q3"}},
		{"folded LF", "Subject: a\n b\nTo: c\n", "Subject", []string{"a b"}},
		{"folded encoded words", "Subject: =?UTF-8?Q?a?=\r\n =?UTF-8?Q?b?=\r\n", "Subject", []string{"ab"}},
		{"folded after an empty first line", "X-A:\r\n  value\r\n", "X-A", []string{"value"}},
		{"repeated fields in order", "Received: one\r\nTo: x\r\nReceived: two\r\n  more\r\n", "Received", []string{"one", "two  more"}},
		{"ends at the empty line", "X-A: 1\r\n\r\nX-A: 2\r\n", "X-A", []string{"1"}},
		{"ends at an LF empty line", "X-A: 1\n\nX-A: 2\n", "X-A", []string{"1"}},
		{"no final line break", "X-A: 1", "X-A", []string{"1"}},
		{"space before the colon", "X-A : 1\r\n", "X-A", []string{"1"}},
		{"line without a colon is skipped", "garbage\r\n continued\r\nX-A: 1\r\n", "X-A", []string{"1"}},
		{"leading continuation is skipped", " stray\r\nX-A: 1\r\n", "X-A", []string{"1"}},
		{"name is not a prefix match", "X-AB: 1\r\n", "X-A", nil},
		{"raw UTF-8 value", "Subject: Grüße\r\n", "Subject", []string{"Grüße"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := rules.DecodeHeader([]byte(c.section), c.field); !slices.Equal(got, c.want) {
				t.Fatalf("DecodeHeader = %q, want %q", got, c.want)
			}
		})
	}
}
