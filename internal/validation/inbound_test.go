package validation_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/liveconfig"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/relay"
	"github.com/flowgate/flowgate/internal/routing"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
	"github.com/flowgate/flowgate/internal/validation"
)

// inboundEnv is a real relay over a real store, as `flowgate serve` runs it.
type inboundEnv struct {
	st    *store.Store
	relay *relay.Relay
	port  int
	v     *validation.Inbound
}

func newInboundEnv(t *testing.T, e testutil.Engine) *inboundEnv {
	t.Helper()
	st := testutil.OpenStore(t, e)
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	live, err := liveconfig.Load(ctx, st, log)
	if err != nil {
		t.Fatal(err)
	}
	go live.Run(ctx)
	q := queue.NewWriter(st, log)
	ca := testutil.NewCA(t, "Test Root CA")
	rl := relay.New(relay.Config{Hostname: "gw.flowgate.test", Certificate: ca.Issue(t, "gw.flowgate.test", "gw.flowgate.test"), ClientRoots: ca.Pool()}, live, q, log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go rl.Serve(ln)
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = rl.Shutdown(sctx)
		q.Close()
		cancel()
	})
	port := ln.Addr().(*net.TCPAddr).Port
	if _, err := st.CreateAcceptedDomain(ctx, testutil.TestActor, "contoso.com", connector.Authoritative); err != nil {
		t.Fatal(err)
	}
	// Mail for contoso.com leaves through the organization's own server:
	// a test message must be deliverable for a validation to pass.
	testutil.ActivateConnector(t, st, &connector.OutboundSpec{Common: connector.Common{Name: "To our server", ConnectorType: connector.OnPremises},
		AllAcceptedDomains: true, SmartHosts: []string{"mail.contoso.com"}})
	return &inboundEnv{st: st, relay: rl, port: port, v: &validation.Inbound{Relay: rl, Port: port, Store: st, Hostname: "gw.flowgate.test", Timeout: 5 * time.Second}}
}

// draft stores spec as a new, unvalidated connector and validates it.
func (e *inboundEnv) validateNew(t *testing.T, spec *connector.InboundSpec) (*store.Connector, *store.Validation) {
	t.Helper()
	c, err := e.st.CreateConnector(context.Background(), testutil.TestActor, spec, true)
	if err != nil {
		t.Fatal(err)
	}
	return c, e.v.Validate(context.Background(), c.ID, c.Name, c.Revision, c.Spec.(*connector.InboundSpec), "", nil)
}

func wantPassed(t *testing.T, v *store.Validation) {
	t.Helper()
	if v.Status != store.ValidationPassed {
		t.Fatalf("validation %s:\n%+v\n%s", v.Status, v.Steps, v.Transcript)
	}
}

func stepDetail(t *testing.T, v *store.Validation, prefix string) string {
	t.Helper()
	for _, s := range v.Steps {
		if strings.HasPrefix(s.Name, prefix) {
			return s.Detail
		}
	}
	t.Fatalf("no step %q in %+v", prefix, v.Steps)
	return ""
}

