package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

var admin = store.Actor{Kind: "user", Name: "admin@contoso.com"}

func bankSpec(name string, domains ...string) *connector.InboundSpec {
	return &connector.InboundSpec{
		Common:        connector.Common{Name: name, ConnectorType: connector.Partner},
		SenderDomains: domains,
		RequireTLS:    true,
	}
}

func auditActions(t *testing.T, s *store.Store, connectorID int64) []string {
	t.Helper()
	entries, err := s.ListAudit(context.Background(), store.AuditFilter{ConnectorID: connectorID})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(entries) - 1; i >= 0; i-- {
		out = append(out, entries[i].Action)
	}
	return out
}

func TestMigrateTwiceAndConcurrently(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			opts := e.Options(t)
			ctx := context.Background()
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s, err := store.Open(ctx, opts)
					if err != nil {
						errs <- err
						return
					}
					defer s.Close()
					errs <- s.Migrate(ctx)
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatalf("concurrent migrate: %v", err)
				}
			}
			s := testutil.OpenStoreWith(t, opts) // migrates once more: a no-op
			cur, known, err := s.SchemaStatus(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if cur != known || cur == 0 {
				t.Fatalf("schema at %d, binary knows %d", cur, known)
			}
		})
	}
}

// TestLockServe: one serving process per SQLite database (a second lock
// fails at once and names the database, and works again once the first is
// released); on PostgreSQL any number.
func TestLockServe(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			opts := e.Options(t)
			a, b := testutil.OpenStoreWith(t, opts), testutil.OpenStoreWith(t, opts)
			unlock, err := a.LockServe()
			if err != nil {
				t.Fatal(err)
			}
			unlockB, err := b.LockServe()
			if e.Name == "postgres" {
				if err != nil {
					t.Fatalf("PostgreSQL: a second serving process refused: %v", err)
				}
				unlockB()
				unlock()
				return
			}
			if err == nil || !strings.Contains(err.Error(), "another flowgate serve is using "+opts.DataDir) {
				t.Fatalf("second lock on one SQLite database: %v, want a refusal naming it", err)
			}
			unlock()
			unlockB, err = b.LockServe()
			if err != nil {
				t.Fatalf("lock after the first was released: %v", err)
			}
			unlockB()
		})
	}
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		_, known, err := s.SchemaStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.DB().Exec("INSERT INTO goose_db_version (version_id, is_applied) VALUES (?, ?)", known+1, true).Error; err != nil {
			t.Fatal(err)
		}
		err = s.Migrate(ctx)
		if err == nil || !strings.Contains(err.Error(), "newer than this flowgate knows") {
			t.Fatalf("Migrate on a newer schema: got %v", err)
		}
	})
}

