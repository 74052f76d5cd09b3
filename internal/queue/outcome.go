package queue

import (
	"fmt"
	"time"
)

// job is one claimed message with everything needed to deliver it.
type job struct {
	msg    messageRow
	rcpts  []*recipientRow // every recipient; pending ones are queued or deferred
	body   []byte          // the content in memory; nil when it is in pieces
	chunks int             // the pieces of a large message's content (chunks.go)
}

// outcome is the record of one delivery pass, committed in groups.
type outcome struct {
	msg        *messageRow
	rcpts      []*recipientRow // the recipients this pass handled
	events     []eventRow
	status     Status
	attempts   int // the message's delivery attempts after this pass
	next       *int64
	dsn        *Message
	deleteBody bool
	chunkedUID string // the uid of a finished large message, whose pieces go
}

// NextRetry is the delay before the retry that follows `attempts` failed
// attempts (attempts ≥ 1): the schedule's entry, the last one repeating.
func NextRetry(schedule []time.Duration, attempts int) time.Duration {
	i := attempts - 1
	if i < 0 {
		i = 0
	}
	if i >= len(schedule) {
		i = len(schedule) - 1
	}
	return schedule[i]
}

// pass is what one delivery pass over a message did.
type pass struct {
	events    []eventRow
	attempted bool          // some recipient was attempted (or deferred for want of a route)
	postponed time.Duration // some recipient waits this long for its destination (destinations.go)
}

// postpone notes that a recipient waits d for its destination; the
// message is due again after the shortest such wait.
func (p *pass) postpone(d time.Duration) {
	if p.postponed == 0 || d < p.postponed {
		p.postponed = d
	}
}

// outcomeOf decides what a delivery pass means: which recipients bounced
// (a 5xx, or the queue lifetime ran out), whether the message is finished,
// when to retry, and the DSN for newly bounced recipients.
func (wk *Workers) outcomeOf(msg *messageRow, rcpts []*recipientRow, priorBounced bool, original func() []byte, p *pass) *outcome {
	now := time.Now()
	expired := msg.ExpiresAt != nil && Micros(now) >= *msg.ExpiresAt
	var failures []Failure
	pending := 0
	bounced := priorBounced
	for _, rc := range rcpts {
		if rc.Status == Deferred && expired {
			rc.Status = Bounced
			rc.LastReply = "queue lifetime expired; last reply: " + rc.LastReply
			failures = append(failures, Failure{Recipient: rc.Address, Status: "4.4.7", Diagnosis: rc.LastReply})
			bounced = true
			continue
		}
		switch rc.Status {
		case Bounced:
			failures = append(failures, Failure{Recipient: rc.Address, Status: rc.reply.Status(), Diagnosis: rc.LastReply})
			bounced = true
		case Deferred, Queued:
			pending++
		}
	}
	o := &outcome{msg: msg, rcpts: rcpts, events: p.events, attempts: msg.Attempts}
	if p.attempted {
		o.attempts++
	}
	switch {
	case pending > 0 && !p.attempted:
		// Only postponed: not an attempt, so no backoff and no new status.
		o.status = msg.Status
		n := Micros(now.Add(p.postponed))
		o.next = &n
	case pending > 0:
		o.status = Deferred
		next := now.Add(NextRetry(wk.cfg.RetrySchedule, o.attempts))
		if soon := now.Add(p.postponed); p.postponed > 0 && soon.Before(next) {
			next = soon
		}
		n := Micros(next)
		o.next = &n
	default:
		o.status, o.deleteBody = finalStatus(bounced), true
	}
	ev := func(typ, detail string) {
		o.events = append(o.events, eventRow{MessageID: msg.ID, At: Micros(now), Type: typ, Detail: detail})
	}
	if len(failures) > 0 {
		ev("bounced", fmt.Sprintf("%d recipient(s) failed permanently", len(failures)))
		if msg.Sender != "" {
			o.dsn = wk.dsnFor(msg, original(), failures, now)
			ev("dsn", "delivery status notification "+o.dsn.UID+" queued to "+msg.Sender)
		} else {
			ev("dsn", "no DSN: the message has the null sender (a bounce never bounces)")
		}
	}
	if pending == 0 {
		ev(string(o.status), "final")
	}
	return o
}

// dsnFor builds the bounce message for failures, addressed to the sender
// and routed like any other message.
func (wk *Workers) dsnFor(msg *messageRow, body []byte, failures []Failure, now time.Time) *Message {
	uid := NewUID()
	data := BuildDSN(wk.cfg.Hostname, msg.UID, FromMicros(msg.ReceivedAt), msg.Sender, body, failures, now)
	rc := NewRecipient(msg.Sender, wk.live.Index().Route(domainOf(msg.Sender)))
	return &Message{
		UID: uid, ReceivedAt: now, Status: Queued, ClientIP: "local", Helo: wk.cfg.Hostname, Sender: "",
		MessageIDHeader: dsnMessageID(msg.UID, wk.cfg.Hostname), Attribution: "delivery status notification for " + msg.UID,
		Reply: "generated", ExpiresAt: now.Add(wk.cfg.Lifetime), Recipients: []Recipient{rc}, Body: data,
		Events: []Event{{At: now, Type: "received", Detail: fmt.Sprintf("DSN for %s: %d failed recipient(s)", msg.UID, len(failures))}},
	}
}
