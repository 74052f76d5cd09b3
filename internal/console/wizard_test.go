package console_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// wizard is one wizard run through the console.
type wizard struct {
	t    testing.TB
	b    *browser
	base string // /wizard/{id}
}

func startWizard(t testing.TB, b *browser, path string) *wizard {
	t.Helper()
	r := b.get(path)
	if r.Status != http.StatusSeeOther || !strings.HasPrefix(r.Location, "/wizard/") || !strings.HasSuffix(r.Location, "/1") {
		t.Fatalf("GET %s: %d %q", path, r.Status, r.Location)
	}
	return &wizard{t: t, b: b, base: strings.TrimSuffix(r.Location, "/1")}
}

// next posts a step's fields with Next and expects to land on step want.
func (w *wizard) next(step string, want string, kv ...string) {
	w.t.Helper()
	r := w.b.post(w.base+"/"+step, append(kv, "nav", "next")...)
	if r.Status != http.StatusSeeOther || r.Location != w.base+"/"+want {
		w.t.Fatalf("step %s Next: %d %q (want step %s); errors %v", step, r.Status, r.Location, want, r.fieldErrors())
	}
}

// bad posts a step with Next, which must be refused: the post redirects
// back to the step's page, which it returns, with the errors.
func (w *wizard) bad(step string, kv ...string) page {
	w.t.Helper()
	r := w.b.post(w.base+"/"+step, append(kv, "nav", "next")...)
	if r.Status != http.StatusSeeOther || r.Location != w.base+"/"+step {
		w.t.Fatalf("step %s Next: %d %q, want it refused (303 back to the step)", step, r.Status, r.Location)
	}
	return w.b.follow(r)
}

// back posts a step with Back and expects to land on step want.
func (w *wizard) back(step, want string, kv ...string) {
	w.t.Helper()
	r := w.b.post(w.base+"/"+step, append(kv, "nav", "back")...)
	if r.Status != http.StatusSeeOther || r.Location != w.base+"/"+want {
		w.t.Fatalf("step %s Back: %d %q (want %s)", step, r.Status, r.Location, want)
	}
}

func (w *wizard) page(step string) page {
	w.t.Helper()
	r := w.b.get(w.base + "/" + step)
	if r.Status != http.StatusOK {
		w.t.Fatalf("GET step %s: %d %q", step, r.Status, r.Location)
	}
	return r
}

// save presses Save on the review step and returns the connector page.
func (w *wizard) save() page {
	w.t.Helper()
	r := w.b.post(w.base+"/6", "nav", "save")
	if r.Status != http.StatusSeeOther || !strings.HasPrefix(r.Location, "/connectors/") {
		w.t.Fatalf("Save: %d %q %v %s", r.Status, r.Location, r.fieldErrors(), r.Body)
	}
	return w.b.follow(r)
}

// specJSON is a spec as the API would store it.
func specJSON(t testing.TB, s connector.Spec) string {
	t.Helper()
	if errs := s.Normalize(); len(errs) > 0 {
		t.Fatalf("expected spec is invalid: %v", errs)
	}
	b, _ := json.Marshal(s)
	return string(b)
}

func onlyConnector(t testing.TB, st *store.Store, dir connector.Direction) *store.Connector {
	t.Helper()
	list, err := st.ListConnectors(context.Background(), dir)
	if err != nil || len(list) != 1 {
		t.Fatalf("want 1 %s connector, got %d (%v)", dir, len(list), err)
	}
	return list[0]
}

func sameSpec(t testing.TB, got connector.Spec, want connector.Spec) {
	t.Helper()
	g, _ := json.Marshal(got)
	if w := specJSON(t, want); string(g) != w {
		t.Fatalf("stored spec\n got %s\nwant %s", g, w)
	}
}

