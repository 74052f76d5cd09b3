package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/api"
	"github.com/flowgate/flowgate/internal/liveconfig"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

type client struct {
	t     testing.TB
	base  string
	token string
}

type reply struct {
	Status int
	Body   []byte
}

func (r reply) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("reply is not a JSON object: %v: %s", err, r.Body)
	}
	return m
}

func (r reply) fields(t testing.TB) map[string]any {
	f, _ := r.json(t)["fields"].(map[string]any)
	return f
}

func (c *client) do(method, path, body string) reply {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); len(b) > 0 && !strings.HasPrefix(ct, "application/json") {
		c.t.Fatalf("%s %s: Content-Type %q", method, path, ct)
	}
	return reply{resp.StatusCode, b}
}

// newAPI serves the API over a fresh store and returns an admin and a
// viewer client.
func newAPI(t testing.TB, st *store.Store) (adminC, viewerC *client) {
	t.Helper()
	return newAPIWith(t, st, nil)
}

// newAPIWith is newAPI with the server configured by configure (nil: as
// it comes).
func newAPIWith(t testing.TB, st *store.Store, configure func(*api.Server)) (adminC, viewerC *client) {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	lctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	live, err := liveconfig.Load(lctx, st, log)
	if err != nil {
		t.Fatal(err)
	}
	go live.Run(lctx)
	server := api.New(st, live, nil, log)
	if configure != nil {
		configure(server)
	}
	srv := httptest.NewServer(http.StripPrefix("/api/v1", server.Handler()))
	t.Cleanup(srv.Close)
	at, _, err := st.CreateToken(ctx, store.System("test"), "admin-token", store.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	vt, _, err := st.CreateToken(ctx, store.System("test"), "viewer-token", store.RoleViewer)
	if err != nil {
		t.Fatal(err)
	}
	return &client{t, srv.URL + "/api/v1", at}, &client{t, srv.URL + "/api/v1", vt}
}

func TestAuth(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	admin, viewer := newAPI(t, st)
	anon := &client{t, admin.base, ""}
	bad := &client{t, admin.base, "fgt_0000"}
	for _, c := range []*client{anon, bad} {
		if r := c.do("GET", "/inbound-connectors", ""); r.Status != 401 || r.json(t)["error"] == "" {
			t.Fatalf("no/bad token: %d %s", r.Status, r.Body)
		}
	}
	if r := viewer.do("GET", "/inbound-connectors", ""); r.Status != 200 {
		t.Fatalf("viewer GET: %d %s", r.Status, r.Body)
	}
	if r := viewer.do("POST", "/accepted-domains", `{"domain":"contoso.com"}`); r.Status != 403 {
		t.Fatalf("viewer POST: %d %s", r.Status, r.Body)
	}
	if r := admin.do("POST", "/accepted-domains", `{"domain":"contoso.com"}`); r.Status != 201 {
		t.Fatalf("admin POST: %d %s", r.Status, r.Body)
	}
	if r := admin.do("GET", "/no-such-thing", ""); r.Status != 404 {
		t.Fatalf("unknown endpoint: %d", r.Status)
	}
	if r := admin.do("PATCH", "/accepted-domains", "{}"); r.Status != 405 {
		t.Fatalf("wrong method: %d", r.Status)
	}
}

func TestConnectorCRUD(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		admin, _ := newAPI(t, st)
		r := admin.do("POST", "/inbound-connectors", `{
			"name": "Contoso Bank", "comment": "seed example 1", "connector_type": "partner",
			"sender_domains": ["ContosoBank.com"], "require_tls": true}`)
		if r.Status != 201 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		c := r.json(t)
		id := int64(c["id"].(float64))
		for k, want := range map[string]any{"name": "Contoso Bank", "status": "draft", "revision": 1.0, "enabled": true,
			"connector_type": "partner", "require_tls": true, "active_revision": nil, "validated_revision": nil} {
			if c[k] != want {
				t.Errorf("created connector %s = %v, want %v", k, c[k], want)
			}
		}
		if d := c["sender_domains"].([]any); len(d) != 1 || d[0] != "contosobank.com" {
			t.Errorf("sender_domains %v", d)
		}
		path := "/inbound-connectors/" + itoa(id)
		if r := admin.do("GET", path, ""); r.Status != 200 || r.json(t)["name"] != "Contoso Bank" {
			t.Fatalf("get: %d %s", r.Status, r.Body)
		}
		if r := admin.do("GET", "/outbound-connectors/"+itoa(id), ""); r.Status != 404 {
			t.Fatalf("inbound id under outbound: %d", r.Status)
		}
		// PUT the GET body back with a change: read-only fields are accepted and ignored.
		c["restrict_domains_to_certificate"] = true
		c["tls_sender_certificate_name"] = "mail.contosobank.com"
		body, _ := json.Marshal(c)
		r = admin.do("PUT", path, string(body))
		if r.Status != 200 || r.json(t)["revision"] != 2.0 {
			t.Fatalf("put: %d %s", r.Status, r.Body)
		}
		if r := admin.do("GET", "/inbound-connectors", ""); r.Status != 200 || !bytes.Contains(r.Body, []byte("mail.contosobank.com")) {
			t.Fatalf("list: %d %s", r.Status, r.Body)
		}
		// An overlapping connector is refused with the existing one's name.
		r = admin.do("POST", "/inbound-connectors", `{"name":"Dup","connector_type":"partner","sender_domains":["contosobank.com"],"require_tls":true}`)
		if r.Status != 409 || !strings.Contains(r.json(t)["error"].(string), "Contoso Bank") || r.fields(t)["sender_domains"] == nil {
			t.Fatalf("overlap: %d %s", r.Status, r.Body)
		}
		r = admin.do("POST", "/outbound-connectors", `{"name":"To on-prem","connector_type":"on_premises","all_accepted_domains":true,
			"smart_hosts":["mail.contoso.com:2525"],"tls_settings":"domain_validation","tls_domain":"mail.contoso.com",
			"validation_recipients":["postmaster@contoso.com"],"enabled":false}`)
		if r.Status != 201 {
			t.Fatalf("create outbound: %d %s", r.Status, r.Body)
		}
		o := r.json(t)
		if o["status"] != "disabled" || o["tls_settings"] != "domain_validation" {
			t.Fatalf("outbound: %s", r.Body)
		}
		if r := admin.do("DELETE", path, ""); r.Status != 204 {
			t.Fatalf("delete: %d %s", r.Status, r.Body)
		}
		if r := admin.do("GET", path, ""); r.Status != 404 {
			t.Fatalf("get deleted: %d", r.Status)
		}
		if r := admin.do("DELETE", path, ""); r.Status != 404 {
			t.Fatalf("delete twice: %d", r.Status)
		}
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestInvalidFields sends each invalid field and expects 400 with a message
// under that field.
func TestInvalidFields(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	admin, _ := newAPI(t, st)
	inbound := func(extra string) string {
		return `{"name":"P","connector_type":"partner","sender_domains":["p.example"],"require_tls":true` + extra + `}`
	}
	outbound := func(extra string) string {
		return `{"name":"O","connector_type":"partner","recipient_domains":["p.example"],"use_mx_record":true` + extra + `}`
	}
	long := strings.Repeat("x", 65)
	cases := []struct {
		name, path, body, field string
	}{
		{"missing name", "/inbound-connectors", `{"connector_type":"partner","sender_domains":["p.example"],"require_tls":true}`, "name"},
		{"long name", "/inbound-connectors", inbound(`,"name":"` + long + `"`), "name"},
		{"bad type", "/inbound-connectors", inbound(`,"connector_type":"friend"`), "connector_type"},
		{"bad domain", "/inbound-connectors", inbound(`,"sender_domains":["not a domain"]`), "sender_domains"},
		{"inner wildcard", "/inbound-connectors", inbound(`,"sender_domains":["a.*.example"]`), "sender_domains"},
		{"bad ip", "/inbound-connectors", `{"name":"P","connector_type":"partner","sender_ip_addresses":["300.1.1.1"],"require_tls":true}`, "sender_ip_addresses"},
		{"reversed range", "/inbound-connectors", `{"name":"P","connector_type":"partner","sender_ip_addresses":["10.0.0.9-10.0.0.1"],"require_tls":true}`, "sender_ip_addresses"},
		{"mixed range", "/inbound-connectors", `{"name":"P","connector_type":"partner","sender_ip_addresses":["10.0.0.1-::1"],"require_tls":true}`, "sender_ip_addresses"},
		{"no restriction", "/inbound-connectors", `{"name":"P","connector_type":"partner","sender_domains":["p.example"]}`, "require_tls"},
		{"bad cert name", "/inbound-connectors", inbound(`,"tls_sender_certificate_name":"*","restrict_domains_to_certificate":true`), "tls_sender_certificate_name"},
		{"cert restriction without name", "/inbound-connectors", inbound(`,"restrict_domains_to_certificate":true`), "tls_sender_certificate_name"},
		{"ip restriction without ips", "/inbound-connectors", inbound(`,"restrict_domains_to_ip_addresses":true`), "sender_ip_addresses"},
		{"on-prem with nothing", "/inbound-connectors", `{"name":"P","connector_type":"on_premises"}`, "sender_ip_addresses"},
		{"wrong type", "/inbound-connectors", inbound(`,"require_tls":"yes"`), "require_tls"},
		{"list as string", "/inbound-connectors", inbound(`,"sender_domains":"p.example"`), "sender_domains"},
		{"unknown field", "/inbound-connectors", inbound(`,"smart_hosts":["x.example"]`), "smart_hosts"},
		{"mx and smart hosts", "/outbound-connectors", outbound(`,"smart_hosts":["mx.p.example"]`), "smart_hosts"},
		{"neither mx nor smart host", "/outbound-connectors", `{"name":"O","connector_type":"partner","recipient_domains":["p.example"]}`, "smart_hosts"},
		{"bad smart host", "/outbound-connectors", `{"name":"O","connector_type":"partner","recipient_domains":["p.example"],"smart_hosts":["mx.p.example:99999"]}`, "smart_hosts"},
		{"tls_domain without domain_validation", "/outbound-connectors", outbound(`,"tls_domain":"mx.p.example"`), "tls_domain"},
		{"domain_validation without tls_domain", "/outbound-connectors", outbound(`,"tls_settings":"domain_validation"`), "tls_domain"},
		{"bad tls setting", "/outbound-connectors", outbound(`,"tls_settings":"maybe"`), "tls_settings"},
		{"all accepted for partner", "/outbound-connectors", `{"name":"O","connector_type":"partner","all_accepted_domains":true,"use_mx_record":true}`, "all_accepted_domains"},
		{"two scopes", "/outbound-connectors", outbound(`,"is_transport_rule_scoped":true`), "recipient_domains"},
		{"no scope", "/outbound-connectors", `{"name":"O","connector_type":"partner","use_mx_record":true}`, "recipient_domains"},
		{"bad validation recipient", "/outbound-connectors", outbound(`,"validation_recipients":["not-an-address"]`), "validation_recipients"},
		{"bad accepted domain", "/accepted-domains", `{"domain":"*.contoso.com"}`, "domain"},
		{"bad domain type", "/accepted-domains", `{"domain":"contoso.com","domain_type":"other"}`, "domain_type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := admin.do("POST", tc.path, tc.body)
			if r.Status != 400 {
				t.Fatalf("status %d, want 400: %s", r.Status, r.Body)
			}
			msg, _ := r.fields(t)[tc.field].(string)
			if msg == "" {
				t.Fatalf("no message for field %q: %s", tc.field, r.Body)
			}
		})
	}
}

func TestBadBodiesNever500(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	admin, _ := newAPI(t, st)
	bodies := []string{"", "null", "[]", `"x"`, "42", "{", `{"name":`, `{} {}`, `{"name":"a"}x`, "\x00\xff",
		`{"sender_domains":[1,2]}`, `{"enabled":"maybe"}`, strings.Repeat(`{"a":`, 10000), `{"name":"` + strings.Repeat("é", 2<<20) + `"}`}
	for _, path := range []string{"/inbound-connectors", "/outbound-connectors", "/accepted-domains", "/inbound-connectors/1",
		"/rules", "/rules/1", "/rules/preview", "/route-test"} {
		for _, b := range bodies {
			for _, m := range []string{"POST", "PUT"} {
				r := admin.do(m, path, b)
				if r.Status >= 500 {
					t.Fatalf("%s %s with %.40q: %d %s", m, path, b, r.Status, r.Body)
				}
				if r.Status < 400 {
					t.Fatalf("%s %s with %.40q accepted: %d", m, path, b, r.Status)
				}
			}
		}
	}
	req, _ := http.NewRequest("POST", admin.base+"/accepted-domains", strings.NewReader("domain=contoso.com"))
	req.Header.Set("Authorization", "Bearer "+admin.token)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("form body: %d", resp.StatusCode)
	}
}

