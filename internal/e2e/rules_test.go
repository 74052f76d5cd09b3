package e2e

// Mail flow rules end to end (SPEC 7, issue 19): the real binary on SQLite
// and PostgreSQL, real SMTP sinks as next hops, rules written to the
// binary's database through a store of the test's own (the rules API is
// not required), their effect observed at the sinks, in the SMTP replies
// and in the message trace (GET /api/v1/messages/{id} and the database).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/rules"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// ruleRig is a running flowgate set up for the rule tests:
//
//   - contoso.com is the organization's accepted domain; its server
//     (127.0.0.64/28, an on_premises inbound connector) may relay anywhere;
//   - "Contoso on-premises" (all accepted domains) → sink onPrem: where the
//     DSNs to contoso.com senders go;
//   - "Partners" (fabrikam.test, northwind.test) → sink partners: the
//     SPEC 3.5 route for partner mail;
//   - "Probe" (probe.test) → sink probe: the marker messages of settle;
//   - three rule-scoped connectors, each with a sink of its own: "Encryption
//     gateway" (gateway), "Deferring gateway" (deferring) and "Fallback
//     gateway" (fallback).
type ruleRig struct {
	p   *proc
	tok string
	st  *store.Store
	src string // the client address the tests send from (Contoso's server)

	onPrem, partners, probe, gateway, deferring, fallback *testutil.Sink
	gatewayID, deferringID, fallbackID                    int64
	markers                                               int
}

func newRuleRig(t *testing.T, env baseEnv, opts store.Options) *ruleRig {
	t.Helper()
	r := &ruleRig{src: "127.0.0.70", tok: env.token(t)}
	for _, s := range []**testutil.Sink{&r.onPrem, &r.partners, &r.probe, &r.gateway, &r.deferring, &r.fallback} {
		*s = testutil.NewSink(t, testutil.SinkOptions{})
	}
	r.p = start(t, env, "FLOWGATE_RETRY_SCHEDULE=1s")
	r.st = testutil.OpenStoreWith(t, opts)
	if _, err := r.st.CreateAcceptedDomain(context.Background(), testutil.TestActor, "contoso.com", connector.Authoritative); err != nil {
		t.Fatal(err)
	}
	out := func(name string, typ connector.Type, sink *testutil.Sink, scope func(*connector.OutboundSpec)) int64 {
		spec := &connector.OutboundSpec{Common: connector.Common{Name: name, ConnectorType: typ}, SmartHosts: []string{sink.Addr}}
		scope(spec)
		return testutil.ActivateConnector(t, r.st, spec)
	}
	ruleScoped := func(s *connector.OutboundSpec) { s.IsTransportRuleScoped = true }
	out("Contoso on-premises", connector.OnPremises, r.onPrem, func(s *connector.OutboundSpec) { s.AllAcceptedDomains = true })
	out("Partners", connector.Partner, r.partners, func(s *connector.OutboundSpec) { s.RecipientDomains = []string{"fabrikam.test", "northwind.test"} })
	out("Probe", connector.Partner, r.probe, func(s *connector.OutboundSpec) { s.RecipientDomains = []string{"probe.test"} })
	r.gatewayID = out("Encryption gateway", connector.Partner, r.gateway, ruleScoped)
	r.deferringID = out("Deferring gateway", connector.Partner, r.deferring, ruleScoped)
	r.fallbackID = out("Fallback gateway", connector.Partner, r.fallback, ruleScoped)
	testutil.ActivateConnector(t, r.st, &connector.InboundSpec{
		Common:            connector.Common{Name: "Contoso servers", ConnectorType: connector.OnPremises},
		SenderIPAddresses: []string{"127.0.0.64/28"},
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("flowgate log:\n%s", r.p.log())
		}
	})
	return r
}

// addRule stores a rule (last in priority order unless it says otherwise).
func (r *ruleRig) addRule(t *testing.T, rule rules.Rule) *rules.Rule {
	t.Helper()
	out, err := r.st.CreateRule(context.Background(), testutil.TestActor, rule)
	if err != nil {
		t.Fatalf("create rule %q: %v", rule.Name, err)
	}
	return out
}