func TestWizardPartnerToFlowgate(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		b := adminBrowser(t, st)
		w := startWizard(t, b, "/connectors/new")
		p := w.page("1")
		p.has(t, "Mail flow scenario", "Internet or a partner organization", "Your organization's email server")
		// Steps cannot be skipped.
		if r := b.get(w.base + "/4"); r.Status != http.StatusSeeOther || r.Location != w.base+"/1" {
			t.Fatalf("skipping ahead: %d %q", r.Status, r.Location)
		}

		w.bad("1").wantFieldError(t, "from", "choose where the mail comes from")
		w.bad("1", "from", "partner", "to", "partner").wantFieldError(t, "scenario", "choose flowgate as From or as To")
		w.bad("1", "from", "flowgate", "to", "flowgate").wantFieldError(t, "scenario", "needs no connector")
		w.next("1", "2", "from", "partner", "to", "flowgate")

		// Step 2: a field error keeps what was typed.
		long := strings.Repeat("x", 65)
		r := w.bad("2", "name", long, "comment", "Bank statements", "enabled", "on")
		r.wantFieldError(t, "name", "at most 64")
		r.has(t, `value="`+long+`"`, "Bank statements")
		w.next("2", "3", "name", "Contoso Bank", "comment", "Statements from <Contoso>", "enabled", "on")

		w.page("3").has(t, "Identify the partner organization by")
		w.bad("3", "identify_by", "domain", "sender_domains", "").wantFieldError(t, "sender_domains", "enter at least one sender domain")
		w.bad("3", "identify_by", "domain", "sender_domains", "contoso bank.com").wantFieldError(t, "sender_domains", "")
		w.bad("3", "identify_by", "ip", "sender_ips", "").wantFieldError(t, "sender_ip_addresses", "enter at least one IP address")
		w.bad("3", "identify_by", "ip", "sender_ips", "300.1.1.1").wantFieldError(t, "sender_ip_addresses", "")
		w.next("3", "4", "identify_by", "domain", "sender_domains", "ContosoBank.com\n*.contosobank.com")

		// Back keeps what was typed, even when it is not valid yet.
		w.back("4", "3", "require_tls", "on", "restrict_cert", "on", "cert_name", "mail.contosobank.com")
		w.page("3").has(t, "ContosoBank.com\n*.contosobank.com")
		w.next("3", "4", "identify_by", "domain", "sender_domains", "ContosoBank.com\n*.contosobank.com")
		p = w.page("4")
		p.has(t, `value="mail.contosobank.com"`)

		w.bad("4").wantFieldError(t, "require_tls", "at least one security restriction")
		w.bad("4", "restrict_cert", "on").wantFieldError(t, "tls_sender_certificate_name", "enter the certificate name")
		w.bad("4", "restrict_ips", "on").wantFieldError(t, "sender_ip_addresses", "enter the IP addresses")
		w.next("4", "6", "require_tls", "on", "restrict_cert", "on", "cert_name", "mail.contosobank.com", "restrict_ips", "on", "sender_ips", "198.51.100.0/29")
		if r := b.get(w.base + "/5"); r.Status != http.StatusNotFound {
			t.Fatalf("an inbound wizard has no TLS step 5: %d", r.Status)
		}

		review := w.page("6")
		review.has(t,
			"Contoso Bank: Partner organization → flowgate.",
			"Description: Statements from <Contoso>",
			"Apply to mail arriving at flowgate from senders in contosobank.com and *.contosobank.com.",
			"Reject mail from contosobank.com and *.contosobank.com that is not sent over TLS.",
			"unless the sending server presents a trusted certificate for mail.contosobank.com.",
			"unless it comes from 198.51.100.0/29.",
			"Turned on",
		)
		review.lacks(t, "Fix these before saving", "<Contoso>\"")
		if strings.Contains(review.Body, "<Contoso>") {
			t.Fatal("the description is not escaped")
		}
		detail := w.save()
		detail.has(t, "Saved Contoso Bank as revision 1.", "Contoso Bank", "draft", "No revision carries mail yet")

		got := onlyConnector(t, st, connector.Inbound)
		sameSpec(t, got.Spec, &connector.InboundSpec{
			Common:        connector.Common{Name: "Contoso Bank", Comment: "Statements from <Contoso>", ConnectorType: connector.Partner},
			SenderDomains: []string{"contosobank.com", "*.contosobank.com"}, SenderIPAddresses: []string{"198.51.100.0/29"},
			RequireTLS: true, TLSSenderCertificateName: "mail.contosobank.com", RestrictDomainsToCertificate: true, RestrictDomainsToIPAddresses: true,
		})
		if !got.Enabled || got.Revision != 1 || got.ActiveRevision != nil {
			t.Fatalf("stored connector: enabled %v revision %d active %v", got.Enabled, got.Revision, got.ActiveRevision)
		}
		// The wizard is finished: its draft is gone.
		if r := b.get(w.base + "/6"); r.Status != http.StatusNotFound {
			t.Fatalf("finished wizard: %d", r.Status)
		}
		// The save is in the audit log, by this user.
		entries, _ := st.ListAudit(context.Background(), store.AuditFilter{ConnectorID: got.ID})
		if len(entries) != 1 || entries[0].Actor != "user:admin@contoso.com" || entries[0].Action != "create" {
			t.Fatalf("audit: %+v", entries)
		}
		list := b.get("/connectors")
		list.has(t, "Contoso Bank", "Partner organization → flowgate", `class="badge draft"`, "On")
	})
}

