package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// allow_external_senders (migration 00009) is false by default, stored
// when set, and audited.
func TestAcceptedDomainAllowExternalSenders(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		plain, err := st.CreateAcceptedDomain(ctx, admin, "contoso.com", connector.Authoritative)
		if err != nil {
			t.Fatal(err)
		}
		open, err := st.CreateAcceptedDomainWith(ctx, admin, "news.contoso.com", connector.Authoritative, store.AcceptedDomainOptions{AllowExternalSenders: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []struct {
			id   int64
			open bool
		}{{plain.ID, false}, {open.ID, true}} {
			d, err := st.GetAcceptedDomain(ctx, want.id)
			if err != nil {
				t.Fatal(err)
			}
			if d.AllowExternalSenders != want.open {
				t.Errorf("%s: allow_external_senders %v, want %v", d.Domain, d.AllowExternalSenders, want.open)
			}
		}
		var detail string
		if err := st.DB().Raw(`SELECT detail FROM audit_log WHERE object_id = ? AND object_type = 'accepted_domain'`, open.ID).Row().Scan(&detail); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(detail, `"allow_external_senders":true`) {
			t.Errorf("audit detail %s does not record allow_external_senders", detail)
		}
	})
}
