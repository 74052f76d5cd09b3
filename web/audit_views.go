package web

import (
	"time"

	"github.com/a-h/templ"
)

// AuditLogPage is the audit log: filters, one page of changes, paging.
type AuditLogPage struct {
	Page
	Filter  AuditFilterForm
	Errors  Errors // by query parameter: "actor", "object", "action", "connector", "from", "to", "page"
	Rows    []AuditLogRow
	Newer   string // the link to the newer page, "" on the first
	Older   string // the link to the older page, "" on the last
	Showing string // "Newest 50 changes", for the screen reader and the eye
}

// AuditFilterForm is the filter form: the values as typed and the choices.
type AuditFilterForm struct {
	Actor, Object, Action, Connector, From, To string
	Actors, Objects, Actions, Connectors       []Option
	Filtered                                   bool // any filter is set
}

// AuditLogRow is one change, told as a sentence.
type AuditLogRow struct {
	At       time.Time
	Sentence []Span
	Changes  []AuditChange // a changed setting per line: Field: Old → New
	Settings []AuditChange // a new connector's settings (New only), folded away
}

// AuditChange is one changed setting. Old and New may be shortened for the
// row; OldFull and NewFull are the whole values, shown on hover. A List
// change has the items removed in Old and those added in New.
type AuditChange struct {
	Field            string
	Old, New         string
	OldFull, NewFull string
	List             bool
}

// Span is a piece of a sentence: plain text, a name in bold, or a link.
type Span struct {
	Text   string
	Href   string // a link when set
	Strong bool
	Title  string // the full text or a hint, shown on hover when it differs from Text
}

// AuditTime is the short form of an entry's time: "2026-12-03 05:41 UTC".
func AuditTime(t time.Time) string { return When(t) }

// AuditFullTime is the full time for the title attribute.
func AuditFullTime(t time.Time) string {
	return t.UTC().Format("Monday 2 January 2006, 15:04:05 UTC")
}

// fullText is a title attribute with the full text, when the shown text
// is shorter.
func fullText(shown, full string) templ.Attributes {
	if full == "" || full == shown {
		return nil
	}
	return templ.Attributes{"title": full}
}
