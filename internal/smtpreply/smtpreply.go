// Package smtpreply is an SMTP reply as a value — code, enhanced status
// code and text — for the replies flowgate sends (the relay) and the ones
// it receives (delivery), so that neither side reads a code back out of
// a string.
package smtpreply

import (
	"errors"
	"fmt"

	"github.com/emersion/go-smtp"
)

// Reply is an SMTP reply. Code 0 is an outcome without a reply from a
// server (a connection refused, a TLS policy failure): only its Text
// says what happened. A zero Enhanced is a reply without an enhanced
// status code (RFC 3463).
type Reply struct {
	Code     int
	Enhanced [3]int
	Text     string
}

// String is the reply as it is sent, traced and stored:
// "550 5.1.1 no such user", "250 ok", or the text alone for Code 0.
func (r Reply) String() string {
	switch {
	case r.Code == 0:
		return r.Text
	case r.Enhanced == [3]int{}:
		return fmt.Sprintf("%d %s", r.Code, r.Text)
	}
	return fmt.Sprintf("%d %d.%d.%d %s", r.Code, r.Enhanced[0], r.Enhanced[1], r.Enhanced[2], r.Text)
}

// Permanent reports a 5xx reply: the recipient bounces, no retry.
func (r Reply) Permanent() bool { return r.Code >= 500 }

// Status is the enhanced status code a DSN reports for the reply: its
// own, or the class of its code (4.0.0, 5.0.0) when it has none.
func (r Reply) Status() string {
	switch {
	case r.Enhanced != [3]int{}:
		return fmt.Sprintf("%d.%d.%d", r.Enhanced[0], r.Enhanced[1], r.Enhanced[2])
	case r.Code >= 400 && r.Code < 500:
		return "4.0.0"
	}
	return "5.0.0"
}

// Err converts the reply to the error go-smtp's server turns into a
// response.
func (r Reply) Err() *smtp.SMTPError {
	return &smtp.SMTPError{Code: r.Code, EnhancedCode: smtp.EnhancedCode(r.Enhanced), Message: r.Text}
}

// FromError is the reply an SMTP client error carries: a server's reply
// (*smtp.SMTPError) with its codes, anything else as Code 0 with the
// error's text.
func FromError(err error) Reply {
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		return Reply{Text: err.Error()}
	}
	r := Reply{Code: se.Code, Text: se.Message}
	if e := se.EnhancedCode; e != smtp.NoEnhancedCode {
		r.Enhanced = [3]int(e)
	}
	return r
}
