package connector_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
)

// checkErr fails the test unless err matches the expectation: nil when
// wantErr is empty, otherwise an error whose text contains wantErr.
// It reports whether the call succeeded, so callers only inspect results
// of successful parses.
func checkErr(t *testing.T, input string, err error, wantErr string) (ok bool) {
	t.Helper()
	switch {
	case wantErr == "" && err != nil:
		t.Fatalf("parse(%q): unexpected error: %v", input, err)
	case wantErr != "" && err == nil:
		t.Fatalf("parse(%q): succeeded, want an error containing %q", input, wantErr)
	case wantErr != "" && !strings.Contains(err.Error(), wantErr):
		t.Fatalf("parse(%q): error %q does not contain %q", input, err, wantErr)
	}
	return err == nil
}

// fieldKeys returns the sorted field names of errs.
func fieldKeys(errs connector.FieldErrors) []string {
	keys := make([]string, 0, len(errs))
	for k := range errs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// checkFields fails the test unless errs names exactly the fields in want,
// each with a non-empty message.
func checkFields(t *testing.T, errs connector.FieldErrors, want ...string) {
	t.Helper()
	want = slices.Clone(want)
	slices.Sort(want)
	if got := fieldKeys(errs); !slices.Equal(got, want) {
		t.Fatalf("error fields = %v, want %v (errors: %v)", got, want, errs)
	}
	for k, msg := range errs {
		if strings.TrimSpace(msg) == "" {
			t.Errorf("field %q has an empty message", k)
		}
	}
}