func TestWizardPartnerByIPAndOnPremisesInbound(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	b := adminBrowser(t, st)

	w := startWizard(t, b, "/connectors/new")
	w.next("1", "2", "from", "partner", "to", "flowgate")
	w.next("2", "3", "name", "Fabrikam scanner")
	w.next("3", "4", "identify_by", "ip", "sender_ips", "203.0.113.10-203.0.113.20")
	p := w.page("4")
	p.lacks(t, "restrict_ips") // a partner identified by IP is already limited to it
	w.next("4", "6", "require_tls", "on")
	w.page("6").has(t, "Apply to mail arriving at flowgate from the IP addresses 203.0.113.10-203.0.113.20.", "Reject mail from these addresses that is not sent over TLS.", "Turned off")
	w.save()
	conn := onlyConnector(t, st, connector.Inbound)
	sameSpec(t, conn.Spec, &connector.InboundSpec{
		Common:            connector.Common{Name: "Fabrikam scanner", ConnectorType: connector.Partner},
		SenderIPAddresses: []string{"203.0.113.10-203.0.113.20"}, RequireTLS: true,
	})
	if conn.Enabled {
		t.Fatal("turn on was not ticked, but the connector is enabled")
	}

	w = startWizard(t, b, "/connectors/new")
	w.next("1", "2", "from", "org", "to", "flowgate")
	w.next("2", "3", "name", "Our Exchange", "enabled", "on")
	w.page("3").has(t, "How to identify your email server")
	w.bad("3").wantFieldError(t, "sender_ip_addresses", "enter your email server's IP addresses, or its certificate name")
	w.next("3", "4", "cert_name", "mail.contoso.com", "sender_ips", "10.0.0.0/24")
	w.next("4", "6", "require_tls", "on", "restrict_cert", "on")
	w.page("6").has(t,
		"Our Exchange: Your organization's email server → flowgate.",
		"Recognize your email server by the TLS certificate name mail.contoso.com or by the IP addresses 10.0.0.0/24.",
		"may be relayed to any recipient",
		"Reject mail from your email server that is not sent over TLS.")
	w.save()
	list, _ := st.ListConnectors(context.Background(), connector.Inbound)
	var onPrem *store.Connector
	for _, c := range list {
		if c.Name == "Our Exchange" {
			onPrem = c
		}
	}
	if onPrem == nil {
		t.Fatal("on-premises connector not saved")
	}
	sameSpec(t, onPrem.Spec, &connector.InboundSpec{
		Common:            connector.Common{Name: "Our Exchange", ConnectorType: connector.OnPremises},
		SenderIPAddresses: []string{"10.0.0.0/24"}, TLSSenderCertificateName: "mail.contoso.com", RequireTLS: true, RestrictDomainsToCertificate: true,
	})
}

