package rules_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/rules"
)

// specExample is the rule of SPEC 7.
const specExample = `{"id": 7, "name": "Legal to the encryption gateway", "priority": 0,
 "enabled": true, "mode": "enforce", "comment": "",
 "activation_date": null, "expiry_date": null,
 "conditions": {"recipient_domain_is": ["fabrikam.com"],
                "header_contains": [{"header": "X-Classification", "words": ["confidential"]}]},
 "exceptions": {"sender_address_is": ["ceo@contoso.com"]},
 "actions": {"route_to_outbound_connector": 12, "reject": null, "stop_processing": true},
 "on_error": "defer"}`

func TestParseSpecExample(t *testing.T) {
	r, errs := rules.Parse([]byte(specExample))
	if errs != nil {
		t.Fatalf("Parse: %v", errs)
	}
	want := rules.Rule{
		ID: 7, Name: "Legal to the encryption gateway", Priority: ptr(0), Enabled: true, Mode: rules.Enforce,
		Conditions: rules.Predicates{
			RecipientDomainIs: []string{"fabrikam.com"},
			HeaderContains:    []rules.HeaderWords{{Header: "X-Classification", Words: []string{"confidential"}}},
		},
		Exceptions: rules.Predicates{SenderAddressIs: []string{"ceo@contoso.com"}},
		Actions:    rules.Actions{RouteToOutboundConnector: ptr[int64](12), StopProcessing: true},
		OnError:    rules.Defer,
	}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("Parse =\n%+v\nwant\n%+v", r, want)
	}
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var got, spec map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(specExample), &spec); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, spec) {
		t.Fatalf("the JSON of the parsed rule is not SPEC 7's shape:\n%s", out)
	}
}

func TestParseDefaultsAndCanonicalForms(t *testing.T) {
	r, errs := rules.Parse([]byte(`{
		"name": "  Block big mail  ",
		"activation_date": "2025-03-01T09:00:00+01:00",
		"conditions": {
			"sender_address_is": ["<John.Doe@Contoso.COM>", "john.doe@contoso.com"],
			"sender_domain_is": ["Fabrikam.COM.", "bücher.example"],
			"recipient_domain_is": ["fabrikam.com", "FABRIKAM.com"],
			"sender_ip_ranges": ["10.0.0.5/24", "::ffff:192.0.2.1", "192.0.2.10 - 192.0.2.20"],
			"header_contains": [{"header": "x-classification", "words": [" Secret ", "secret", "TOP"]}],
			"header_matches": [{"header": "subject:", "pattern": "(?i)^\\[ext\\]"}],
			"inbound_connector_is": [" Partner A ", "partner a"],
			"message_size_over": 0
		},
		"actions": {"reject": {}}
	}`))
	if errs != nil {
		t.Fatalf("Parse: %v", errs)
	}
	act := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	want := rules.Rule{
		Name: "Block big mail", Enabled: true, Mode: rules.Enforce, ActivationDate: &act,
		Conditions: rules.Predicates{
			SenderAddressIs:    []string{"john.doe@contoso.com"},
			SenderDomainIs:     []string{"fabrikam.com", "xn--bcher-kva.example"},
			RecipientDomainIs:  []string{"fabrikam.com"},
			SenderIPRanges:     []string{"10.0.0.0/24", "192.0.2.1", "192.0.2.10-192.0.2.20"},
			HeaderContains:     []rules.HeaderWords{{Header: "X-Classification", Words: []string{"Secret", "TOP"}}},
			HeaderMatches:      []rules.HeaderPattern{{Header: "Subject", Pattern: `(?i)^\[ext\]`}},
			InboundConnectorIs: []string{"Partner A"},
			MessageSizeOver:    ptr[int64](0),
		},
		Actions: rules.Actions{Reject: &rules.Reject{Code: 550, Enhanced: "5.7.1", Text: "Delivery not authorized, message refused"}},
		OnError: rules.Defer,
	}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("Parse =\n%+v\nwant\n%+v", r, want)
	}
	if r.ActivationDate.Location() != time.UTC {
		t.Errorf("activation date in %v, want UTC", r.ActivationDate.Location())
	}
}

