package console_test

import (
	"context"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// An active connector's page says which revision carries mail — not "as
// soon as a validated revision is activated" — and the delete
// confirmation says what the connector does and that it is active.
func TestConnectorPageSaysWhatCarriesMail(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	b := adminBrowser(t, st)
	spec := &connector.InboundSpec{Common: connector.Common{Name: "Contoso Bank", ConnectorType: connector.Partner},
		SenderDomains: []string{"contosobank.com"}, RequireTLS: true}
	id := testutil.ActivateConnector(t, st, spec)
	href := "/connectors/inbound/" + itoa(id)

	p := b.get(href)
	p.has(t, "Turned on: this revision carries mail.")
	p.lacks(t, "as soon as a validated revision is activated")

	edited := *spec
	edited.SenderDomains = []string{"contosobank.com", "contosobank.net"}
	if _, err := st.UpdateConnector(context.Background(), store.Actor{Kind: "user", Name: "admin@contoso.com"}, id, &edited, nil); err != nil {
		t.Fatal(err)
	}
	b.get(href).has(t, "Turned on: revision 1 carries mail until this one is validated and activated.")

	confirm := b.get(href + "/delete")
	confirm.has(t, "Delete Contoso Bank?", "Contoso Bank: Partner organization → flowgate.", "This connector is active (revision 1 carries mail)")
}

// The warning before removing an accepted domain quotes the reply the
// relay then gives (550 5.7.64, relay access denied).
func TestDomainRemovalQuotesTheRelaysReply(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	b := adminBrowser(t, st)
	d, err := st.CreateAcceptedDomain(context.Background(), store.Actor{Kind: "user", Name: "admin@contoso.com"}, "contoso.com", connector.Authoritative)
	if err != nil {
		t.Fatal(err)
	}
	b.get("/domains/"+itoa(d.ID)+"/delete").has(t, "550 5.7.64, relay access denied")
}

// The Validate page offers the recipients of the connector's last run, as
// typed then, rather than the connector's defaults again.
func TestValidatePageRemembersTheRecipients(t *testing.T) {
	st := testutil.OpenStore(t, testutil.Engines[0])
	createUser(t, st, "admin@contoso.com", store.RoleAdmin)
	b := newBrowser(t, serveWithValidation(t, st))
	b.signIn("admin@contoso.com")
	c, err := st.CreateConnector(context.Background(), testutil.TestActor, &connector.OutboundSpec{
		Common: connector.Common{Name: "To Fabrikam", ConnectorType: connector.Partner}, RecipientDomains: []string{"fabrikam.com"},
		UseMXRecord: true, ValidationRecipients: []string{"postmaster@fabrikam.com"},
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	href := "/connectors/outbound/" + itoa(c.ID) + "/validate"
	b.get(href).has(t, "postmaster@fabrikam.com")
	now := time.Now()
	if err := st.RecordValidation(context.Background(), testutil.TestActor, connector.Outbound, &store.Validation{
		ConnectorID: c.ID, Revision: 1, Status: store.ValidationFailed, StartedAt: now, FinishedAt: now,
		Recipients: []string{"typed@fabrikam.com", "other@fabrikam.com"},
		Steps:      []store.ValidationStep{{Name: "test message", Status: "failed", Detail: "refused"}},
	}); err != nil {
		t.Fatal(err)
	}
	p := b.get(href)
	p.has(t, "typed@fabrikam.com\nother@fabrikam.com")
}
