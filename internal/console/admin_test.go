package console_test

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

func TestConnectorsListEnableDisableDelete(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		b := adminBrowser(t, st)
		b.get("/connectors").has(t, "No connectors yet", "Most organizations need none")

		id := testutil.ActivateConnector(t, st, &connector.InboundSpec{
			Common: connector.Common{Name: "Contoso Bank", ConnectorType: connector.Partner}, SenderDomains: []string{"contosobank.com"}, RequireTLS: true,
		})
		href := "/connectors/inbound/" + itoa(id)
		list := b.get("/connectors")
		list.has(t, "Contoso Bank", `class="badge active"`, "passed, revision 1", `aria-label="Edit Contoso Bank"`)

		r := b.post(href + "/disable")
		if r.Status != http.StatusSeeOther {
			t.Fatalf("disable: %d", r.Status)
		}
		b.follow(r).has(t, "Turned off Contoso Bank: it carries no mail now.", `class="badge disabled"`)
		if c, _ := st.GetConnector(ctx, connector.Inbound, id); c.Enabled {
			t.Fatal("still enabled")
		}
		b.post(href + "/enable")
		if c, _ := st.GetConnector(ctx, connector.Inbound, id); !c.Enabled {
			t.Fatal("still disabled")
		}

		confirm := b.get(href + "/delete")
		confirm.has(t, "Delete Contoso Bank?", "This connector is active", `action="`+href+`/delete"`)
		if c, _ := st.GetConnector(ctx, connector.Inbound, id); c == nil {
			t.Fatal("the confirmation page deleted the connector")
		}
		r = b.post(href + "/delete")
		if r.Status != http.StatusSeeOther || r.Location != "/connectors" {
			t.Fatalf("delete: %d %q", r.Status, r.Location)
		}
		b.follow(r).has(t, "Deleted Contoso Bank.", "No connectors yet")
		if r := b.get(href); r.Status != http.StatusNotFound {
			t.Fatalf("deleted connector page: %d", r.Status)
		}
		if r := b.post(href + "/delete"); r.Status != http.StatusNotFound {
			t.Fatalf("deleting twice: %d", r.Status)
		}
		if r := b.post("/connectors/outbound/" + itoa(id) + "/disable"); r.Status != http.StatusNotFound {
			t.Fatalf("wrong direction: %d", r.Status)
		}
		entries, _ := st.ListAudit(ctx, store.AuditFilter{ConnectorID: id})
		var actions []string
		for _, e := range entries {
			if e.Actor == "user:admin@contoso.com" {
				actions = append(actions, e.Action)
			}
		}
		if strings.Join(actions, ",") != "delete,enable,disable,activate,validate,create" {
			t.Fatalf("audit of the admin's actions: %v", actions)
		}
	})
}

func TestOutputIsEscaped(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	b := adminBrowser(t, st)
	evil := `<script>alert(1)</script>`
	w := startWizard(t, b, "/connectors/new")
	w.next("1", "2", "from", "flowgate", "to", "partner")
	w.next("2", "3", "name", evil, "comment", `"><img src=x onerror=alert(2)>`)
	w.next("3", "4", "use", "domains", "recipient_domains", "fabrikam.com")
	w.next("4", "5", "route_by", "mx")
	w.next("5", "6", "tls_settings", "opportunistic")
	pages := []page{w.page("6"), w.save(), b.get("/connectors"), b.get("/audit")}
	id := onlyConnector(t, st, connector.Outbound).ID
	pages = append(pages, b.get("/connectors/outbound/"+itoa(id)+"/delete"), b.get("/audit?connector="+itoa(id)))
	for i, p := range pages {
		if strings.Contains(p.Body, "<script>alert") || strings.Contains(p.Body, "<img src=x") {
			t.Fatalf("page %d renders markup from input:\n%s", i, p.Body)
		}
		if !strings.Contains(p.Body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Fatalf("page %d does not show the name as text:\n%s", i, p.Body)
		}
	}
}