func TestParseExplicitValues(t *testing.T) {
	r, errs := rules.Parse([]byte(`{"name": "x", "enabled": false, "mode": "audit", "on_error": "ignore",
		"conditions": {"from_scope": "not_in_organization", "sent_to_scope": "in_organization"},
		"exceptions": {},
		"actions": {"reject": {"code": 554, "enhanced": "5.7.26", "text": "Go away"}},
		"created_at": "2025-01-01T00:00:00Z", "updated_at": null}`))
	if errs != nil {
		t.Fatalf("Parse: %v", errs)
	}
	if r.Enabled || r.Mode != rules.Audit || r.OnError != rules.Ignore || r.Priority != nil {
		t.Errorf("enabled/mode/on_error/priority = %v/%v/%v/%v", r.Enabled, r.Mode, r.OnError, r.Priority)
	}
	if *r.Actions.Reject != (rules.Reject{Code: 554, Enhanced: "5.7.26", Text: "Go away"}) {
		t.Errorf("reject = %+v", *r.Actions.Reject)
	}
	if r.Conditions.FromScope != rules.NotInOrganization || r.Conditions.SentToScope != rules.InOrganization {
		t.Errorf("scopes = %q, %q", r.Conditions.FromScope, r.Conditions.SentToScope)
	}
	if !r.CreatedAt.Equal(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)) || !r.UpdatedAt.IsZero() {
		t.Errorf("created/updated = %v/%v", r.CreatedAt, r.UpdatedAt)
	}
}

// base is a valid rule body as a map; cases change it.
func base() map[string]any {
	return map[string]any{
		"name":       "r",
		"conditions": map[string]any{"recipient_domain_is": []any{"fabrikam.com"}},
		"actions":    map[string]any{"route_to_outbound_connector": 12},
	}
}