func TestConnectorLifecycle(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c, err := s.CreateConnector(ctx, admin, bankSpec("Contoso Bank", "ContosoBank.com."), true)
		if err != nil {
			t.Fatal(err)
		}
		if c.Revision != 1 || c.ActiveRevision != nil || c.Status() != store.StatusDraft {
			t.Fatalf("new connector: revision %d active %v status %s", c.Revision, c.ActiveRevision, c.Status())
		}
		got, err := s.GetConnector(ctx, connector.Inbound, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d := got.Spec.(*connector.InboundSpec).SenderDomains; len(d) != 1 || d[0] != "contosobank.com" {
			t.Fatalf("stored domains %v, want the canonical [contosobank.com]", d)
		}
		if _, err := s.GetConnector(ctx, connector.Outbound, c.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("inbound connector read as outbound: %v", err)
		}

		upd := bankSpec("Contoso Bank", "contosobank.com", "*.contosobank.com")
		c2, err := s.UpdateConnector(ctx, admin, c.ID, upd, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c2.Revision != 2 {
			t.Fatalf("update made revision %d, want 2", c2.Revision)
		}
		revs, err := s.ListRevisions(ctx, connector.Inbound, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(revs) != 2 || revs[0].Revision != 2 || revs[1].Revision != 1 {
			t.Fatalf("revisions %+v", revs)
		}
		if d := revs[1].Spec.(*connector.InboundSpec).SenderDomains; len(d) != 1 {
			t.Fatalf("revision 1 changed by the update: %v", d)
		}

		// Activation needs a passed validation of that exact revision.
		if _, err := s.Activate(ctx, admin, connector.Inbound, c.ID, 2); !errors.Is(err, store.ErrNotValidated) {
			t.Fatalf("activate unvalidated: %v", err)
		}
		if err := s.MarkValidated(ctx, admin, connector.Inbound, c.ID, 2); err != nil {
			t.Fatal(err)
		}
		act, err := s.Activate(ctx, admin, connector.Inbound, c.ID, 2)
		if err != nil {
			t.Fatal(err)
		}
		if act.Status() != store.StatusActive {
			t.Fatalf("status after activate: %s", act.Status())
		}
		active, err := s.ActiveRevisions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(active) != 1 || active[0].Inbound == nil || active[0].Revision != 2 {
			t.Fatalf("active revisions %+v", active)
		}

		// An edit leaves revision 2 active.
		if _, err := s.UpdateConnector(ctx, admin, c.ID, bankSpec("Contoso Bank", "contosobank.com"), nil); err != nil {
			t.Fatal(err)
		}
		active, _ = s.ActiveRevisions(ctx)
		if len(active) != 1 || active[0].Inbound == nil || active[0].Revision != 2 || len(active[0].Inbound.SenderDomains) != 2 {
			t.Fatalf("after edit the active revision must still be 2 with two domains: %+v", active)
		}
		if _, err := s.SetConnectorEnabled(ctx, admin, connector.Inbound, c.ID, false); err != nil {
			t.Fatal(err)
		}
		active, _ = s.ActiveRevisions(ctx)
		if len(active) != 0 {
			t.Fatalf("a disabled connector is among the active revisions: %+v", active)
		}
		if err := s.DeleteConnector(ctx, admin, connector.Inbound, c.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetConnector(ctx, connector.Inbound, c.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted connector still readable: %v", err)
		}
		want := []string{"create", "update", "validate", "activate", "update", "disable", "delete"}
		if got := auditActions(t, s, c.ID); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("audit actions %v, want %v", got, want)
		}
		// The name is free again after deletion.
		if _, err := s.CreateConnector(ctx, admin, bankSpec("contoso bank", "contosobank.com"), true); err != nil {
			t.Fatalf("re-create after delete: %v", err)
		}
	})
}

func TestRevisionsAreImmutable(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c, err := s.CreateConnector(ctx, admin, bankSpec("Bank", "bank.example"), true)
		if err != nil {
			t.Fatal(err)
		}
		err = s.DB().Exec("UPDATE connector_revisions SET spec = '{}' WHERE connector_id = ?", c.ID).Error
		if err == nil || !strings.Contains(err.Error(), "immutable") {
			t.Fatalf("updating a revision: got %v, want the immutability error", err)
		}
		got, err := s.GetConnector(ctx, connector.Inbound, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Spec.(*connector.InboundSpec).SenderDomains[0] != "bank.example" {
			t.Fatal("revision content changed")
		}
	})
}

