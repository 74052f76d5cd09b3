package relay

import (
	"fmt"
	"strings"

	"github.com/flowgate/flowgate/internal/queue"
)

// What a client may make the relay store. Everything a client sends that
// ends up in the trace or the logs is bounded, so an unauthenticated
// client cannot grow the database faster than it sends mail:
//
//   - the error limit (Postfix's smtpd_hard_error_limit): a session may be
//     refused DefaultMaxErrors commands (MAIL, RCPT, DATA, AUTH); the next
//     refused command is answered 421 4.7.0 and the connection is closed;
//   - a HELO/EHLO name longer than maxHeloLength is refused with 501 5.5.2
//     at the first greeting; a later EHLO in the same session (go-smtp does
//     not ask the session) is kept truncated, with a marker;
//   - an address longer than maxAddressLength is refused (501 5.1.7 for
//     the sender, 501 5.1.3 for a recipient) and kept truncated;
//   - the detail of a trace event is at most maxEventDetail bytes;
//   - a message's trace keeps at most maxRecipientEvents per-recipient
//     events; the rest are counted in one summary event.
const (
	DefaultMaxErrors   = 20
	maxHeloLength      = 255 // RFC 5321 4.5.3.1.2: a domain is at most 255 octets
	maxAddressLength   = 320 // 64 + "@" + 255
	maxEventDetail     = 1000
	maxRecipientEvents = 100
	truncatedMarker    = "…(truncated)"
)

var (
	replyTooManyErrors = Reply{Code: 421, Enhanced: [3]int{4, 7, 0}, Text: "Too many errors; closing the connection"}
	replyHeloTooLong   = Reply{Code: 501, Enhanced: [3]int{5, 5, 2}, Text: "HELO/EHLO name too long"}
	replySenderTooLong = Reply{Code: 501, Enhanced: [3]int{5, 1, 7}, Text: "Sender address too long"}
	replyRcptTooLong   = Reply{Code: 501, Enhanced: [3]int{5, 1, 3}, Text: "Recipient address too long"}
)

// clip bounds a client-supplied string kept in the trace or the logs:
// longer than max bytes, it is cut (at a UTF-8 boundary) and marked.
func clip(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && cut < len(s) && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + truncatedMarker
}

// errorLimit counts a session's refused commands.
type errorLimit struct {
	max     int
	count   int
	tripped bool // the 421 was sent: every later command gets it too, untraced
}

// refuse counts a refused command and says whether the limit is now
// exceeded, in which case the command's reply is replyTooManyErrors.
func (e *errorLimit) refuse() bool {
	if e.tripped {
		return true
	}
	e.count++
	e.tripped = e.count > e.max
	return e.tripped
}

// limitText is the trace event of the tripped limit.
func (e *errorLimit) limitText() string {
	return fmt.Sprintf("more than %d refused commands in this session: %s, connection closed", e.max, replyTooManyErrors)
}

// recipientEvent reports whether typ is one of the per-recipient events
// maxRecipientEvents bounds.
func recipientEvent(typ string) bool {
	switch typ {
	case "recipient_accepted", "recipient_rejected", "rule", "rule_audit", "rule_rejected":
		return true
	}
	return false
}

// summaryEvents are the events that stand for those left out of a trace.
func (tx *transaction) summaryEvents() []queue.Event {
	var out []queue.Event
	for _, k := range []struct{ typ, what string }{
		{"recipient_rejected", "refused recipients"},
		{"recipient_accepted", "accepted recipients (see the recipients)"},
		{"rule", "recipients routed by mail flow rules (see the recipients)"},
		{"rule_audit", "audit rule matches"},
		{"rule_rejected", "recipients rejected by mail flow rules (see the recipients)"},
	} {
		if n := tx.omitted[k.typ]; n > 0 {
			out = append(out, queue.Event{At: tx.lastEvent, Type: "events_omitted",
				Detail: fmt.Sprintf("… and %s more %s", thousands(n), k.what)})
		}
	}
	return out
}

// thousands writes n with comma separators: 99,990.
func thousands(n int) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