// settle waits until the process runs on a configuration that holds every
// change committed so far: it adds a marker rule (last), which rejects
// mail to a probe address of its own, and sends to that address until the
// marker rejects it. The index is rebuilt from one snapshot of the
// database, so an index with the marker has every earlier change too.
// (Before that, the probe messages are delivered to the probe sink.) The
// bound is generous: the one-second promise has a test of its own.
func (r *ruleRig) settle(t *testing.T) {
	t.Helper()
	r.markers++
	addr := fmt.Sprintf("ready-%d@probe.test", r.markers)
	text := fmt.Sprintf("marker %d is in force", r.markers)
	r.addRule(t, rules.Rule{Name: fmt.Sprintf("Marker %d", r.markers), Enabled: true,
		Conditions: rules.Predicates{RecipientAddressIs: []string{addr}},
		Actions:    rules.Actions{Reject: &rules.Reject{Code: 550, Enhanced: "5.7.1", Text: text}}})
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, msg := r.send(t, "alice@contoso.com", []string{addr}, ruleBody("<marker-"+itoa(int64(r.markers))+"-"+itoa(time.Now().UnixNano())+"@e2e.test>", "marker"))
		if code == 550 && msg == "5.7.1 "+text {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("marker rule %d not in force within 10s; the last probe got %d %s", r.markers, code, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// send runs one mail transaction on a session of its own from r.src and
// returns the first reply that refused it, or the reply to the end of
// DATA. (A session per message: refusals count against a session's error
// limit.)
func (r *ruleRig) send(t *testing.T, from string, rcpts []string, body string) (int, string) {
	t.Helper()
	return sendVia(t, r.src, r.p.SMTP, from, rcpts, body)
}

func sendVia(t *testing.T, src, addr, from string, rcpts []string, body string) (int, string) {
	t.Helper()
	s, err := dialSMTP(src, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	code, msg, err := s.transact(from, rcpts, body)
	if err != nil {
		t.Fatalf("mail from %s to %v: %v", from, rcpts, err)
	}
	return code, msg
}

// transact runs MAIL, RCPT for each recipient, DATA and the content. It
// returns the first reply that is not the one expected, or the final reply;
// the error only for a broken connection.
func (s *sender) transact(from string, rcpts []string, body string) (int, string, error) {
	step := func(want int, format string, args ...any) (int, string, bool, error) {
		_ = s.conn.SetDeadline(time.Now().Add(30 * time.Second))
		if err := s.tp.PrintfLine(format, args...); err != nil {
			return 0, "", false, err
		}
		code, msg, err := s.tp.ReadResponse(0)
		if err != nil {
			return 0, "", false, err
		}
		return code, msg, code == want, nil
	}
	if code, msg, ok, err := step(250, "MAIL FROM:<%s>", from); err != nil || !ok {
		return code, msg, err
	}
	for _, rc := range rcpts {
		if code, msg, ok, err := step(250, "RCPT TO:<%s>", rc); err != nil || !ok {
			return code, msg, err
		}
	}
	if code, msg, ok, err := step(354, "DATA"); err != nil || !ok {
		return code, msg, err
	}
	w := s.tp.DotWriter()
	if _, err := io.WriteString(w, body); err != nil {
		return 0, "", err
	}
	if err := w.Close(); err != nil {
		return 0, "", err
	}
	return s.tp.ReadResponse(0)
}

// ruleBody is a message with the Message-ID mid and the extra header
// fields given ("Name: value").
func ruleBody(mid string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: Alice <alice@contoso.com>\r\nTo: Bob <bob@fabrikam.test>\r\nSubject: rules %s\r\nMessage-ID: %s\r\n", mid, mid)
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\nHello,\r\nthe figures are attached.\r\n")
	return b.String()
}

// queued sends a message that must be queued and returns its queue id,
// from the reply ("2.0.0 OK: queued as <uid>").
func (r *ruleRig) queued(t *testing.T, from string, rcpts []string, body string) string {
	t.Helper()
	code, msg := r.send(t, from, rcpts, body)
	_, uid, ok := strings.Cut(msg, "queued as ")
	if code != 250 || !ok || uid == "" {
		t.Fatalf("want 250 queued, got %d %s", code, msg)
	}
	return strings.TrimSpace(uid)
}

// ruleTrace is a message as GET /api/v1/messages/{id} answers it.
type ruleTrace struct {
	ID         string `json:"id"`
	Status     string `json:"status"`
	Reply      string `json:"reply"`
	Recipients []struct {
		Address     string          `json:"address"`
		Status      string          `json:"status"`
		Connector   string          `json:"connector"`
		RouteReason string          `json:"route_reason"`
		Attempts    int             `json:"attempts"`
		LastReply   string          `json:"last_reply"`
		Rule        json.RawMessage `json:"rule"` // SPEC 5: the rule that chose the route, or null
	} `json:"recipients"`
	Events []struct {
		Type   string `json:"type"`
		Detail string `json:"detail"`
	} `json:"events"`
}

// rcpt returns the recipient addr of the trace (fatal when missing).
func (tr *ruleTrace) rcpt(t *testing.T, addr string) int {
	t.Helper()
	for i, rc := range tr.Recipients {
		if rc.Address == addr {
			return i
		}
	}
	t.Fatalf("trace %s has no recipient %s: %+v", tr.ID, addr, tr.Recipients)
	return -1
}

// events returns the details of the trace's events of type typ.
func (tr *ruleTrace) events(typ string) []string {
	var out []string
	for _, e := range tr.Events {
		if e.Type == typ {
			out = append(out, e.Detail)
		}
	}
	return out
}

// getJSON calls the API with t (proc.api fails the test that started
// the process, which a subtest must not do).
func getJSON(t *testing.T, p *proc, tok, path string, out any) int {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+p.HTTP+"/api/v1"+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("GET %s: %v: %s", path, err, data)
		}
	}
	return resp.StatusCode
}

// waitTrace polls the trace of uid until done holds for it (or 15 s).
func (r *ruleRig) waitTrace(t *testing.T, uid, what string, done func(*ruleTrace) bool) *ruleTrace {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var tr ruleTrace
		code := getJSON(t, r.p, r.tok, "/messages/"+url.PathEscape(uid), &tr)
		if code == 200 && done(&tr) {
			return &tr
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace of %s: not %s within 15s (HTTP %d): %+v", uid, what, code, tr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// finished says whether no recipient of the trace is still queued or
// deferred, and the trace has reached want.
func finished(want string) func(*ruleTrace) bool {
	return func(tr *ruleTrace) bool {
		for _, rc := range tr.Recipients {
			if rc.Status == "queued" || rc.Status == "deferred" {
				return false
			}
		}
		return tr.Status == want
	}
}

// rejectedTrace finds the trace of the rejected message sent to rcpt (a
// rejected message has no queue id the client sees) and returns it whole.
func (r *ruleRig) rejectedTrace(t *testing.T, rcpt string) *ruleTrace {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var list struct {
			Messages []struct {
				ID string `json:"id"`
			} `json:"messages"`
		}
		code := getJSON(t, r.p, r.tok, "/messages?status=rejected&recipient="+url.QueryEscape(rcpt), &list)
		if code == 200 && len(list.Messages) == 1 {
			return r.waitTrace(t, list.Messages[0].ID, "read", func(*ruleTrace) bool { return true })
		}
		if code == 200 && len(list.Messages) > 1 {
			t.Fatalf("%d rejected messages to %s, want 1", len(list.Messages), rcpt)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rejected message to %s in the trace within 15s (HTTP %d)", rcpt, code)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ruleColumns reads the rule decision a recipient keeps in the queue
// (message_recipients.rule, rule_connector_id, rule_on_error).
func (r *ruleRig) ruleColumns(t *testing.T, uid, addr string) (rule string, connectorID *int64, onError string) {
	t.Helper()
	var row struct {
		Rule            string
		RuleConnectorID *int64
		RuleOnError     string
	}
	err := r.st.DB().Raw(`SELECT rc.rule, rc.rule_connector_id, rc.rule_on_error FROM message_recipients rc
		JOIN messages m ON m.id = rc.message_id WHERE m.uid = ? AND rc.address = ?`, uid, addr).Scan(&row).Error
	if err != nil {
		t.Fatal(err)
	}
	return row.Rule, row.RuleConnectorID, row.RuleOnError
}

// checkTraceRule checks the recipient's "rule" in the trace (SPEC 5) when
// the API reports it; want "" stands for null.
func checkTraceRule(t *testing.T, tr *ruleTrace, addr, want string) {
	t.Helper()
	raw := tr.Recipients[tr.rcpt(t, addr)].Rule
	if raw == nil {
		t.Logf("the trace API does not report the recipient's rule (SPEC 5 \"rule\"); checked in the database instead")
		return
	}
	var got *string
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("rule of %s in the trace: %s", addr, raw)
	}
	if (got == nil) != (want == "") || (got != nil && *got != want) {
		t.Errorf("trace: rule of %s is %s, want %q", addr, raw, want)
	}
}

// atSink returns the messages sink received with the Message-ID mid.
func atSink(sink *testutil.Sink, mid string) []testutil.SinkMessage {
	var out []testutil.SinkMessage
	for _, m := range sink.Messages() {
		if strings.Contains(m.Data, "\r\nMessage-ID: "+mid+"\r\n") || strings.HasPrefix(m.Data, "Message-ID: "+mid+"\r\n") {
			out = append(out, m)
		}
	}
	return out
}

// waitAtSink waits (up to 15 s) until sink has received the message mid,
// and checks that it arrived once, for exactly rcpts.
func waitAtSink(t *testing.T, sink *testutil.Sink, name, mid string, rcpts ...string) testutil.SinkMessage {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := atSink(sink, mid)
		if len(got) > 0 {
			if len(got) != 1 || !slices.Equal(got[0].To, rcpts) {
				for _, m := range got {
					t.Errorf("%s sink: %s for %v", name, mid, m.To)
				}
				t.Fatalf("%s sink: want %s once, for %v", name, mid, rcpts)
			}
			return got[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s sink: %s not received within 15s", name, mid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRulesRouteRejectAuditAndDates: SPEC 7 in the real binary, on both
// engines. The rules, in priority order:
//
//  0. "Confidential to Fabrikam": recipient_domain_is fabrikam.test and
//     header_contains X-Classification "confidential", except
//     sender_address_is ceo@contoso.com → "Encryption gateway";
//     stop_processing.
//  1. "Confidential stays inside": header_contains X-Classification
//     "confidential" and sent_to_scope not_in_organization, except the CEO
//     → reject 554 5.7.1 (it would reject what rule 0 routes, were it not
//     for rule 0's stop_processing).
//  2. "Audit Fabrikam": recipient_domain_is fabrikam.test, audit mode →
//     would reject (it must change nothing).
//  3. "Blocked mailbox": recipient_address_is blocked@fabrikam.test →
//     reject 550 5.7.2.
//  4. "Not yet active" (activation tomorrow) and 5. "Expired" (expiry
//     yesterday): dated@ and dated-now@fabrikam.test → reject.
//  6. "In force today" (activation an hour ago, expiry in an hour):
//     dated-now@fabrikam.test → reject, with a text of its own.
func TestRulesRouteRejectAuditAndDates(t *testing.T) {
	for name, mk := range engines(t) {
		t.Run(name, func(t *testing.T) {
			env, opts := mk(t)
			r := newRuleRig(t, env, opts)
			now := time.Now().UTC()
			hour, day := time.Hour, 24*time.Hour
			at := func(d time.Duration) *time.Time { v := now.Add(d).Truncate(time.Second); return &v }
			gw := r.gatewayID
			const (
				confText    = "Confidential mail may not leave Contoso (policy FG-7)"
				auditText   = "Fabrikam mail would be refused (audit)"
				blockedText = "Mailbox blocked by Contoso mail flow policy"
				datedText   = "dated rule in force"
			)
			confidential := []rules.HeaderWords{{Header: "X-Classification", Words: []string{"confidential"}}}
			ceo := rules.Predicates{SenderAddressIs: []string{"ceo@contoso.com"}}
			r.addRule(t, rules.Rule{Name: "Confidential to Fabrikam", Enabled: true,
				Conditions: rules.Predicates{RecipientDomainIs: []string{"fabrikam.test"}, HeaderContains: confidential},
				Exceptions: ceo,
				Actions:    rules.Actions{RouteToOutboundConnector: &gw, StopProcessing: true}})
			r.addRule(t, rules.Rule{Name: "Confidential stays inside", Enabled: true,
				Conditions: rules.Predicates{HeaderContains: confidential, SentToScope: rules.NotInOrganization},
				Exceptions: ceo,
				Actions:    rules.Actions{Reject: &rules.Reject{Code: 554, Enhanced: "5.7.1", Text: confText}}})
			r.addRule(t, rules.Rule{Name: "Audit Fabrikam", Enabled: true, Mode: rules.Audit,
				Conditions: rules.Predicates{RecipientDomainIs: []string{"fabrikam.test"}},
				Actions:    rules.Actions{Reject: &rules.Reject{Code: 550, Enhanced: "5.7.1", Text: auditText}}})
			r.addRule(t, rules.Rule{Name: "Blocked mailbox", Enabled: true,
				Conditions: rules.Predicates{RecipientAddressIs: []string{"blocked@fabrikam.test"}},
				Actions:    rules.Actions{Reject: &rules.Reject{Code: 550, Enhanced: "5.7.2", Text: blockedText}}})
			dated := rules.Predicates{RecipientAddressIs: []string{"dated@fabrikam.test", "dated-now@fabrikam.test"}}
			r.addRule(t, rules.Rule{Name: "Not yet active", Enabled: true, ActivationDate: at(day), Conditions: dated,
				Actions: rules.Actions{Reject: &rules.Reject{Code: 550, Enhanced: "5.7.1", Text: "not yet active"}}})
			r.addRule(t, rules.Rule{Name: "Expired", Enabled: true, ExpiryDate: at(-day), Conditions: dated,
				Actions: rules.Actions{Reject: &rules.Reject{Code: 550, Enhanced: "5.7.1", Text: "expired"}}})
			r.addRule(t, rules.Rule{Name: "In force today", Enabled: true, ActivationDate: at(-hour), ExpiryDate: at(hour),
				Conditions: rules.Predicates{RecipientAddressIs: []string{"dated-now@fabrikam.test"}},
				Actions:    rules.Actions{Reject: &rules.Reject{Code: 550, Enhanced: "5.7.1", Text: datedText}}})
			r.settle(t)
			const bob = "bob@fabrikam.test"
			auditEvent := func(addr string) string {
				return addr + `: mail flow rule "Audit Fabrikam" (audit mode) matched: it would reject with 550 5.7.1 ` + auditText
			}
			const partnersReason = `exact domain match fabrikam.test: connector "Partners"`

			t.Run("rule routes through the rule-scoped connector and stops processing", func(t *testing.T) {
				mid := "<confidential-1@e2e.test>"
				uid := r.queued(t, "alice@contoso.com", []string{bob}, ruleBody(mid, "X-Classification: Strictly CONFIDENTIAL (legal)"))
				waitAtSink(t, r.gateway, "gateway", mid, bob)
				tr := r.waitTrace(t, uid, "delivered", finished("delivered"))
				rc := tr.Recipients[tr.rcpt(t, bob)]
				wantReason := `mail flow rule "Confidential to Fabrikam" routes through connector "Encryption gateway"`
				if rc.Status != "delivered" || rc.Connector != "Encryption gateway" || rc.RouteReason != wantReason {
					t.Errorf("recipient %+v, want delivered through Encryption gateway: %s", rc, wantReason)
				}
				if got := tr.events("rule"); !slices.Equal(got, []string{bob + ": " + wantReason}) {
					t.Errorf("rule events %q", got)
				}
				// Rule 1 would have rejected it, rule 2 would have left an
				// audit event: stop_processing ended processing at rule 0.
				if got := append(tr.events("rule_audit"), tr.events("rule_rejected")...); len(got) != 0 {
					t.Errorf("rules after stop_processing were applied: %q", got)
				}
				rule, cid, onErr := r.ruleColumns(t, uid, bob)
				if rule != "Confidential to Fabrikam" || cid == nil || *cid != gw || onErr != "defer" {
					t.Errorf("queued rule decision %q %v %q, want the rule, connector %d, defer", rule, cid, onErr, gw)
				}
				checkTraceRule(t, tr, bob, "Confidential to Fabrikam")
			})

			t.Run("without the header SPEC 3.5 routes and the audit rule changes nothing", func(t *testing.T) {
				mid := "<plain-1@e2e.test>"
				uid := r.queued(t, "alice@contoso.com", []string{bob}, ruleBody(mid, "X-Classification: internal"))
				waitAtSink(t, r.partners, "partners", mid, bob)
				tr := r.waitTrace(t, uid, "delivered", finished("delivered"))
				rc := tr.Recipients[tr.rcpt(t, bob)]
				if rc.Status != "delivered" || rc.Connector != "Partners" || rc.RouteReason != partnersReason || !strings.HasPrefix(rc.LastReply, "250 ") {
					t.Errorf("recipient %+v, want delivered through Partners: %s", rc, partnersReason)
				}
				if got := tr.events("rule_audit"); !slices.Equal(got, []string{auditEvent(bob)}) {
					t.Errorf("rule_audit events %q, want %q", got, auditEvent(bob))
				}
				if got := append(tr.events("rule"), tr.events("rule_rejected")...); len(got) != 0 {
					t.Errorf("rule events on a message no enforce rule matches: %q", got)
				}
				if rule, cid, onErr := r.ruleColumns(t, uid, bob); rule != "" || cid != nil || onErr != "" {
					t.Errorf("queued rule decision %q %v %q, want none", rule, cid, onErr)
				}
				checkTraceRule(t, tr, bob, "")
			})

			t.Run("an exception skips the rule", func(t *testing.T) {
				mid := "<ceo-1@e2e.test>"
				uid := r.queued(t, "CEO@Contoso.com", []string{bob}, ruleBody(mid, "X-Classification: confidential"))
				waitAtSink(t, r.partners, "partners", mid, bob)
				tr := r.waitTrace(t, uid, "delivered", finished("delivered"))
				if rc := tr.Recipients[tr.rcpt(t, bob)]; rc.Connector != "Partners" || rc.RouteReason != partnersReason {
					t.Errorf("recipient %+v, want the SPEC 3.5 route: %s", rc, partnersReason)
				}
				if got := tr.events("rule"); len(got) != 0 {
					t.Errorf("rule events for an excepted sender: %q", got)
				}
			})

			t.Run("a reject rule answers DATA when it rejects every recipient", func(t *testing.T) {
				mid := "<secret-1@e2e.test>"
				carol, dave := "carol@northwind.test", "dave@northwind.test"
				code, msg := r.send(t, "alice@contoso.com", []string{carol, dave}, ruleBody(mid, "X-Classification: confidential"))
				if code != 554 || msg != "5.7.1 "+confText {
					t.Fatalf("DATA answered %d %s, want 554 5.7.1 %s", code, msg, confText)
				}
				tr := r.rejectedTrace(t, carol)
				want := "554 5.7.1 " + confText
				if tr.Status != "rejected" || tr.Reply != want {
					t.Errorf("trace status %s reply %q, want rejected %q", tr.Status, tr.Reply, want)
				}
				for _, a := range []string{carol, dave} {
					rc := tr.Recipients[tr.rcpt(t, a)]
					if rc.Status != "rejected" || rc.LastReply != want {
						t.Errorf("recipient %+v, want rejected with %s", rc, want)
					}
				}
				wantEvents := []string{
					carol + `: rejected by mail flow rule "Confidential stays inside": ` + want,
					dave + `: rejected by mail flow rule "Confidential stays inside": ` + want,
				}
				if got := tr.events("rule_rejected"); !slices.Equal(got, wantEvents) {
					t.Errorf("rule_rejected events %q, want %q", got, wantEvents)
				}
				if got := tr.events("rejected"); !slices.Equal(got, []string{"every recipient rejected by mail flow rules: " + want}) {
					t.Errorf("rejected events %q", got)
				}
				// Nothing queued: no content kept, no recipient waiting.
				var bodies, waiting int64
				db := r.st.DB()
				if err := db.Raw(`SELECT COUNT(*) FROM message_bodies b JOIN messages m ON m.id = b.message_id WHERE m.uid = ?`, tr.ID).Scan(&bodies).Error; err != nil {
					t.Fatal(err)
				}
				if err := db.Raw(`SELECT COUNT(*) FROM message_recipients rc JOIN messages m ON m.id = rc.message_id WHERE m.uid = ? AND rc.status IN ('queued', 'deferred')`, tr.ID).Scan(&waiting).Error; err != nil {
					t.Fatal(err)
				}
				if bodies != 0 || waiting != 0 {
					t.Errorf("the rejected message left %d bodies and %d waiting recipients in the queue", bodies, waiting)
				}
			})

			t.Run("a reject rule bounces one recipient with a DSN when another is delivered", func(t *testing.T) {
				mid := "<blocked-1@e2e.test>"
				blocked := "blocked@fabrikam.test"
				uid := r.queued(t, "alice@contoso.com", []string{bob, blocked}, ruleBody(mid))
				waitAtSink(t, r.partners, "partners", mid, bob)
				dsnID := "<dsn-" + uid + "@gw.e2e.test>"
				dsn := waitAtSink(t, r.onPrem, "on-premises", dsnID, "alice@contoso.com")
				if dsn.From != "" {
					t.Errorf("the DSN's envelope sender is %q, want the null sender", dsn.From)
				}
				wantReply := "550 5.7.2 " + blockedText
				for _, want := range []string{
					"Content-Type: multipart/report; report-type=delivery-status",
					"X-Flowgate-Queue-ID: " + uid,
					"Final-Recipient: rfc822; " + blocked + "\r\nAction: failed\r\nStatus: 5.7.2\r\n",
					"Diagnostic-Code: smtp; " + wantReply + "\r\n",
					"Message-ID: " + mid + "\r\n", // the original's header section
				} {
					if !strings.Contains(dsn.Data, want) {
						t.Errorf("the DSN lacks %q:\n%s", want, dsn.Data)
					}
				}
				if strings.Contains(dsn.Data, "Final-Recipient: rfc822; "+bob) {
					t.Errorf("the DSN reports the delivered recipient:\n%s", dsn.Data)
				}
				tr := r.waitTrace(t, uid, "finished", func(tr *ruleTrace) bool { return finished(tr.Status)(tr) && len(tr.events("dsn")) > 0 })
				if rc := tr.Recipients[tr.rcpt(t, blocked)]; rc.Status != "bounced" || rc.LastReply != wantReply {
					t.Errorf("recipient %+v, want bounced with %s", rc, wantReply)
				}
				if rc := tr.Recipients[tr.rcpt(t, bob)]; rc.Status != "delivered" || rc.Connector != "Partners" {
					t.Errorf("recipient %+v, want delivered through Partners", rc)
				}
				if got := tr.events("rule_rejected"); !slices.Equal(got, []string{blocked + `: rejected by mail flow rule "Blocked mailbox": ` + wantReply}) {
					t.Errorf("rule_rejected events %q", got)
				}
				if rule, _, onErr := r.ruleColumns(t, uid, blocked); rule != "Blocked mailbox" || onErr != "reject" {
					t.Errorf("queued rule decision of %s: %q %q", blocked, rule, onErr)
				}
			})

			t.Run("a rule outside its dates does nothing", func(t *testing.T) {
				mid := "<dated-1@e2e.test>"
				uid := r.queued(t, "alice@contoso.com", []string{"dated@fabrikam.test"}, ruleBody(mid))
				waitAtSink(t, r.partners, "partners", mid, "dated@fabrikam.test")
				tr := r.waitTrace(t, uid, "delivered", finished("delivered"))
				if got := append(tr.events("rule"), tr.events("rule_rejected")...); len(got) != 0 {
					t.Errorf("rules outside their dates applied: %q", got)
				}
				// The same address list, with a rule in its dates after the
				// two that are not: that one's reply.
				code, msg := r.send(t, "alice@contoso.com", []string{"dated-now@fabrikam.test"}, ruleBody("<dated-2@e2e.test>"))
				if code != 550 || msg != "5.7.1 "+datedText {
					t.Errorf("to dated-now@: %d %s, want 550 5.7.1 %s", code, msg, datedText)
				}
			})

			t.Run("nothing went astray", func(t *testing.T) {
				r.settle(t) // every message above has been delivered or traced
				for _, c := range []struct {
					name string
					sink *testutil.Sink
					want []string
				}{
					{"gateway", r.gateway, []string{"<confidential-1@e2e.test>"}},
					{"partners", r.partners, []string{"<plain-1@e2e.test>", "<ceo-1@e2e.test>", "<blocked-1@e2e.test>", "<dated-1@e2e.test>"}},
				} {
					var got []string
					for _, m := range c.sink.Messages() {
						if mm := midRE.FindStringSubmatch(m.Data); mm != nil {
							got = append(got, mm[1])
						}
					}
					if !slices.Equal(got, c.want) {
						t.Errorf("%s sink received %q, want %q", c.name, got, c.want)
					}
				}
			})
		})
	}
}

// TestRuleOnErrorDeferAndIgnore: a recipient keeps its rule's decision in
// the queue, and delivery honours the rule's on_error when the rule's
// connector can no longer carry mail. To get messages queued but not yet
// delivered, the two rule-scoped connectors' sinks are down when the
// messages arrive (connection refused: deferred, retried every second).
// Then the rules are turned off (SPEC 7 refuses to turn off a connector an
// enabled enforce rule routes to — checked first), the connectors are
// turned off, the process is known to run on that configuration (settle),
// and only then do the sinks come back: on_error defer keeps deferring with
// 451 4.4.0 naming the rule, on_error ignore delivers by the SPEC 3.5
// route, and neither sink ever receives anything.
func TestRuleOnErrorDeferAndIgnore(t *testing.T) {
	for name, mk := range engines(t) {
		t.Run(name, func(t *testing.T) {
			env, opts := mk(t)
			r := newRuleRig(t, env, opts)
			r.deferring.Stop()
			r.fallback.Stop()
			dID, fID := r.deferringID, r.fallbackID
			deferRule := r.addRule(t, rules.Rule{Name: "Defer lane", Enabled: true, OnError: rules.Defer,
				Conditions: rules.Predicates{RecipientAddressIs: []string{"defer@fabrikam.test"}},
				Actions:    rules.Actions{RouteToOutboundConnector: &dID}})
			ignoreRule := r.addRule(t, rules.Rule{Name: "Ignore lane", Enabled: true, OnError: rules.Ignore,
				Conditions: rules.Predicates{RecipientAddressIs: []string{"ignore@fabrikam.test"}},
				Actions:    rules.Actions{RouteToOutboundConnector: &fID}})
			r.settle(t)

			const deferAddr, ignoreAddr = "defer@fabrikam.test", "ignore@fabrikam.test"
			deferUID := r.queued(t, "alice@contoso.com", []string{deferAddr}, ruleBody("<defer-1@e2e.test>"))
			ignoreUID := r.queued(t, "alice@contoso.com", []string{ignoreAddr}, ruleBody("<ignore-1@e2e.test>"))
			for _, c := range []struct{ uid, addr, connector string }{
				{deferUID, deferAddr, "Deferring gateway"}, {ignoreUID, ignoreAddr, "Fallback gateway"},
			} {
				tr := r.waitTrace(t, c.uid, "deferred by its down next hop", func(tr *ruleTrace) bool {
					rc := tr.Recipients[tr.rcpt(t, c.addr)]
					return rc.Status == "deferred" && rc.Attempts >= 1
				})
				if rc := tr.Recipients[tr.rcpt(t, c.addr)]; rc.Connector != c.connector || !strings.Contains(rc.LastReply, "connection refused") {
					t.Fatalf("%s: %+v, want deferred on %s", c.addr, rc, c.connector)
				}
			}
			if rule, cid, onErr := r.ruleColumns(t, deferUID, deferAddr); rule != "Defer lane" || cid == nil || *cid != dID || onErr != "defer" {
				t.Fatalf("queued decision of %s: %q %v %q", deferAddr, rule, cid, onErr)
			}
			if rule, cid, onErr := r.ruleColumns(t, ignoreUID, ignoreAddr); rule != "Ignore lane" || cid == nil || *cid != fID || onErr != "ignore" {
				t.Fatalf("queued decision of %s: %q %v %q", ignoreAddr, rule, cid, onErr)
			}

			ctx := context.Background()
			_, err := r.st.SetConnectorEnabled(ctx, testutil.TestActor, connector.Outbound, dID, false)
			var conflict *store.ConflictError
			if !errors.As(err, &conflict) || !strings.Contains(conflict.Message, `"Defer lane"`) {
				t.Fatalf("turning off a connector an enabled enforce rule routes to: %v, want a conflict naming the rule", err)
			}
			for _, id := range []int64{deferRule.ID, ignoreRule.ID} {
				if _, err := r.st.SetRuleEnabled(ctx, testutil.TestActor, id, false); err != nil {
					t.Fatal(err)
				}
			}
			for _, id := range []int64{dID, fID} {
				if _, err := r.st.SetConnectorEnabled(ctx, testutil.TestActor, connector.Outbound, id, false); err != nil {
					t.Fatal(err)
				}
			}
			r.settle(t)
			r.deferring.Start()
			r.fallback.Start()

			// ignore: delivered by the SPEC 3.5 route (Partners).
			waitAtSink(t, r.partners, "partners", "<ignore-1@e2e.test>", ignoreAddr)
			tr := r.waitTrace(t, ignoreUID, "delivered", finished("delivered"))
			wantIgnore := fmt.Sprintf(`mail flow rule "Ignore lane" routes through outbound connector %d, which cannot carry mail now (turned off, deleted, or without an active revision); routed as if the rule had not matched (on_error ignore): exact domain match fabrikam.test: connector "Partners"`, fID)
			if rc := tr.Recipients[tr.rcpt(t, ignoreAddr)]; rc.Connector != "Partners" || rc.RouteReason != wantIgnore {
				t.Errorf("%s: %+v, want delivered through Partners: %s", ignoreAddr, rc, wantIgnore)
			}

			// defer: 451 4.4.0 naming the rule and on_error defer, on
			// every attempt after the change.
			wantDefer := fmt.Sprintf(`451 4.4.0 mail flow rule "Defer lane" routes through outbound connector %d, which cannot carry mail now (turned off, deleted, or without an active revision); deferred (on_error defer)`, dID)
			tr = r.waitTrace(t, deferUID, "deferred by on_error", func(tr *ruleTrace) bool {
				return tr.Recipients[tr.rcpt(t, deferAddr)].LastReply == wantDefer
			})
			attempts := tr.Recipients[tr.rcpt(t, deferAddr)].Attempts
			tr = r.waitTrace(t, deferUID, "attempted again", func(tr *ruleTrace) bool {
				return tr.Recipients[tr.rcpt(t, deferAddr)].Attempts > attempts
			})
			if rc := tr.Recipients[tr.rcpt(t, deferAddr)]; rc.Status != "deferred" || rc.LastReply != wantDefer || tr.Status != "deferred" {
				t.Errorf("%s after another attempt: %+v (message %s), want deferred with %s", deferAddr, rc, tr.Status, wantDefer)
			}
			if !slices.ContainsFunc(tr.events("deferred"), func(d string) bool { return strings.Contains(d, "deferred (on_error defer)") }) {
				t.Errorf("no deferred event names on_error defer: %q", tr.events("deferred"))
			}
			if n, m := len(r.deferring.Messages()), len(r.fallback.Messages()); n+m != 0 {
				t.Errorf("the turned-off connectors' sinks received %d and %d messages", n, m)
			}
			if got := atSink(r.partners, "<defer-1@e2e.test>"); len(got) != 0 {
				t.Errorf("on_error defer fell back to the SPEC 3.5 route")
			}
		})
	}
}

// postRule creates a rule through p's API (SPEC 5: POST /api/v1/rules
// answers 201 with the rule) and returns its id; false when the process
// has no rules API (yet).
func postRule(t *testing.T, p *proc, tok string, rule rules.Rule) (int64, bool) {
	t.Helper()
	body, err := json.Marshal(rule)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", "http://"+p.HTTP+"/api/v1/rules", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /rules: %v", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 404 || resp.StatusCode == 405 {
		return 0, false
	}
	var created struct {
		ID int64 `json:"id"`
	}
	if resp.StatusCode != 201 || json.Unmarshal(data, &created) != nil || created.ID == 0 {
		t.Fatalf("POST /rules: %d %s", resp.StatusCode, data)
	}
	return created.ID, true
}

// TestRuleChangeReachesSecondProcess: two processes on one PostgreSQL
// database; a rule change committed elsewhere (through process A's API
// when it has the rules API, else through a store on the same database)
// rules the relay of process B, and of process A, within one second:
// created (a reject rule), turned off, turned on again. Each process is
// polled with one message per probe, each on a session of its own; the
// time is from just before the change is committed to the start of the
// probe whose reply shows it.
func TestRuleChangeReachesSecondProcess(t *testing.T) {
	tok, _, a, b, st, _ := twoProcessesToAPartner(t)
	ctx := context.Background()

	const target = "probe@fabrikam.test"
	const text = "Blocked by a rule made elsewhere"
	n := 0
	probe := func(p *proc) (int, string) {
		n++
		return sendVia(t, "127.0.0.81", p.SMTP, "alice@contoso.com", []string{target}, ruleBody(fmt.Sprintf("<two-%d@e2e.test>", n)))
	}
	// Both processes relay for Contoso before any rule exists.
	for _, p := range []*proc{a, b} {
		deadline := time.Now().Add(10 * time.Second)
		for code, msg := probe(p); code != 250; code, msg = probe(p) {
			if time.Now().After(deadline) {
				t.Fatalf("the process does not relay for Contoso: %d %s", code, msg)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// within measures, from just before change, how long until each
	// process's reply to a probe says rejected (true) or accepted (false):
	// process B first, then A; at most 1 s each.
	within := func(what string, rejected bool, change func()) {
		t.Helper()
		begun := time.Now()
		change()
		committed := time.Since(begun)
		for _, p := range []struct {
			name string
			p    *proc
		}{{"B", b}, {"A", a}} {
			for {
				sent := time.Now()
				code, msg := probe(p.p)
				if rejected && code == 550 && msg == "5.7.1 "+text || !rejected && code == 250 {
					took := sent.Sub(begun) // the probe that showed it was sent by then
					t.Logf("%s: process %s applied it %s after the change began (the commit took %s)", what, p.name, took.Round(time.Millisecond), committed.Round(time.Millisecond))
					if took > time.Second {
						t.Errorf("%s: process %s applied it after %s, want within 1s", what, p.name, took)
					}
					break
				}
				if code != 250 && code != 550 {
					t.Fatalf("%s: process %s answered a probe %d %s", what, p.name, code, msg)
				}
				if time.Since(begun) > 5*time.Second {
					t.Fatalf("%s: process %s did not apply it within 5s (last reply %d %s)", what, p.name, code, msg)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}

	rule := rules.Rule{Name: "Block the probe", Enabled: true,
		Conditions: rules.Predicates{RecipientAddressIs: []string{target}},
		Actions:    rules.Actions{Reject: &rules.Reject{Code: 550, Enhanced: "5.7.1", Text: text}}}
	var id int64
	within("rule created", true, func() {
		if created, ok := postRule(t, a, tok, rule); ok {
			id = created
			t.Logf("rule created through process A's API")
			return
		}
		c, err := st.CreateRule(ctx, testutil.TestActor, rule)
		if err != nil {
			t.Fatal(err)
		}
		id = c.ID
	})
	within("rule turned off", false, func() {
		if _, err := st.SetRuleEnabled(ctx, testutil.TestActor, id, false); err != nil {
			t.Fatal(err)
		}
	})
	within("rule turned on again", true, func() {
		if _, err := st.SetRuleEnabled(ctx, testutil.TestActor, id, true); err != nil {
			t.Fatal(err)
		}
	})
}
