package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

func auditIDs(entries []store.AuditEntry) []int64 {
	out := make([]int64, len(entries))
	for i, e := range entries {
		out[i] = e.ID
	}
	return out
}

// TestAuditFiltersCombine: who, what, which connector and when narrow the
// log together, on both engines.
func TestAuditFiltersCombine(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		alice := store.Actor{Kind: "user", Name: "alice@contoso.com"}
		ci := store.Actor{Kind: "token", Name: "ci"}
		for i := range 4 {
			actor := alice
			if i%2 == 1 {
				actor = ci
			}
			if _, err := st.CreateAcceptedDomain(ctx, actor, fmt.Sprintf("d%d.contoso.com", i), connector.Authoritative); err != nil {
				t.Fatal(err)
			}
		}
		id := testutil.ActivateConnector(t, st, bankSpec("Contoso Bank", "contosobank.com"))
		bank := bankSpec("Contoso Bank", "contosobank.com", "contosobank.net")
		if _, err := st.UpdateConnector(ctx, alice, id, bank, nil); err != nil {
			t.Fatal(err)
		}
		all, err := st.ListAudit(ctx, store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 8 {
			t.Fatalf("%d entries, want 8 (4 domains; create, validate, activate, update)", len(all))
		}
		// One day apart each, oldest first: all[7] on day 0 ... all[0] on day 7.
		day0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
		db := testutil.RawDB(t, st)
		for i, e := range all {
			at := day0.AddDate(0, 0, len(all)-1-i).Add(13*time.Hour + 5*time.Minute)
			if st.Dialect() == store.SQLite {
				_, err = db.Exec(`UPDATE audit_log SET at = ? WHERE id = ?`, at, e.ID)
			} else {
				_, err = db.Exec(`UPDATE audit_log SET at = $1 WHERE id = $2`, at, e.ID)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		byDay := func(days ...int) []int64 {
			var out []int64
			for _, d := range days {
				out = append(out, all[len(all)-1-d].ID)
			}
			slices.Reverse(out)
			return out
		}
		cases := []struct {
			name string
			f    store.AuditFilter
			want []int64
		}{
			{"everything", store.AuditFilter{}, auditIDs(all)},
			{"by alice", store.AuditFilter{Actor: alice.String()}, byDay(0, 2, 7)},
			{"by the ci token", store.AuditFilter{Actor: ci.String()}, byDay(1, 3)},
			{"accepted domains", store.AuditFilter{ObjectType: "accepted_domain"}, byDay(0, 1, 2, 3)},
			{"created anything", store.AuditFilter{Action: "create"}, byDay(0, 1, 2, 3, 4)},
			{"the connector", store.AuditFilter{ConnectorID: id}, byDay(4, 5, 6, 7)},
			{"the connector, by alice", store.AuditFilter{ConnectorID: id, Actor: alice.String()}, byDay(7)},
			{"from day 2 to before day 5", store.AuditFilter{From: day0.AddDate(0, 0, 2), To: day0.AddDate(0, 0, 5)}, byDay(2, 3, 4)},
			{"created from day 3", store.AuditFilter{Action: "create", From: day0.AddDate(0, 0, 3)}, byDay(3, 4)},
			{"domains by alice up to day 1", store.AuditFilter{ObjectType: "accepted_domain", Actor: alice.String(), To: day0.AddDate(0, 0, 1)}, byDay(0)},
			{"nobody", store.AuditFilter{Actor: "user:nobody@contoso.com"}, nil},
			{"activated by the ci token", store.AuditFilter{Action: "activate", Actor: ci.String()}, nil},
		}
		for _, c := range cases {
			got, err := st.ListAudit(ctx, c.f)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if !slices.Equal(auditIDs(got), c.want) {
				t.Errorf("%s: ids %v, want %v", c.name, auditIDs(got), c.want)
			}
			page, err := st.ListAuditPage(ctx, c.f)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if !slices.Equal(auditIDs(page.Entries), c.want) || page.Newer || page.Older {
				t.Errorf("%s: page %v newer=%v older=%v, want %v alone", c.name, auditIDs(page.Entries), page.Newer, page.Older, c.want)
			}
		}

		actors, err := st.AuditActors(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"token:ci", "user:admin@contoso.com", "user:alice@contoso.com"}; !slices.Equal(actors, want) {
			t.Fatalf("actors %q, want %q", actors, want)
		}

		// The revisions the log's connector entries name, for their diffs.
		specs, err := st.RevisionSpecs(ctx, map[int64]connector.Direction{id: connector.Inbound},
			[]store.RevisionKey{{ConnectorID: id, Revision: 1}, {ConnectorID: id, Revision: 2}, {ConnectorID: id, Revision: 3}})
		if err != nil {
			t.Fatal(err)
		}
		r1, _ := specs[store.RevisionKey{ConnectorID: id, Revision: 1}].(*connector.InboundSpec)
		r2, _ := specs[store.RevisionKey{ConnectorID: id, Revision: 2}].(*connector.InboundSpec)
		if len(specs) != 2 || r1 == nil || r2 == nil || len(r1.SenderDomains) != 1 || len(r2.SenderDomains) != 2 {
			t.Fatalf("revision specs: %#v", specs)
		}
	})
}

// TestAuditPaging: pages of the same filter, older and newer, meet without
// gaps or overlaps, and say whether there is more on each side.
func TestAuditPaging(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		alice := store.Actor{Kind: "user", Name: "alice@contoso.com"}
		for i := range 7 {
			if _, err := st.CreateAcceptedDomain(ctx, alice, fmt.Sprintf("d%d.contoso.com", i), connector.Authoritative); err != nil {
				t.Fatal(err)
			}
			// Other people's changes in between, which the filter skips.
			if _, err := st.CreateAcceptedDomain(ctx, admin, fmt.Sprintf("x%d.contoso.com", i), connector.Authoritative); err != nil {
				t.Fatal(err)
			}
		}
		f := store.AuditFilter{Actor: alice.String(), Limit: 3}
		want, err := st.ListAudit(ctx, store.AuditFilter{Actor: alice.String()})
		if err != nil || len(want) != 7 {
			t.Fatalf("alice's entries: %d %v", len(want), err)
		}
		ids := auditIDs(want)
		type page struct {
			ids          []int64
			newer, older bool
		}
		get := func(before, after int64) page {
			t.Helper()
			g := f
			g.BeforeID, g.AfterID = before, after
			p, err := st.ListAuditPage(ctx, g)
			if err != nil {
				t.Fatal(err)
			}
			return page{auditIDs(p.Entries), p.Newer, p.Older}
		}
		check := func(name string, got, want page) {
			t.Helper()
			if !slices.Equal(got.ids, want.ids) || got.newer != want.newer || got.older != want.older {
				t.Fatalf("%s: %+v, want %+v", name, got, want)
			}
		}
		p1 := get(0, 0)
		check("first page", p1, page{ids[0:3], false, true})
		p2 := get(p1.ids[2], 0)
		check("second page", p2, page{ids[3:6], true, true})
		p3 := get(p2.ids[2], 0)
		check("last page", p3, page{ids[6:7], true, false})
		check("newer than the last page", get(0, p3.ids[0]), page{ids[3:6], true, true})
		check("newer than the second page", get(0, p2.ids[0]), page{ids[0:3], false, true})
		check("newer than the second entry", get(0, ids[1]), page{ids[0:1], false, true})
		check("older than the oldest", get(ids[6], 0), page{nil, false, false})
		check("newer than the newest", get(0, ids[0]), page{nil, false, false})
	})
}
