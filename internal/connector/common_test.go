package connector_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
)

// The rules of the fields every connector has, checked through both
// directions' Normalize.
func TestCommonFields(t *testing.T) {
	tests := []struct {
		name     string
		mutate   func(c *connector.Common)
		wantName string // the name after Normalize, when valid
		fields   []string
	}{
		{name: "name is trimmed", mutate: func(c *connector.Common) { c.Name = "  My connector \t" }, wantName: "My connector"},
		{name: "64 characters", mutate: func(c *connector.Common) { c.Name = strings.Repeat("n", 64) }, wantName: strings.Repeat("n", 64)},
		{name: "64 CJK characters count as 64", mutate: func(c *connector.Common) { c.Name = strings.Repeat("连", 64) }, wantName: strings.Repeat("连", 64)},
		{name: "empty name", mutate: func(c *connector.Common) { c.Name = "" }, fields: []string{"name"}},
		{name: "blank name", mutate: func(c *connector.Common) { c.Name = " \t " }, fields: []string{"name"}},
		{name: "65 characters", mutate: func(c *connector.Common) { c.Name = strings.Repeat("n", 65) }, fields: []string{"name"}},
		{name: "65 CJK characters", mutate: func(c *connector.Common) { c.Name = strings.Repeat("连", 65) }, fields: []string{"name"}},
		{name: "control character in name", mutate: func(c *connector.Common) { c.Name = "bad\x07name" }, fields: []string{"name"}},
		{name: "newline in name", mutate: func(c *connector.Common) { c.Name = "two\nlines" }, fields: []string{"name"}},
		{name: "invalid UTF-8 in name", mutate: func(c *connector.Common) { c.Name = "bad\xffname" }, fields: []string{"name"}},
		{name: "1024 character comment", mutate: func(c *connector.Common) { c.Comment = strings.Repeat("c", 1024) }},
		{name: "1025 character comment", mutate: func(c *connector.Common) { c.Comment = strings.Repeat("c", 1025) }, fields: []string{"comment"}},
		{name: "invalid UTF-8 in comment", mutate: func(c *connector.Common) { c.Comment = "\xff" }, fields: []string{"comment"}},
		{name: "missing connector_type", mutate: func(c *connector.Common) { c.ConnectorType = "" }, fields: []string{"connector_type"}},
		{name: "unknown connector_type", mutate: func(c *connector.Common) { c.ConnectorType = "cloud" }, fields: []string{"connector_type"}},
	}
	for _, tt := range tests {
		t.Run("inbound/"+tt.name, func(t *testing.T) {
			s := onPremByIP()
			tt.mutate(&s.Common)
			errs := s.Normalize()
			checkFields(t, errs, tt.fields...)
			if tt.wantName != "" && s.Name != tt.wantName {
				t.Errorf("Name = %q, want %q", s.Name, tt.wantName)
			}
		})
		t.Run("outbound/"+tt.name, func(t *testing.T) {
			s := onPremContoso()
			tt.mutate(&s.Common)
			errs := s.Normalize()
			checkFields(t, errs, tt.fields...)
			if tt.wantName != "" && s.Name != tt.wantName {
				t.Errorf("Name = %q, want %q", s.Name, tt.wantName)
			}
		})
	}
}

func TestFieldErrors(t *testing.T) {
	t.Run("empty is no error", func(t *testing.T) {
		if err := (connector.FieldErrors{}).Err(); err != nil {
			t.Errorf("Err() = %v, want nil", err)
		}
	})
	t.Run("lists fields in a stable order", func(t *testing.T) {
		f := connector.FieldErrors{"smart_hosts": "enter a host", "name": "enter a name", "comment": "too long"}
		want := "invalid connector: comment: too long; name: enter a name; smart_hosts: enter a host"
		for range 5 { // map order varies between runs; the text must not
			if got := f.Error(); got != want {
				t.Fatalf("Error() = %q, want %q", got, want)
			}
		}
		var fe connector.FieldErrors
		if err := f.Err(); !errors.As(err, &fe) || len(fe) != 3 {
			t.Errorf("Err() = %v, want the FieldErrors back", err)
		}
	})
	t.Run("a field keeps its first message", func(t *testing.T) {
		// Two bad list entries: the admin sees the first.
		s := onPremContoso()
		s.RecipientDomains = []string{"first..bad", "second..bad"}
		errs := s.Normalize()
		if msg := errs["recipient_domains"]; !strings.Contains(msg, "first..bad") {
			t.Errorf("recipient_domains error = %q, want it to name the first bad entry", msg)
		}
	})
}

func TestDirection(t *testing.T) {
	var in connector.Spec = &connector.InboundSpec{}
	var out connector.Spec = &connector.OutboundSpec{}
	if in.Direction() != connector.Inbound || out.Direction() != connector.Outbound {
		t.Errorf("directions = %q, %q; want inbound, outbound", in.Direction(), out.Direction())
	}
	for _, d := range []connector.Direction{connector.Inbound, connector.Outbound} {
		if !d.Valid() {
			t.Errorf("%q.Valid() = false", d)
		}
	}
	if connector.Direction("sideways").Valid() {
		t.Error(`"sideways".Valid() = true`)
	}
}
