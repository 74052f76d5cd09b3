package console_test

import (
	"context"
	"testing"

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