func TestAcceptedDomainsPage(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		b := adminBrowser(t, st)
		b.get("/domains").has(t, "No accepted domains yet", "Add an accepted domain")

		r := b.post("/domains", "domain", "", "domain_type", "authoritative")
		r.wantFieldError(t, "domain", "")
		r = b.post("/domains", "domain", "not a domain", "domain_type", "authoritative")
		r = r.wantFieldError(t, "domain", "")
		r.has(t, `value="not a domain"`)
		// The refused form is shown once: a reload is a fresh form.
		b.get("/domains").lacks(t, `value="not a domain"`)
		b.post("/domains", "domain", "contoso.com", "domain_type", "sometimes").wantFieldError(t, "domain_type", "")

		r = b.post("/domains", "domain", "Contoso.COM", "domain_type", "internal_relay")
		if r.Status != http.StatusSeeOther {
			t.Fatalf("add: %d %s", r.Status, r.Body)
		}
		b.follow(r).has(t, "Added contoso.com.", "contoso.com", "Internal relay")
		b.post("/domains", "domain", "contoso.com", "domain_type", "authoritative").wantFieldError(t, "domain", "already")

		list, _ := st.ListAcceptedDomains(ctx)
		if len(list) != 1 || list[0].Domain != "contoso.com" || list[0].DomainType != "internal_relay" {
			t.Fatalf("stored: %+v", list)
		}
		d := list[0]

		// Removing warns about the connectors that depend on the domain.
		testutil.ActivateConnector(t, st, &connector.OutboundSpec{
			Common: connector.Common{Name: "To Exchange", ConnectorType: connector.OnPremises}, AllAcceptedDomains: true, SmartHosts: []string{"10.0.0.5"},
		})
		testutil.ActivateConnector(t, st, &connector.InboundSpec{
			Common: connector.Common{Name: "Our Exchange", ConnectorType: connector.OnPremises}, SenderIPAddresses: []string{"10.0.0.5"},
		})
		confirm := b.get("/domains/" + itoa(d.ID) + "/delete")
		confirm.has(t, "Remove contoso.com?", "refuses mail for contoso.com",
			`Outbound connector "To Exchange" carries mail for all accepted domains`,
			`Inbound connector "Our Exchange" lets your email server relay`)
		r = b.post("/domains/" + itoa(d.ID) + "/delete")
		if r.Status != http.StatusSeeOther {
			t.Fatalf("remove: %d", r.Status)
		}
		b.follow(r).has(t, "Removed contoso.com.", "No accepted domains yet")
		if r := b.get("/domains/" + itoa(d.ID) + "/delete"); r.Status != http.StatusNotFound {
			t.Fatalf("removed domain: %d", r.Status)
		}
		if r := b.post("/domains/abc/delete"); r.Status != http.StatusNotFound {
			t.Fatalf("bad id: %d", r.Status)
		}
	})
}

func TestAuditLogPage(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	ctx := context.Background()
	b := adminBrowser(t, st)
	a := testutil.ActivateConnector(t, st, &connector.InboundSpec{
		Common: connector.Common{Name: "Contoso Bank", ConnectorType: connector.Partner}, SenderDomains: []string{"contosobank.com"}, RequireTLS: true,
	})
	testutil.ActivateConnector(t, st, &connector.OutboundSpec{
		Common: connector.Common{Name: "To Fabrikam", ConnectorType: connector.Partner}, RecipientDomains: []string{"fabrikam.com"}, UseMXRecord: true,
	})
	if _, err := st.CreateAcceptedDomain(ctx, store.System("test"), "contoso.com", "authoritative"); err != nil {
		t.Fatal(err)
	}
	all := b.get("/audit")
	all.has(t, "Contoso Bank", "To Fabrikam", "contoso.com", "activate", `href="/connectors/inbound/`+itoa(a)+`"`)
	one := b.get("/audit?connector=" + itoa(a))
	one.has(t, "Contoso Bank", `selected`)
	// Only Contoso Bank's rows: the other connector is still in the filter
	// list but in no row.
	rows := regexp.MustCompile(`(?s)<tbody>.*</tbody>`).FindString(one.Body)
	if !strings.Contains(rows, "Contoso Bank") || strings.Contains(rows, "To Fabrikam") || strings.Contains(rows, "accepted domain") {
		t.Fatalf("filtered rows: %s", rows)
	}
	if r := b.get("/audit?connector=abc"); r.Status != http.StatusBadRequest {
		t.Fatalf("bad filter: %d", r.Status)
	}
	if r := b.get("/audit?before=-4"); r.Status != http.StatusBadRequest {
		t.Fatalf("bad page: %d", r.Status)
	}
}

