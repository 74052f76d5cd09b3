package web

import (
	"strconv"
	"time"
)

// TraceSearchPage is the message trace's search: the filters, one page of
// messages, newest first, and paging.
type TraceSearchPage struct {
	Page
	Filter  TraceFilterForm
	Errors  Errors // by query parameter: "sender", "recipient", "status", "connector", "from", "to", "page"
	Rows    []TraceRow
	Older   string // the link to the older page, "" on the last
	Newest  string // the link back to the newest page, "" on it
	Showing string
}

// TraceFilterForm is the search form: the values as typed and the choices.
type TraceFilterForm struct {
	Sender, Recipient, Status, Connector, From, To string
	Statuses                                       []Option
	Inbound, Outbound                              []Option // connector names, by direction
	Other                                          []Option // a connector no longer in the store
	Filtered                                       bool
}

// TraceRow is one message of the search results.
type TraceRow struct {
	Href       string
	UID        string
	At         time.Time
	Sender     string
	Recipients string // the first few, comma-separated
	More       int    // how many more recipients
	Status     string
	Inbound    string // the inbound connector, "" for none
	Outbound   []string
}

// MoreText is "and 3 more", "" when none.
func (r TraceRow) MoreText() string {
	if r.More <= 0 {
		return ""
	}
	return "and " + strconv.Itoa(r.More) + " more"
}

// StatusClass is the badge class for a message or recipient status.
func StatusClass(status string) string {
	switch status {
	case "delivered":
		return "active"
	case "queued":
		return "validated"
	case "deferred":
		return "draft"
	case "bounced", "rejected":
		return "failed"
	}
	return "disabled"
}

// TraceMessagePage is one message's trace: header, attribution,
// recipients and timeline.
type TraceMessagePage struct {
	Page
	UID         string
	Facts       []Fact // the header, in order
	Status      string
	Attribution []Span // the inbound connector and why, as a sentence
	Recipients  []TraceRecipientView
	Events      []TraceEventView
	Later       string // the link to the next page of events, "" at the end
	First       string // the link back to the first events, "" on them
}

// Fact is one line of a definition list; Title is a hint shown on hover.
type Fact struct {
	Label, Value string
	Mono         bool
}

// TraceRecipientView is one recipient of a traced message.
type TraceRecipientView struct {
	Address     string
	Status      string
	Route       string // the connector's name, "MX lookup", …
	RouteHref   string
	Rule        string // the mail flow rule that chose the route, "" for none
	RouteReason string
	Attempts    int
	LastReply   string
}

// AttemptsText is "1 attempt", "3 attempts" or "no attempts".
func (r TraceRecipientView) AttemptsText() string {
	switch r.Attempts {
	case 0:
		return "no attempts"
	case 1:
		return "1 attempt"
	}
	return strconv.Itoa(r.Attempts) + " attempts"
}

// TraceEventView is one event of the timeline.
type TraceEventView struct {
	At     time.Time
	Type   string // as stored: received, attempt, …
	Label  string // in words: "Delivery attempt"
	Detail string
	Tone   string // "ok", "warn", "bad" or "" for the marker
}

// EventTime is the event's time to the millisecond.
func EventTime(t time.Time) string { return t.UTC().Format("15:04:05.000") }

// EventDate is the event's day, shown when it differs from the previous
// event's.
func EventDate(t time.Time) string { return t.UTC().Format("2006-01-02") }
