package web

import (
	"fmt"
	"strconv"
	"time"
)

// QueuePage is the queue: waiting mail per connector and next hop, with
// the controls, and the waiting messages (of one connector, when
// filtered), oldest first.
type QueuePage struct {
	Page
	Total    int64
	Rows     []QueueRow
	Warnings []string // held mail about to reach the queue lifetime
	// Filter is the connector the message list is narrowed to ("" all);
	// FilterName names it.
	Filter     string
	FilterName string
	Messages   []QueueMessage
	More       string // link to the next page of messages; "" none
	First      string // link back to the first page; "" on it
	Back       string // this page's URL, where actions return
}

// QueueRow is one connector and next hop.
type QueueRow struct {
	ConnectorID int64 // 0: no connector (MX delivery)
	Connector   string
	Href        string // the connector's page; "" none
	NextHop     string
	Queued      int64
	Deferred    int64
	Held        int64
	Oldest      *time.Time
	LastError   string
	HeldSince   *time.Time
	HeldBy      string
	Messages    string // the link to its waiting messages
}

// HeldText says since when and by whom the connector is held.
func (r QueueRow) HeldText() string {
	if r.HeldSince == nil {
		return ""
	}
	return "on hold since " + When(*r.HeldSince) + " by " + r.HeldBy
}

// QueueMessage is one waiting message.
type QueueMessage struct {
	UID        string
	Href       string // its trace
	ReceivedAt time.Time
	Sender     string
	Status     string
	Attempts   int
	Next       *time.Time
	Expires    *time.Time
	InFlight   bool
	Held       bool // every waiting recipient waits for a held connector
	Recipients []QueueRecipient
}

// QueueRecipient is a waiting message's recipient.
type QueueRecipient struct {
	Address   string
	Status    string
	Connector string
	LastReply string
}

// NextText says when the next attempt is due.
func (m QueueMessage) NextText() string {
	if m.InFlight {
		return "being delivered now"
	}
	if m.Held {
		return "held: waits for the release"
	}
	if m.Next == nil {
		return ""
	}
	d := time.Until(*m.Next)
	if d <= 0 {
		return "due now"
	}
	return "in " + Age(d)
}

// Ago says how long ago t was ("3 h 12 min ago").
func Ago(t time.Time) string {
	return Age(time.Since(t)) + " ago"
}

// Age is a duration in the largest two units that matter.
func Age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + " s"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + " min"
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d days %d h", int(d.Hours())/24, int(d.Hours())%24)
}
