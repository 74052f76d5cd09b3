package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
	"gorm.io/gorm"
)

func TestValidationStatusAndActivation(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		actor := store.Actor{Kind: "user", Name: "admin@contoso.com"}
		spec := &connector.OutboundSpec{Common: connector.Common{Name: "To Fabrikam", ConnectorType: connector.Partner},
			RecipientDomains: []string{"fabrikam.com"}, SmartHosts: []string{"mail.fabrikam.com"}}
		c, err := st.CreateConnector(ctx, actor, spec, true)
		if err != nil {
			t.Fatal(err)
		}
		status := func() store.Status {
			got, err := st.GetConnector(ctx, connector.Outbound, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			return got.Status()
		}
		record := func(rev int, result string) *store.Validation {
			now := time.Now()
			v := &store.Validation{ConnectorID: c.ID, Revision: rev, Status: result, StartedAt: now, FinishedAt: now,
				Sender: "a@contoso.com", Recipients: []string{"b@fabrikam.com"},
				Steps:      []store.ValidationStep{{Name: "connect", Status: result, Detail: "x\x00y", DurationMS: 3}},
				Transcript: "C: EHLO\x00\r\nS: 250 \xff"}
			if err := st.RecordValidation(ctx, actor, connector.Outbound, v); err != nil {
				t.Fatal(err)
			}
			return v
		}
		if s := status(); s != store.StatusDraft {
			t.Fatalf("new: %s", s)
		}
		if _, err := st.Activate(ctx, actor, connector.Outbound, c.ID, 1); !errors.Is(err, store.ErrNotValidated) {
			t.Fatalf("activate unvalidated: %v", err)
		}
		record(1, store.ValidationFailed)
		if s := status(); s != store.StatusFailed {
			t.Fatalf("after a failed run: %s", s)
		}
		if _, err := st.Activate(ctx, actor, connector.Outbound, c.ID, 1); !errors.Is(err, store.ErrNotValidated) {
			t.Fatalf("activate failed: %v", err)
		}
		v := record(1, store.ValidationPassed)
		if s := status(); s != store.StatusValidated {
			t.Fatalf("after a passed run: %s", s)
		}
		got, err := st.GetValidation(ctx, c.ID, v.ID)
		if err != nil || got.Status != store.ValidationPassed || got.Recipients[0] != "b@fabrikam.com" || got.Steps[0].DurationMS != 3 || got.Transcript != `C: EHLO\x00`+"\r\n"+`S: 250 \xff` {
			t.Fatalf("stored run: %+v %v", got, err)
		}
		// A later failed run of the same revision blocks its activation.
		record(1, store.ValidationFailed)
		if _, err := st.Activate(ctx, actor, connector.Outbound, c.ID, 1); !errors.Is(err, store.ErrNotValidated) {
			t.Fatalf("activate after a newer failed run: %v", err)
		}
		record(1, store.ValidationPassed)
		if _, err := st.Activate(ctx, actor, connector.Outbound, c.ID, 1); err != nil {
			t.Fatal(err)
		}
		if s := status(); s != store.StatusActive {
			t.Fatalf("activated: %s", s)
		}
		// An edit: the newest revision is a draft; revision 1 stays active.
		if _, err := st.UpdateConnector(ctx, actor, c.ID, spec, nil); err != nil {
			t.Fatal(err)
		}
		if s := status(); s != store.StatusDraft {
			t.Fatalf("after an edit: %s", s)
		}
		record(2, store.ValidationFailed)
		cur, _ := st.GetConnector(ctx, connector.Outbound, c.ID)
		if cur.Status() != store.StatusFailed || *cur.ActiveRevision != 1 || cur.LastValidation.Revision != 2 {
			t.Fatalf("after revision 2 failed: %s active %d last %+v", cur.Status(), *cur.ActiveRevision, cur.LastValidation)
		}
		// Revision 1 may still be re-activated: its newest run passed.
		if _, err := st.Activate(ctx, actor, connector.Outbound, c.ID, 1); err != nil {
			t.Fatal(err)
		}
		if err := st.RecordValidation(ctx, actor, connector.Outbound, &store.Validation{ConnectorID: c.ID, Revision: 3, Status: store.ValidationPassed}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a run of a revision that does not exist: %v", err)
		}
		list, err := st.ListValidations(ctx, c.ID, 0)
		if err != nil || len(list) != 5 || list[0].Revision != 2 {
			t.Fatalf("history: %d %v", len(list), err)
		}
		audit, _ := st.ListAudit(ctx, store.AuditFilter{ConnectorID: c.ID})
		n := 0
		for _, e := range audit {
			if e.Action == "validate" {
				n++
			}
		}
		if n != 5 {
			t.Fatalf("audit rows for validations: %d", n)
		}
	})
}

