package validation

// The wording of step details: what happened, in an admin's words. The
// raw replies and errors go to the transcript unchanged; a detail quotes
// a server's own text and says whose it is, and gives durations in
// seconds ("0.4 s", "30 s").

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/flowgate/flowgate/internal/delivery"
)

// seconds says how long d is, in seconds: "0.4 s", "2.5 s", "30 s".
func seconds(d time.Duration) string {
	switch {
	case d < 50*time.Millisecond:
		return "under 0.1 s"
	case d < 10*time.Second:
		s := fmt.Sprintf("%.1f", d.Seconds())
		return strings.TrimSuffix(s, ".0") + " s"
	}
	return fmt.Sprintf("%d s", int(d.Round(time.Second).Seconds()))
}

// enhancedRE matches an enhanced status code (RFC 3463) at the start of a
// reply's text.
var enhancedRE = regexp.MustCompile(`^[245]\.[0-9]{1,3}\.[0-9]{1,3}\b`)

// splitReply splits a (multi-line) SMTP reply into its codes ("550
// 5.1.1") and its text, the lines joined by spaces.
func splitReply(msg string) (codes, text string) {
	var texts []string
	for i, line := range strings.Split(msg, "\n") {
		if len(line) < 3 {
			continue
		}
		if i == 0 {
			codes = line[:3]
		}
		rest := ""
		if len(line) > 4 {
			rest = strings.TrimSpace(line[4:])
		}
		if e := enhancedRE.FindString(rest); e != "" {
			if i == 0 {
				codes += " " + e
			}
			rest = strings.TrimSpace(rest[len(e):])
		}
		if rest != "" {
			texts = append(texts, rest)
		}
	}
	return codes, strings.Join(texts, " ")
}

// quoted is someone else's text, made safe to show on one line and
// marked as a quotation.
func quoted(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 160 {
		s = string(r[:160]) + "…"
	}
	return "“" + s + "”"
}

// reply words an SMTP reply: its codes, then its text quoted and
// attributed to who: `550 5.1.1 (the server said: “no such user”)`.
func reply(who, msg string) string {
	codes, text := splitReply(msg)
	if text == "" {
		return codes
	}
	if codes == "" {
		return who + " said: " + quoted(text)
	}
	return codes + " (" + who + " said: " + quoted(text) + ")"
}

// said is only the quoted, attributed text of a reply, without its
// codes: `the server said: “mx.contoso.com ESMTP”`; "" if it has none.
func said(who, msg string) string {
	if _, text := splitReply(msg); text != "" {
		return who + " said: " + quoted(text)
	}
	return ""
}

// netProblem words what went wrong on a connection to host while flowgate
// waited for something (missing says what did not come: "no greeting").
// window is how long flowgate waited; byRun says it was the run's own
// time limit that ended the wait.
func netProblem(host, missing string, err error, window time.Duration, byRun bool) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || byRun && errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("the validation reached its time limit while waiting for %s (%s)", host, missing)
	case errors.Is(err, context.Canceled):
		return fmt.Sprintf("the validation was stopped while waiting for %s (%s)", host, missing)
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("%s did not answer within %s (%s)", host, seconds(window), missing)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Sprintf("%s closed the connection (%s)", host, missing)
	case errors.Is(err, syscall.ECONNRESET):
		return fmt.Sprintf("%s reset the connection (%s)", host, missing)
	case strings.Contains(err.Error(), "malformed reply"):
		return fmt.Sprintf("%s answered with something that is not an SMTP reply (%s) — the transcript shows what it sent", host, missing)
	}
	return fmt.Sprintf("the connection to %s failed (%s) — the transcript has the error", host, missing)
}

// connectProblem words a failed connection to addr (host's address on
// port) so an admin knows where to look.
func connectProblem(host, addr string, port int, err error, window time.Duration) string {
	var ne net.Error
	who := host
	if h, _, _ := net.SplitHostPort(addr); h != host {
		who = fmt.Sprintf("%s (%s)", host, h)
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("the validation reached its time limit while connecting to %s", addr)
	case errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "refused"):
		return fmt.Sprintf("connection refused on %s — is the mail server running, and is port %d open in the firewall?", addr, port)
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("%s did not answer within %s (no connection on port %d) — is a firewall dropping connections to port %d?", who, seconds(window), port, port)
	case errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) || strings.Contains(err.Error(), "unreachable"):
		return fmt.Sprintf("%s is unreachable from flowgate (no network route to it) — check the network route", who)
	}
	return fmt.Sprintf("could not connect to %s on port %d — the transcript has the error", who, port)
}

// dnsProblem words a failed DNS lookup of name.
func dnsProblem(name string, err error, window time.Duration) string {
	var de *delivery.DNSError
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return fmt.Sprintf("the DNS server did not answer within %s when asked about %s", seconds(window), name)
	case errors.As(err, &de) && de.Permanent:
		return fmt.Sprintf("%s does not resolve: DNS says %s", name, de.Err)
	case errors.As(err, &de):
		return fmt.Sprintf("the DNS lookup of %s failed: %s", name, de.Err)
	}
	return fmt.Sprintf("the DNS lookup of %s failed — the transcript has the error", name)
}

// certFacts are what an admin wants to know of a server's certificate.
type certFacts struct {
	present  bool
	names    []string // the DNS names, or the common name without any
	issuer   string
	trusted  bool // chains to a CA flowgate trusts (FLOWGATE_OUTBOUND_CA and the system's)
	expired  bool // expired, or not valid yet
	notAfter time.Time
}

func readCert(chain []*x509.Certificate, roots *x509.CertPool, now time.Time) certFacts {
	if len(chain) == 0 {
		return certFacts{}
	}
	leaf := chain[0]
	f := certFacts{present: true, names: leaf.DNSNames, issuer: leaf.Issuer.CommonName, notAfter: leaf.NotAfter}
	if len(f.names) == 0 && leaf.Subject.CommonName != "" {
		f.names = []string{leaf.Subject.CommonName}
	}
	if f.issuer == "" {
		f.issuer = leaf.Issuer.String()
	}
	f.expired = now.After(leaf.NotAfter) || now.Before(leaf.NotBefore)
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now})
	var unknown x509.UnknownAuthorityError
	f.trusted = err == nil || !errors.As(err, &unknown) && f.expired
	return f
}

// describe says what the certificate is: "the certificate names
// mail.contoso.com and is issued by Contoso CA, which is trusted; it
// expires 2027-03-01".
func (f certFacts) describe() string {
	if !f.present {
		return "the server presented no certificate"
	}
	return fmt.Sprintf("the certificate names %s and is issued by %s; %s", f.namesText(), f.issuerText(), f.validity())
}

func (f certFacts) namesText() string {
	if len(f.names) == 0 {
		return "no host name"
	}
	return strings.Join(f.names, ", ")
}

func (f certFacts) issuerText() string {
	if f.trusted {
		return f.issuer + ", which is trusted"
	}
	return f.issuer + ", which flowgate does not trust"
}

func (f certFacts) validity() string {
	if f.expired {
		return "it is not valid now (valid until " + f.notAfter.UTC().Format(time.DateOnly) + ")"
	}
	return "it expires " + f.notAfter.UTC().Format(time.DateOnly)
}