func TestWizardOutboundScenarios(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		b := adminBrowser(t, st)

		// flowgate → partner.
		w := startWizard(t, b, "/connectors/new")
		w.next("1", "2", "from", "flowgate", "to", "partner")
		w.next("2", "3", "name", "To Fabrikam", "enabled", "on")
		p := w.page("3")
		p.has(t, "When to use this connector")
		p.lacks(t, `value="accepted"`) // all accepted domains is for your own server only
		w.bad("3").wantFieldError(t, "use", "choose when to use")
		w.bad("3", "use", "domains").wantFieldError(t, "recipient_domains", "enter at least one recipient domain")
		w.next("3", "4", "use", "domains", "recipient_domains", "fabrikam.com, *.fabrikam.com")
		w.bad("4").wantFieldError(t, "route_by", "choose how to route")
		w.bad("4", "route_by", "smarthosts").wantFieldError(t, "smart_hosts", "enter at least one smart host")
		w.bad("4", "route_by", "smarthosts", "smart_hosts", "mail.fabrikam.com:99999").wantFieldError(t, "smart_hosts", "")
		w.next("4", "5", "route_by", "smarthosts", "smart_hosts", "mail.fabrikam.com\nbackup.fabrikam.com:2525")
		r := w.bad("5", "tls_settings", "domain_validation", "validation_recipients", "postmaster@fabrikam.com")
		r.wantFieldError(t, "tls_domain", "enter the domain the certificate must be issued to")
		r.has(t, "postmaster@fabrikam.com")
		w.bad("5", "tls_settings", "opportunistic", "tls_domain", "mail.fabrikam.com").wantFieldError(t, "tls_domain", "a certificate domain is only used with the last choice")
		w.bad("5", "tls_settings", "domain_validation", "tls_domain", "mail.fabrikam.com", "validation_recipients", "not-an-address").wantFieldError(t, "validation_recipients", "")
		w.back("5", "4", "tls_settings", "domain_validation", "tls_domain", "mail.fabrikam.com", "validation_recipients", "postmaster@fabrikam.com")
		w.page("4").has(t, "mail.fabrikam.com\nbackup.fabrikam.com:2525")
		w.next("4", "5", "route_by", "smarthosts", "smart_hosts", "mail.fabrikam.com\nbackup.fabrikam.com:2525")
		w.page("5").has(t, `value="mail.fabrikam.com"`, "postmaster@fabrikam.com")
		w.next("5", "6", "tls_settings", "domain_validation", "tls_domain", "mail.fabrikam.com", "validation_recipients", "postmaster@fabrikam.com")
		w.page("6").has(t,
			"To Fabrikam: flowgate → Partner organization.",
			"Use it for mail to fabrikam.com and *.fabrikam.com.",
			"Deliver to the smart host mail.fabrikam.com; if it fails, try backup.fabrikam.com:2525, in that order.",
			"Always use TLS, and only with a trusted certificate issued to mail.fabrikam.com",
			"Validate sends its test message to postmaster@fabrikam.com.")
		w.save().has(t, "To Fabrikam")
		sameSpec(t, onlyConnector(t, st, connector.Outbound).Spec, &connector.OutboundSpec{
			Common:           connector.Common{Name: "To Fabrikam", ConnectorType: connector.Partner},
			RecipientDomains: []string{"fabrikam.com", "*.fabrikam.com"}, SmartHosts: []string{"mail.fabrikam.com", "backup.fabrikam.com:2525"},
			TLSSettings: connector.TLSDomainValidation, TLSDomain: "mail.fabrikam.com", ValidationRecipients: []string{"postmaster@fabrikam.com"},
		})

		// flowgate → your organization's email server.
		w = startWizard(t, b, "/connectors/new")
		w.next("1", "2", "from", "flowgate", "to", "org")
		w.next("2", "3", "name", "To Exchange", "enabled", "on")
		w.page("3").has(t, `value="accepted"`)
		w.next("3", "4", "use", "accepted")
		w.bad("4", "route_by", "mx").wantFieldError(t, "use_mx_record", "point at flowgate itself")
		w.next("4", "5", "route_by", "smarthosts", "smart_hosts", "10.0.0.5")
		w.next("5", "6", "tls_settings", "encryption_only")
		w.page("6").has(t, "Use it for mail to all of your accepted domains.", "Deliver to the smart host 10.0.0.5.", "any certificate is accepted", "Validate asks for them")
		w.save()
		list, _ := st.ListConnectors(context.Background(), connector.Outbound)
		if len(list) != 2 {
			t.Fatalf("want 2 outbound connectors, got %d", len(list))
		}
		b.get("/connectors").has(t, "flowgate → Your organization's email server", "flowgate → Partner organization")
	})
}

