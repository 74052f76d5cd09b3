package relay

import (
	"fmt"

	"github.com/emersion/go-smtp"
)

// Reply is an SMTP reply the relay sends: code, enhanced code and a text
// that is safe to show the client. Every refusal is built here, so codes
// stay consistent; the cause for the logs and trace travels separately.
type Reply struct {
	Code     int
	Enhanced [3]int
	Text     string
}

func (r Reply) String() string {
	return fmt.Sprintf("%d %d.%d.%d %s", r.Code, r.Enhanced[0], r.Enhanced[1], r.Enhanced[2], r.Text)
}

// Err converts the reply to the error go-smtp turns into a response.
func (r Reply) Err() *smtp.SMTPError {
	return &smtp.SMTPError{Code: r.Code, EnhancedCode: smtp.EnhancedCode(r.Enhanced), Message: r.Text}
}

// The replies the relay sends.
func replyRestriction(text string) Reply {
	return Reply{550, [3]int{5, 7, 51}, "Restriction failed: " + text}
}

var (
	replyRelayDenied   = Reply{550, [3]int{5, 7, 64}, "Relay access denied"}
	replyBadSender     = Reply{501, [3]int{5, 1, 7}, "Bad sender address syntax"}
	replyBadRecipient  = Reply{501, [3]int{5, 1, 3}, "Bad recipient address syntax"}
	replyTooBig        = Reply{552, [3]int{5, 3, 4}, "Message size exceeds fixed maximum message size"}
	replyLoop          = Reply{554, [3]int{5, 4, 6}, "Routing loop detected: too many Received headers"}
	replyLineTooLong   = Reply{554, [3]int{5, 6, 0}, "Message contains a line that is too long"}
	replyTempFailure   = Reply{451, [3]int{4, 3, 0}, "Temporary failure storing the message; please try again"}
	replyDataTimeout   = Reply{451, [3]int{4, 4, 2}, "Timeout while reading the message data"}
	replyTooManyConns  = Reply{421, [3]int{4, 7, 0}, "Too many connections; try again later"}
	replyTooManyFromIP = Reply{421, [3]int{4, 7, 0}, "Too many connections from your IP address; try again later"}
	replyShuttingDown  = Reply{421, [3]int{4, 3, 2}, "Service shutting down; try again later"}
)

func replyQueued(uid string) Reply {
	return Reply{250, [3]int{2, 0, 0}, "OK: queued as " + uid}
}
