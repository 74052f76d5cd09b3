package relay_test

import (
	"context"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// SPEC 3.3, "our own domains are not for strangers": a sender in an
// accepted domain only through our own servers or a partner connector
// that identified the client, unless the domain allows external senders.
func TestOwnDomainsAreNotForStrangers(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			h := newHarness(t, e, nil)
			h.acceptedDomain("contoso.com", "contoso.org")
			h.change(func() {
				if _, err := h.st.CreateAcceptedDomainWith(context.Background(), admin, "newsletter.contoso.com", connector.Authoritative,
					store.AcceptedDomainOptions{AllowExternalSenders: true}); err != nil {
					t.Fatal(err)
				}
			})
			h.activeConnector(&connector.InboundSpec{Common: connector.Common{Name: "Our server", ConnectorType: connector.OnPremises},
				SenderIPAddresses: []string{"127.0.0.80"}})
			h.activeConnector(&connector.InboundSpec{Common: partner("Scanner by IP"), SenderIPAddresses: []string{"127.0.0.81"}, RequireTLS: true})
			h.activeConnector(&connector.InboundSpec{Common: partner("Anyone as contoso"), SenderDomains: []string{"contoso.com"}, RequireTLS: true})
			inside := []string{"bob@contoso.com"}

			// A stranger no connector knows may not send as contoso.org…
			r := send(h.dial(clientOpts{src: "127.0.0.82"}), "ceo@contoso.org", inside, "")
			if r.mailCode != 550 || !strings.HasPrefix(r.mailText, "550 5.7.1 ") || !strings.Contains(r.mailText, "contoso.org is one of our domains; mail from it must come through") {
				t.Fatalf("our domain from a stranger: MAIL %d %q", r.mailCode, r.mailText)
			}
			// …nor through a partner connector matched by sender domain
			// alone (TLS is no identification) as contoso.com.
			r = send(h.dial(clientOpts{src: "127.0.0.82", tls: true}), "ceo@contoso.com", inside, "")
			if r.mailCode != 550 || !strings.HasPrefix(r.mailText, "550 5.7.1 ") || !strings.Contains(r.mailText, "contoso.com is one of our domains; mail from it must come through") {
				t.Fatalf("our domain from a stranger: MAIL %d %q", r.mailCode, r.mailText)
			}
			tr := h.lastTrace()
			if tr.Status != "rejected" || tr.Sender != "ceo@contoso.com" || !strings.Contains(tr.Reply, "5.7.1") {
				t.Fatalf("trace %+v: want rejected with 5.7.1", tr)
			}
			if d := h.event(tr.UID, "rejected"); !strings.Contains(d, "does not allow external senders") {
				t.Errorf("rejected event %q", d)
			}
			// Case and a trailing dot change nothing.
			if r := send(h.dial(clientOpts{src: "127.0.0.82"}), "ceo@CONTOSO.org.", inside, ""); r.mailCode != 550 {
				t.Errorf("our domain in capitals from a stranger: MAIL %d %q", r.mailCode, r.mailText)
			}

			// Our own server, a partner identified by IP, the null sender,
			// a domain that allows external senders, and other domains.
			expectAccepted(t, h, send(h.dial(clientOpts{src: "127.0.0.80"}), "ceo@contoso.com", inside, ""), "Our server")
			expectAccepted(t, h, send(h.dial(clientOpts{src: "127.0.0.81", tls: true}), "scanner@contoso.com", inside, ""), "Scanner by IP")
			expectAccepted(t, h, send(h.dial(clientOpts{src: "127.0.0.82"}), "", inside, ""), "")
			expectAccepted(t, h, send(h.dial(clientOpts{src: "127.0.0.82"}), "news@newsletter.contoso.com", inside, ""), "")
			expectAccepted(t, h, send(h.dial(clientOpts{src: "127.0.0.82"}), "alice@fabrikam.test", inside, ""), "")
		})
	}
}
