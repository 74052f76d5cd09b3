package queue

import "github.com/flowgate/flowgate/internal/smtpreply"

type messageRow struct {
	ID                 int64 `gorm:"primaryKey"`
	UID                string
	ReceivedAt         int64
	Status             Status
	ClientIP           string
	Helo               string
	TLSVersion         string
	TLSCipher          string
	ClientCert         string
	Sender             string
	MessageIDHeader    string
	Size               int64
	InboundConnectorID *int64
	InboundConnector   string
	InboundRevision    *int
	Attribution        string
	Reply              string
	NextAttemptAt      *int64
	ExpiresAt          *int64
	Attempts           int
	LeaseOwner         *string
	LeaseUntil         *int64
	UpdatedAt          int64
}

func (messageRow) TableName() string { return "messages" }

type bodyRow struct {
	MessageID int64 `gorm:"primaryKey;autoIncrement:false"`
	Data      []byte
}

func (bodyRow) TableName() string { return "message_bodies" }

type recipientRow struct {
	ID          int64 `gorm:"primaryKey"`
	MessageID   int64
	Address     string
	Status      Status
	ConnectorID *int64
	Connector   string
	RouteReason string
	Attempts    int
	LastReply   string
	UpdatedAt   int64

	Rule            string // the mail flow rule that chose the route, if any
	RuleConnectorID *int64
	RuleOnError     string

	reply  smtpreply.Reply // this delivery pass's reply, typed (not stored; LastReply is its text)
	viaTLS bool            // this pass delivered it over TLS (not stored; for the connector statistics)
}

func (recipientRow) TableName() string { return "message_recipients" }

type eventRow struct {
	ID        int64 `gorm:"primaryKey"`
	MessageID int64
	At        int64
	Type      string
	Detail    string
}

func (eventRow) TableName() string { return "message_events" }

// headerRow is a traced message's header section (migration 00011).
type headerRow struct {
	MessageID int64 `gorm:"primaryKey;autoIncrement:false"`
	Section   string
}

func (headerRow) TableName() string { return "message_headers" }

// ruleRoute is the recipient's rule decision, as the relay recorded it.
func (r *recipientRow) ruleRoute() RuleRoute {
	return RuleRoute{Rule: r.Rule, ConnectorID: r.RuleConnectorID, OnError: r.RuleOnError}
}