// The five partner examples of the second seed and an on-premises
// connector: each passes, and each negative probe is refused.
func TestInboundSeedExamples(t *testing.T) {
	partner := func(name string) connector.Common {
		return connector.Common{Name: name, ConnectorType: connector.Partner}
	}
	cases := []struct {
		spec     *connector.InboundSpec
		negative string // what the negative probe's step says it broke
		refusal  string
	}{
		{&connector.InboundSpec{Common: partner("Contoso Bank"), SenderDomains: []string{"contosobank.com"}, RequireTLS: true},
			"not sent over TLS", "5.7.51"},
		{&connector.InboundSpec{Common: partner("Contoso Bank cert"), SenderDomains: []string{"contosobank.net"}, TLSSenderCertificateName: "mail.contosobank.net", RestrictDomainsToCertificate: true},
			"no certificate named mail.contosobank.net", "5.7.51"},
		{&connector.InboundSpec{Common: partner("Contoso Bank IPs"), SenderDomains: []string{"contosobank.org"}, SenderIPAddresses: []string{"10.1.0.10-10.1.0.20"}, RestrictDomainsToIPAddresses: true},
			"sent from outside the partner's IP addresses", "5.7.51"},
		{&connector.InboundSpec{Common: partner("Filtering service"), SenderDomains: []string{"*"}, SenderIPAddresses: []string{"10.2.0.40/30"}, RestrictDomainsToIPAddresses: true},
			"sent from outside the partner's IP addresses", "5.7.51"},
		{&connector.InboundSpec{Common: partner("Partner by IP"), SenderIPAddresses: []string{"10.3.0.60"}, RequireTLS: true},
			"not sent over TLS", "5.7.51"},
		{&connector.InboundSpec{Common: connector.Common{Name: "Our Exchange", ConnectorType: connector.OnPremises}, SenderIPAddresses: []string{"10.9.0.0/24"}},
			"not your email server", "5.7.64"},
		{&connector.InboundSpec{Common: connector.Common{Name: "Our Exchange by cert", ConnectorType: connector.OnPremises}, TLSSenderCertificateName: "*.contoso.com", RequireTLS: true},
			"not your email server (no certificate *.contoso.com)", "5.7.64"},
	}
	for _, eng := range testutil.Engines {
		t.Run(eng.Name, func(t *testing.T) {
			e := newInboundEnv(t, eng)
			for _, tc := range cases {
				t.Run(tc.spec.Name, func(t *testing.T) {
					c, v := e.validateNew(t, tc.spec)
					wantPassed(t, v)
					if d := stepDetail(t, v, "attribution"); !strings.Contains(d, tc.spec.Name) {
						t.Fatalf("attribution: %s", d)
					}
					neg := stepDetail(t, v, "negative probe: "+tc.negative)
					if !strings.Contains(neg, "550 "+tc.refusal) {
						t.Fatalf("negative probe: %s", neg)
					}
					d := stepDetail(t, v, "test message")
					i := strings.Index(d, "queued as ")
					if i < 0 {
						t.Fatalf("test message: %s", d)
					}
					// The listener's reply is quoted: “OK: queued as <uid>”.
					uid := strings.FieldsFunc(d[i+len("queued as "):], func(r rune) bool { return r == ' ' || r == '”' })[0]
					tr, err := queue.GetTrace(context.Background(), e.st, uid)
					if err != nil {
						t.Fatal(err)
					}
					if tr.InboundConnector != tc.spec.Name || tr.Recipients[0].Address != "postmaster@contoso.com" {
						t.Fatalf("trace of the probe: %+v", tr)
					}
					// Validation does not activate anything.
					got, _ := e.st.GetConnector(context.Background(), connector.Inbound, c.ID)
					if got.ActiveRevision != nil {
						t.Fatal("validation activated the revision")
					}
					// Both probes authenticated; the secret itself is never written down.
					if strings.Count(v.Transcript, "C: AUTH X-FLOWGATE-PROBE (the run's secret)") != 2 || strings.Count(v.Transcript, "C: AUTH") != 2 {
						t.Fatalf("transcript:\n%s", v.Transcript)
					}
				})
			}
		})
	}
}

