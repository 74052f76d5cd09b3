package validation_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/delivery"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
	"github.com/flowgate/flowgate/internal/validation"
)

type outboundEnv struct {
	ca  *testutil.CA
	dns *testutil.DNS
	v   *validation.Outbound
}

func newOutboundEnv(t *testing.T) *outboundEnv {
	ca := testutil.NewCA(t, "flowgate test CA")
	d := testutil.NewDNS(t)
	return &outboundEnv{ca: ca, dns: d, v: &validation.Outbound{
		Hostname: "gw.contoso.test", Roots: ca.Pool(), Resolver: &delivery.Resolver{Server: d.Addr}, Timeout: 5 * time.Second,
	}}
}

// smartHost names a sink by a DNS name that resolves to it.
func (e *outboundEnv) smartHost(name string, s *testutil.Sink) string {
	host, port, _ := net.SplitHostPort(s.Addr)
	e.dns.A(name, host)
	return name + ":" + port
}

func spec(hosts []string, tlsSetting connector.TLSSettings, tlsDomain string) *connector.OutboundSpec {
	s := &connector.OutboundSpec{
		Common:           connector.Common{Name: "To Partner", ConnectorType: connector.Partner},
		RecipientDomains: []string{"partner.test"}, SmartHosts: hosts, TLSSettings: tlsSetting, TLSDomain: tlsDomain,
	}
	if errs := s.Normalize(); len(errs) > 0 {
		panic(errs.Error())
	}
	return s
}

func validate(e *outboundEnv, s *connector.OutboundSpec, rcpts ...string) *store.Validation {
	return e.v.Validate(context.Background(), 7, s.Name, 3, s, validation.DefaultSender(e.v.Hostname), rcpts)
}

// wantFailure checks the run failed at a step whose name contains step,
// with a detail containing detail.
func wantFailure(t *testing.T, v *store.Validation, step, detail string) {
	t.Helper()
	if v.Status != store.ValidationFailed {
		t.Fatalf("status %s, want failed; steps %+v", v.Status, v.Steps)
	}
	for _, s := range v.Steps {
		if s.Status == validation.Failed {
			if !strings.Contains(s.Name, step) || !strings.Contains(s.Detail, detail) {
				t.Fatalf("first failed step %q: %q; want step %q with %q\n%s", s.Name, s.Detail, step, detail, v.Transcript)
			}
			return
		}
	}
	t.Fatalf("no failed step in %+v", v.Steps)
}

func TestOutboundPassesWithTheRightCertificate(t *testing.T) {
	e := newOutboundEnv(t)
	cert := e.ca.Issue(t, "mail.partner.test", "mail.partner.test")
	sink := testutil.NewSink(t, testutil.SinkOptions{Cert: &cert})
	v := validate(e, spec([]string{e.smartHost("mail.partner.test", sink)}, connector.TLSDomainValidation, "mail.partner.test"), "alice@partner.test", "bob@partner.test")
	if v.Status != store.ValidationPassed {
		t.Fatalf("status %s: %+v\n%s", v.Status, v.Steps, v.Transcript)
	}
	var names []string
	for _, s := range v.Steps {
		names = append(names, s.Name)
		if s.Status != validation.Passed {
			t.Fatalf("step %q is %s: %s", s.Name, s.Status, s.Detail)
		}
	}
	for _, want := range []string{"resolve mail.partner.test", "connect to", "EHLO to", "STARTTLS with", "certificate of", "MAIL FROM", "RCPT TO alice@partner.test", "RCPT TO bob@partner.test", "test message to"} {
		if !strings.Contains(strings.Join(names, "|"), want) {
			t.Fatalf("no step %q in %v", want, names)
		}
	}
	for _, want := range []string{"C: EHLO gw.contoso.test", "C: STARTTLS", "TLS: TLS 1.3", `subject "CN=mail.partner.test"`, "expires", "C: RCPT TO:<alice@partner.test>", "S: 250"} {
		if !strings.Contains(v.Transcript, want) {
			t.Fatalf("transcript lacks %q:\n%s", want, v.Transcript)
		}
	}
	msgs := sink.Wait(t, 1, 5*time.Second)
	m := msgs[0]
	if !m.TLS || m.From != "flowgate-validation@gw.contoso.test" || len(m.To) != 2 {
		t.Fatalf("sink got %+v", m)
	}
	if !strings.Contains(m.Data, `Subject: flowgate validation of outbound connector "To Partner", revision 3`) || !strings.Contains(m.Data, "revision 3 of the outbound connector") {
		t.Fatalf("test message:\n%s", m.Data)
	}
}