func body(t *testing.T, change func(m map[string]any)) []byte {
	t.Helper()
	m := base()
	if change != nil {
		change(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func cond(m map[string]any) map[string]any { return m["conditions"].(map[string]any) }
func acts(m map[string]any) map[string]any { return m["actions"].(map[string]any) }

func TestParseErrors(t *testing.T) {
	reject := func(r map[string]any) func(m map[string]any) {
		return func(m map[string]any) { m["actions"] = map[string]any{"reject": r} }
	}
	cases := []struct {
		name   string
		raw    string                 // used when set
		change func(m map[string]any) // else applied to base()
		want   map[string]string      // key → a part of the message
	}{
		// the body as a whole
		{name: "empty body", raw: "  ", want: map[string]string{"": "empty"}},
		{name: "not JSON", raw: `{"name": }`, want: map[string]string{"": "not valid JSON"}},
		{name: "trailing data", raw: `{"name": "x"} {}`, want: map[string]string{"": "not valid JSON"}},
		{name: "not an object", raw: `[1]`, want: map[string]string{"": "must be a JSON object"}},

		// unknown and repeated keys
		{name: "unknown top-level key", change: func(m map[string]any) { m["colour"] = "red" },
			want: map[string]string{"colour": `unknown key "colour"`}},
		{name: "unknown condition key", change: func(m map[string]any) { cond(m)["colour"] = []any{"red"} },
			want: map[string]string{"conditions.colour": `unknown key "colour"; the keys here are sender_address_is`}},
		{name: "unknown exception key", change: func(m map[string]any) { m["exceptions"] = map[string]any{"sender_is": []any{"a@b.com"}} },
			want: map[string]string{"exceptions.sender_is": `unknown key "sender_is"`}},
		{name: "unknown action key", change: func(m map[string]any) { acts(m)["forward"] = true },
			want: map[string]string{"actions.forward": "unknown key"}},
		{name: "unknown reject key", change: reject(map[string]any{"colour": 1}),
			want: map[string]string{"actions.reject.colour": "unknown key"}},
		{name: "unknown key in a header_contains entry",
			change: func(m map[string]any) {
				cond(m)["header_contains"] = []any{map[string]any{"header": "X-A", "words": []any{"a"}, "colour": 1}}
			},
			want: map[string]string{"conditions.header_contains[0].colour": "unknown key"}},
		{name: "repeated key", raw: `{"name": "a", "name": "b", "conditions": {"recipient_domain_is": ["fabrikam.com"]}, "actions": {"route_to_outbound_connector": 1}}`,
			want: map[string]string{"name": "appears twice"}},

		// wrong JSON types
		{name: "name not a string", change: func(m map[string]any) { m["name"] = 5 }, want: map[string]string{"name": "must be a string"}},
		{name: "priority a string", change: func(m map[string]any) { m["priority"] = "3" }, want: map[string]string{"priority": "whole number"}},
		{name: "priority a fraction", change: func(m map[string]any) { m["priority"] = 1.5 }, want: map[string]string{"priority": "whole number"}},
		{name: "id a string", change: func(m map[string]any) { m["id"] = "7" }, want: map[string]string{"id": "whole number"}},
		{name: "enabled a string", change: func(m map[string]any) { m["enabled"] = "yes" }, want: map[string]string{"enabled": "true or false"}},
		{name: "conditions a list", change: func(m map[string]any) { m["conditions"] = []any{} }, want: map[string]string{"conditions": "must be an object"}},
		{name: "address list a string", change: func(m map[string]any) { cond(m)["sender_address_is"] = "a@contoso.com" },
			want: map[string]string{"conditions.sender_address_is": "a list of strings"}},
		{name: "address entry a number", change: func(m map[string]any) { cond(m)["sender_address_is"] = []any{"a@contoso.com", 5} },
			want: map[string]string{"conditions.sender_address_is[1]": "must be a string"}},
		{name: "scope a list", change: func(m map[string]any) { cond(m)["from_scope"] = []any{"in_organization"} },
			want: map[string]string{"conditions.from_scope": "must be a string"}},
		{name: "size a string", change: func(m map[string]any) { cond(m)["message_size_over"] = "10MB" },
			want: map[string]string{"conditions.message_size_over": "whole number"}},
		{name: "size too large", raw: `{"name": "x", "conditions": {"message_size_over": 99999999999999999999}, "actions": {"route_to_outbound_connector": 1}}`,
			want: map[string]string{"conditions.message_size_over": "too large"}},
		{name: "header_contains an object", change: func(m map[string]any) { cond(m)["header_contains"] = map[string]any{"header": "X"} },
			want: map[string]string{"conditions.header_contains": "a list of"}},
		{name: "header_contains entry a string", change: func(m map[string]any) { cond(m)["header_contains"] = []any{"X-A"} },
			want: map[string]string{"conditions.header_contains[0]": "must be an object"}},
		{name: "header_matches entry null", change: func(m map[string]any) { cond(m)["header_matches"] = []any{nil} },
			want: map[string]string{"conditions.header_matches[0]": "must be an object"}},
		{name: "actions a string", change: func(m map[string]any) { m["actions"] = "reject" }, want: map[string]string{"actions": "must be an object"}},
		{name: "reject true", change: func(m map[string]any) { m["actions"] = map[string]any{"reject": true} },
			want: map[string]string{"actions.reject": "must be an object"}},
		{name: "connector id a string", change: func(m map[string]any) { acts(m)["route_to_outbound_connector"] = "12" },
			want: map[string]string{"actions.route_to_outbound_connector": "whole number"}},
		{name: "stop_processing a number", change: func(m map[string]any) { acts(m)["stop_processing"] = 1 },
			want: map[string]string{"actions.stop_processing": "true or false"}},
		{name: "date a number", change: func(m map[string]any) { m["activation_date"] = 20250101 },
			want: map[string]string{"activation_date": "a date and time"}},

		// field values
		{name: "empty name", change: func(m map[string]any) { m["name"] = "  " }, want: map[string]string{"name": "enter a name"}},
		{name: "name too long", change: func(m map[string]any) { m["name"] = strings.Repeat("é", 65) },
			want: map[string]string{"name": "65 characters long; at most 64"}},
		{name: "name of 64 characters is fine", change: func(m map[string]any) { m["name"] = strings.Repeat("é", 64) }},
		{name: "negative priority", change: func(m map[string]any) { m["priority"] = -1 }, want: map[string]string{"priority": "cannot be negative"}},
		{name: "negative id", change: func(m map[string]any) { m["id"] = -1 }, want: map[string]string{"id": "cannot be negative"}},
		{name: "bad mode", change: func(m map[string]any) { m["mode"] = "test" }, want: map[string]string{"mode": `"test" is not a mode; choose enforce or audit`}},
		{name: "bad on_error", change: func(m map[string]any) { m["on_error"] = "retry" }, want: map[string]string{"on_error": "choose defer or ignore"}},
		{name: "comment too long", change: func(m map[string]any) { m["comment"] = strings.Repeat("c", 1025) }, want: map[string]string{"comment": "at most 1024"}},
		{name: "bad date", change: func(m map[string]any) { m["expiry_date"] = "2025-13-01" }, want: map[string]string{"expiry_date": "RFC 3339"}},
		{name: "date without zone", change: func(m map[string]any) { m["expiry_date"] = "2025-03-01T09:00:00" }, want: map[string]string{"expiry_date": "RFC 3339"}},
		{name: "expiry before activation", change: func(m map[string]any) {
			m["activation_date"], m["expiry_date"] = "2025-03-02T00:00:00Z", "2025-03-01T00:00:00Z"
		}, want: map[string]string{"expiry_date": "after the activation date"}},
		{name: "expiry equal to activation", change: func(m map[string]any) {
			m["activation_date"], m["expiry_date"] = "2025-03-01T01:00:00+01:00", "2025-03-01T00:00:00Z"
		}, want: map[string]string{"expiry_date": "after the activation date"}},

		// conditions and exceptions
		{name: "no conditions", change: func(m map[string]any) { delete(m, "conditions") },
			want: map[string]string{"conditions": "a rule needs at least one condition"}},
		{name: "null conditions", change: func(m map[string]any) { m["conditions"] = nil },
			want: map[string]string{"conditions": "at least one condition"}},
		{name: "empty conditions", change: func(m map[string]any) { m["conditions"] = map[string]any{} },
			want: map[string]string{"conditions": "at least one condition"}},
		{name: "only exceptions", change: func(m map[string]any) {
			m["conditions"] = map[string]any{}
			m["exceptions"] = map[string]any{"sender_domain_is": []any{"contoso.com"}}
		}, want: map[string]string{"conditions": "at least one condition"}},
		{name: "empty list", change: func(m map[string]any) { cond(m)["recipient_domain_is"] = []any{} },
			want: map[string]string{"conditions.recipient_domain_is": "the list is empty"}},
		{name: "empty list in exceptions", change: func(m map[string]any) { m["exceptions"] = map[string]any{"sender_ip_ranges": []any{}} },
			want: map[string]string{"exceptions.sender_ip_ranges": "the list is empty"}},
		{name: "empty header_contains", change: func(m map[string]any) { cond(m)["header_contains"] = []any{} },
			want: map[string]string{"conditions.header_contains": "the list is empty"}},
		{name: "empty words", change: func(m map[string]any) {
			cond(m)["header_contains"] = []any{map[string]any{"header": "X-A", "words": []any{}}}
		}, want: map[string]string{"conditions.header_contains[0].words": "the list is empty"}},
		{name: "no words", change: func(m map[string]any) {
			cond(m)["header_contains"] = []any{map[string]any{"header": "X-A"}}
		}, want: map[string]string{"conditions.header_contains[0].words": "enter at least one word"}},
		{name: "blank word", change: func(m map[string]any) {
			cond(m)["header_contains"] = []any{map[string]any{"header": "X-A", "words": []any{"a", " "}}}
		}, want: map[string]string{"conditions.header_contains[0].words[1]": "empty"}},
		{name: "word with a line break", change: func(m map[string]any) {
			cond(m)["header_contains"] = []any{map[string]any{"header": "X-A", "words": []any{"a\r\nb"}}}
		}, want: map[string]string{"conditions.header_contains[0].words[0]": "line break"}},
		{name: "bad sender address", change: func(m map[string]any) { cond(m)["sender_address_is"] = []any{"ok@contoso.com", "not-an-address"} },
			want: map[string]string{"conditions.sender_address_is[1]": `"not-an-address" is not an address`}},
		{name: "bad recipient address", change: func(m map[string]any) { cond(m)["recipient_address_is"] = []any{"a@@b"} },
			want: map[string]string{"conditions.recipient_address_is[0]": "a@@b"}},
		{name: "bad domain", change: func(m map[string]any) { cond(m)["recipient_domain_is"] = []any{"fabrikam.com", "fabrikam"} },
			want: map[string]string{"conditions.recipient_domain_is[1]": "at least two labels"}},
		{name: "wildcard domain", change: func(m map[string]any) { m["exceptions"] = map[string]any{"sender_domain_is": []any{"*.contoso.com"}} },
			want: map[string]string{"exceptions.sender_domain_is[0]": "already matches its subdomains"}},
		{name: "bad IP", change: func(m map[string]any) { cond(m)["sender_ip_ranges"] = []any{"10.0.0.1", "10.0.0.300"} },
			want: map[string]string{"conditions.sender_ip_ranges[1]": `"10.0.0.300" is not an IP address`}},
		{name: "reversed IP range", change: func(m map[string]any) { cond(m)["sender_ip_ranges"] = []any{"10.0.0.9-10.0.0.1"} },
			want: map[string]string{"conditions.sender_ip_ranges[0]": "ends before it starts"}},
		{name: "bad scope", change: func(m map[string]any) { cond(m)["sent_to_scope"] = "internal" },
			want: map[string]string{"conditions.sent_to_scope": `"internal" is not a scope`}},
		{name: "negative size", change: func(m map[string]any) { cond(m)["message_size_over"] = -1 },
			want: map[string]string{"conditions.message_size_over": "cannot be negative"}},
		{name: "empty connector name", change: func(m map[string]any) { cond(m)["inbound_connector_is"] = []any{"a", ""} },
			want: map[string]string{"conditions.inbound_connector_is[1]": "empty"}},
		{name: "header name with a space", change: func(m map[string]any) {
			cond(m)["header_contains"] = []any{map[string]any{"header": "X Class", "words": []any{"a"}}}
		}, want: map[string]string{"conditions.header_contains[0].header": `"X Class" is not a header name`}},
		{name: "header name with a colon", change: func(m map[string]any) {
			cond(m)["header_matches"] = []any{map[string]any{"header": "X:Y", "pattern": "a"}}
		}, want: map[string]string{"conditions.header_matches[0].header": "not a header name"}},
		{name: "no header name", change: func(m map[string]any) {
			cond(m)["header_matches"] = []any{map[string]any{"pattern": "a"}}
		}, want: map[string]string{"conditions.header_matches[0].header": "enter a header name"}},
		{name: "unclosed group", change: func(m map[string]any) {
			cond(m)["header_matches"] = []any{map[string]any{"header": "Subject", "pattern": "(ab"}}
		}, want: map[string]string{"conditions.header_matches[0].pattern": "missing closing ): `(ab` at position 0"}},
		{name: "bad repetition", change: func(m map[string]any) {
			cond(m)["header_matches"] = []any{
				map[string]any{"header": "Subject", "pattern": "ok"},
				map[string]any{"header": "Subject", "pattern": "ab**"}}
		}, want: map[string]string{"conditions.header_matches[1].pattern": "invalid nested repetition operator: `**` at position 2"}},
		{name: "Perl lookahead", change: func(m map[string]any) {
			cond(m)["header_matches"] = []any{map[string]any{"header": "Subject", "pattern": "é(?=x)"}}
		}, want: map[string]string{"conditions.header_matches[0].pattern": "`(?=` at position 1"}},
		{name: "empty pattern", change: func(m map[string]any) {
			cond(m)["header_matches"] = []any{map[string]any{"header": "Subject", "pattern": ""}}
		}, want: map[string]string{"conditions.header_matches[0].pattern": "enter a pattern"}},

		// actions
		{name: "no actions", change: func(m map[string]any) { delete(m, "actions") },
			want: map[string]string{"actions": "choose an action"}},
		{name: "neither action", change: func(m map[string]any) { m["actions"] = map[string]any{"stop_processing": true} },
			want: map[string]string{"actions": "choose an action"}},
		{name: "both actions", change: func(m map[string]any) { acts(m)["reject"] = map[string]any{} },
			want: map[string]string{"actions": "not both"}},
		{name: "connector id 0", change: func(m map[string]any) { acts(m)["route_to_outbound_connector"] = 0 },
			want: map[string]string{"actions.route_to_outbound_connector": "positive number"}},
		{name: "reject code 4xx", change: reject(map[string]any{"code": 450}),
			want: map[string]string{"actions.reject.code": "450 is not a permanent failure code"}},
		{name: "reject code 0", change: reject(map[string]any{"code": 0}),
			want: map[string]string{"actions.reject.code": "from 500 to 599"}},
		{name: "reject code 600", change: reject(map[string]any{"code": 600}),
			want: map[string]string{"actions.reject.code": "from 500 to 599"}},
		{name: "enhanced of another class", change: reject(map[string]any{"code": 550, "enhanced": "4.7.1"}),
			want: map[string]string{"actions.reject.enhanced": "starts with 5"}},
		{name: "enhanced malformed", change: reject(map[string]any{"enhanced": "5.7"}),
			want: map[string]string{"actions.reject.enhanced": `"5.7" is not an enhanced status code`}},
		{name: "enhanced with a leading zero", change: reject(map[string]any{"enhanced": "5.07.1"}),
			want: map[string]string{"actions.reject.enhanced": "not an enhanced status code"}},
		{name: "enhanced with letters", change: reject(map[string]any{"enhanced": "5.x.1"}),
			want: map[string]string{"actions.reject.enhanced": "not an enhanced status code"}},
		{name: "text with CRLF", change: reject(map[string]any{"text": "a\r\n250 ok"}),
			want: map[string]string{"actions.reject.text": "one line"}},
		{name: "text too long", change: reject(map[string]any{"text": strings.Repeat("t", 257)}),
			want: map[string]string{"actions.reject.text": "at most 256"}},
		{name: "text not ASCII", change: reject(map[string]any{"text": "refusé"}),
			want: map[string]string{"actions.reject.text": "ASCII"}},

		// several at once, each under its own key
		{name: "several", change: func(m map[string]any) {
			m["name"] = ""
			m["mode"] = "x"
			cond(m)["sender_ip_ranges"] = []any{"nope"}
			m["actions"] = map[string]any{}
		}, want: map[string]string{"name": "", "mode": "", "conditions.sender_ip_ranges[0]": "", "actions": ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := []byte(c.raw)
			if c.raw == "" {
				b = body(t, c.change)
			}
			_, errs := rules.Parse(b)
			if !slices.Equal(keys(errs), keys(c.want)) {
				t.Fatalf("error keys = %q, want %q\n%v", keys(errs), keys(c.want), errs)
			}
			for k, part := range c.want {
				if !strings.Contains(errs[k], part) {
					t.Errorf("%q: %q does not say %q", k, errs[k], part)
				}
			}
			if len(c.want) > 0 && errs.Err() == nil {
				t.Error("Err() is nil")
			}
		})
	}
}

// A type error inside a key is not followed by Normalize's complaint about
// the (now empty) key or the condition set.
func TestParseTypeErrorHidesConsequences(t *testing.T) {
	_, errs := rules.Parse([]byte(`{"name": "x", "conditions": {"sender_domain_is": 5}, "actions": {"reject": "no"}}`))
	want := []string{"actions.reject", "conditions.sender_domain_is"}
	if !slices.Equal(keys(errs), want) {
		t.Fatalf("keys = %q, want %q: %v", keys(errs), want, errs)
	}
}

func TestNormalizeGoRule(t *testing.T) {
	words := []string{" Secret "}
	rj := &rules.Reject{}
	r := rules.Rule{
		Name:       "x",
		Conditions: rules.Predicates{HeaderContains: []rules.HeaderWords{{Header: "x-a", Words: words}}},
		Actions:    rules.Actions{Reject: rj},
	}
	if errs := r.Normalize(); errs != nil {
		t.Fatalf("Normalize: %v", errs)
	}
	if r.Mode != rules.Enforce || r.OnError != rules.Defer || *r.Actions.Reject != (rules.Reject{550, "5.7.1", "Delivery not authorized, message refused"}) {
		t.Errorf("defaults not filled: %+v", r)
	}
	if r.Conditions.HeaderContains[0].Header != "X-A" || r.Conditions.HeaderContains[0].Words[0] != "Secret" {
		t.Errorf("not canonical: %+v", r.Conditions.HeaderContains)
	}
	if words[0] != " Secret " || *rj != (rules.Reject{}) {
		t.Error("Normalize wrote through the caller's slices or pointers")
	}
	r.Name = ""
	if errs := r.Normalize(); errs["name"] == "" || !strings.HasPrefix(errs.Error(), "invalid rule: name: ") {
		t.Errorf("Normalize errors = %v", errs)
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func ptr[T any](v T) *T { return &v }