// A revision that collides with an active connector fails attribution
// with a reason naming the other connector.
func TestInboundAttributionConflict(t *testing.T) {
	e := newInboundEnv(t, testutil.Engines[0])
	testutil.ActivateConnector(t, e.st, &connector.InboundSpec{Common: connector.Common{Name: "Old by IP", ConnectorType: connector.OnPremises}, SenderIPAddresses: []string{"10.5.0.0/16"}})
	_, v := e.validateNew(t, &connector.InboundSpec{Common: connector.Common{Name: "Partner", ConnectorType: connector.Partner}, SenderIPAddresses: []string{"10.6.0.1"}, RequireTLS: true})
	wantPassed(t, v)
	// An edit: the new revision of an active connector is tested in place
	// of the active one.
	id := testutil.ActivateConnector(t, e.st, &connector.InboundSpec{Common: connector.Common{Name: "Bank", ConnectorType: connector.Partner}, SenderDomains: []string{"bank.test"}, RequireTLS: true})
	spec := &connector.InboundSpec{Common: connector.Common{Name: "Bank", ConnectorType: connector.Partner}, SenderDomains: []string{"bank.test"}, SenderIPAddresses: []string{"10.7.0.1"}, RestrictDomainsToIPAddresses: true}
	c, err := e.st.UpdateConnector(context.Background(), testutil.TestActor, id, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	v = e.v.Validate(context.Background(), id, "Bank", c.Revision, c.Spec.(*connector.InboundSpec), "", nil)
	wantPassed(t, v)
	if d := stepDetail(t, v, "negative probe: sent from outside"); !strings.Contains(d, "5.7.51") {
		t.Fatal(d)
	}
}

// rawSession is a bare SMTP client for the probe security tests.
type rawSession struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRelay(t *testing.T, src string, port int) *rawSession {
	conn := testutil.DialFrom(t, src, "127.0.0.1:"+strconv.Itoa(port))
	s := &rawSession{t: t, conn: conn, r: bufio.NewReader(conn)}
	s.read()
	return s
}

func (s *rawSession) read() (int, string) {
	s.t.Helper()
	var all []string
	for {
		_ = s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := s.r.ReadString('\n')
		if err != nil {
			s.t.Fatalf("read: %v (%v)", err, all)
		}
		line = strings.TrimRight(line, "\r\n")
		all = append(all, line)
		if len(line) < 4 || line[3] != '-' {
			code, _ := strconv.Atoi(line[:3])
			return code, strings.Join(all, "\n")
		}
	}
}

func (s *rawSession) cmd(line string) (int, string) {
	s.t.Helper()
	if _, err := s.conn.Write([]byte(line + "\r\n")); err != nil {
		s.t.Fatal(err)
	}
	return s.read()
}

func (s *rawSession) startTLS() {
	s.t.Helper()
	if code, _ := s.cmd("STARTTLS"); code != 220 {
		s.t.Fatalf("STARTTLS: %d", code)
	}
	tc := tls.Client(s.conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		s.t.Fatal(err)
	}
	s.conn, s.r = tc, bufio.NewReader(tc)
}

// The attribution override cannot be used from outside the process: not
// from another address, not with a wrong or expired secret, not without
// TLS — and a failed attempt leaves the session an ordinary client.
func TestProbeCannotBeUsedFromOutside(t *testing.T) {
	e := newInboundEnv(t, testutil.Engines[0])
	ix := routing.Build(routing.Config{
		AcceptedDomains: []connector.AcceptedDomain{{Domain: "contoso.com", Type: connector.Authoritative}},
		Inbound: []routing.Inbound{{ID: 99, Name: "Our server", Revision: 1, Spec: connector.InboundSpec{
			Common: connector.Common{Name: "Our server", ConnectorType: connector.OnPremises}, SenderIPAddresses: []string{"10.9.9.9"}}}},
	})
	// The override would make the client "our server", allowed to relay
	// anywhere: exactly what an attacker wants.
	secret, unregister := e.relay.RegisterProbe(&relay.Probe{Client: routing.Client{IP: netipMust("10.9.9.9")}, Index: ix, Label: "test"})
	auth := "AUTH " + relay.ProbeMechanism + " " + base64.StdEncoding.EncodeToString([]byte(secret))

	relayAttempt := func(s *rawSession) int {
		// A stranger sending as contoso.com is refused at MAIL FROM
		// already (SPEC 3.3); only the probe gets further.
		if code, _ := s.cmd("MAIL FROM:<ceo@contoso.com>"); code != 250 {
			return code
		}
		code, _ := s.cmd("RCPT TO:<victim@internet.test>")
		return code
	}

	// Another address (127.0.0.9 stands for the outside world): the
	// mechanism is not offered, and the right secret does not work.
	s := dialRelay(t, "127.0.0.9", e.port)
	s.cmd("EHLO attacker.test")
	s.startTLS()
	if _, ehlo := s.cmd("EHLO attacker.test"); strings.Contains(ehlo, "AUTH") {
		t.Fatalf("AUTH offered to another address:\n%s", ehlo)
	}
	if code, text := s.cmd(auth); code == 235 || !strings.HasPrefix(strconv.Itoa(code), "5") {
		t.Fatalf("probe AUTH from another address: %d %s", code, text)
	}
	if code := relayAttempt(s); code != 550 {
		t.Fatalf("relay after a refused probe AUTH: %d", code)
	}

	// Loopback without TLS: refused before the secret is even read.
	s = dialRelay(t, "127.0.0.1", e.port)
	if _, ehlo := s.cmd("EHLO local.test"); strings.Contains(ehlo, "AUTH") {
		t.Fatalf("AUTH offered without TLS:\n%s", ehlo)
	}
	if code, _ := s.cmd(auth); code == 235 {
		t.Fatal("probe AUTH without TLS accepted")
	}

	// Loopback with TLS but a wrong secret.
	s = dialRelay(t, "127.0.0.1", e.port)
	s.cmd("EHLO local.test")
	s.startTLS()
	if _, ehlo := s.cmd("EHLO local.test"); !strings.Contains(ehlo, "AUTH "+relay.ProbeMechanism) {
		t.Fatalf("the mechanism is not offered to loopback during a run:\n%s", ehlo)
	}
	if code, _ := s.cmd("AUTH " + relay.ProbeMechanism + " " + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("0", 64)))); code != 535 {
		t.Fatalf("wrong secret: %d", code)
	}
	if code := relayAttempt(s); code != 550 {
		t.Fatalf("relay after a wrong secret: %d", code)
	}

	// The right secret, from loopback, over TLS, during the run: works.
	s = dialRelay(t, "127.0.0.1", e.port)
	s.cmd("EHLO local.test")
	s.startTLS()
	s.cmd("EHLO local.test")
	if code, _ := s.cmd(auth); code != 235 {
		t.Fatalf("the probe itself: %d", code)
	}
	if code := relayAttempt(s); code != 250 {
		t.Fatalf("probe relay: %d", code)
	}

	// After the run the secret is dead and the mechanism gone.
	unregister()
	s = dialRelay(t, "127.0.0.1", e.port)
	s.cmd("EHLO local.test")
	s.startTLS()
	if _, ehlo := s.cmd("EHLO local.test"); strings.Contains(ehlo, "AUTH") {
		t.Fatalf("AUTH offered after the run:\n%s", ehlo)
	}
	// Outside a run the mechanism is refused like any unknown one.
	if code, _ := s.cmd(auth); code != 504 {
		t.Fatalf("expired secret: %d", code)
	}
	if code := relayAttempt(s); code != 550 {
		t.Fatalf("relay with an expired secret: %d", code)
	}
}

