// Package queue is flowgate's durable message queue and message trace.
//
// Accepting. The relay hands every accepted message to a Writer, which
// commits it — envelope, attribution, recipients with their routes, trace
// events and the body — before Enqueue returns; only then does the relay
// answer 250. One committer goroutine group-commits: it takes the first
// waiting message and every other one already waiting (up to a batch
// limit) into one transaction, so one commit's fsync is shared by the
// batch. Rejected messages are traced through the same path without
// waiting. Times are stored as Unix microseconds (UTC), so that SQLite and
// PostgreSQL compare them alike. Each engine's SQL sits behind the dialect
// interface (dialect.go), chosen once in the constructors.
//
// Delivering. Workers deliver queued messages; the rules in one place:
//
//   - Lease. A process delivers a message only while it holds the
//     message's lease (lease_owner, lease_until = now + Lease, default
//     FLOWGATE_DELIVERY_LEASE 5m). It takes leases by claiming due
//     messages (status queued or deferred, next attempt reached, no lease
//     or an expired one) in one statement, FOR UPDATE SKIP LOCKED on
//     PostgreSQL, so processes never wait for or take each other's live
//     claims. A message this process accepts while it has a free delivery
//     slot is committed already leased to it and handed over in memory
//     (handover.go): no claim, no second read of the body.
//   - Renewal. Every Lease/3 the workers extend the leases of the messages
//     they are delivering, so a slow delivery keeps its claim; recording an
//     outcome releases it. At shutdown a process waits for its deliveries
//     (up to a grace time) and releases every lease it still holds.
//   - At-least-once. A lease that runs out (the process died, or could not
//     renew) lets any process claim the message again. An outcome is
//     recorded only after the delivery, so a process that dies between the
//     next hop's 250 and the record delivers that message again: at least
//     once, never zero times. On SQLite, one process serves the database
//     and releases every lease it finds at start (ReleaseOrphanedLeases).
//   - Recording. Outcomes are committed in groups (record.go); while the
//     database is away they are retried with backoff for up to half a
//     lease, so a restart or failover does not turn into redeliveries.
//   - Backoff. After n failed attempts (n ≥ 1) the next attempt is
//     RetrySchedule[min(n, len)-1] later (default 1m, 5m, 15m, 30m, 1h;
//     the last repeats: NextRetry). A 5xx bounces a recipient at once; a
//     recipient still deferred when the message's lifetime
//     (FLOWGATE_QUEUE_LIFETIME, default 48h) has passed bounces with
//     4.4.7. Bounced recipients get one DSN, queued like any message (for
//     the queue lifetime) from the null sender; a bounce never bounces.
package queue

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/routing"
)

// Status is a message's or recipient's state.
type Status string

const (
	Queued    Status = "queued"
	Delivered Status = "delivered"
	Deferred  Status = "deferred"
	Bounced   Status = "bounced"
	Rejected  Status = "rejected"
)

// Micros converts a time to the stored form.
func Micros(t time.Time) int64 { return t.UnixMicro() }

// FromMicros converts the stored form to a time.
func FromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// Message is one message as received, for Enqueue and Trace.
type Message struct {
	UID                string
	ReceivedAt         time.Time
	Status             Status // Queued for accepted mail, Rejected for refused mail
	ClientIP           string
	Helo               string
	TLSVersion         string
	TLSCipher          string
	ClientCert         string
	Sender             string
	MessageIDHeader    string
	InboundConnectorID *int64
	InboundConnector   string
	InboundRevision    *int
	Attribution        string
	Reply              string
	ExpiresAt          time.Time
	Recipients         []Recipient
	Events             []Event
	// Header is the message's header section, kept with the trace for a
	// rule preview's replay (nil: not kept).
	Header []byte
	Body   []byte // nil for rejected mail, and for content stored in pieces
	// Chunks is the number of pieces of the content already stored by a
	// Spool (a large message, chunks.go), Size their total length; Body
	// is nil then.
	Chunks int
	Size   int64
}

// hasContent reports whether m carries content to deliver.
func (m *Message) hasContent() bool { return m.Body != nil || m.Chunks > 0 }

// contentSize is the length of m's content.
func (m *Message) contentSize() int64 {
	if m.Chunks > 0 {
		return m.Size
	}
	return int64(len(m.Body))
}

// Recipient is one envelope recipient.
type Recipient struct {
	Address     string
	Status      Status
	ConnectorID *int64
	Connector   string
	RouteReason string
	LastReply   string
	Rule        RuleRoute // set when a mail flow rule chose the route
}

// RuleRoute is a mail flow rule's routing decision for a recipient, made
// once when the message was received (SPEC 7) and honoured by every
// delivery attempt: the connector, and what to do when it cannot be used.
type RuleRoute struct {
	Rule        string // the rule's name; "" when no rule routes the recipient
	ConnectorID *int64
	OnError     string // "defer" or "ignore"
}

var uidEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewUID is a new message's queue id: 16 random lowercase letters and
// digits, for the relay's messages and the DSNs the queue writes alike.
func NewUID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return uidEncoding.EncodeToString(b[:])
}

// NewRecipient is a queued recipient with its route: the connector that
// carries it (none for MX delivery or a deferral) and why.
func NewRecipient(address string, route routing.Route) Recipient {
	rc := Recipient{Address: address, Status: Queued}
	rc.ConnectorID, rc.Connector, rc.RouteReason = routeFields(route)
	return rc
}

// routeFields are the columns that record a recipient's route.
func routeFields(route routing.Route) (connectorID *int64, connector, reason string) {
	if c := route.Connector; c != nil {
		id := c.ID
		return &id, c.Name, route.Reason
	}
	return nil, "", route.Reason
}

// domainOf is the domain of an address (everything after the last @).
func domainOf(address string) string { return address[strings.LastIndexByte(address, '@')+1:] }

// Event is one trace entry.
type Event struct {
	At     time.Time
	Type   string // received, rejected, recipient_rejected, routed, …
	Detail string
}
