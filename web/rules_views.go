package web

import (
	"fmt"
	"strconv"
	"time"
)

// RuleScopedHint explains the outbound wizard's rule-scoped choice.
const RuleScopedHint = "it then carries mail only through a rule: the messages a mail flow rule routes to it, and no others. After you save it, the Validate step and its page link to creating a rule for it."

// RuleRow is one line of the mail flow rules list.
type RuleRow struct {
	ID       int64
	Priority int
	Name     string
	Comment  string
	Mode     string // enforce or audit
	Enabled  bool
	// Dates says when the rule may act, when its dates bound it
	// ("from 2026-12-01 00:00 UTC until 2026-12-31 00:00 UTC"); Dormant,
	// when its dates keep it from acting now ("expired", "starts later").
	Dates   string
	Dormant string
	// Summary is what the rule does in short plain words: its conditions,
	// its action and its exceptions.
	Summary   string
	CreatedAt time.Time
	UpdatedAt time.Time
	First     bool // priority 0: no Move up
	Last      bool // the last rule: no Move down
}

// Href is the rule's address; its actions are below it.
func (r RuleRow) Href() string { return "/rules/" + strconv.FormatInt(r.ID, 10) }

// Anchor is the id of the rule's row in the list.
func (r RuleRow) Anchor() string { return "rule-" + strconv.FormatInt(r.ID, 10) }

// RulesPage is the mail flow rules list, in priority order.
type RulesPage struct {
	Page
	Rows []RuleRow
}

// HeaderRow is one header condition as typed: a header name and its words
// (comma-separated) or its pattern.
type HeaderRow struct {
	Header string
	Value  string
}

// PredicatesForm is a rule's conditions or its exceptions as typed: one
// text a key, lists one entry a line.
type PredicatesForm struct {
	// Prefix starts the names of the fields: "c" for conditions, "x" for
	// exceptions, so one page holds both.
	Prefix             string
	SenderAddressIs    string
	SenderDomainIs     string
	RecipientAddressIs string
	RecipientDomainIs  string
	FromScope          string // "", in_organization, not_in_organization
	SentToScope        string
	SenderIPRanges     string
	HeaderContains     []HeaderRow
	HeaderMatches      []HeaderRow
	MessageSizeOver    string
	InboundConnectorIs string
}

// Name is the form field name of a key ("c_sender_domain_is"); it is also
// the key of the field's error.
func (p PredicatesForm) Name(key string) string { return p.Prefix + "_" + key }

// RowName is the field name of part ("header", "words", "pattern") of row
// i of a header key ("hc" for header_contains, "hm" for header_matches).
func (p PredicatesForm) RowName(key, part string, i int) string {
	return fmt.Sprintf("%s_%s_%s_%d", p.Prefix, key, part, i)
}

// Set reports whether any key has a value.
func (p PredicatesForm) Set() bool {
	for _, s := range []string{p.SenderAddressIs, p.SenderDomainIs, p.RecipientAddressIs, p.RecipientDomainIs,
		p.FromScope, p.SentToScope, p.SenderIPRanges, p.MessageSizeOver, p.InboundConnectorIs} {
		if s != "" {
			return true
		}
	}
	for _, rows := range [][]HeaderRow{p.HeaderContains, p.HeaderMatches} {
		for _, r := range rows {
			if r.Header != "" || r.Value != "" {
				return true
			}
		}
	}
	return false
}

// RuleForm is the new and edit form of a mail flow rule, as typed.
type RuleForm struct {
	Name     string
	Comment  string
	Enabled  bool
	Mode     string // enforce or audit
	Priority string // empty: last (new rule) or where it is (edit)
	// ActivationDate and ExpiryDate are UTC, as a datetime-local input
	// holds them: 2026-12-03T09:00.
	ActivationDate string
	ExpiryDate     string
	Conditions     PredicatesForm
	Exceptions     PredicatesForm
	Action         string // route or reject
	Connector      string // the outbound connector's id, for route
	RejectCode     string
	RejectEnhanced string
	RejectText     string
	StopProcessing bool
	OnError        string // defer or ignore
	PreviewSince   string // the preview's window: 1h, 24h, 7d
}

// RuleFormPage is the form that creates or edits a mail flow rule, with
// the preview of the draft when one was asked for.
type RuleFormPage struct {
	Page
	ID              int64  // the rule being edited; 0: a new rule
	EditName        string // the rule's name before this edit
	CurrentPriority int    // the edited rule's priority now
	Form            RuleForm
	Errors          Errors   // by field name
	FormErrors      []string // problems no field shows
	Connectors      []Option // outbound connectors, labelled with what they carry
	PreviewWindows  []Option
	Preview         *RulePreview
}

// Action is where the form posts: the page's own address.
func (p RuleFormPage) Action() string {
	if p.ID == 0 {
		return "/rules/new"
	}
	return fmt.Sprintf("/rules/%d/edit", p.ID)
}

// RulePreview is what the draft would have changed in the traced mail of
// a recent window.
type RulePreview struct {
	Window      string // "24 hours"
	Considered  int
	Matched     int
	Undecidable int
	Changed     []PreviewChange
	Total       int  // changed recipients, also those not listed
	Truncated   bool // Changed lists only the first of Total
	// Note says why the draft would change nothing: it is off, or in
	// audit mode.
	Note string
}

// PreviewChange is one recipient whose route the draft would change.
type PreviewChange struct {
	MessageID string
	Recipient string
	Before    string // "“Legal gateway” (by rule “Legal”)", "MX (no rule)"
	After     string
	Rejected  bool
}
