// Package rules is flowgate's mail flow rule model and engine (SPEC 7).
//
// The model is Rule, in the JSON shape of the API and of storage. Parse
// decodes a rule body strictly and Normalize canonicalizes and validates a
// Rule, both answering FieldErrors keyed by JSON path. What needs the
// database is left to the store: that an outbound connector id exists and
// is an outbound connector, that names and priorities are unique, and
// where a rule without a priority goes.
//
// The engine is Set: Compile builds one from the stored rules, once per
// configuration change; Evaluate then decides, per recipient of a message
// and without I/O, the route or rejection the rules impose and the audit
// hits they record; Explain does the same and also says, rule by rule, why
// each rule did or did not apply. A Set is immutable and safe for
// concurrent use. The package is pure Go: no database, HTTP or SMTP.
package rules

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Mode says whether a rule acts (enforce) or only records what it would
// have done (audit).
type Mode string

const (
	Enforce Mode = "enforce"
	Audit   Mode = "audit"
)

// OnError says what delivery does when the connector a rule routes to
// cannot be used (disabled, no active revision).
type OnError string

const (
	// Defer answers 451 4.4.0 with the reason; the message is retried.
	Defer OnError = "defer"
	// Ignore routes as if the rule had not matched.
	Ignore OnError = "ignore"
)

// Scope is the value of from_scope and sent_to_scope.
type Scope string

const (
	// InOrganization: for the sender, the message came through an
	// on_premises inbound connector; for a recipient, its domain is an
	// accepted domain.
	InOrganization    Scope = "in_organization"
	NotInOrganization Scope = "not_in_organization"
)

// Defaults of a reject action (SPEC 7).
const (
	DefaultRejectCode     = 550
	DefaultRejectEnhanced = "5.7.1"
	DefaultRejectText     = "Delivery not authorized, message refused"
)

// Limits on what an admin can enter.
const (
	MaxNameLen       = 64   // rule name, inbound connector name, in characters
	MaxCommentLen    = 1024 // characters
	MaxListLen       = 1000 // entries in one key, words in one header_contains entry
	MaxHeaderNameLen = 100  // bytes
	MaxWordLen       = 256  // characters
	MaxPatternLen    = 1024 // bytes
	MaxRejectTextLen = 256  // bytes; SMTP reply lines are short
)

// Rule is a mail flow rule (SPEC 7). The zero values of Mode, OnError and
// of the reject fields stand for their defaults; Normalize fills them in.
type Rule struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	// Priority 0 runs first. Nil means "last": the store gives such a
	// rule the next free priority; Compile runs it after every rule with
	// a priority.
	Priority       *int       `json:"priority"`
	Enabled        bool       `json:"enabled"`
	Mode           Mode       `json:"mode"`
	Comment        string     `json:"comment"`
	ActivationDate *time.Time `json:"activation_date"`
	ExpiryDate     *time.Time `json:"expiry_date"`
	Conditions     Predicates `json:"conditions"`
	Exceptions     Predicates `json:"exceptions"`
	Actions        Actions    `json:"actions"`
	OnError        OnError    `json:"on_error"`
	// CreatedAt and UpdatedAt are set by the store; Parse reads them only
	// so that a rule read from the API can be sent back as it is.
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// Predicates are a rule's conditions or exceptions. Values inside one key
// are ORed; for conditions the keys are ANDed, for exceptions any key that
// holds excepts the message. Unset keys are nil (or empty, or zero) and are
// left out of the JSON.
type Predicates struct {
	SenderAddressIs    []string        `json:"sender_address_is,omitempty"`
	SenderDomainIs     []string        `json:"sender_domain_is,omitempty"`
	RecipientAddressIs []string        `json:"recipient_address_is,omitempty"`
	RecipientDomainIs  []string        `json:"recipient_domain_is,omitempty"`
	FromScope          Scope           `json:"from_scope,omitempty"`
	SentToScope        Scope           `json:"sent_to_scope,omitempty"`
	SenderIPRanges     []string        `json:"sender_ip_ranges,omitempty"`
	HeaderContains     []HeaderWords   `json:"header_contains,omitempty"`
	HeaderMatches      []HeaderPattern `json:"header_matches,omitempty"`
	MessageSizeOver    *int64          `json:"message_size_over,omitempty"`
	InboundConnectorIs []string        `json:"inbound_connector_is,omitempty"`
}

// HeaderWords holds when a field named Header has a decoded value that
// contains one of the words, ignoring case.
type HeaderWords struct {
	Header string   `json:"header"`
	Words  []string `json:"words"`
}

// HeaderPattern holds when a field named Header has a decoded value that
// the RE2 pattern matches. The pattern is case-sensitive unless it starts
// with (?i).
type HeaderPattern struct {
	Header  string `json:"header"`
	Pattern string `json:"pattern"`
}

// Actions is what a rule does: exactly one of RouteToOutboundConnector and
// Reject, and optionally StopProcessing.
type Actions struct {
	RouteToOutboundConnector *int64  `json:"route_to_outbound_connector"`
	Reject                   *Reject `json:"reject"`
	StopProcessing           bool    `json:"stop_processing"`
}

// Reject is the SMTP reply a rejected recipient gets.
type Reject struct {
	Code     int    `json:"code"`
	Enhanced string `json:"enhanced"`
	Text     string `json:"text"`
}

// String gives the reply as it is sent: "550 5.7.1 Delivery not authorized…".
func (r Reject) String() string { return fmt.Sprintf("%d %s %s", r.Code, r.Enhanced, r.Text) }

// ActiveAt reports whether now falls within the rule's dates:
// activation_date <= now < expiry_date, an absent date bounding nothing.
func (r *Rule) ActiveAt(now time.Time) bool {
	return (r.ActivationDate == nil || !now.Before(*r.ActivationDate)) &&
		(r.ExpiryDate == nil || now.Before(*r.ExpiryDate))
}

// FieldErrors maps a JSON path ("name", "conditions.sender_ip_ranges[1]",
// "actions.reject.code") to a message an admin can act on. Problems with
// the body as a whole (not JSON, not an object) are keyed "".
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
		if k == "" {
			parts[i] = f[k]
		} else {
			parts[i] = k + ": " + f[k]
		}
	}
	return "invalid rule: " + strings.Join(parts, "; ")
}

// Err returns f as an error, or nil when it is empty.
func (f FieldErrors) Err() error {
	if len(f) == 0 {
		return nil
	}
	return f
}
