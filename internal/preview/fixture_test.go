package preview_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/rules"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

var admin = store.Actor{Kind: "user", Name: "test"}

// activate creates a connector and makes its first revision active.
func activate(t testing.TB, st *store.Store, spec connector.Spec) int64 {
	t.Helper()
	ctx := context.Background()
	c, err := st.CreateConnector(ctx, admin, spec, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.MarkValidated(ctx, admin, spec.Direction(), c.ID, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Activate(ctx, admin, spec.Direction(), c.ID, 1); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

// fixture is the configuration the preview tests replay under.
type fixture struct {
	gateway, partner, onPrem, inbound int64 // connector ids
	block, legal, tailspin            int64 // rule ids
}

// setup configures: the accepted domain contoso.com; outbound connectors
// "Fabrikam partner" (fabrikam.test, exactly), "On-prem" (all accepted
// domains) and the rule-scoped "Encryption gateway"; the on_premises
// inbound connector "Contoso on-prem" (10.0.0.0/8); and the rules
//
//	0 "Block": enforce, rejects blocked@fabrikam.test
//	1 "Legal audit": audit, routes mail from legal@contoso.com through the gateway
//	2 "Tailspin off": disabled, rejects mail to tailspin.test
func setup(t testing.TB, st *store.Store) fixture {
	t.Helper()
	ctx := context.Background()
	if _, err := st.CreateAcceptedDomain(ctx, admin, "contoso.com", connector.Authoritative); err != nil {
		t.Fatal(err)
	}
	var f fixture
	f.partner = activate(t, st, &connector.OutboundSpec{Common: connector.Common{Name: "Fabrikam partner", ConnectorType: connector.Partner},
		RecipientDomains: []string{"fabrikam.test"}, SmartHosts: []string{"mx.fabrikam.test"}})
	f.onPrem = activate(t, st, &connector.OutboundSpec{Common: connector.Common{Name: "On-prem", ConnectorType: connector.OnPremises},
		AllAcceptedDomains: true, SmartHosts: []string{"mail.contoso.com"}})
	f.gateway = activate(t, st, &connector.OutboundSpec{Common: connector.Common{Name: "Encryption gateway", ConnectorType: connector.Partner},
		IsTransportRuleScoped: true, SmartHosts: []string{"enc.example.net"}})
	f.inbound = activate(t, st, &connector.InboundSpec{Common: connector.Common{Name: "Contoso on-prem", ConnectorType: connector.OnPremises},
		SenderIPAddresses: []string{"10.0.0.0/8"}})
	create := func(r rules.Rule) int64 {
		t.Helper()
		out, err := st.CreateRule(ctx, admin, r)
		if err != nil {
			t.Fatal(err)
		}
		return out.ID
	}
	f.block = create(rules.Rule{Name: "Block", Enabled: true,
		Conditions: rules.Predicates{RecipientAddressIs: []string{"blocked@fabrikam.test"}},
		Actions:    rules.Actions{Reject: &rules.Reject{}}})
	f.legal = create(rules.Rule{Name: "Legal audit", Enabled: true, Mode: rules.Audit,
		Conditions: rules.Predicates{SenderAddressIs: []string{"legal@contoso.com"}},
		Actions:    rules.Actions{RouteToOutboundConnector: &f.gateway}})
	f.tailspin = create(rules.Rule{Name: "Tailspin off", Enabled: false,
		Conditions: rules.Predicates{RecipientDomainIs: []string{"tailspin.test"}},
		Actions:    rules.Actions{Reject: &rules.Reject{}}})
	return f
}

// seed is one traced message.
type seed struct {
	uid     string
	age     time.Duration // received this long before now
	ip      string
	sender  string
	rcpts   []string
	header  string // the kept header section; "" keeps none
	status  queue.Status
	rule    string // the rule that rejected its (every) recipient when it was received
	inbound bool   // came through "Contoso on-prem"
}

// seedTrace writes the messages through the queue's writer, as the relay
// does.
func seedTrace(t testing.TB, st *store.Store, f fixture, now time.Time, seeds []seed) {
	t.Helper()
	w := queue.NewWriter(st, slog.New(slog.DiscardHandler))
	defer w.Close()
	for _, s := range seeds {
		m := &queue.Message{UID: s.uid, ReceivedAt: now.Add(-s.age), Status: s.status, ClientIP: s.ip, Sender: s.sender}
		if m.Status == "" {
			m.Status = queue.Queued
		}
		if s.inbound {
			id := f.inbound
			m.InboundConnectorID, m.InboundConnector = &id, "Contoso on-prem"
		}
		if s.header != "" {
			m.Header = []byte(kept(s.header))
		}
		if m.Status == queue.Queued {
			m.Body = []byte(s.header + "\r\nHello.\r\n")
		}
		for _, a := range s.rcpts {
			rc := queue.Recipient{Address: a, Status: queue.Queued}
			if s.rule != "" {
				rc.Status, rc.Rule = queue.Rejected, queue.RuleRoute{Rule: s.rule, OnError: queue.RuleRejects}
			}
			m.Recipients = append(m.Recipients, rc)
		}
		m.Events = []queue.Event{{At: m.ReceivedAt, Type: "received", Detail: "seeded"}}
		if err := w.Enqueue(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
}

// tables are every table a preview could touch, and some it should not.
var tables = []string{"messages", "message_recipients", "message_events", "message_headers", "message_bodies",
	"rules", "audit_log", "connectors", "connector_revisions", "accepted_domains", "config_epoch"}

// checksum is a digest of every row of the tables, in primary key order,
// and their row counts.
func checksum(t testing.TB, st *store.Store) string {
	t.Helper()
	db := testutil.RawDB(t, st)
	h := sha256.New()
	for _, table := range tables {
		rows, err := db.Query("SELECT * FROM " + table + " ORDER BY 1")
		if err != nil {
			t.Fatalf("checksum %s: %v", table, err)
		}
		cols, _ := rows.Columns()
		n := 0
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(h, "%s:%v\n", table, vals)
			n++
		}
		rows.Close()
		fmt.Fprintf(h, "%s=%d\n", table, n)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// count is a table's row count.
func count(t testing.TB, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// kept is a header section as the relay keeps it: with the empty line
// that ends it, unless it is a section cutSection cut.
func kept(header string) string {
	if len(header) >= queue.MaxKeptHeader/2 {
		return header
	}
	return header + "\r\n"
}

// padding is a header field making a section longer than
// queue.MaxKeptHeader allows, cut as queue.HeaderSection cuts it.
func cutSection(start string) string {
	var b strings.Builder
	b.WriteString(start)
	for i := 0; b.Len() < 2*queue.MaxKeptHeader; i++ {
		fmt.Fprintf(&b, "X-Filler-%d: %s\r\n", i, strings.Repeat("f", 200))
	}
	b.WriteString("\r\nbody\r\n")
	return string(queue.HeaderSection([]byte(b.String())))
}