func TestOutboundFailures(t *testing.T) {
	e := newOutboundEnv(t)

	t.Run("wrong-name certificate under domain_validation", func(t *testing.T) {
		cert := e.ca.Issue(t, "mail.other.test", "mail.other.test")
		sink := testutil.NewSink(t, testutil.SinkOptions{Cert: &cert})
		v := validate(e, spec([]string{e.smartHost("mail.partner.test", sink)}, connector.TLSDomainValidation, "wrong.test"), "alice@partner.test")
		wantFailure(t, v, "certificate of mail.partner.test", "the certificate names mail.other.test, not wrong.test, which the TLS setting domain_validation requires; it is issued by flowgate test CA, which is trusted")
		if len(sink.Messages()) != 0 {
			t.Fatal("a message was sent after the certificate failed")
		}
	})
	t.Run("untrusted certificate under certificate_validation", func(t *testing.T) {
		other := testutil.NewCA(t, "someone else's CA")
		cert := other.Issue(t, "mail.partner.test", "mail.partner.test")
		sink := testutil.NewSink(t, testutil.SinkOptions{Cert: &cert})
		v := validate(e, spec([]string{e.smartHost("mail.partner.test", sink)}, connector.TLSCertificateValidation, ""), "alice@partner.test")
		wantFailure(t, v, "certificate of", "is issued by someone else's CA, which flowgate does not trust")
	})
	t.Run("no STARTTLS under encryption_only", func(t *testing.T) {
		sink := testutil.NewSink(t, testutil.SinkOptions{})
		v := validate(e, spec([]string{e.smartHost("plain.partner.test", sink)}, connector.TLSEncryptionOnly, ""), "alice@partner.test")
		wantFailure(t, v, "STARTTLS with plain.partner.test", "plain.partner.test does not offer TLS (no STARTTLS in its answer to EHLO), and this revision's TLS setting, encryption_only, requires TLS")
	})
	t.Run("no STARTTLS is fine for opportunistic", func(t *testing.T) {
		sink := testutil.NewSink(t, testutil.SinkOptions{})
		v := validate(e, spec([]string{e.smartHost("plain2.partner.test", sink)}, connector.TLSOpportunistic, ""), "alice@partner.test")
		if v.Status != store.ValidationPassed {
			t.Fatalf("%+v", v.Steps)
		}
		sink.Wait(t, 1, 5*time.Second)
	})
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		v := validate(e, spec([]string{"127.0.0.1:" + strconv.Itoa(port)}, connector.TLSOpportunistic, ""), "alice@partner.test")
		wantFailure(t, v, "connect to 127.0.0.1", "connection refused on 127.0.0.1:"+strconv.Itoa(port)+" — is the mail server running, and is port "+strconv.Itoa(port)+" open in the firewall?")
	})
	t.Run("unresolvable host", func(t *testing.T) {
		v := validate(e, spec([]string{"nowhere.partner.test"}, connector.TLSOpportunistic, ""), "alice@partner.test")
		wantFailure(t, v, "resolve nowhere.partner.test", "nowhere.partner.test does not resolve")
	})
	t.Run("recipient rejected with 550", func(t *testing.T) {
		sink := testutil.NewSink(t, testutil.SinkOptions{})
		sink.RejectRcpt("ghost@partner.test", 550, [3]int{5, 1, 1}, "no such user")
		v := validate(e, spec([]string{e.smartHost("mx3.partner.test", sink)}, connector.TLSOpportunistic, ""), "ghost@partner.test")
		wantFailure(t, v, "RCPT TO ghost@partner.test", "mx3.partner.test refused the recipient ghost@partner.test: 550 5.1.1 (the server said: “no such user”)")
	})
	t.Run("a server that never greets, within the run's time limit", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close() // hold the connection open, say nothing
			}
		}()
		s := spec([]string{ln.Addr().String()}, connector.TLSOpportunistic, "")
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		v := e.v.Validate(ctx, 7, s.Name, 3, s, "a@contoso.test", []string{"alice@partner.test"})
		wantFailure(t, v, "greeting from 127.0.0.1", "the validation reached its time limit while waiting for 127.0.0.1 (no greeting)")
		if d := v.FinishedAt.Sub(v.StartedAt); d > 4*time.Second {
			t.Fatalf("the run outlived its deadline by far: %s", d)
		}
	})
	// silent listens and answers every connection with greeting (nothing
	// if empty), then holds it open.
	silent := func(t *testing.T, greeting string) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { c.Close() })
				if greeting != "" {
					_, _ = c.Write([]byte(greeting + "\r\n"))
				}
			}
		}()
		return ln.Addr().String()
	}
	t.Run("a server that never greets, within the step's timeout", func(t *testing.T) {
		addr := silent(t, "")
		short := *e.v
		short.Timeout = 300 * time.Millisecond
		s := spec([]string{addr}, connector.TLSOpportunistic, "")
		v := short.Validate(context.Background(), 7, s.Name, 3, s, "a@contoso.test", []string{"alice@partner.test"})
		wantFailure(t, v, "greeting from 127.0.0.1", "127.0.0.1 did not answer within 0.3 s (no greeting)")
		// The raw error stays in the transcript.
		if !strings.Contains(v.Transcript, "S: (read tcp ") || !strings.Contains(v.Transcript, "i/o timeout)") {
			t.Fatalf("transcript:\n%s", v.Transcript)
		}
	})
	t.Run("a server that turns flowgate away", func(t *testing.T) {
		addr := silent(t, "554 5.7.1 go away, we only talk to friends")
		v := validate(e, spec([]string{addr}, connector.TLSOpportunistic, ""), "alice@partner.test")
		wantFailure(t, v, "greeting from 127.0.0.1", "127.0.0.1 turned flowgate away instead of greeting it: 554 5.7.1 (the server said: “go away, we only talk to friends”)")
		if !strings.Contains(v.Transcript, "S: 554 5.7.1 go away, we only talk to friends") {
			t.Fatalf("transcript:\n%s", v.Transcript)
		}
	})
	t.Run("each smart host is checked", func(t *testing.T) {
		good := testutil.NewSink(t, testutil.SinkOptions{})
		v := validate(e, spec([]string{e.smartHost("good.partner.test", good), "dead.partner.test"}, connector.TLSOpportunistic, ""), "alice@partner.test")
		wantFailure(t, v, "resolve dead.partner.test", "does not resolve")
		good.Wait(t, 1, 5*time.Second)
	})
}

