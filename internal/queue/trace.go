package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/flowgate/flowgate/internal/store"
)

// TraceRecipient is one recipient in a message trace.
type TraceRecipient struct {
	Address     string `json:"address"`
	Status      Status `json:"status"`
	Connector   string `json:"connector"`
	RouteReason string `json:"route_reason"`
	Attempts    int    `json:"attempts"`
	LastReply   string `json:"last_reply"`
}

// TraceEvent is one event in a message trace.
type TraceEvent struct {
	At     time.Time `json:"at"`
	Type   string    `json:"type"`
	Detail string    `json:"detail"`
}

// TraceTLS is how the message arrived.
type TraceTLS struct {
	Version           string `json:"version"`
	Cipher            string `json:"cipher"`
	ClientCertificate string `json:"client_certificate"`
}

// Trace is a message as the trace shows it (SPEC 5, message shape).
type Trace struct {
	ID               string           `json:"id"`
	ReceivedAt       time.Time        `json:"received_at"`
	ClientIP         string           `json:"client_ip"`
	Helo             string           `json:"helo"`
	TLS              *TraceTLS        `json:"tls"`
	Sender           string           `json:"sender"`
	MessageID        string           `json:"message_id"`
	Size             int64            `json:"size"`
	InboundConnector string           `json:"inbound_connector"`
	Attribution      string           `json:"attribution"`
	Reply            string           `json:"reply"`
	Status           Status           `json:"status"`
	Attempts         int              `json:"attempts"`
	NextAttemptAt    *time.Time       `json:"next_attempt_at,omitempty"`
	Recipients       []TraceRecipient `json:"recipients"`
	Events           []TraceEvent     `json:"events,omitempty"`
	// Next, when set, is the events_after cursor for the message's next
	// events: GetTrace returns them a page at a time.
	Next int64 `json:"next,omitempty"`
}

// EventPage selects a page of a message's events: those after the cursor
// After (0: from the first), at most Limit (0: DefaultTraceEvents; never
// more than MaxTraceEvents).
type EventPage struct {
	After int64
	Limit int
}

// The number of events GetTrace returns at once.
const (
	DefaultTraceEvents = 500
	MaxTraceEvents     = 500
)

// TraceFilter narrows a trace search; empty fields match everything.
type TraceFilter struct {
	Sender    string // exact address, or "@domain" for a whole domain
	Recipient string // exact address, or "@domain"
	Status    Status
	// Connector matches the inbound connector's name or any recipient's
	// outbound connector's name, case-insensitively.
	Connector string
	From, To  time.Time // received at, inclusive from, exclusive to
	BeforeID  int64     // pagination: only messages older than this internal id
	Limit     int
}

// ErrNoMessage is returned for an unknown message id.
var ErrNoMessage = errors.New("no such message")

func toTrace(r *messageRow) Trace {
	t := Trace{ID: r.UID, ReceivedAt: FromMicros(r.ReceivedAt), ClientIP: r.ClientIP, Helo: r.Helo, Sender: r.Sender,
		MessageID: r.MessageIDHeader, Size: r.Size, InboundConnector: r.InboundConnector, Attribution: r.Attribution,
		Reply: r.Reply, Status: r.Status, Attempts: r.Attempts, Recipients: []TraceRecipient{}}
	if r.TLSVersion != "" || r.ClientCert != "" {
		t.TLS = &TraceTLS{Version: r.TLSVersion, Cipher: r.TLSCipher, ClientCertificate: r.ClientCert}
	}
	if r.NextAttemptAt != nil && (r.Status == Queued || r.Status == Deferred) {
		n := FromMicros(*r.NextAttemptAt)
		t.NextAttemptAt = &n
	}
	return t
}

// likeAddress is the comparison for an address filter: equality, or for
// "@domain" a LIKE on the suffix, with the LIKE wildcards % and _ (and the
// escape character) in the filter escaped so they match only themselves.
func likeAddress(v string) (string, string) {
	v = strings.ToLower(strings.TrimSpace(v))
	if strings.HasPrefix(v, "@") {
		return `LIKE ? ESCAPE '\'`, "%" + likeEscaper.Replace(v)
	}
	return "= ?", v
}