// Delivery bookkeeping may skip the WAL flush; everything else, accepting
// mail included, waits for it.
func TestBookkeepingPoolSkipsOnlyItsOwnFlush(t *testing.T) {
	testutil.SkipWithoutPostgres(t)
	st := testutil.OpenStore(t, testutil.Engines[1])
	var main, book string
	if err := st.DB().Raw("SHOW synchronous_commit").Scan(&main).Error; err != nil {
		t.Fatal(err)
	}
	if err := st.BookkeepingDB().Raw("SHOW synchronous_commit").Scan(&book).Error; err != nil {
		t.Fatal(err)
	}
	if main != "on" || book != "off" {
		t.Fatalf("synchronous_commit: main pool %q, bookkeeping pool %q", main, book)
	}
	sq := testutil.OpenStore(t, testutil.Engines[0])
	if sq.BookkeepingDB() != sq.DB() {
		t.Fatal("SQLite has one pool")
	}
}

// The bookkeeping pool's prepared statements use the indexes even when the
// plan was settled while the tables were empty (a new database).
func TestBookkeepingPoolPlansUseIndexes(t *testing.T) {
	testutil.SkipWithoutPostgres(t)
	st := testutil.OpenStore(t, testutil.Engines[1])
	ctx := context.Background()
	plan := func(db *gorm.DB) (plan string, custom int) {
		sqlDB, err := db.DB()
		if err != nil {
			t.Fatal(err)
		}
		conn, err := sqlDB.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, `PREPARE outcome(bigint[]) AS UPDATE messages t SET attempts = t.attempts + 1
			FROM unnest($1::bigint[]) AS v(id) WHERE t.id = v.id`); err != nil {
			t.Fatal(err)
		}
		defer conn.ExecContext(ctx, `DEALLOCATE outcome`)
		for range 6 { // left to itself, PostgreSQL may settle on a generic plan from the sixth
			if _, err := conn.ExecContext(ctx, `EXECUTE outcome('{1,2}')`); err != nil {
				t.Fatal(err)
			}
		}
		if err := conn.QueryRowContext(ctx, `SELECT custom_plans FROM pg_prepared_statements WHERE name = 'outcome'`).Scan(&custom); err != nil {
			t.Fatal(err)
		}
		rows, err := conn.QueryContext(ctx, `EXPLAIN EXECUTE outcome('{1,2}')`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var line string
			_ = rows.Scan(&line)
			out = append(out, line)
		}
		return strings.Join(out, "\n"), custom
	}
	p, custom := plan(st.BookkeepingDB())
	if strings.Contains(p, "Seq Scan on messages") || !strings.Contains(p, "messages_pkey") {
		t.Errorf("bookkeeping pool plans the outcome update on an empty table as:\n%s\nwant an index scan on messages_pkey", p)
	}
	// Planned once, not at every execution (left to itself PostgreSQL
	// plans such a statement for each array it is given).
	if custom != 0 {
		t.Errorf("bookkeeping pool planned the prepared statement for %d of its executions; want a generic plan for all", custom)
	}
}
