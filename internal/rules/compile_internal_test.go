package rules

import (
	"regexp"
	"sync/atomic"
	"testing"
	"time"
)

// Patterns are compiled once, by Compile, however many messages are
// evaluated; Evaluate never compiles.
func TestPatternsCompiledOnce(t *testing.T) {
	var n atomic.Int64
	compileRegexp = func(p string) (*regexp.Regexp, error) {
		n.Add(1)
		return regexp.Compile(p)
	}
	t.Cleanup(func() { compileRegexp = regexp.Compile })

	one := int64(1)
	r := Rule{Name: "r", Enabled: true,
		Conditions: Predicates{HeaderMatches: []HeaderPattern{{Header: "Subject", Pattern: "^a"}, {Header: "X-B", Pattern: "b$"}}},
		Exceptions: Predicates{HeaderMatches: []HeaderPattern{{Header: "Subject", Pattern: "c"}}},
		Actions:    Actions{RouteToOutboundConnector: &one},
	}
	s := Compile([]Rule{r})
	if got := n.Load(); got != 3 {
		t.Fatalf("Compile compiled %d patterns, want 3", got)
	}
	c := &s.rules[0]
	if len(c.cond.matches) != 2 || c.cond.matches[0].pattern == nil || c.cond.matches[1].pattern.String() != "b$" ||
		len(c.exc.matches) != 1 || c.exc.matches[0].pattern.String() != "c" {
		t.Fatalf("the Set does not hold the compiled patterns: %+v %+v", c.cond.matches, c.exc.matches)
	}
	m := &Message{Header: []byte("Subject: abc\r\nX-B: ab\r\n")}
	for range 100 {
		s.Evaluate(time.Now(), m, []Recipient{{Address: "a@b.com"}, {Address: "c@d.com"}})
		s.Explain(time.Now(), m, []Recipient{{Address: "a@b.com"}})
	}
	if got := n.Load(); got != 3 {
		t.Fatalf("evaluating compiled patterns: %d compilations in all, want 3", got)
	}
}

// The header section is decoded once per message, and only the fields
// some rule needs are kept.
func TestPrepareKeepsOnlyNeededFields(t *testing.T) {
	one := int64(1)
	s := Compile([]Rule{{Name: "r", Enabled: true,
		Conditions: Predicates{HeaderContains: []HeaderWords{{Header: "x-classification", Words: []string{"a"}}}},
		Actions:    Actions{RouteToOutboundConnector: &one}}})
	mf := s.prepare(&Message{Header: []byte("Subject: s\r\nX-CLASSIFICATION: =?UTF-8?Q?=C3=A9?=\r\nReceived: r\r\nx-classification: two\r\n")})
	if len(mf.fields) != 1 || len(mf.fields[0]) != 2 || mf.fields[0][0].value != "é" || mf.fields[0][1].value != "two" {
		t.Fatalf("fields = %+v", mf.fields)
	}
}