// FuzzConnectorBody posts arbitrary bodies; the API must answer with a
// client error or success, never a server error.
func FuzzConnectorBody(f *testing.F) {
	for _, s := range []string{
		`{"name":"P","connector_type":"partner","sender_domains":["p.example"],"require_tls":true}`,
		`{"name":"O","connector_type":"on_premises","all_accepted_domains":true,"smart_hosts":["[::1]:25"]}`,
		`{"name":"I","connector_type":"on_premises","sender_ip_addresses":["10.0.0.1-10.0.0.9"],"tls_sender_certificate_name":"*.contoso.com"}`,
		`{"domain":"bücher.example","domain_type":"internal_relay"}`,
		`{"name":"\u0000","sender_domains":["*."]}`, `[`, `{"recipient_domains":null}`,
		`{"name":"R","conditions":{"header_matches":[{"header":"Subject","pattern":"(?i)a+"}]},"actions":{"reject":{}}}`,
		`{"rule":{"name":"R","conditions":{"sender_ip_ranges":["10.0.0.1-10.0.0.9"]},"actions":{"route_to_outbound_connector":1}},"since":"1h"}`,
	} {
		f.Add(s)
	}
	st := testutil.OpenStore(f, testutil.Engines[0])
	admin, _ := newAPI(f, st)
	f.Fuzz(func(t *testing.T, body string) {
		admin.t = t
		for _, path := range []string{"/inbound-connectors", "/outbound-connectors", "/accepted-domains", "/rules", "/rules/preview"} {
			if r := admin.do("POST", path, body); r.Status >= 500 {
				t.Fatalf("POST %s %q: %d %s", path, body, r.Status, r.Body)
			}
		}
	})
}