func netipMust(s string) netip.Addr { return netip.MustParseAddr(s) }

// Inbound validation fails when the test message could not be delivered:
// an accepted domain with no outbound route would keep it in the queue,
// to arrive by surprise once a route exists. It is not sent at all.
func TestInboundValidationFailsWhenTheMessageCouldNotArrive(t *testing.T) {
	e := newInboundEnv(t, testutil.Engines[0])
	ctx := context.Background()
	out, err := e.st.ListConnectors(ctx, connector.Outbound)
	if err != nil || len(out) != 1 {
		t.Fatalf("outbound connectors %v %v", out, err)
	}
	if err := e.st.DeleteConnector(ctx, testutil.TestActor, connector.Outbound, out[0].ID); err != nil {
		t.Fatal(err)
	}
	_, v := e.validateNew(t, &connector.InboundSpec{Common: connector.Common{Name: "Contoso Bank", ConnectorType: connector.Partner},
		SenderDomains: []string{"contosobank.com"}, RequireTLS: true})
	if v.Status != store.ValidationFailed {
		t.Fatalf("validation %s, want failed", v.Status)
	}
	var rcpt, msg string
	for _, s := range v.Steps {
		switch {
		case strings.HasPrefix(s.Name, "RCPT TO") && s.Status == "failed":
			rcpt = s.Detail
		case s.Name == "test message" && s.Status == "failed":
			msg = s.Detail
		}
	}
	if !strings.Contains(rcpt, "could not deliver it") || !strings.Contains(msg, "not sent") {
		t.Fatalf("steps %+v", v.Steps)
	}
	var queued int
	e.st.DB().Raw(`SELECT COUNT(*) FROM messages WHERE status IN ('queued', 'deferred')`).Scan(&queued)
	if queued != 0 {
		t.Fatalf("%d test messages left in the queue", queued)
	}
}