var likeEscaper = strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`)

// SearchTrace returns messages matching f, newest first, with their
// recipients (not their events). The second result is the internal id to
// pass as BeforeID for the next page (0 at the end).
func SearchTrace(ctx context.Context, st *store.Store, f TraceFilter) ([]Trace, int64, error) {
	q := st.DB().WithContext(ctx).Model(&messageRow{}).Order("id DESC")
	if f.Sender != "" {
		op, v := likeAddress(f.Sender)
		q = q.Where("LOWER(sender) "+op, v)
	}
	if f.Recipient != "" {
		op, v := likeAddress(f.Recipient)
		q = q.Where("id IN (SELECT message_id FROM message_recipients WHERE LOWER(address) "+op+")", v)
	}
	if f.Status != "" {
		q = q.Where("status = ?", f.Status)
	}
	if name := strings.ToLower(strings.TrimSpace(f.Connector)); name != "" {
		q = q.Where("(LOWER(inbound_connector) = ? OR id IN (SELECT message_id FROM message_recipients WHERE LOWER(connector) = ?))", name, name)
	}
	if !f.From.IsZero() {
		q = q.Where("received_at >= ?", Micros(f.From))
	}
	if !f.To.IsZero() {
		q = q.Where("received_at < ?", Micros(f.To))
	}
	if f.BeforeID > 0 {
		q = q.Where("id < ?", f.BeforeID)
	}
	limit := f.Limit
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	var rows []messageRow
	if err := q.Limit(limit).Find(&rows).Error; err != nil {
		return nil, 0, fmt.Errorf("search trace: %w", err)
	}
	out := make([]Trace, len(rows))
	if len(rows) == 0 {
		return out, 0, nil
	}
	ids := make([]int64, len(rows))
	pos := map[int64]int{}
	for i := range rows {
		out[i] = toTrace(&rows[i])
		ids[i] = rows[i].ID
		pos[rows[i].ID] = i
	}
	var rcpts []recipientRow
	if err := st.DB().WithContext(ctx).Where("message_id IN ?", ids).Order("id").Find(&rcpts).Error; err != nil {
		return nil, 0, fmt.Errorf("search trace recipients: %w", err)
	}
	for _, r := range rcpts {
		i := pos[r.MessageID]
		out[i].Recipients = append(out[i].Recipients, TraceRecipient{Address: r.Address, Status: r.Status, Connector: r.Connector,
			RouteReason: r.RouteReason, Attempts: r.Attempts, LastReply: r.LastReply})
	}
	var next int64
	if len(rows) == limit {
		next = rows[len(rows)-1].ID
	}
	return out, next, nil
}

// GetTrace returns one message with its recipients and its first page of
// events.
func GetTrace(ctx context.Context, st *store.Store, uid string) (*Trace, error) {
	return GetTracePage(ctx, st, uid, EventPage{})
}

// GetTracePage returns one message with its recipients and the page p of
// its events; Trace.Next is set when more events follow.
func GetTracePage(ctx context.Context, st *store.Store, uid string, p EventPage) (*Trace, error) {
	db := st.DB().WithContext(ctx)
	var row messageRow
	err := db.Where("uid = ?", uid).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNoMessage
	}
	if err != nil {
		return nil, fmt.Errorf("load message: %w", err)
	}
	t := toTrace(&row)
	var rcpts []recipientRow
	if err := db.Where("message_id = ?", row.ID).Order("id").Find(&rcpts).Error; err != nil {
		return nil, fmt.Errorf("load recipients: %w", err)
	}
	for _, r := range rcpts {
		t.Recipients = append(t.Recipients, TraceRecipient{Address: r.Address, Status: r.Status, Connector: r.Connector,
			RouteReason: r.RouteReason, Attempts: r.Attempts, LastReply: r.LastReply})
	}
	limit := p.Limit
	if limit <= 0 {
		limit = DefaultTraceEvents
	}
	limit = min(limit, MaxTraceEvents)
	var evs []eventRow
	if err := db.Where("message_id = ? AND id > ?", row.ID, p.After).Order("id").Limit(limit + 1).Find(&evs).Error; err != nil {
		return nil, fmt.Errorf("load events: %w", err)
	}
	if len(evs) > limit {
		evs = evs[:limit]
		t.Next = evs[limit-1].ID
	}
	t.Events = []TraceEvent{}
	for _, e := range evs {
		t.Events = append(t.Events, TraceEvent{At: FromMicros(e.At), Type: e.Type, Detail: e.Detail})
	}
	return &t, nil
}