// allow_external_senders (SPEC 3.3) is accepted and returned, false by
// default.
func TestAcceptedDomainAllowExternalSenders(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		admin, viewer := newAPI(t, st)
		if r := admin.do("POST", "/accepted-domains", `{"domain":"contoso.com"}`); r.Status != 201 || r.json(t)["allow_external_senders"] != false {
			t.Fatalf("POST without the field: %d %s", r.Status, r.Body)
		}
		if r := admin.do("POST", "/accepted-domains", `{"domain":"news.contoso.com","allow_external_senders":true}`); r.Status != 201 || r.json(t)["allow_external_senders"] != true {
			t.Fatalf("POST with allow_external_senders: %d %s", r.Status, r.Body)
		}
		r := viewer.do("GET", "/accepted-domains", "")
		var list []map[string]any
		if err := json.Unmarshal(r.Body, &list); err != nil || len(list) != 2 {
			t.Fatalf("GET: %d %s", r.Status, r.Body)
		}
		got := map[any]any{}
		for _, d := range list {
			got[d["domain"]] = d["allow_external_senders"]
		}
		if got["contoso.com"] != false || got["news.contoso.com"] != true {
			t.Fatalf("GET: %v", got)
		}
		if r := admin.do("POST", "/accepted-domains", `{"domain":"x.test","allow_external_senders":"yes"}`); r.Status != 400 {
			t.Fatalf("a string for the flag: %d %s", r.Status, r.Body)
		}
	})
}
