package relay

import (
	"github.com/flowgate/flowgate/internal/smtpreply"
)

// Reply is an SMTP reply the relay sends: code, enhanced code and a text
// that is safe to show the client. Every refusal is built here, so codes
// stay consistent; the cause for the logs and trace travels separately.
type Reply = smtpreply.Reply

// The replies the relay sends.
func replyRestriction(text string) Reply {
	return Reply{Code: 550, Enhanced: [3]int{5, 7, 51}, Text: "Restriction failed: " + text}
}

// replyOwnDomain refuses a sender in one of our domains from a stranger
// (SPEC 3.3).
func replyOwnDomain(text string) Reply {
	return Reply{Code: 550, Enhanced: [3]int{5, 7, 1}, Text: text}
}

var (
	replyRelayDenied   = Reply{Code: 550, Enhanced: [3]int{5, 7, 64}, Text: "Relay access denied"}
	replyBadSender     = Reply{Code: 501, Enhanced: [3]int{5, 1, 7}, Text: "Bad sender address syntax"}
	replyBadRecipient  = Reply{Code: 501, Enhanced: [3]int{5, 1, 3}, Text: "Bad recipient address syntax"}
	replyTooBig        = Reply{Code: 552, Enhanced: [3]int{5, 3, 4}, Text: "Message size exceeds fixed maximum message size"}
	replyLoop          = Reply{Code: 554, Enhanced: [3]int{5, 4, 6}, Text: "Routing loop detected: too many Received headers"}
	replyLineTooLong   = Reply{Code: 554, Enhanced: [3]int{5, 6, 0}, Text: "Message contains a line that is too long"}
	replyTempFailure   = Reply{Code: 451, Enhanced: [3]int{4, 3, 0}, Text: "Temporary failure storing the message; please try again"}
	replyDataTimeout   = Reply{Code: 451, Enhanced: [3]int{4, 4, 2}, Text: "Timeout while reading the message data"}
	replyTooManyConns  = Reply{Code: 421, Enhanced: [3]int{4, 7, 0}, Text: "Too many connections; try again later"}
	replyTooManyFromIP = Reply{Code: 421, Enhanced: [3]int{4, 7, 0}, Text: "Too many connections from your IP address; try again later"}
	replyShuttingDown  = Reply{Code: 421, Enhanced: [3]int{4, 3, 2}, Text: "Service shutting down; try again later"}
)

func replyQueued(uid string) Reply {
	return Reply{Code: 250, Enhanced: [3]int{2, 0, 0}, Text: "OK: queued as " + uid}
}
