package browsertest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// TestStatusesSayWhatCarriesMail: a connector whose revision 1 carries
// mail stays "active" when its newer revision 2 fails validation — the
// failure is a separate warning about the newest revision — and a draft
// says it turns on once activated, without a "Turn off" button.
func TestStatusesSayWhatCarriesMail(t *testing.T) {
	srv := startServer(t)
	srv.seedAdmin(t)
	ctx := context.Background()
	spec := &connector.InboundSpec{Common: connector.Common{Name: "Contoso Bank", ConnectorType: connector.Partner},
		SenderDomains: []string{"contosobank.com"}, RequireTLS: true}
	id := testutil.ActivateConnector(t, srv.st, spec)
	edited := *spec
	edited.SenderDomains = []string{"contosobank.com", "contosobank.net"}
	if _, err := srv.st.UpdateConnector(ctx, testutil.TestActor, id, &edited, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := srv.st.RecordValidation(ctx, testutil.TestActor, connector.Inbound, &store.Validation{
		ConnectorID: id, Revision: 2, Status: store.ValidationFailed, StartedAt: now, FinishedAt: now,
		Steps: []store.ValidationStep{{Name: "test message", Status: "failed", Detail: "refused"}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.st.CreateConnector(ctx, testutil.TestActor, &connector.OutboundSpec{
		Common: connector.Common{Name: "Fabrikam", ConnectorType: connector.Partner}, RecipientDomains: []string{"fabrikam.com"}, UseMXRecord: true,
	}, true); err != nil {
		t.Fatal(err)
	}

	b := newTab(t, srv.url)
	b.signIn(adminEmail, password, "/connectors")
	rows := b.rows("table.list tbody tr")
	var bank, draft []string
	for _, r := range rows {
		switch {
		case len(r) > 0 && r[0] == "Contoso Bank":
			bank = r
		case len(r) > 0 && r[0] == "Fabrikam":
			draft = r
		}
	}
	if bank == nil || draft == nil {
		b.fatalf("rows %q", rows)
	}
	if !strings.HasPrefix(bank[2], "active") || !strings.Contains(bank[2], "revision 1 carries mail") || !strings.Contains(bank[2], "revision 2 failed validation") {
		b.fatalf("status of the connector whose revision 1 carries mail: %q", bank[2])
	}
	b.mustExist(".newest.warn")
	if draft[3] != "On once activated" {
		b.fatalf("enabled column of a draft: %q", draft[3])
	}
	b.wantAbsent(`button[aria-label="Turn off Fabrikam"]`, "a draft has no Turn off button")
	b.shot("list")

	b.open(fmt.Sprintf("/connectors/inbound/%d", id))
	b.wantText("h1 .badge", "active")
	b.wantText(".newest.warn", "Newest: revision 2 failed validation.")
	b.shot("connector")
}
