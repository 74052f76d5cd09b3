package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/queue"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

func TestMessageTraceAPI(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		admin, viewer := newAPI(t, st)
		w := queue.NewWriter(st, slog.New(slog.DiscardHandler))
		defer w.Close()
		ctx := context.Background()
		base := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
		msgs := []*queue.Message{
			{UID: "m1", ReceivedAt: base, Status: queue.Queued, ClientIP: "192.0.2.1", Sender: "alice@contosobank.com",
				TLSVersion: "TLS 1.3", TLSCipher: "TLS_AES_128_GCM_SHA256", InboundConnector: "Contoso Bank",
				Recipients: []queue.Recipient{{Address: "john@contoso.com", Status: queue.Queued, Connector: "Connector 2", RouteReason: "exact domain match contoso.com"}},
				Events:     []queue.Event{{At: base, Type: "received", Detail: "1 recipient"}}, Body: []byte("Subject: a\r\n\r\nx\r\n")},
			{UID: "m2", ReceivedAt: base.Add(time.Hour), Status: queue.Rejected, ClientIP: "198.51.100.7", Sender: "spam@evil.test",
				Reply: "550 5.7.64 Relay access denied", Recipients: []queue.Recipient{{Address: "victim@elsewhere.test", Status: queue.Rejected}}},
			{UID: "m3", ReceivedAt: base.Add(2 * time.Hour), Status: queue.Queued, ClientIP: "192.0.2.1", Sender: "bob@contosobank.com",
				Recipients: []queue.Recipient{{Address: "ann@sales.contoso.com", Status: queue.Queued}}, Body: []byte("x\r\n")},
		}
		for _, m := range msgs {
			if err := w.Enqueue(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		search := func(query string) []string {
			t.Helper()
			r := viewer.do("GET", "/messages"+query, "")
			if r.Status != 200 {
				t.Fatalf("GET /messages%s: %d %s", query, r.Status, r.Body)
			}
			var out struct {
				Messages []struct {
					ID         string `json:"id"`
					Recipients []struct {
						Address string `json:"address"`
					} `json:"recipients"`
				} `json:"messages"`
			}
			if err := json.Unmarshal(r.Body, &out); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, m := range out.Messages {
				ids = append(ids, m.ID)
			}
			return ids
		}
		for query, want := range map[string]string{
			"":                                 "m3,m2,m1",
			"?sender=alice@contosobank.com":    "m1",
			"?sender=@contosobank.com":         "m3,m1",
			"?recipient=JOHN@contoso.com":      "m1",
			"?recipient=@sales.contoso.com":    "m3",
			"?status=rejected":                 "m2",
			"?from=2026-11-20T10:30:00Z":       "m3,m2",
			"?to=2026-11-20T10:30:00Z":         "m1",
			"?limit=2":                         "m3,m2",
			"?sender=@contosobank.com&limit=1": "m3",
			"?status=delivered":                "",
		} {
			if got := strings.Join(search(query), ","); got != want {
				t.Errorf("GET /messages%s = %q, want %q", query, got, want)
			}
		}
		for _, bad := range []string{"?status=lost", "?from=yesterday", "?limit=0", "?limit=x", "?before=-1", "?since=2026-11-20T10:30:00Z", "?status=queued&senders=x"} {
			if r := viewer.do("GET", "/messages"+bad, ""); r.Status != 400 || len(r.fields(t)) == 0 {
				t.Errorf("GET /messages%s: %d %s", bad, r.Status, r.Body)
			}
		}
		r := admin.do("GET", "/messages/m1", "")
		if r.Status != 200 {
			t.Fatalf("GET /messages/m1: %d %s", r.Status, r.Body)
		}
		m := r.json(t)
		if m["id"] != "m1" || m["status"] != "queued" || m["client_ip"] != "192.0.2.1" || m["inbound_connector"] != "Contoso Bank" {
			t.Fatalf("message: %s", r.Body)
		}
		if tls := m["tls"].(map[string]any); tls["version"] != "TLS 1.3" {
			t.Fatalf("tls: %v", m["tls"])
		}
		rc := m["recipients"].([]any)[0].(map[string]any)
		if rc["address"] != "john@contoso.com" || rc["connector"] != "Connector 2" || rc["route_reason"] == "" {
			t.Fatalf("recipient: %v", rc)
		}
		if ev := m["events"].([]any); len(ev) != 1 || ev[0].(map[string]any)["type"] != "received" {
			t.Fatalf("events: %v", ev)
		}
		if r := admin.do("GET", "/messages/nope", ""); r.Status != 404 {
			t.Fatalf("unknown message: %d", r.Status)
		}
	})
}