func TestNameAndOverlapConflicts(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		a, err := s.CreateConnector(ctx, admin, bankSpec("Contoso Bank", "contosobank.com"), true)
		if err != nil {
			t.Fatal(err)
		}
		var conflict *store.ConflictError
		_, err = s.CreateConnector(ctx, admin, bankSpec("CONTOSO BANK", "other.example"), true)
		if !errors.As(err, &conflict) || conflict.Field != "name" {
			t.Fatalf("duplicate name (other case): %v", err)
		}
		_, err = s.CreateConnector(ctx, admin, bankSpec("Bank two", "other.example", "ContosoBank.com"), true)
		if !errors.As(err, &conflict) || conflict.Field != "sender_domains" || !strings.Contains(conflict.Message, `"Contoso Bank"`) {
			t.Fatalf("overlapping domain: %v", err)
		}
		// The same name in the other direction is fine.
		out := &connector.OutboundSpec{Common: connector.Common{Name: "Contoso Bank", ConnectorType: connector.Partner},
			RecipientDomains: []string{"contosobank.com"}, UseMXRecord: true}
		if _, err := s.CreateConnector(ctx, admin, out, true); err != nil {
			t.Fatalf("same name, other direction: %v", err)
		}
		// IP-identified connectors must not overlap.
		ipA := &connector.InboundSpec{Common: connector.Common{Name: "Partner IPs", ConnectorType: connector.Partner},
			SenderIPAddresses: []string{"192.0.2.0/24"}, RequireTLS: true}
		if _, err := s.CreateConnector(ctx, admin, ipA, true); err != nil {
			t.Fatal(err)
		}
		onPrem := &connector.InboundSpec{Common: connector.Common{Name: "Our server", ConnectorType: connector.OnPremises},
			SenderIPAddresses: []string{"192.0.2.10-192.0.2.20"}}
		_, err = s.CreateConnector(ctx, admin, onPrem, true)
		if !errors.As(err, &conflict) || conflict.Field != "sender_ip_addresses" || !strings.Contains(conflict.Message, `"Partner IPs"`) {
			t.Fatalf("overlapping IP range: %v", err)
		}
		// Updating a connector does not conflict with itself.
		if _, err := s.UpdateConnector(ctx, admin, a.ID, bankSpec("Contoso Bank", "contosobank.com"), nil); err != nil {
			t.Fatalf("update with own identity: %v", err)
		}
		// Invalid specs return field errors, and nothing is written.
		_, err = s.CreateConnector(ctx, admin, &connector.InboundSpec{Common: connector.Common{Name: "x", ConnectorType: connector.Partner}, SenderDomains: []string{"bad domain"}}, true)
		var fe connector.FieldErrors
		if !errors.As(err, &fe) || fe["sender_domains"] == "" {
			t.Fatalf("invalid spec: %v", err)
		}
	})
}

func TestAuditCommitsOrRollsBackWithChange(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c, err := s.CreateConnector(ctx, admin, bankSpec("Bank", "bank.example"), true)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateConnector(ctx, admin, bankSpec("Other", "other.example"), true); err != nil {
			t.Fatal(err)
		}
		// A change refused after its checks began writes no audit row.
		if _, err := s.UpdateConnector(ctx, admin, c.ID, bankSpec("Other", "bank.example"), nil); err == nil {
			t.Fatal("rename onto an existing name succeeded")
		}
		if got := auditActions(t, s, c.ID); len(got) != 1 {
			t.Fatalf("audit rows after a refused update: %v", got)
		}
		// When the audit row cannot be written, the change is rolled back.
		if err := s.DB().Exec("ALTER TABLE audit_log RENAME TO audit_log_gone").Error; err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateConnector(ctx, admin, c.ID, bankSpec("Bank", "bank.example"), nil); err == nil {
			t.Fatal("update succeeded without its audit row")
		}
		if _, err := s.CreateConnector(ctx, admin, bankSpec("Third", "third.example"), true); err == nil {
			t.Fatal("create succeeded without its audit row")
		}
		if err := s.DB().Exec("ALTER TABLE audit_log_gone RENAME TO audit_log").Error; err != nil {
			t.Fatal(err)
		}
		got, err := s.GetConnector(ctx, connector.Inbound, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Revision != 1 {
			t.Fatalf("revision %d after a rolled-back update, want 1", got.Revision)
		}
		revs, _ := s.ListRevisions(ctx, connector.Inbound, c.ID)
		if len(revs) != 1 {
			t.Fatalf("%d revisions after a rolled-back update", len(revs))
		}
		list, _ := s.ListConnectors(ctx, connector.Inbound)
		if len(list) != 2 {
			t.Fatalf("%d connectors after a rolled-back create, want 2", len(list))
		}
	})
}

