package main

import (
	"strings"
	"testing"
	"time"
)

func TestMakeBody(t *testing.T) {
	for _, size := range []int{0, 2, 3, 77, 78, 79, 80, 2048, 100 << 10} {
		b := makeBody(size)
		if len(b) != size {
			t.Errorf("size %d: got %d bytes", size, len(b))
		}
		if size == 0 {
			continue
		}
		if !strings.HasSuffix(b, "\r\n") {
			t.Errorf("size %d: does not end in CRLF", size)
		}
		for _, line := range strings.Split(strings.TrimSuffix(b, "\r\n"), "\r\n") {
			if strings.HasPrefix(line, ".") || strings.ContainsAny(line, "\r\n") || len(line) > 76 {
				t.Fatalf("size %d: bad line %q", size, line)
			}
		}
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	if p := pct(d, 50); p != 50*time.Millisecond {
		t.Errorf("p50 = %v", p)
	}
	if p := pct(d, 99); p != 99*time.Millisecond {
		t.Errorf("p99 = %v", p)
	}
	if p := pct(d[:1], 99); p != time.Millisecond {
		t.Errorf("p99 of one = %v", p)
	}
	if p := pct(nil, 50); p != 0 {
		t.Errorf("p50 of none = %v", p)
	}
}