// Duplicates are found at the step that owns the field (issue 18, item
// 5), and a duplicate that appears after the step (another admin's save)
// is listed on the review, whose link opens the step with the error at
// the field.
func TestWizardFindsDuplicatesAtTheirStep(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	b := adminBrowser(t, st)
	ctx := context.Background()
	if _, err := st.CreateConnector(ctx, store.System("test"), &connector.InboundSpec{
		Common: connector.Common{Name: "Contoso Bank", ConnectorType: connector.Partner}, SenderDomains: []string{"contosobank.com"}, RequireTLS: true,
	}, true); err != nil {
		t.Fatal(err)
	}
	w := startWizard(t, b, "/connectors/new")
	w.next("1", "2", "from", "partner", "to", "flowgate")
	w.bad("2", "name", "contoso bank").wantFieldError(t, "name", `an inbound connector named "Contoso Bank" already exists`)
	w.next("2", "3", "name", "Second bank")
	w.bad("3", "identify_by", "domain", "sender_domains", "fabrikam.com\ncontosobank.com").
		wantFieldError(t, "sender_domains", `domain contosobank.com is already used by the inbound connector "Contoso Bank"`)
	w.next("3", "4", "identify_by", "domain", "sender_domains", "fabrikam.com")
	w.next("4", "6", "require_tls", "on")
	w.page("6").lacks(t, "Fix these before saving")

	// Meanwhile someone adds a connector for fabrikam.com: the review
	// says so, Save is refused, and the link opens step 3 with the error.
	if _, err := st.CreateConnector(ctx, store.System("other"), &connector.InboundSpec{
		Common: connector.Common{Name: "Fabrikam", ConnectorType: connector.Partner}, SenderDomains: []string{"fabrikam.com"}, RequireTLS: true,
	}, true); err != nil {
		t.Fatal(err)
	}
	review := w.page("6")
	review.has(t, "Fix these before saving", `domain fabrikam.com is already used by the inbound connector "Fabrikam"`, "Go to Identify the sender", `<button type="submit" name="nav" value="save" class="primary" disabled>`)
	r := w.b.post(w.base+"/6", "nav", "save")
	if r.Status != http.StatusSeeOther || r.Location != w.base+"/6" {
		t.Fatalf("save of a duplicate: %d %q", r.Status, r.Location)
	}
	w.b.follow(r).has(t, "Fix these before saving", `"Fabrikam"`)
	w.page("3?check=1").wantFieldError(t, "sender_domains", `domain fabrikam.com is already used by the inbound connector "Fabrikam"`)
	if list, _ := st.ListConnectors(ctx, connector.Inbound); len(list) != 2 {
		t.Fatalf("conflicting saves stored connectors: %d", len(list))
	}
}

