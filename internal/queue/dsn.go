package queue

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime/quotedprintable"
	"strings"
	"time"
)

// Failure is one recipient a DSN reports.
type Failure struct {
	Recipient string
	Status    string // enhanced status code, e.g. 5.1.1 (4.4.7: the queue lifetime ran out)
	RemoteMTA string // host that answered, if any
	Diagnosis string // the reply, e.g. "550 5.1.1 no such user"
}

// dsnMessageID is the Message-ID of the DSN for the message uid.
func dsnMessageID(uid, hostname string) string { return "<dsn-" + uid + "@" + hostname + ">" }

// BuildDSN writes an RFC 3464 delivery status notification
// (multipart/report; report-type=delivery-status) for failures of the
// message original, from the null sender to the original envelope sender.
// It returns the complete message with CRLF line endings.
func BuildDSN(hostname, uid string, arrival time.Time, sender string, original []byte, failures []Failure, now time.Time) []byte {
	var bnd [12]byte
	_, _ = rand.Read(bnd[:])
	boundary := "flowgate-dsn-" + hex.EncodeToString(bnd[:])
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\r\n", args...) }
	w("From: Mail Delivery System <MAILER-DAEMON@%s>", hostname)
	w("To: <%s>", sender)
	w("Subject: Undelivered Mail Returned to Sender")
	w("Date: %s", now.Format(time.RFC1123Z))
	w("Message-ID: %s", dsnMessageID(uid, hostname))
	w("Auto-Submitted: auto-replied")
	w("MIME-Version: 1.0")
	w("Content-Type: multipart/report; report-type=delivery-status; boundary=\"%s\"", boundary)
	w("")
	w("This is a MIME-encapsulated delivery status notification.")
	w("")
	w("--%s", boundary)
	w("Content-Type: text/plain; charset=utf-8")
	w("Content-Transfer-Encoding: quoted-printable")
	w("")
	var human bytes.Buffer
	fmt.Fprintf(&human, "This is the mail gateway at %s.\r\n\r\nYour message (queue id %s, received %s) could not be delivered to the following recipients:\r\n\r\n",
		hostname, uid, arrival.UTC().Format(time.RFC1123Z))
	for _, f := range failures {
		fmt.Fprintf(&human, "<%s>: %s\r\n", f.Recipient, f.Diagnosis)
	}
	qp := quotedprintable.NewWriter(&b)
	_, _ = qp.Write(human.Bytes())
	_ = qp.Close()
	w("")
	w("--%s", boundary)
	w("Content-Type: message/delivery-status")
	w("")
	w("Reporting-MTA: dns; %s", hostname)
	w("X-Flowgate-Queue-ID: %s", uid)
	w("Arrival-Date: %s", arrival.UTC().Format(time.RFC1123Z))
	for _, f := range failures {
		w("")
		w("Final-Recipient: rfc822; %s", f.Recipient)
		w("Action: failed")
		w("Status: %s", f.Status)
		if f.RemoteMTA != "" {
			w("Remote-MTA: dns; %s", f.RemoteMTA)
		}
		w("Diagnostic-Code: smtp; %s", oneLine(f.Diagnosis))
		w("Last-Attempt-Date: %s", now.Format(time.RFC1123Z))
	}
	w("")
	w("--%s", boundary)
	w("Content-Type: text/rfc822-headers")
	w("")
	b.Write(headerSection(original))
	w("--%s--", boundary)
	return b.Bytes()
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\r", " ")
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 900 {
		s = s[:900]
	}
	return s
}

// headerSection returns the header block of a message, CRLF-terminated.
func headerSection(msg []byte) []byte {
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[:i+2]
	}
	if len(msg) > 0 && !bytes.HasSuffix(msg, []byte("\r\n")) {
		return append(append([]byte{}, msg...), '\r', '\n')
	}
	return msg
}
