package smtp

// flowgate addition (see FLOWGATE-PATCH.md): sessions may learn about MAIL
// and RCPT commands the server refused before the session saw them.

// RefusalObserver is an optional interface for a Session. When the server
// refuses a MAIL or RCPT command itself because it cannot parse its
// address or parameters (501 5.5.2, 501 5.5.4), it calls CommandRefused
// with the command ("MAIL" or "RCPT"), the command's whole argument as the
// client sent it, and the reply it is about to send. A gateway that traces
// every refused attempt needs these: otherwise they never reach it.
type RefusalObserver interface {
	CommandRefused(command, arg string, reply *SMTPError)
}

// refuseCommand tells the session about a refused command, then sends the
// reply.
func (c *Conn) refuseCommand(command, arg string, code int, enhCode EnhancedCode, text string) {
	if o, ok := c.Session().(RefusalObserver); ok {
		o.CommandRefused(command, arg, &SMTPError{Code: code, EnhancedCode: enhCode, Message: text})
	}
	c.writeResponse(code, enhCode, text)
}