func TestPencilEditCreatesRevisionAndDiff(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		b := adminBrowser(t, st)
		spec := &connector.OutboundSpec{
			Common:           connector.Common{Name: "To Fabrikam", ConnectorType: connector.Partner},
			RecipientDomains: []string{"fabrikam.com"}, SmartHosts: []string{"mail.fabrikam.com"}, TLSSettings: connector.TLSOpportunistic,
		}
		id := testutil.ActivateConnector(t, st, spec)
		before, _ := st.GetConnector(ctx, connector.Outbound, id)
		href := "/connectors/outbound/" + itoa(id)

		w := startWizard(t, b, href+"/edit")
		p := w.page("1")
		p.has(t, "Edit To Fabrikam", "The active settings keep carrying mail until the new revision you save here has been validated and activated.")
		p.has(t, `value="flowgate" checked`)
		// The direction of an existing connector cannot change.
		refused := w.bad("1", "from", "partner", "to", "flowgate")
		refused.wantFieldError(t, "scenario", "direction cannot change")
		refused.has(t, ">TLS<", `value="flowgate" checked`) // still the outbound steps and scenario
		w.next("1", "2", "from", "flowgate", "to", "partner")
		w.page("2").has(t, `value="To Fabrikam"`)
		w.next("2", "3", "name", "To Fabrikam", "enabled", "on")
		w.page("3").has(t, "fabrikam.com")
		w.next("3", "4", "use", "domains", "recipient_domains", "fabrikam.com\nfabrikam.net")
		w.next("4", "5", "route_by", "smarthosts", "smart_hosts", "mail2.fabrikam.com")
		w.next("5", "6", "tls_settings", "encryption_only")
		detail := w.save()
		detail.has(t, "Saved revision 2 of To Fabrikam. The active revision keeps carrying mail until revision 2 is validated and activated.")
		detail.has(t, "Revision 1 carries mail; revision 2 is newer and waits for validation and activation.")
		// What carries mail is the badge; the newest revision's state is apart.
		b.get("/connectors").has(t, `class="badge active"`, "revision 1 carries mail", "Newest: revision 2 is a draft, not validated yet")

		after, _ := st.GetConnector(ctx, connector.Outbound, id)
		if after.Revision != 2 || after.ActiveRevision == nil || *after.ActiveRevision != 1 {
			t.Fatalf("after edit: revision %d active %v", after.Revision, after.ActiveRevision)
		}
		revs, _ := st.ListRevisions(ctx, connector.Outbound, id)
		if len(revs) != 2 || !reflect.DeepEqual(revs[1].Spec, before.Spec) {
			t.Fatalf("revision 1 changed: %+v", revs)
		}

		// The connector page shows both revisions and the diff 1 → 2.
		detail = b.get(href)
		detail.has(t, "Compare revisions", "Recipient domains", "fabrikam.com, fabrikam.net", "mail2.fabrikam.com", "encryption_only", "opportunistic")
		detail.lacks(t, "<td>Name</td>")
		same := b.get(href + "?a=2&b=2")
		same.has(t, "Choose two different revisions.")
		b.get(href+"?a=1&b=9").has(t, "Choose two revisions of this connector.")

		// Someone else saves meanwhile: an edit of the older revision is
		// refused rather than silently overwriting theirs.
		w2 := startWizard(t, b, href+"/edit")
		w2.next("1", "2", "from", "flowgate", "to", "partner")
		if _, err := st.UpdateConnector(ctx, store.System("other"), id, after.Spec, nil); err != nil {
			t.Fatal(err)
		}
		r := b.post(w2.base+"/6", "nav", "save")
		if r.Status != http.StatusSeeOther || r.Location != w2.base+"/6" {
			t.Fatalf("stale edit: %d %q", r.Status, r.Location)
		}
		// The review says who saved, keeps the answers, links the newer
		// revision, and offers to save over it.
		review := b.follow(r)
		review.has(t, "flowgate (other) saved revision 3 of this connector", "after you started editing revision 2", "See revision 3 and what changed",
			`href="`+href+`#revisions"`, "Save my answers as revision 4", "mail2.fabrikam.com")
		if c, _ := st.GetConnector(ctx, connector.Outbound, id); c.Revision != 3 {
			t.Fatalf("the refused save stored revision %d", c.Revision)
		}
		r = b.post(w2.base+"/6", "nav", "overwrite", "over", "3")
		if r.Status != http.StatusSeeOther || !strings.HasPrefix(r.Location, href) {
			t.Fatalf("save over revision 3: %d %q", r.Status, r.Location)
		}
		if c, _ := st.GetConnector(ctx, connector.Outbound, id); c.Revision != 4 {
			t.Fatalf("after saving over: revision %d", c.Revision)
		}
	})
}

func TestWizardUnknownDraftAndStep(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	b := adminBrowser(t, st)
	if r := b.get("/wizard/doesnotexist/1"); r.Status != http.StatusNotFound {
		t.Fatalf("unknown draft: %d", r.Status)
	}
	w := startWizard(t, b, "/connectors/new")
	for _, step := range []string{"0", "7", "x", "-1"} {
		if r := b.get(w.base + "/" + step); r.Status != http.StatusNotFound {
			t.Fatalf("step %s: %d", step, r.Status)
		}
	}
	if r := b.get("/connectors/sideways/1/edit"); r.Status != http.StatusNotFound {
		t.Fatalf("bad direction: %d", r.Status)
	}
	if r := b.get("/connectors/inbound/999/edit"); r.Status != http.StatusNotFound {
		t.Fatalf("unknown connector: %d", r.Status)
	}
	// Another user's session cannot use this draft.
	createUser(t, st, "other@contoso.com", store.RoleAdmin)
	other := newBrowser(t, b.srv)
	other.signIn("other@contoso.com")
	if r := other.get(w.base + "/1"); r.Status != http.StatusNotFound {
		t.Fatalf("another session's draft: %d", r.Status)
	}
}

