// Package connector is flowgate's connector model: the settings of inbound
// and outbound connectors (SPEC section 1), their field and cross-field
// validation, and the identity used to refuse overlapping connectors. It is
// pure Go: no database, HTTP or SMTP.
package connector

import (
	"fmt"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Direction says which way mail crosses a connector.
type Direction string

const (
	Inbound  Direction = "inbound"
	Outbound Direction = "outbound"
)

// Valid reports whether d is a known direction.
func (d Direction) Valid() bool { return d == Inbound || d == Outbound }

// Type is connector_type.
type Type string

const (
	Partner    Type = "partner"
	OnPremises Type = "on_premises"
)

// TLSSettings is an outbound connector's tls_settings.
type TLSSettings string

const (
	TLSOpportunistic         TLSSettings = "opportunistic"
	TLSEncryptionOnly        TLSSettings = "encryption_only"
	TLSCertificateValidation TLSSettings = "certificate_validation"
	TLSDomainValidation      TLSSettings = "domain_validation"
)

// RequiresTLS reports whether mail under this setting must go over TLS:
// every setting but opportunistic (the default, also when empty).
func (s TLSSettings) RequiresTLS() bool { return s != "" && s != TLSOpportunistic }

// Limits on sizes an admin can enter.
const (
	MaxNameLen    = 64
	MaxCommentLen = 1024
	MaxListLen    = 1000
)

// FieldErrors maps a JSON field name to a message an admin can act on.
type FieldErrors map[string]string

func (f FieldErrors) add(field, format string, args ...any) {
	if _, ok := f[field]; !ok {
		f[field] = fmt.Sprintf(format, args...)
	}
}

// Error makes FieldErrors an error; fields are listed in a stable order.
func (f FieldErrors) Error() string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + f[k]
	}
	return "invalid connector: " + strings.Join(parts, "; ")
}

// Err returns f as an error, or nil when it is empty.
func (f FieldErrors) Err() error {
	if len(f) == 0 {
		return nil
	}
	return f
}

// Common holds the fields every connector has. Enabled is not part of a
// revision: turning a connector on or off takes effect at once.
type Common struct {
	Name          string `json:"name"`
	Comment       string `json:"comment"`
	ConnectorType Type   `json:"connector_type"`
}

// Spec is the content of one revision of a connector of either direction.
type Spec interface {
	Direction() Direction
	Base() *Common
	// Normalize canonicalizes the fields in place and returns what is wrong
	// with them; an empty result means the spec is valid.
	Normalize() FieldErrors
}

func (c *Common) normalize(errs FieldErrors) {
	c.Name = strings.TrimSpace(c.Name)
	switch n := utf8.RuneCountInString(c.Name); {
	case n == 0:
		errs.add("name", "enter a name")
	case n > MaxNameLen:
		errs.add("name", "the name is %d characters long; at most %d are allowed", n, MaxNameLen)
	case strings.IndexFunc(c.Name, unicode.IsControl) >= 0:
		errs.add("name", "the name contains a control character")
	case !utf8.ValidString(c.Name):
		errs.add("name", "the name is not valid UTF-8")
	}
	c.Comment = strings.TrimSpace(c.Comment)
	if n := utf8.RuneCountInString(c.Comment); n > MaxCommentLen {
		errs.add("comment", "the comment is %d characters long; at most %d are allowed", n, MaxCommentLen)
	} else if !utf8.ValidString(c.Comment) {
		errs.add("comment", "the comment is not valid UTF-8")
	}
	switch c.ConnectorType {
	case Partner, OnPremises:
	case "":
		errs.add("connector_type", "choose partner or on_premises")
	default:
		errs.add("connector_type", "%q is not a connector type; choose partner or on_premises", c.ConnectorType)
	}
}

// normalizeList runs parse on every entry, replaces the list with the
// canonical forms (duplicates removed, order kept) and reports the first bad
// entry under field.
func normalizeList[T any](list *[]string, field string, errs FieldErrors, parse func(string) (T, error), text func(T) string) []T {
	if len(*list) > MaxListLen {
		errs.add(field, "at most %d entries are allowed", MaxListLen)
		return nil
	}
	out := make([]T, 0, len(*list))
	canon := make([]string, 0, len(*list))
	seen := make(map[string]bool, len(*list))
	for _, raw := range *list {
		if strings.TrimSpace(raw) == "" {
			continue
		}
		v, err := parse(raw)
		if err != nil {
			errs.add(field, "%s", err.Error())
			continue
		}
		k := text(v)
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, v)
		canon = append(canon, k)
	}
	*list = canon
	return out
}