func TestRouteTestAPI(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	admin, viewer := newAPI(t, st)
	ctx := context.Background()
	actor := store.Actor{Kind: "user", Name: "t"}
	for _, d := range []string{"contoso.com", "sales.contoso.com", "fabrikam.com"} {
		if _, err := st.CreateAcceptedDomain(ctx, actor, d, connector.Authoritative); err != nil {
			t.Fatal(err)
		}
	}
	activate := func(spec connector.Spec) {
		c, err := st.CreateConnector(ctx, actor, spec, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.MarkValidated(ctx, actor, spec.Direction(), c.ID, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Activate(ctx, actor, spec.Direction(), c.ID, 1); err != nil {
			t.Fatal(err)
		}
	}
	onPrem := func(n string) connector.Common { return connector.Common{Name: n, ConnectorType: connector.OnPremises} }
	activate(&connector.OutboundSpec{Common: onPrem("Connector 1"), AllAcceptedDomains: true, SmartHosts: []string{"mail1.contoso.com"}})
	activate(&connector.OutboundSpec{Common: onPrem("Connector 2"), RecipientDomains: []string{"contoso.com"}, SmartHosts: []string{"mail2.contoso.com:2525"}, TLSSettings: connector.TLSDomainValidation, TLSDomain: "mail2.contoso.com"})
	activate(&connector.OutboundSpec{Common: onPrem("Connector 3"), RecipientDomains: []string{"*.contoso.com"}, SmartHosts: []string{"10.0.0.3"}})
	activate(&connector.InboundSpec{Common: connector.Common{Name: "Contoso Bank", ConnectorType: connector.Partner}, SenderDomains: []string{"contosobank.com"}, RequireTLS: true})
	// The live index follows the store within a second; wait until it
	// holds all four connectors (the last activated, the inbound one,
	// shows in a route test from its sender domain).
	body := `{"client_ip":"192.0.2.10","sender":"x@internet.test","tls":true,
		"recipients":["john@fabrikam.com","john@contoso.com","john@sales.contoso.com","sun@elsewhere.test"]}`
	probe := `{"client_ip":"192.0.2.10","sender":"alice@contosobank.com","tls":true,"recipients":["john@contoso.com"]}`
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		routes := string(viewer.do("POST", "/route-test", body).Body)
		if strings.Contains(routes, "Connector 2") && strings.Contains(routes, "Connector 3") &&
			strings.Contains(string(viewer.do("POST", "/route-test", probe).Body), "Contoso Bank") {
			break
		}
	}
	r := viewer.do("POST", "/route-test", `{"client_ip":"192.0.2.10","sender":"x@internet.test","tls":true,
		"recipients":["john@fabrikam.com","john@contoso.com","john@sales.contoso.com","sun@elsewhere.test"]}`)
	if r.Status != 200 {
		t.Fatalf("route test: %d %s", r.Status, r.Body)
	}
	var resp struct {
		Accepted bool   `json:"accepted"`
		Reply    string `json:"reply"`
		Routes   []struct {
			Recipient, Connector, Reason, TLSSettings string
			Accepted                                  bool
			NextHops                                  []string `json:"next_hops"`
			TLS                                       string   `json:"tls_settings"`
		} `json:"routes"`
	}
	if err := json.Unmarshal(r.Body, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Accepted || !strings.Contains(resp.Reply, "5.7.64") || len(resp.Routes) != 4 {
		t.Fatalf("route test: %s", r.Body)
	}
	want := []struct{ connector, hop, reason string }{
		{"Connector 1", "mail1.contoso.com", "all accepted domains"},
		{"Connector 2", "mail2.contoso.com:2525", "exact domain match contoso.com"},
		{"Connector 3", "10.0.0.3", "wildcard *.contoso.com"},
	}
	for i, w := range want {
		got := resp.Routes[i]
		if !got.Accepted || got.Connector != w.connector || len(got.NextHops) != 1 || got.NextHops[0] != w.hop || !strings.Contains(got.Reason, w.reason) {
			t.Errorf("route %d: %+v, want %+v", i, got, w)
		}
	}
	if resp.Routes[1].TLS != "domain_validation" || resp.Routes[3].Accepted {
		t.Errorf("routes: %s", r.Body)
	}

	r = admin.do("POST", "/route-test", `{"client_ip":"192.0.2.10","sender":"alice@contosobank.com","tls":false,"recipients":["john@contoso.com"]}`)
	m := r.json(t)
	if m["accepted"] != false || !strings.Contains(m["reply"].(string), "5.7.51") || m["inbound_connector"] != "Contoso Bank" {
		t.Fatalf("restriction: %s", r.Body)
	}
	r = admin.do("POST", "/route-test", `{"client_ip":"not an ip","recipients":[],"client_cert_name":"*"}`)
	if f := r.fields(t); r.Status != 400 || f["client_ip"] == nil || f["recipients"] == nil || f["client_cert_name"] == nil {
		t.Fatalf("bad route test: %d %s", r.Status, r.Body)
	}
}

// A message's events come a page at a time (GET /messages/{id}?events_after=&limit=).
func TestMessageTraceEventsPaged(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		admin, _ := newAPI(t, st)
		w := queue.NewWriter(st, slog.New(slog.DiscardHandler))
		defer w.Close()
		base := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
		m := &queue.Message{UID: "big", ReceivedAt: base, Status: queue.Rejected, ClientIP: "192.0.2.1", Sender: "x@fabrikam.test", Reply: "550 5.7.64 Relay access denied"}
		for i := range 1200 {
			m.Events = append(m.Events, queue.Event{At: base, Type: "recipient_rejected", Detail: fmt.Sprintf("v%d@elsewhere.test", i)})
		}
		if err := w.Enqueue(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		page := func(query string) (events []string, next float64) {
			t.Helper()
			r := admin.do("GET", "/messages/big"+query, "")
			if r.Status != 200 {
				t.Fatalf("GET /messages/big%s: %d %s", query, r.Status, r.Body)
			}
			var out struct {
				ID     string `json:"id"`
				Sender string `json:"sender"`
				Events []struct {
					Detail string `json:"detail"`
				} `json:"events"`
				Next float64 `json:"next"`
			}
			if err := json.Unmarshal(r.Body, &out); err != nil || out.ID != "big" || out.Sender != "x@fabrikam.test" {
				t.Fatalf("GET /messages/big%s: %v %s", query, err, r.Body)
			}
			for _, e := range out.Events {
				events = append(events, e.Detail)
			}
			return events, out.Next
		}
		var all []string
		query := ""
		for range 10 {
			evs, next := page(query)
			if len(evs) > 500 {
				t.Fatalf("%d events in one answer", len(evs))
			}
			all = append(all, evs...)
			if next == 0 {
				break
			}
			query = fmt.Sprintf("?events_after=%d", int64(next))
		}
		if len(all) != 1200 || all[0] != "v0@elsewhere.test" || all[1199] != "v1199@elsewhere.test" {
			t.Fatalf("%d events over the pages", len(all))
		}
		if evs, next := page("?limit=7"); len(evs) != 7 || next == 0 {
			t.Fatalf("limit=7: %d events, next %v", len(evs), next)
		}
		for _, bad := range []string{"?limit=0", "?limit=501", "?events_after=x", "?after=3"} {
			if r := admin.do("GET", "/messages/big"+bad, ""); r.Status != 400 {
				t.Errorf("GET /messages/big%s: %d", bad, r.Status)
			}
		}
	})
}

// % and _ in a "@domain" search match only themselves, not any text.
func TestMessageSearchEscapesLikeWildcards(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		_, viewer := newAPI(t, st)
		w := queue.NewWriter(st, slog.New(slog.DiscardHandler))
		defer w.Close()
		base := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
		for i, s := range []string{"a@contosoxbank.com", "b@contoso_bank.com", "c@fabrikam.test"} {
			m := &queue.Message{UID: fmt.Sprintf("w%d", i), ReceivedAt: base, Status: queue.Rejected, ClientIP: "192.0.2.1", Sender: s,
				Recipients: []queue.Recipient{{Address: strings.Replace(s, "@", "@r.", 1), Status: queue.Rejected}}}
			if err := w.Enqueue(context.Background(), m); err != nil {
				t.Fatal(err)
			}
		}
		for query, want := range map[string]int{
			"?sender=@contoso_bank.com":      1,
			"?sender=@%25":                   0,
			"?sender=@%25.com":               0,
			"?sender=@_ontosoxbank.com":      0,
			"?recipient=@r.contoso_bank.com": 1,
			"?recipient=@%25":                0,
			"?sender=@contosoxbank.com":      1,
		} {
			r := viewer.do("GET", "/messages"+query, "")
			var out struct {
				Messages []any `json:"messages"`
			}
			if err := json.Unmarshal(r.Body, &out); err != nil || r.Status != 200 {
				t.Fatalf("GET /messages%s: %d %s", query, r.Status, r.Body)
			}
			if len(out.Messages) != want {
				t.Errorf("GET /messages%s: %d messages, want %d", query, len(out.Messages), want)
			}
		}
	})
}

