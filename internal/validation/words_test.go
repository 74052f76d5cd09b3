package validation

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/delivery"
	"github.com/flowgate/flowgate/internal/routing"
	"github.com/flowgate/flowgate/internal/testutil"
)

// timeoutErr is a network timeout, as a read past its deadline returns.
var timeoutErr = &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}

func TestSecondsWording(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{12 * time.Millisecond, "under 0.1 s"},
		{400 * time.Millisecond, "0.4 s"},
		{time.Second, "1 s"},
		{2500 * time.Millisecond, "2.5 s"},
		{30 * time.Second, "30 s"},
		{30001 * time.Millisecond, "30 s"},
		{100 * time.Second, "100 s"},
	} {
		if got := seconds(tc.d); got != tc.want {
			t.Errorf("seconds(%s) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

// A server's own text is quoted and attributed, never ours.
func TestReplyWording(t *testing.T) {
	for _, tc := range []struct {
		msg, want string
	}{
		{"550 5.1.1 no such user", "550 5.1.1 (the server said: “no such user”)"},
		{"550-5.7.1 relay denied\n550 5.7.1 see https://example.com", "550 5.7.1 (the server said: “relay denied see https://example.com”)"},
		{"554 go away, spammer", "554 (the server said: “go away, spammer”)"},
		{"250 2.1.5", "250 2.1.5"},
		{"250", "250"},
		{"451 4.3.0 " + string(rune(7)) + "bell\tand tab", "451 4.3.0 (the server said: “bell and tab”)"},
	} {
		if got := reply("the server", tc.msg); got != tc.want {
			t.Errorf("reply(%q) = %q, want %q", tc.msg, got, tc.want)
		}
	}
	if got := said("the server", "220 mx.contoso.com ESMTP no UCE, no jokes"); got != "the server said: “mx.contoso.com ESMTP no UCE, no jokes”" {
		t.Errorf("said: %q", got)
	}
}

func TestWaitProblemWording(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		window time.Duration
		byRun  bool
		want   string
	}{
		{"timeout", timeoutErr, 30 * time.Second, false, "mail.contoso.com did not answer within 30 s (no greeting)"},
		{"short timeout", timeoutErr, 300 * time.Millisecond, false, "mail.contoso.com did not answer within 0.3 s (no greeting)"},
		{"the run's limit", timeoutErr, 4 * time.Second, true, "the validation reached its time limit while waiting for mail.contoso.com (no greeting)"},
		{"closed", io.EOF, 30 * time.Second, false, "mail.contoso.com closed the connection (no greeting)"},
		{"reset", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, 30 * time.Second, false, "mail.contoso.com reset the connection (no greeting)"},
		{"not SMTP", fmt.Errorf("malformed reply %q", "HTTP/1.1 400"), 30 * time.Second, false, "mail.contoso.com answered with something that is not an SMTP reply (no greeting) — the transcript shows what it sent"},
		{"other", errors.New("tls: bad record MAC"), 30 * time.Second, false, "the connection to mail.contoso.com failed (no greeting) — the transcript has the error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := netProblem("mail.contoso.com", "no greeting", tc.err, tc.window, tc.byRun); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestConnectProblemWording(t *testing.T) {
	dial := func(errno syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)}
	}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"refused", dial(syscall.ECONNREFUSED), "connection refused on 203.0.113.5:25 — is the mail server running, and is port 25 open in the firewall?"},
		{"timeout", &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}, "mail.contoso.com (203.0.113.5) did not answer within 30 s (no connection on port 25) — is a firewall dropping connections to port 25?"},
		{"unreachable", dial(syscall.EHOSTUNREACH), "mail.contoso.com (203.0.113.5) is unreachable from flowgate (no network route to it) — check the network route"},
		{"the run's limit", context.DeadlineExceeded, "the validation reached its time limit while connecting to 203.0.113.5:25"},
		{"other", dial(syscall.EACCES), "could not connect to mail.contoso.com (203.0.113.5) on port 25 — the transcript has the error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := connectProblem("mail.contoso.com", "203.0.113.5:25", 25, tc.err, 30*time.Second); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestDNSProblemWording(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"no such domain", &delivery.DNSError{Name: "nowhere.test", Permanent: true, Err: errors.New("no such domain (NXDOMAIN)")}, "nowhere.test does not resolve: DNS says no such domain (NXDOMAIN)"},
		{"no answer", &delivery.DNSError{Name: "nowhere.test", Err: timeoutErr}, "the DNS server did not answer within 30 s when asked about nowhere.test"},
		{"server failure", &delivery.DNSError{Name: "nowhere.test", Err: errors.New("server answered SERVFAIL")}, "the DNS lookup of nowhere.test failed: server answered SERVFAIL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := dnsProblem("nowhere.test", tc.err, 30*time.Second); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// The certificate facts an admin reads, and why one fails a TLS setting.
func TestCertificateWording(t *testing.T) {
	ca := testutil.NewCA(t, "Contoso CA")
	other := testutil.NewCA(t, "Someone Else CA")
	leaf := func(ca *testutil.CA, names ...string) []*x509.Certificate {
		c := ca.Issue(t, names[0], names...)
		x, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return []*x509.Certificate{x}
	}
	good := leaf(ca, "mail.contoso.com")
	expires := good[0].NotAfter.UTC().Format(time.DateOnly)
	now := time.Now()
	domain := func(s string) *connector.DomainPattern { p, _ := connector.ParseDomainPattern(s); return &p }

	for _, tc := range []struct {
		name    string
		chain   []*x509.Certificate
		now     time.Time
		setting connector.TLSSettings
		domain  *connector.DomainPattern
		facts   string // describe()
		refusal string // certRefusal(); "" to skip
	}{
		{"trusted, named", good, now, connector.TLSDomainValidation, domain("mail.contoso.com"),
			"the certificate names mail.contoso.com and is issued by Contoso CA, which is trusted; it expires " + expires, ""},
		{"another name", good, now, connector.TLSDomainValidation, domain("mx.fabrikam.com"),
			"the certificate names mail.contoso.com and is issued by Contoso CA, which is trusted; it expires " + expires,
			"the certificate names mail.contoso.com, not mx.fabrikam.com, which the TLS setting domain_validation requires; it is issued by Contoso CA, which is trusted"},
		{"untrusted issuer", leaf(other, "mail.contoso.com"), now, connector.TLSCertificateValidation, nil,
			"the certificate names mail.contoso.com and is issued by Someone Else CA, which flowgate does not trust; it expires " + expires,
			"the certificate names mail.contoso.com and is issued by Someone Else CA, which flowgate does not trust; it expires " + expires + " — the TLS setting certificate_validation needs a certificate issued by a trusted CA: add Someone Else CA to FLOWGATE_OUTBOUND_CA, or choose encryption_only"},
		{"expired", good, good[0].NotAfter.Add(24 * time.Hour), connector.TLSCertificateValidation, nil,
			"the certificate names mail.contoso.com and is issued by Contoso CA, which is trusted; it is not valid now (valid until " + expires + ")",
			"the certificate names mail.contoso.com and is issued by Contoso CA, which is trusted; it is not valid now (valid until " + expires + ") — the server must renew its certificate"},
		{"none", nil, now, connector.TLSCertificateValidation, nil,
			"the server presented no certificate", "the server presented no certificate; the TLS setting certificate_validation needs one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := readCert(tc.chain, ca.Pool(), tc.now)
			if got := f.describe(); got != tc.facts {
				t.Errorf("facts\n got  %q\n want %q", got, tc.facts)
			}
			if tc.refusal != "" {
				if got := certRefusal(f, tc.setting, tc.domain); got != tc.refusal {
					t.Errorf("refusal\n got  %q\n want %q", got, tc.refusal)
				}
			}
		})
	}
}

func TestWaitDescribe(t *testing.T) {
	since := time.Date(2026, 12, 3, 5, 0, 0, 0, time.UTC)
	w := Wait{Host: "mx1.fabrikam.com", Doing: "to greet", Since: since, Limit: 30 * time.Second}
	if got := w.Describe(since.Add(12*time.Second + 700*time.Millisecond)); got != "waiting for mx1.fabrikam.com to greet — 12 s of 30 s" {
		t.Errorf("%q", got)
	}
	if got := w.Describe(since.Add(-time.Second)); got != "waiting for mx1.fabrikam.com to greet — 0 s of 30 s" {
		t.Errorf("%q", got)
	}
}

// Who an inbound probe stands in for: no Go values ("TLS true,
// certificate names []").
func TestProbeFactsWording(t *testing.T) {
	ip := netip.MustParseAddr("192.0.2.10")
	for _, tc := range []struct {
		client routing.Client
		want   string
	}{
		{routing.Client{IP: ip, TLS: true}, "a client at 192.0.2.10 that sends over TLS and has no certificate"},
		{routing.Client{IP: ip}, "a client at 192.0.2.10 that sends without TLS and has no certificate"},
		{routing.Client{IP: ip, TLS: true, CertNames: []string{"mail.partner.test"}}, "a client at 192.0.2.10 that sends over TLS with a certificate named mail.partner.test"},
	} {
		if got := (probeFacts{client: tc.client}).describe(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}