// Every step starts with a choice made, and a value typed under a choice
// that is not the one made is called out, or taken as the choice when
// none was made; never dropped (issue 18, item 2).
func TestWizardDefaultsAndValuesUnderOtherChoices(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	b := adminBrowser(t, st)

	// Outbound to a partner: the MX record is preselected.
	w := startWizard(t, b, "/connectors/new")
	w.page("1").has(t, `value="partner" checked`, `value="flowgate" checked`)
	w.next("1", "2", "from", "flowgate", "to", "partner")
	w.page("2").has(t, `name="enabled" value="on" checked`)
	w.next("2", "3", "name", "To Fabrikam", "enabled", "on")
	w.page("3").has(t, `name="use" value="domains" checked`)
	w.bad("3", "use", "rule", "recipient_domains", "fabrikam.com").
		wantFieldError(t, "recipient_domains", "used only with “Only when email messages are sent to these domains”")
	w.next("3", "4", "use", "domains", "recipient_domains", "fabrikam.com")
	w.page("4").has(t, `name="route_by" value="mx" checked`)
	// A smart host typed while the MX record stays chosen: called out.
	w.bad("4", "route_by", "mx", "smart_hosts", "mail.fabrikam.com").
		wantFieldError(t, "smart_hosts", "used only with “Route email through these smart hosts”").
		has(t, "mail.fabrikam.com")
	// Typed with no choice at all: it is the choice.
	w.next("4", "5", "smart_hosts", "mail.fabrikam.com")
	w.page("5").has(t, `name="tls_settings" value="opportunistic" checked`)
	w.next("5", "6", "tls_settings", "opportunistic")
	w.page("6").has(t, "mail.fabrikam.com")

	// To your own server: smart hosts are preselected.
	w = startWizard(t, b, "/connectors/new")
	w.next("1", "2", "from", "flowgate", "to", "org")
	w.next("2", "3", "name", "To our server")
	w.next("3", "4", "use", "accepted")
	w.page("4").has(t, `name="route_by" value="smarthosts" checked`)

	// A partner sending to us: TLS is required unless unticked; an IP
	// range or a certificate name typed under an unticked restriction is
	// called out.
	w = startWizard(t, b, "/connectors/new")
	w.next("1", "2", "from", "partner", "to", "flowgate")
	w.next("2", "3", "name", "Contoso Bank")
	w.page("3").has(t, `name="identify_by" value="domain" checked`)
	w.bad("3", "identify_by", "domain", "sender_domains", "contosobank.com", "sender_ips", "203.0.113.0/24").
		wantFieldError(t, "sender_ip_addresses", "used only with “The IP address of the sending server”")
	w.bad("3", "identify_by", "ip", "sender_domains", "contosobank.com", "sender_ips", "203.0.113.0/24").
		wantFieldError(t, "sender_domains", "used only with “The sender's email address domain”")
	w.next("3", "4", "identify_by", "domain", "sender_domains", "contosobank.com")
	w.page("4").has(t, `name="require_tls" value="on" checked`)
	p := w.bad("4", "require_tls", "on", "sender_ips", "203.0.113.0/24", "cert_name", "mail.contosobank.com")
	p.wantFieldError(t, "sender_ip_addresses", "used only with “Reject email messages if they aren't sent from within these IP address ranges”")
	p.wantFieldError(t, "tls_sender_certificate_name", "used only with “And require that the subject name")
	w.next("4", "6", "require_tls", "on", "restrict_ips", "on", "sender_ips", "203.0.113.0/24", "restrict_cert", "on", "cert_name", "mail.contosobank.com")
	w.page("6").has(t, "203.0.113.0/24", "mail.contosobank.com")
}
