package smtp

// flowgate addition (see FLOWGATE-PATCH.md): the client side of command
// pipelining, RFC 2920.

import (
	"errors"
	"time"
)

// Envelope is what the server answered to the MAIL, RCPT and DATA commands
// of one transaction sent by SendEnvelope.
type Envelope struct {
	// Mail is the server's refusal of MAIL FROM, nil if it was accepted.
	Mail error
	// Rcpt holds one entry per recipient, in order: the server's refusal,
	// or nil if the recipient was accepted. Empty when MAIL was refused
	// without pipelining (the recipients were not sent).
	Rcpt []error
	// Data is the open DATA command when the server accepted DATA (354)
	// for at least one accepted recipient: write the content to it and
	// close it, as with Client.Data. Nil otherwise.
	Data *DataCommand
	// DataErr is the server's refusal of DATA, nil if DATA was accepted
	// or not sent.
	DataErr error
}

// errEmptyData is the reply of a server that accepted DATA although MAIL or
// every recipient had been refused.
var errEmptyData = errors.New("smtp: the server accepted DATA without an accepted sender and recipient; an empty message was ended")

// SendEnvelope starts a transaction: MAIL FROM, a RCPT TO for each
// recipient and DATA. When the server advertised PIPELINING, the commands
// go in one write and the replies are read afterwards, in order (DATA is
// the last command of the group, as RFC 2920 requires), which saves two
// round trips and one more per extra recipient. Otherwise they are sent
// one at a time: no RCPT after a refused MAIL, no DATA without an accepted
// recipient.
//
// Server refusals are reported in the Envelope, as *SMTPError. A non-nil
// error means the exchange failed (a network error, an unparsable reply,
// an argument that cannot be sent); the connection should not be reused.
//
// After an Envelope without Data, the server's transaction state should be
// cleared with Reset before the next transaction.
func (c *Client) SendEnvelope(from string, mopts *MailOptions, rcpts []string) (*Envelope, error) {
	if err := validateLine(from); err != nil {
		return nil, err
	}
	for _, to := range rcpts {
		if err := validateLine(to); err != nil {
			return nil, err
		}
	}
	if err := c.hello(); err != nil {
		return nil, err
	}
	if _, ok := c.ext["PIPELINING"]; !ok {
		return c.sendEnvelopeInTurn(from, mopts, rcpts)
	}

	lines := make([]string, 0, len(rcpts)+2)
	line, err := c.mailCommand(from, mopts)
	if err != nil {
		return nil, err
	}
	lines = append(lines, line)
	for _, to := range rcpts {
		line, err := c.rcptCommand(to, nil)
		if err != nil {
			return nil, err
		}
		lines = append(lines, line)
	}
	lines = append(lines, "DATA")

	c.conn.SetDeadline(time.Now().Add(c.CommandTimeout))
	defer c.conn.SetDeadline(time.Time{})
	for _, line := range lines {
		if _, err := c.text.W.WriteString(line + "\r\n"); err != nil {
			return nil, err
		}
	}
	if err := c.text.W.Flush(); err != nil {
		return nil, err
	}

	env := &Envelope{Rcpt: make([]error, len(rcpts))}
	// reply reads the next reply: a refusal goes into *refused, anything
	// else that fails ends the exchange.
	reply := func(expect int, refused *error) error {
		_, _, err := c.readResponse(expect)
		if _, ok := err.(*SMTPError); ok {
			*refused = err
			return nil
		}
		return err
	}
	if err := reply(250, &env.Mail); err != nil {
		return nil, err
	}
	c.rcpts = nil
	for i, to := range rcpts {
		if err := reply(25, &env.Rcpt[i]); err != nil {
			return nil, err
		}
		if env.Mail == nil && env.Rcpt[i] == nil {
			c.rcpts = append(c.rcpts, to)
		}
	}
	if err := reply(354, &env.DataErr); err != nil {
		return nil, err
	}
	if env.DataErr != nil {
		return env, nil
	}
	data := &DataCommand{client: c, wc: c.text.DotWriter()}
	if env.Mail != nil || len(c.rcpts) == 0 {
		// A server that should have refused DATA: end an empty message
		// at once, and report DATA as refused.
		if _, err := data.CloseWithResponse(); err != nil {
			if _, ok := err.(*SMTPError); !ok {
				return nil, err
			}
		}
		env.DataErr = errEmptyData
		return env, nil
	}
	env.Data = data
	return env, nil
}

// sendEnvelopeInTurn is SendEnvelope for a server without PIPELINING.
func (c *Client) sendEnvelopeInTurn(from string, mopts *MailOptions, rcpts []string) (*Envelope, error) {
	env := &Envelope{}
	if err := c.Mail(from, mopts); err != nil {
		if _, ok := err.(*SMTPError); !ok {
			return nil, err
		}
		env.Mail = err
		return env, nil
	}
	env.Rcpt = make([]error, len(rcpts))
	accepted := 0
	for i, to := range rcpts {
		if err := c.Rcpt(to, nil); err != nil {
			if _, ok := err.(*SMTPError); !ok {
				return nil, err
			}
			env.Rcpt[i] = err
			continue
		}
		accepted++
	}
	if accepted == 0 {
		return env, nil
	}
	data, err := c.Data()
	if err != nil {
		if _, ok := err.(*SMTPError); !ok {
			return nil, err
		}
		env.DataErr = err
		return env, nil
	}
	env.Data = data
	return env, nil
}

// WriteRaw writes p to the connection's buffered writer as it is, past the
// dot writer that Write goes through, so that content prepared in bulk goes
// out in the same write as the rest of the content and the end marker
// (flowgate addition). p must be whole lines ending in CRLF and already
// dot-stuffed, and it must come before anything written with Write: the
// dot writer then still stands at the start of a line, as after p.
func (cmd *DataCommand) WriteRaw(p []byte) (int, error) {
	return cmd.client.text.W.Write(p)
}
