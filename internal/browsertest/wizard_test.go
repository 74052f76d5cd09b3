package browsertest

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
)

// startWizard opens the connectors list and presses "+ Add a connector".
func (b *tab) startWizard() {
	b.t.Helper()
	b.wantStatus(b.open("/connectors"), 200, "open the connectors")
	b.clickOK(`a[href="/connectors/new"][aria-label="Add a connector"]`, "Add a connector")
	b.atStep(1, "Scenario")
	b.wantText("h1", "Add a connector")
}

// saveWizard presses Save on the review step and checks the connector page
// it lands on; it returns that page's path.
func (b *tab) saveWizard(dir, name, flash string) string {
	b.t.Helper()
	b.clickOK(saveButton, "Save")
	p := b.wantPath(`/connectors/` + dir + `/[0-9]+`)
	b.wantText(`.notice[role=status]`, flash)
	b.wantText("h1", name)
	b.wantText("h1 .badge", "draft")
	return p
}

// TestWizardFourScenarios walks the wizard through each of the four mail
// flow scenarios, with a field error and Back on the way, saves, and
// checks the connector page and the list.
func TestWizardFourScenarios(t *testing.T) {
	srv := startServer(t)
	srv.seedAdmin(t)
	main := newTab(t, srv.url)
	main.signIn(adminEmail, password, "/connectors")

	pages := map[string]string{}
	t.Run("partner to flowgate", func(t *testing.T) {
		b := main.in(t)
		b.startWizard()
		b.shot("partner-1-scenario")
		// The seeds' first scenario is preselected.
		b.wantChecked(`input[name=from][value=partner]`, true)
		b.wantChecked(`input[name=to][value=flowgate]`, true)
		b.clickOK(nextButton, "Next on step 1")

		b.atStep(2, "Name")
		b.wantChecked(`input[name=enabled]`, true)
		b.fill("#comment", "Bank statements from Contoso")
		b.clickRefused(nextButton, "Next with no name")
		b.wantFieldError("name", "#name", "enter a name")
		b.wantValue("#comment", "Bank statements from Contoso")
		b.shot("partner-2-name-error")
		b.fill("#name", "Contoso Bank")
		b.clickOK(nextButton, "Next on step 2")

		b.atStep(3, "Identify the sender")
		b.wantChecked(`input[name=identify_by][value=domain]`, true)
		b.fill("#sender_domains", "contosobank.com")
		b.shot("partner-3-identify")
		b.clickOK(nextButton, "Next on step 3")

		b.atStep(4, "Security restrictions")
		// TLS is required unless the admin says otherwise.
		b.wantChecked(`input[name=require_tls]`, true)
		b.tick("require_tls", false)
		b.clickRefused(nextButton, "Next with no restriction")
		b.wantFieldError("require_tls", `input[name=require_tls]`, "a partner connector needs at least one security restriction")
		b.shot("partner-4-restrictions-error")
		b.tick("require_tls", true)
		b.tick("restrict_cert", true)
		b.fill("#cert_name", "mail.contosobank.com")

		// Back keeps what was typed on both steps.
		b.clickOK(backButton, "Back on step 4")
		b.atStep(3, "Identify the sender")
		b.wantValue("#sender_domains", "contosobank.com")
		b.clickOK(nextButton, "Next on step 3 again")
		b.atStep(4, "Security restrictions")
		b.wantChecked(`input[name=require_tls]`, true)
		b.wantChecked(`input[name=restrict_cert]`, true)
		b.wantChecked(`input[name=restrict_ips]`, false)
		b.wantValue("#cert_name", "mail.contosobank.com")
		b.shot("partner-4-restrictions")
		b.clickOK(nextButton, "Next on step 4")

		b.atStep(6, "Review")
		b.wantAbsent(`a[href$="/5"]`, "an inbound connector has no TLS step")
		b.wantReview("ul.review li",
			"Contoso Bank: Partner organization → flowgate.",
			"Description: Bank statements from Contoso",
			"Apply to mail arriving at flowgate from senders in contosobank.com.",
			"Reject mail from contosobank.com that is not sent over TLS.",
			"Reject mail from contosobank.com unless the sending server presents a trusted certificate for mail.contosobank.com.",
			"Turned on: it carries mail as soon as a validated revision is activated.",
		)
		b.wantAbsent(".formerror", "the connector is valid")
		b.shot("partner-6-review")
		pages["Contoso Bank"] = b.saveWizard("inbound", "Contoso Bank", "Saved Contoso Bank as revision 1.")
		b.wantText(".lead", "No revision carries mail yet")
		b.wantReview("ul.review li", "Reject mail from contosobank.com that is not sent over TLS.")
		b.shot("partner-saved")
	})

	t.Run("your email server to flowgate", func(t *testing.T) {
		b := main.in(t)
		b.startWizard()
		b.choose("from", "org")
		b.choose("to", "flowgate")
		b.shot("onprem-1-scenario")
		b.clickOK(nextButton, "Next on step 1")

		b.atStep(2, "Name")
		b.fill("#name", "Our Exchange")
		b.tick("enabled", false)
		b.shot("onprem-2-name")
		b.clickOK(nextButton, "Next on step 2")

		b.atStep(3, "Identify the sender")
		b.wantText("h2", "How to identify your email server")
		b.clickRefused(nextButton, "Next with neither certificate nor IP addresses")
		b.wantFieldError("sender_ip_addresses", "#sender_ips", "enter your email server's IP addresses")
		b.shot("onprem-3-identify-error")
		b.fill("#cert_name", "mail.contoso.com")

		// Back from a step with an error keeps what was typed there and
		// on the step before.
		b.clickOK(backButton, "Back on step 3")
		b.atStep(2, "Name")
		b.wantValue("#name", "Our Exchange")
		b.wantChecked(`input[name=enabled]`, false)
		b.tick("enabled", true)
		b.clickOK(nextButton, "Next on step 2 again")
		b.atStep(3, "Identify the sender")
		b.wantValue("#cert_name", "mail.contoso.com")
		b.fill("#sender_ips", "10.0.0.0/24")
		b.shot("onprem-3-identify")
		b.clickOK(nextButton, "Next on step 3")

		b.atStep(4, "Security restrictions")
		b.tick("require_tls", true)
		b.tick("restrict_cert", true)
		b.shot("onprem-4-restrictions")
		b.clickOK(nextButton, "Next on step 4")

		b.atStep(6, "Review")
		b.wantReview("ul.review li",
			"Our Exchange: Your organization's email server → flowgate.",
			"Recognize your email server by the TLS certificate name mail.contoso.com or by the IP addresses 10.0.0.0/24.",
			"Mail from your email server may be relayed to any recipient, Internet included, when its sender's domain is one of your accepted domains.",
			"Reject mail from your email server that is not sent over TLS.",
			"Reject mail from your email server unless it presents a trusted certificate for mail.contoso.com.",
			"Turned on: it carries mail as soon as a validated revision is activated.",
		)
		b.shot("onprem-6-review")
		pages["Our Exchange"] = b.saveWizard("inbound", "Our Exchange", "Saved Our Exchange as revision 1.")
	})

	t.Run("flowgate to partner", func(t *testing.T) {
		b := main.in(t)
		b.startWizard()
		b.choose("from", "flowgate")
		b.choose("to", "partner")
		b.shot("topartner-1-scenario")
		b.clickOK(nextButton, "Next on step 1")

		b.atStep(2, "Name")
		b.fill("#name", "To Fabrikam")
		b.shot("topartner-2-name")
		b.clickOK(nextButton, "Next on step 2")

		b.atStep(3, "When to use")
		b.wantAbsent(`input[name=use][value=accepted]`, "all accepted domains is for your own email server only")
		b.wantChecked(`input[name=use][value=domains]`, true)
		b.fill("#recipient_domains", "fabrikam.com")
		b.shot("topartner-3-when")
		b.clickOK(nextButton, "Next on step 3")

		b.atStep(4, "Routing")
		b.choose("route_by", "smarthosts")
		b.fill("#smart_hosts", "mail.fabrikam.com")
		b.shot("topartner-4-routing")
		b.clickOK(nextButton, "Next on step 4")

		b.atStep(5, "TLS")
		b.wantChecked(`input[name=tls_settings][value=opportunistic]`, true)
		b.choose("tls_settings", "domain_validation")
		b.fill("#validation_recipients", "postmaster@fabrikam.com")
		b.clickRefused(nextButton, "Next with domain validation and no domain")
		b.wantFieldError("tls_domain", "#tls_domain", "enter the domain the certificate must be issued to")
		b.wantChecked(`input[name=tls_settings][value=domain_validation]`, true)
		b.wantValue("#validation_recipients", "postmaster@fabrikam.com")
		b.shot("topartner-5-tls-error")

		b.clickOK(backButton, "Back on step 5")
		b.atStep(4, "Routing")
		b.wantChecked(`input[name=route_by][value=smarthosts]`, true)
		b.wantValue("#smart_hosts", "mail.fabrikam.com")
		b.clickOK(nextButton, "Next on step 4 again")
		b.atStep(5, "TLS")
		b.wantChecked(`input[name=tls_settings][value=domain_validation]`, true)
		b.wantValue("#validation_recipients", "postmaster@fabrikam.com")
		b.fill("#tls_domain", "mail.fabrikam.com")
		b.shot("topartner-5-tls")
		b.clickOK(nextButton, "Next on step 5")

		b.atStep(6, "Review")
		b.wantReview("ul.review li",
			"To Fabrikam: flowgate → Partner organization.",
			"Use it for mail to fabrikam.com.",
			"Deliver to the smart host mail.fabrikam.com.",
			"Always use TLS, and only with a trusted certificate issued to mail.fabrikam.com; otherwise mail waits in the queue.",
			"Validate sends its test message to postmaster@fabrikam.com.",
			"Turned on: it carries mail as soon as a validated revision is activated.",
		)
		b.shot("topartner-6-review")
		pages["To Fabrikam"] = b.saveWizard("outbound", "To Fabrikam", "Saved To Fabrikam as revision 1.")
		b.shot("topartner-saved")
	})

	t.Run("flowgate to your email server", func(t *testing.T) {
		b := main.in(t)
		b.startWizard()
		b.choose("from", "flowgate")
		b.choose("to", "flowgate")
		b.clickRefused(nextButton, "Next with flowgate to flowgate")
		b.wantFieldError("scenario", ".scenario", "mail from flowgate to flowgate needs no connector")
		b.wantChecked(`input[name=from][value=flowgate]`, true)
		b.shot("toorg-1-scenario-error")
		b.choose("to", "org")
		b.clickOK(nextButton, "Next on step 1")

		b.atStep(2, "Name")
		b.fill("#name", "To Exchange")
		b.clickOK(nextButton, "Next on step 2")

		b.atStep(3, "When to use")
		b.choose("use", "accepted")
		b.shot("toorg-3-when")
		b.clickOK(nextButton, "Next on step 3")

		b.atStep(4, "Routing")
		b.choose("route_by", "mx")
		b.clickRefused(nextButton, "Next with MX routing for your own domains")
		b.wantFieldError("use_mx_record", `input[name=route_by][value=mx]`, "point at flowgate itself")
		b.wantChecked(`input[name=route_by][value=mx]`, true)
		b.shot("toorg-4-routing-error")
		b.choose("route_by", "smarthosts")
		b.fill("#smart_hosts", "10.0.0.5")
		b.clickOK(nextButton, "Next on step 4")

		b.atStep(5, "TLS")
		b.clickOK(backButton, "Back on step 5")
		b.atStep(4, "Routing")
		b.wantChecked(`input[name=route_by][value=smarthosts]`, true)
		b.wantValue("#smart_hosts", "10.0.0.5")
		b.shot("toorg-4-routing")
		b.clickOK(nextButton, "Next on step 4 again")
		b.atStep(5, "TLS")
		b.wantChecked(`input[name=tls_settings][value=opportunistic]`, true)
		b.shot("toorg-5-tls")
		b.clickOK(nextButton, "Next on step 5")

		b.atStep(6, "Review")
		b.wantReview("ul.review li",
			"To Exchange: flowgate → Your organization's email server.",
			"Use it for mail to all of your accepted domains.",
			"Deliver to the smart host 10.0.0.5.",
			"Use TLS when the receiving server offers it; otherwise send unencrypted.",
			"No test message recipients yet; Validate asks for them.",
		)
		b.shot("toorg-6-review")
		pages["To Exchange"] = b.saveWizard("outbound", "To Exchange", "Saved To Exchange as revision 1.")
	})

	// Issue 18, item 5: a duplicate is found at the step that owns its
	// field, not only at Save; one that appears after its step (another
	// admin's save) stops the review, whose link opens the step with the
	// error at the field.
	t.Run("duplicates found at their step", func(t *testing.T) {
		b := main.in(t)
		b.startWizard()
		b.clickOK(nextButton, "Next on step 1")
		b.fill("#name", "contoso bank")
		b.clickRefused(nextButton, "Next with the name of another connector")
		b.atStep(2, "Name")
		b.wantFieldError("name", "#name", `an inbound connector named "Contoso Bank" already exists`)
		b.shot("duplicate-2-name-error")
		b.fill("#name", "Second bank")
		b.clickOK(nextButton, "Next on step 2")
		b.fill("#sender_domains", "fabrikam.com\ncontosobank.com")
		b.clickRefused(nextButton, "Next with another connector's sender domain")
		b.atStep(3, "Identify the sender")
		b.wantFieldError("sender_domains", "#sender_domains", `domain contosobank.com is already used by the inbound connector "Contoso Bank"`)
		b.fill("#sender_domains", "fabrikam.com")
		b.clickOK(nextButton, "Next on step 3")
		b.clickOK(nextButton, "Next on step 4")
		b.atStep(6, "Review")
		b.wantAbsent(`.formerror`, "nothing stops the save yet")

		// Another admin saves a connector for fabrikam.com meanwhile.
		if _, err := srv.st.CreateConnector(context.Background(), store.System("other"), &connector.InboundSpec{
			Common: connector.Common{Name: "Fabrikam", ConnectorType: connector.Partner}, SenderDomains: []string{"fabrikam.com"}, RequireTLS: true,
		}, true); err != nil {
			t.Fatal(err)
		}
		b.clickRefused(saveButton, "Save with another connector's sender domain")
		b.atStep(6, "Review")
		b.wantText(`.formerror[role=alert]`, "Fix these before saving:")
		b.wantText(`.formerror[role=alert]`, `domain fabrikam.com is already used by the inbound connector "Fabrikam"`)
		if !js[bool](b, `document.querySelector(`+q(saveButton)+`).disabled`) {
			b.fatalf("Save is enabled although the review lists an error")
		}
		b.shot("duplicate-6-review-error")
		// The error links to the step that owns the field, which shows it
		// there.
		b.clickOK(`.formerror a[href*="/3"]`, "Go to Identify the sender")
		b.atStep(3, "Identify the sender")
		b.wantFieldError("sender_domains", "#sender_domains", `domain fabrikam.com is already used by the inbound connector "Fabrikam"`)
		b.wantValue("#sender_domains", "fabrikam.com")
		b.clickOK(`a.btn[href="/connectors"]`, "Cancel")
		b.wantPath(`/connectors`)
		if err := srv.st.DeleteConnector(context.Background(), store.System("other"), connector.Inbound, mustConnectorID(t, srv.st, "Fabrikam")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("list", func(t *testing.T) {
		b := main.in(t)
		b.wantStatus(b.open("/connectors"), 200, "open the connectors")
		want := [][]string{
			{"Contoso Bank", "Partner organization → flowgate", "draft", "On once activated", "never"},
			{"Our Exchange", "Your organization's email server → flowgate", "draft", "On once activated", "never"},
			{"To Exchange", "flowgate → Your organization's email server", "draft", "On once activated", "never"},
			{"To Fabrikam", "flowgate → Partner organization", "draft", "On once activated", "never"},
		}
		if h := b.texts("table.list thead th"); !slices.Equal(h[:5], []string{"NAME", "FROM → TO", "STATUS", "ENABLED", "LAST VALIDATION"}) &&
			!slices.Equal(h[:5], []string{"Name", "From → To", "Status", "Enabled", "Last validation"}) {
			b.fatalf("list columns %q", h)
		}
		got := b.rows("table.list tbody tr")
		if len(got) != len(want) {
			b.fatalf("the list has %d rows, want %d: %q", len(got), len(want), got)
		}
		for i := range want {
			if !slices.Equal(got[i][:5], want[i]) {
				b.fatalf("row %d is %q, want %q", i+1, got[i][:5], want[i])
			}
		}
		// Each name links to its connector page, and each row has its
		// pencil.
		for name, p := range pages {
			b.mustExist(`table.list a[href="` + p + `"]`)
			b.mustExist(`table.list a[href="` + p + `/edit"][aria-label="Edit ` + name + `"]`)
		}
		b.shot("list")

		// The name opens the connector page.
		b.clickOK(`table.list a[href="`+pages["To Fabrikam"]+`"]`, "open To Fabrikam")
		b.wantText("h1", "To Fabrikam")
		b.wantReview("ul.review li", "Deliver to the smart host mail.fabrikam.com.")
		if got := b.rows("#revisions table.list tbody tr"); len(got) != 1 || got[0][0] != "1" || !strings.Contains(got[0][3], "newest") {
			b.fatalf("revisions %q, want revision 1, newest", got)
		}
		b.wantAbsent("#diff", "there is one revision only")
	})

	t.Run("phone", func(t *testing.T) {
		b := main.in(t)
		b.phone()
		defer b.desktop()
		b.wantStatus(b.open("/connectors"), 200, "open the connectors on a phone")
		b.wantNoSideScroll()
		b.shot("phone-list")
		b.wantStatus(b.open(pages["Contoso Bank"]), 200, "open Contoso Bank on a phone")
		b.wantNoSideScroll()
		b.shot("phone-connector")
		b.startWizard()
		b.wantNoSideScroll()
		b.shot("phone-wizard-1-scenario")
		b.choose("from", "partner")
		b.choose("to", "flowgate")
		b.clickOK(nextButton, "Next on step 1")
		b.clickRefused(nextButton, "Next with no name")
		b.wantFieldError("name", "#name", "enter a name")
		b.wantNoSideScroll()
		b.shot("phone-wizard-2-name-error")
		b.fill("#name", "Woodgrove")
		b.clickOK(nextButton, "Next on step 2")
		b.fill("#sender_domains", "woodgrovebank.com")
		b.clickOK(nextButton, "Next on step 3")
		b.wantNoSideScroll()
		b.shot("phone-wizard-4-restrictions")
	})
}

// mustConnectorID is the id of the inbound connector named name.
func mustConnectorID(t *testing.T, st *store.Store, name string) int64 {
	t.Helper()
	list, err := st.ListConnectors(context.Background(), connector.Inbound)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list {
		if c.Name == name {
			return c.ID
		}
	}
	t.Fatalf("no inbound connector named %q", name)
	return 0
}