// connector= finds the messages a connector carried in or out, by name in
// any case; a misspelt parameter is still refused.
func TestMessageSearchByConnector(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		_, viewer := newAPI(t, st)
		w := queue.NewWriter(st, slog.New(slog.DiscardHandler))
		defer w.Close()
		base := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
		msgs := []*queue.Message{
			{UID: "in1", ReceivedAt: base, Status: queue.Rejected, ClientIP: "192.0.2.1", Sender: "a@contosobank.com", InboundConnector: "Contoso Bank",
				Recipients: []queue.Recipient{{Address: "x@contoso.com", Status: queue.Rejected}}},
			{UID: "out1", ReceivedAt: base.Add(time.Minute), Status: queue.Rejected, ClientIP: "192.0.2.2", Sender: "b@contoso.com",
				Recipients: []queue.Recipient{{Address: "y@contoso.com", Status: queue.Rejected}, {Address: "z@fabrikam.com", Status: queue.Rejected, Connector: "To Fabrikam"}}},
			{UID: "none", ReceivedAt: base.Add(2 * time.Minute), Status: queue.Rejected, ClientIP: "192.0.2.3", Sender: "c@contoso.com", InboundConnector: "Contoso Bank 2",
				Recipients: []queue.Recipient{{Address: "w@contoso.com", Status: queue.Rejected, Connector: "To Fabrikam 2"}}},
		}
		for _, m := range msgs {
			if err := w.Enqueue(context.Background(), m); err != nil {
				t.Fatal(err)
			}
		}
		for query, want := range map[string]string{
			"?connector=Contoso+Bank":  "in1",
			"?connector=contoso+bank":  "in1",
			"?connector=TO+FABRIKAM":   "out1",
			"?connector=To%25":         "",
			"?connector=Nobody":        "",
			"":                         "none out1 in1",
			"?connector=To+Fabrikam+2": "none",
		} {
			r := viewer.do("GET", "/messages"+query, "")
			var out struct {
				Messages []struct {
					ID string `json:"id"`
				} `json:"messages"`
			}
			if err := json.Unmarshal(r.Body, &out); err != nil || r.Status != 200 {
				t.Fatalf("GET /messages%s: %d %s", query, r.Status, r.Body)
			}
			var ids []string
			for _, m := range out.Messages {
				ids = append(ids, m.ID)
			}
			if got := strings.Join(ids, " "); got != want {
				t.Errorf("GET /messages%s = %q, want %q", query, got, want)
			}
		}
		r := viewer.do("GET", "/messages?conector=Contoso+Bank", "")
		if r.Status != 400 || !strings.Contains(string(r.Body), "conector") || !strings.Contains(string(r.Body), "connector") {
			t.Fatalf("misspelt parameter: %d %s", r.Status, r.Body)
		}
	})
}