func TestConcurrentUpdatesKeepEveryRevision(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		c, err := s.CreateConnector(ctx, admin, bankSpec("Bank", "bank.example"), true)
		if err != nil {
			t.Fatal(err)
		}
		const n = 12
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				spec := bankSpec("Bank", "bank.example", fmt.Sprintf("sub%d.bank.example", i))
				_, err := s.UpdateConnector(ctx, store.Actor{Kind: "token", Name: fmt.Sprintf("worker-%d", i)}, c.ID, spec, nil)
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent update: %v", err)
			}
		}
		revs, err := s.ListRevisions(ctx, connector.Inbound, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(revs) != n+1 {
			t.Fatalf("%d revisions, want %d", len(revs), n+1)
		}
		seen := map[string]bool{}
		for i, r := range revs {
			if r.Revision != n+1-i {
				t.Fatalf("revision numbers have a gap: %v at %d", r.Revision, i)
			}
			d := r.Spec.(*connector.InboundSpec).SenderDomains
			if r.Revision > 1 {
				seen[d[1]] = true
			}
		}
		if len(seen) != n {
			t.Fatalf("only %d distinct updates survived: %v", len(seen), seen)
		}
		if got := auditActions(t, s, c.ID); len(got) != n+1 {
			t.Fatalf("%d audit rows, want %d", len(got), n+1)
		}
	})
}

func TestAcceptedDomainsUsersTokens(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		d, err := s.CreateAcceptedDomain(ctx, admin, "Contoso.COM.", "")
		if err != nil {
			t.Fatal(err)
		}
		if d.Domain != "contoso.com" || d.DomainType != connector.Authoritative {
			t.Fatalf("domain %+v", d)
		}
		var conflict *store.ConflictError
		if _, err := s.CreateAcceptedDomain(ctx, admin, "contoso.com", connector.InternalRelay); !errors.As(err, &conflict) {
			t.Fatalf("duplicate accepted domain: %v", err)
		}
		var fe connector.FieldErrors
		if _, err := s.CreateAcceptedDomain(ctx, admin, "*.contoso.com", "sometimes"); !errors.As(err, &fe) || fe["domain"] == "" || fe["domain_type"] == "" {
			t.Fatalf("bad accepted domain: %v", err)
		}
		if err := s.DeleteAcceptedDomain(ctx, admin, d.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteAcceptedDomain(ctx, admin, d.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete twice: %v", err)
		}

		u, err := s.CreateUser(ctx, store.System("test"), "Admin@Contoso.com", "correct horse battery", store.RoleAdmin)
		if err != nil {
			t.Fatal(err)
		}
		if u.PasswordHash == "" || strings.Contains(u.PasswordHash, "horse") {
			t.Fatal("password not hashed")
		}
		if _, err := s.Authenticate(ctx, "admin@contoso.com", "correct horse battery"); err != nil {
			t.Fatalf("sign in: %v", err)
		}
		if _, err := s.Authenticate(ctx, "admin@contoso.com", "wrong password!"); !errors.Is(err, store.ErrBadCredentials) {
			t.Fatalf("wrong password: %v", err)
		}
		if _, err := s.CreateUser(ctx, store.System("test"), "x@contoso.com", "short", store.RoleAdmin); !errors.As(err, &fe) || fe["password"] == "" {
			t.Fatalf("short password: %v", err)
		}

		tok, rec, err := s.CreateToken(ctx, admin, "ci", store.RoleViewer)
		if err != nil {
			t.Fatal(err)
		}
		var stored []string
		s.DB().Raw("SELECT token_hash FROM api_tokens").Scan(&stored)
		if len(stored) != 1 || stored[0] == tok || strings.Contains(stored[0], tok[4:]) {
			t.Fatalf("token stored in clear: %v", stored)
		}
		got, err := s.AuthenticateToken(ctx, tok)
		if err != nil || got.ID != rec.ID || got.Role != store.RoleViewer {
			t.Fatalf("authenticate token: %+v %v", got, err)
		}
		if err := s.RevokeToken(ctx, admin, rec.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AuthenticateToken(ctx, tok); !errors.Is(err, store.ErrBadCredentials) {
			t.Fatalf("revoked token still works: %v", err)
		}
	})
}

// The SQLite database and its -wal and -shm files are readable by their
// owner only, also when an older flowgate created them readable by all.
func TestSQLiteFilesArePrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, store.SQLiteFile)
	if err := os.WriteFile(path, nil, 0o644); err != nil { // as an older flowgate left it
		t.Fatal(err)
	}
	st := testutil.OpenStoreWith(t, store.Options{DataDir: dir})
	if err := st.DB().Exec("CREATE TABLE perm_probe (x INTEGER)").Error; err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %o, want 600", filepath.Base(p), mode)
		}
	}
}
