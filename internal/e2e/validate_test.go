package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testutil"
)

type validationReply struct {
	ID       int64  `json:"id"`
	Revision int    `json:"revision"`
	Status   string `json:"status"`
	Steps    []struct {
		Name, Status, Detail string
	} `json:"steps"`
	Transcript string `json:"transcript"`
}

type connectorReply struct {
	ID             int64  `json:"id"`
	Status         string `json:"status"`
	Revision       int    `json:"revision"`
	ActiveRevision *int   `json:"active_revision"`
}

func (v validationReply) failedStep() string {
	for _, s := range v.Steps {
		if s.Status == "failed" {
			return s.Name + ": " + s.Detail
		}
	}
	return ""
}

// TestValidateActivateEndToEnd drives the real binary through the API:
// activation before validation is refused; validate → passed → activate;
// an edit of the active connector that points at a dead host leaves mail
// flowing to the old host while the new revision is unvalidated, after it
// failed validation, and after a passed validation until it is activated.
func TestValidateActivateEndToEnd(t *testing.T) {
	for name, mk := range engines(t) {
		t.Run(name, func(t *testing.T) {
			env, _ := mk(t)
			token := env.token(t)
			p := start(t, env)
			oldHost := testutil.NewSink(t, testutil.SinkOptions{})
			newHost := testutil.NewSink(t, testutil.SinkOptions{})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			dead := ln.Addr().String()
			ln.Close()

			if code := p.api(token, "POST", "/accepted-domains", map[string]any{"domain": "contoso.test"}, nil); code != 201 {
				t.Fatalf("accepted domain: %d", code)
			}
			// Our own server relays through flowgate; it too must be
			// validated (inbound, through the live listener) and activated.
			var onPrem connectorReply
			if code := p.api(token, "POST", "/inbound-connectors", map[string]any{
				"name": "Our server", "connector_type": "on_premises", "sender_ip_addresses": []string{"127.0.0.50"},
			}, &onPrem); code != 201 {
				t.Fatalf("inbound connector: %d", code)
			}
			var out connectorReply
			if code := p.api(token, "POST", "/outbound-connectors", map[string]any{
				"name": "To Fabrikam", "connector_type": "partner", "recipient_domains": []string{"fabrikam.test"},
				"smart_hosts": []string{oldHost.Addr}, "validation_recipients": []string{"postmaster@fabrikam.test"},
			}, &out); code != 201 {
				t.Fatalf("outbound connector: %d", code)
			}

			// Activate before validate: 409, for both.
			for _, path := range []string{fmt.Sprintf("/inbound-connectors/%d/activate", onPrem.ID), fmt.Sprintf("/outbound-connectors/%d/activate", out.ID)} {
				var e map[string]any
				if code := p.api(token, "POST", path, nil, &e); code != 409 || !strings.Contains(fmt.Sprint(e["error"]), "has not passed validation") {
					t.Fatalf("activate before validate %s: %d %v", path, code, e)
				}
			}

			var v validationReply
			if code := p.api(token, "POST", fmt.Sprintf("/inbound-connectors/%d/validate", onPrem.ID), map[string]any{"recipients": []string{"john@fabrikam.test"}}, &v); code != 200 || v.Status != "passed" {
				t.Fatalf("inbound validation: %d %s %s\n%s", code, v.Status, v.failedStep(), v.Transcript)
			}
			if code := p.api(token, "POST", fmt.Sprintf("/inbound-connectors/%d/activate", onPrem.ID), nil, nil); code != 200 {
				t.Fatalf("activate inbound: %d", code)
			}
			if code := p.api(token, "POST", fmt.Sprintf("/outbound-connectors/%d/validate", out.ID), nil, &v); code != 200 || v.Status != "passed" {
				t.Fatalf("outbound validation: %d %s %s\n%s", code, v.Status, v.failedStep(), v.Transcript)
			}
			// The test message went to the smart host.
			if m := oldHost.Wait(t, 1, 10*time.Second); !strings.Contains(m[0].Data, `validation of outbound connector "To Fabrikam", revision 1`) {
				t.Fatalf("smart host got:\n%s", m[0].Data)
			}
			var c connectorReply
			if code := p.api(token, "POST", fmt.Sprintf("/outbound-connectors/%d/activate", out.ID), map[string]any{"revision": 1}, &c); code != 200 || c.Status != "active" {
				t.Fatalf("activate outbound: %d %+v", code, c)
			}

			// routesTo waits until the live configuration, as the route test
			// sees it, relays our server's mail to the host.
			routesTo := func(host string) {
				t.Helper()
				waitRoute(t, p, token, "127.0.0.50", "john@contoso.test", "sun@fabrikam.test", host)
			}
			sent := 0
			sendOne := func(wantAt *testutil.Sink, what string) {
				t.Helper()
				sent++
				s, err := dialSMTP("127.0.0.50", p.SMTP)
				if err != nil {
					t.Fatal(err)
				}
				defer s.close()
				subject := fmt.Sprintf("message %d (%s)", sent, what)
				if code, text, err := s.mail("john@contoso.test", "sun@fabrikam.test", "Subject: "+subject+"\r\n\r\nhello\r\n"); err != nil || code != 250 {
					t.Fatalf("%s: %d %s %v", what, code, text, err)
				}
				deadline := time.Now().Add(20 * time.Second)
				for {
					for _, m := range wantAt.Messages() {
						if strings.Contains(m.Data, subject) {
							return
						}
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s: not delivered to %s\n%s", what, wantAt, p.log())
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			routesTo(oldHost.Addr)
			sendOne(oldHost, "revision 1 active")

			// Edit: point at a dead host. Revision 2 is not validated: the
			// active revision 1 keeps carrying mail.
			if code := p.api(token, "PUT", fmt.Sprintf("/outbound-connectors/%d", out.ID), map[string]any{
				"name": "To Fabrikam", "connector_type": "partner", "recipient_domains": []string{"fabrikam.test"},
				"smart_hosts": []string{dead}, "validation_recipients": []string{"postmaster@fabrikam.test"},
			}, &c); code != 200 || c.Revision != 2 || c.ActiveRevision == nil || *c.ActiveRevision != 1 || c.Status != "draft" {
				t.Fatalf("edit: %d %+v", code, c)
			}
			sendOne(oldHost, "revision 2 unvalidated")

			// Validation of revision 2 fails with the reason; still revision 1.
			if code := p.api(token, "POST", fmt.Sprintf("/outbound-connectors/%d/validate", out.ID), nil, &v); code != 200 || v.Status != "failed" || v.Revision != 2 ||
				!strings.Contains(v.failedStep(), "connection refused on "+dead) {
				t.Fatalf("validation of the dead host: %d %+v", code, v)
			}
			p.api(token, "GET", fmt.Sprintf("/outbound-connectors/%d", out.ID), nil, &c)
			if c.Status != "failed" {
				t.Fatalf("status after a failed validation: %q", c.Status)
			}
			if code := p.api(token, "POST", fmt.Sprintf("/outbound-connectors/%d/activate", out.ID), nil, nil); code != 409 {
				t.Fatalf("activating a failed revision: %d", code)
			}
			sendOne(oldHost, "revision 2 failed")

			// Revision 3 points at the new host and passes; until it is
			// activated, the old host still gets the mail.
			if code := p.api(token, "PUT", fmt.Sprintf("/outbound-connectors/%d", out.ID), map[string]any{
				"name": "To Fabrikam", "connector_type": "partner", "recipient_domains": []string{"fabrikam.test"},
				"smart_hosts": []string{newHost.Addr}, "validation_recipients": []string{"postmaster@fabrikam.test"},
			}, &c); code != 200 || c.Revision != 3 {
				t.Fatalf("second edit: %d %+v", code, c)
			}
			if code := p.api(token, "POST", fmt.Sprintf("/outbound-connectors/%d/validate", out.ID), nil, &v); code != 200 || v.Status != "passed" {
				t.Fatalf("validation of revision 3: %d %+v", code, v)
			}
			sendOne(oldHost, "revision 3 validated, not active")
			// Revision 2 cannot be activated: it failed.
			if code := p.api(token, "POST", fmt.Sprintf("/outbound-connectors/%d/activate", out.ID), map[string]any{"revision": 2}, nil); code != 409 {
				t.Fatalf("activating revision 2: %d", code)
			}
			if code := p.api(token, "POST", fmt.Sprintf("/outbound-connectors/%d/activate", out.ID), nil, &c); code != 200 || c.ActiveRevision == nil || *c.ActiveRevision != 3 {
				t.Fatalf("activate revision 3: %d %+v", code, c)
			}
			routesTo(newHost.Addr)
			sendOne(newHost, "revision 3 active")
			for _, m := range oldHost.Messages() {
				if strings.Contains(m.Data, "revision 3 active") {
					t.Fatal("the old host got mail after revision 3 was activated")
				}
			}
			var hist []validationReply
			if code := p.api(token, "GET", fmt.Sprintf("/outbound-connectors/%d/validations", out.ID), nil, &hist); code != 200 || len(hist) != 3 || hist[0].Revision != 3 || hist[1].Status != "failed" {
				t.Fatalf("history: %d %+v", code, hist)
			}
		})
	}
}
