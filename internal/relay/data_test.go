package relay

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadContentNormalizesLineEndings(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"crlf kept", "A: b\r\n\r\nbody\r\n", "A: b\r\n\r\nbody\r\n"},
		{"bare lf", "A: b\n\nbody\n", "A: b\r\n\r\nbody\r\n"},
		{"bare cr", "A: b\r\rbody\r", "A: b\r\n\r\nbody\r\n"},
		{"lf dot lf smuggling", "A: b\r\n\r\nx\n.\nMAIL FROM:<evil@x>\r\n", "A: b\r\n\r\nx\r\n.\r\nMAIL FROM:<evil@x>\r\n"},
		{"cr dot cr", "A: b\r\n\r\nx\r.\rRCPT\r\n", "A: b\r\n\r\nx\r\n.\r\nRCPT\r\n"},
		{"lf dot crlf", "A: b\r\n\r\nx\n.\r\ny\r\n", "A: b\r\n\r\nx\r\n.\r\ny\r\n"},
		{"no final newline", "A: b\r\n\r\nlast", "A: b\r\n\r\nlast\r\n"},
		{"crlf split across reads", "A: b\r\n\r\n" + strings.Repeat("z", 40000) + "\r\nend\r\n", "A: b\r\n\r\n" + strings.Repeat("z", 40000) + "\r\nend\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, oneByte := range []bool{false, true} {
				var out bytes.Buffer
				var r = strings.NewReader(tc.in)
				rd := iotest.OneByteReader(r)
				if !oneByte {
					rd = strings.NewReader(tc.in)
				}
				if _, err := readContent(rd, &out, 100000, 50, 1<<30, 0, nil); err != nil {
					t.Fatal(err)
				}
				if out.String() != tc.want {
					t.Fatalf("oneByte=%v: got %q, want %q", oneByte, out.String(), tc.want)
				}
				if bytes.Contains(out.Bytes(), []byte("\n.\n")) || bytes.Count(out.Bytes(), []byte("\n")) != bytes.Count(out.Bytes(), []byte("\r\n")) {
					t.Fatalf("a bare line ending survived: %q", out.String())
				}
			}
		})
	}
}

func TestReadContentHeaders(t *testing.T) {
	msg := "Received: from a\r\nreceived: from b\r\n\tby c\r\nMessage-ID:\r\n <abc@x.example>\r\nSubject: hi\r\n\r\nReceived: in body\r\n"
	var out bytes.Buffer
	info, err := readContent(strings.NewReader(msg), &out, 1000, 50, 1<<30, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.Hops != 2 || info.MessageID != "<abc@x.example>" {
		t.Fatalf("info %+v", info)
	}
	hops := strings.Repeat("Received: from x\r\n", 5) + "\r\nbody\r\n"
	if _, err := readContent(strings.NewReader(hops), &bytes.Buffer{}, 1000, 4, 1<<30, 0, nil); !errors.Is(err, errTooManyHops) {
		t.Fatalf("5 hops with a limit of 4: %v", err)
	}
	if _, err := readContent(strings.NewReader(hops), &bytes.Buffer{}, 1000, 5, 1<<30, 0, nil); err != nil {
		t.Fatalf("5 hops with a limit of 5: %v", err)
	}
	long := "A: b\r\n\r\n" + strings.Repeat("x", 1001) + "\r\n"
	if _, err := readContent(strings.NewReader(long), &bytes.Buffer{}, 1000, 5, 1<<30, 0, nil); !errors.Is(err, errLineTooLong) {
		t.Fatalf("long line: %v", err)
	}
	if _, err := readContent(strings.NewReader(long), &bytes.Buffer{}, 1001, 5, 1<<30, 0, nil); err != nil {
		t.Fatalf("line at the limit: %v", err)
	}
}