func TestUsersAndTokensPage(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		b := adminBrowser(t, st)
		p := b.get("/users")
		p.has(t, "admin@contoso.com", "(you)", "No API tokens")

		b.post("/users", "email", "bob", "password", adminPassword, "role", "viewer").wantFieldError(t, "email", "")
		b.post("/users", "email", "bob@contoso.com", "password", "short", "role", "viewer").wantFieldError(t, "password", "at least 12")
		b.post("/users", "email", "bob@contoso.com", "password", adminPassword, "role", "root").wantFieldError(t, "role", "choose admin or viewer")
		b.post("/users", "email", "admin@contoso.com", "password", adminPassword, "role", "viewer").wantFieldError(t, "email", "already exists")
		r := b.post("/users", "email", "bob@contoso.com", "password", adminPassword, "role", "viewer")
		if r.Status != http.StatusSeeOther {
			t.Fatalf("add user: %d %s", r.Status, r.Body)
		}
		b.follow(r).has(t, "Added bob@contoso.com as viewer.")
		bob := newBrowser(t, b.srv)
		bob.signIn("bob@contoso.com")
		bob.get("/connectors").has(t, "bob@contoso.com (viewer)")

		// Removing a user ends their sessions at once.
		users, _ := st.ListUsers(ctx)
		var bobID, adminID int64
		for _, u := range users {
			switch u.Email {
			case "bob@contoso.com":
				bobID = u.ID
			case "admin@contoso.com":
				adminID = u.ID
			}
		}
		if r := b.post("/users/" + itoa(bobID) + "/delete"); r.Status != http.StatusSeeOther {
			t.Fatalf("remove bob: %d", r.Status)
		}
		if r := bob.get("/connectors"); r.Status != http.StatusSeeOther {
			t.Fatalf("removed user's session still works: %d", r.Status)
		}
		if r := b.post("/users/" + itoa(adminID) + "/delete"); r.Status != http.StatusSeeOther || r.Location != "/users" {
			t.Fatalf("removing yourself: %d %q", r.Status, r.Location)
		} else {
			b.follow(r).has(t, "You cannot remove your own account")
		}
		if r := b.post("/users/99999/delete"); r.Status != http.StatusNotFound {
			t.Fatalf("unknown user: %d", r.Status)
		}

		// Tokens: errors next to the fields; a new token is shown once and
		// works with the API; revoking stops it.
		b.post("/tokens", "name", "", "role", "viewer").wantFieldError(t, "name", "enter a name")
		b.post("/tokens", "name", "ci", "role", "").wantFieldError(t, "role", "choose admin or viewer")
		r = b.post("/tokens", "name", "ci-pipeline", "role", "admin")
		if r.Status != http.StatusOK {
			t.Fatalf("create token: %d", r.Status)
		}
		m := regexp.MustCompile(`<p class="secret" id="new-token">(fgt_[0-9a-f]+)</p>`).FindStringSubmatch(r.Body)
		if m == nil {
			t.Fatalf("token not shown: %s", r.Body)
		}
		token := m[1]
		if strings.Contains(b.get("/users").Body, token) {
			t.Fatal("the token is shown again")
		}
		api := func() int {
			req, _ := http.NewRequest("GET", b.srv.URL+"/api/v1/accepted-domains", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			return b.do(req).Status
		}
		if got := api(); got != http.StatusOK {
			t.Fatalf("new token with the API: %d", got)
		}
		toks, _ := st.ListTokens(ctx)
		if len(toks) != 1 || toks[0].CreatedBy != "user:admin@contoso.com" {
			t.Fatalf("tokens: %+v", toks)
		}
		b.get("/users").has(t, "ci-pipeline", token[:10]+"…", "Revoke")
		if r := b.post("/tokens/" + itoa(toks[0].ID) + "/revoke"); r.Status != http.StatusSeeOther {
			t.Fatalf("revoke: %d", r.Status)
		}
		if got := api(); got != http.StatusUnauthorized {
			t.Fatalf("revoked token with the API: %d", got)
		}
		b.get("/users").has(t, "revoked")
		if r := b.post("/tokens/" + itoa(toks[0].ID) + "/revoke"); r.Status != http.StatusNotFound {
			t.Fatalf("revoking twice: %d", r.Status)
		}
	})
}

func TestLastAdminCannotBeRemoved(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	ctx := context.Background()
	createUser(t, st, "admin@contoso.com", store.RoleAdmin)
	createUser(t, st, "viewer@contoso.com", store.RoleViewer)
	users, _ := st.ListUsers(ctx)
	for _, u := range users {
		if u.Role == store.RoleAdmin {
			var conflict *store.ConflictError
			err := st.DeleteUser(ctx, store.System("test"), u.ID)
			if !errors.As(err, &conflict) {
				t.Fatalf("removing the last admin: %v", err)
			}
		}
	}
}

// The domains page offers allow_external_senders with a warning, and it
// is stored only when ticked (SPEC 3.3).
func TestAcceptedDomainExternalSenders(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		b := adminBrowser(t, st)
		b.get("/domains").has(t, `name="allow_external_senders"`, "Dangerous: anyone on the Internet can then send mail as this domain")
		if r := b.post("/domains", "domain", "contoso.com", "domain_type", "authoritative"); r.Status != http.StatusSeeOther {
			t.Fatalf("add: %d %s", r.Status, r.Body)
		}
		r := b.post("/domains", "domain", "news.contoso.com", "domain_type", "authoritative", "allow_external_senders", "on")
		if r.Status != http.StatusSeeOther {
			t.Fatalf("add: %d %s", r.Status, r.Body)
		}
		b.follow(r).has(t, "Allowed (anyone may send as news.contoso.com)", "Only through connectors")
		// A refused form keeps the box ticked.
		b.post("/domains", "domain", "not a domain", "domain_type", "authoritative", "allow_external_senders", "on").wantFieldError(t, "domain", "").has(t, `value="on" checked`)
		list, err := st.ListAcceptedDomains(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, d := range list {
			got[d.Domain] = d.AllowExternalSenders
		}
		if len(got) != 2 || got["contoso.com"] || !got["news.contoso.com"] {
			t.Fatalf("stored: %v", got)
		}
	})
}
