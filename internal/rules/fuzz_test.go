package rules_test

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/rules"
)

// The fuzzers' seed corpora run in every `go test`. Run them longer with
//
//	go test -run '^$' -fuzz FuzzParse -fuzztime 30s ./internal/rules
//	go test -run '^$' -fuzz FuzzHeaderMatching -fuzztime 30s ./internal/rules

var parseSeeds = []string{
	specExample,
	`{"name": "r", "conditions": {"recipient_domain_is": ["fabrikam.com"]}, "actions": {"route_to_outbound_connector": 1}}`,
	`{"name": "Big", "priority": 3, "enabled": false, "mode": "audit", "comment": " c ", "on_error": "ignore",
	  "activation_date": "2025-03-01T09:00:00.5+01:00", "expiry_date": "2026-01-01T00:00:00Z",
	  "conditions": {"sender_address_is": ["<A@Contoso.com>"], "sender_domain_is": ["Bücher.example."],
	    "recipient_address_is": ["b@fabrikam.com"], "from_scope": "in_organization", "sent_to_scope": "not_in_organization",
	    "sender_ip_ranges": ["10.0.0.5/8", "::ffff:10.0.0.1", "2001:db8::1-2001:db8::9"],
	    "header_contains": [{"header": "x-a", "words": ["One", "one", " two "]}],
	    "header_matches": [{"header": "Subject", "pattern": "(?i)^re:"}],
	    "message_size_over": 1048576, "inbound_connector_is": ["Partner A", "partner a"]},
	  "exceptions": {"recipient_domain_is": ["sales.fabrikam.com"]},
	  "actions": {"reject": {"code": 554, "enhanced": "5.7.26", "text": "  No thanks "}, "stop_processing": true},
	  "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-02T00:00:00-05:00"}`,
	`{"name": "x", "conditions": {"header_matches": [{"header": "S", "pattern": "(ab"}]}, "actions": {}}`,
	`{"name": "x", "conditions": {}, "actions": {"reject": {"code": 0}}}`,
	`{"name": "x", "name": "y"}`,
	`{"conditions": {"colour": [1, {"a": null}]}, "priority": 1e3}`,
	`[]`, `null`, `"x"`, `{`, `{"a":1}{}`, ``,
	`{"name": "\u0000", "comment": "\ud800", "activation_date": "0000-01-01T00:00:00+01:00"}`,
}

func FuzzParse(f *testing.F) {
	for _, s := range parseSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, errs := rules.Parse(body)
		if errs != nil {
			if len(errs) == 0 || errs.Err() == nil {
				t.Fatal("non-nil but empty errors")
			}
			return
		}
		// What Parse accepts is canonical: Normalize changes nothing …
		n := r
		if e := n.Normalize(); e != nil {
			t.Fatalf("Normalize of a parsed rule: %v", e)
		}
		if !reflect.DeepEqual(n, r) {
			t.Fatalf("Normalize changed a parsed rule:\n%+v\n%+v", r, n)
		}
		// … and its JSON parses back to the same rule.
		out, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		r2, errs := rules.Parse(out)
		if errs != nil {
			t.Fatalf("the JSON of an accepted rule is refused: %v\n%s", errs, out)
		}
		if !reflect.DeepEqual(r, r2) {
			t.Fatalf("round trip changed the rule:\n%+v\n%+v\n%s", r, r2, out)
		}
		// An accepted rule compiles and evaluates.
		r.Enabled = true
		s := rules.Compile([]rules.Rule{r})
		if s.Len() != 1 {
			t.Fatalf("Len = %d", s.Len())
		}
		m := &rules.Message{Sender: "a@contoso.com", ClientIP: netip.MustParseAddr("10.0.0.1"), InboundConnector: "Partner A",
			Header: []byte("Subject: Re: hi\r\nX-A: one\r\n\r\n"), Size: 2 << 20}
		o := s.Explain(now, m, []rules.Recipient{{Address: "b@fabrikam.com"}})
		if len(o[0].Trace) != 1 || strings.Contains(o[0].Trace[0].Detail, "invalid") {
			t.Fatalf("trace = %+v", o[0].Trace)
		}
	})
}

var headerSeeds = []struct {
	section, value, word string
}{
	{"Subject: hi\r\n\r\nbody", "Highly Confidential", "confidential"},
	{"Subject: =?UTF-8?B?w6l0w6k=?=\r\n X-A: b\r\n", "a secret b", "SECRET"},
	{" leading continuation\r\nX-Fuzz: other\r\n", "x", "x"},
	{"X-Fuzz: =?koi8-r?B?8NLJ18XU?=\r\nX-Fuzz: =?bogus?Q?a?=\n", "[EXT] report", "[ext]"},
	{"\r\n", "a.b*c", "b*c"},
	{"", "tab\there", "\there"},
	{"Subject: =?UTF-8?Q?a?= =?UTF-8?Q?b?=\r\n\tc\r\n", "=x", "x"},
}

// Random header sections never make decoding or matching panic, and a word
// that appears in a plain ASCII value of the field is always found, by
// header_contains and by a header_matches pattern quoting it.
func FuzzHeaderMatching(f *testing.F) {
	for _, s := range headerSeeds {
		f.Add([]byte(s.section), s.value, s.word)
	}
	f.Fuzz(func(t *testing.T, section []byte, value, word string) {
		_ = rules.DecodeHeader(section, "Subject")
		_ = rules.DecodeHeader(section, "X-Fuzz")
		word = strings.TrimSpace(word)
		if !plainASCII(value) || !plainASCII(word) || word == "" || len(word) > rules.MaxWordLen || strings.Contains(value, "=?") {
			// Still evaluate the random section.
			value, word = "v", "v"
		}
		if !strings.Contains(strings.ToLower(value), strings.ToLower(word)) {
			value += " " + word
		}
		contains := rules.Rule{Name: "c", Enabled: true,
			Conditions: rules.Predicates{HeaderContains: []rules.HeaderWords{{Header: "X-Fuzz", Words: []string{word}}}},
			Actions:    rules.Actions{RouteToOutboundConnector: ptr[int64](1)}}
		matches := rules.Rule{Name: "m", Enabled: true,
			Conditions: rules.Predicates{HeaderMatches: []rules.HeaderPattern{{Header: "x-fuzz", Pattern: "(?i)" + regexp.QuoteMeta(word)}}},
			Actions:    rules.Actions{RouteToOutboundConnector: ptr[int64](2)}}
		for _, r := range []rules.Rule{contains, matches} {
			if errs := r.Normalize(); errs != nil {
				t.Fatalf("rule %q: %v", r.Name, errs)
			}
			s := rules.Compile([]rules.Rule{r})
			// The random section alone: no panic.
			s.Explain(now, &rules.Message{Header: section}, []rules.Recipient{{Address: "a@b.com"}})
			// The field first, the random section after it.
			h := append([]byte("X-Fuzz: "+value+"\r\n"), section...)
			m := &rules.Message{Header: h}
			for _, o := range [][]rules.Outcome{s.Evaluate(now, m, []rules.Recipient{{Address: "a@b.com"}}), s.Explain(now, m, []rules.Recipient{{Address: "a@b.com"}})} {
				if o[0].Route == nil {
					t.Fatalf("rule %q: %q not found in X-Fuzz: %q (values %q)", r.Name, word, value, rules.DecodeHeader(h, "X-Fuzz"))
				}
			}
		}
	})
}

// plainASCII: printable ASCII and tabs, no line breaks.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' || c > '~') && c != '\t' {
			return false
		}
	}
	return true
}
