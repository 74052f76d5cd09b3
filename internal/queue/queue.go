// Package queue is flowgate's durable message queue and message trace.
//
// Implementation summary. The relay hands every accepted message to a
// Writer, which commits it — envelope, attribution, recipients with their
// routes, trace events and the body — to the database before Enqueue
// returns; only then does the relay answer 250. Writes are group-committed:
// one committer goroutine takes the first waiting
// message and every other one already waiting (up to a batch limit) and
// inserts them all in one transaction, so the cost of a commit (an fsync)
// is shared by every message in the batch and the database is not the
// bottleneck. Rejected messages are traced through the same path without
// waiting. All times are stored as Unix microseconds (UTC) so that SQLite
// and PostgreSQL compare them alike.
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
	Body               []byte // nil for rejected mail
}

// Recipient is one envelope recipient.
type Recipient struct {
	Address     string
	Status      Status
	ConnectorID *int64
	Connector   string
	RouteReason string
	LastReply   string
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