func TestOutboundMX(t *testing.T) {
	e := newOutboundEnv(t)
	sink := testutil.NewSink(t, testutil.SinkOptions{})
	host, port, _ := net.SplitHostPort(sink.Addr)
	e.dns.MX("fabrikam.test", "mx1.fabrikam.test", 10)
	e.dns.A("mx1.fabrikam.test", host)
	e.v.Port, _ = strconv.Atoi(port)
	s := &connector.OutboundSpec{Common: connector.Common{Name: "MX", ConnectorType: connector.Partner}, RecipientDomains: []string{"fabrikam.test", "nomx.test"}, UseMXRecord: true}
	if errs := s.Normalize(); len(errs) > 0 {
		t.Fatal(errs)
	}
	v := e.v.Validate(context.Background(), 1, "MX", 1, s, "admin@contoso.test", []string{"a@fabrikam.test"})
	if v.Status != store.ValidationPassed || v.Steps[0].Name != "MX lookup for fabrikam.test" || !strings.Contains(v.Steps[0].Detail, "mx1.fabrikam.test (preference 10)") {
		t.Fatalf("%+v\n%s", v.Steps, v.Transcript)
	}
	sink.Wait(t, 1, 5*time.Second)
	v = e.v.Validate(context.Background(), 1, "MX", 1, s, "admin@contoso.test", []string{"a@nomx.test"})
	wantFailure(t, v, "MX lookup for nomx.test", "check that nomx.test has MX records")
}
