package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/rules"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil"
)

// outboundConnector creates a rule-scoped outbound connector.
func outboundConnector(t *testing.T, s *store.Store, name, host string) int64 {
	t.Helper()
	spec := &connector.OutboundSpec{Common: connector.Common{Name: name, ConnectorType: connector.Partner},
		IsTransportRuleScoped: true, SmartHosts: []string{host}}
	c, err := s.CreateConnector(context.Background(), admin, spec, true)
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}

// routeRule is an enabled enforce rule routing fabrikam.com to connector
// id; id 0 makes it a reject rule.
func routeRule(name string, id int64) rules.Rule {
	r := rules.Rule{
		Name:       name,
		Enabled:    true,
		Conditions: rules.Predicates{RecipientDomainIs: []string{"Fabrikam.COM"}},
	}
	if id == 0 {
		r.Actions.Reject = &rules.Reject{}
	} else {
		r.Actions.RouteToOutboundConnector = &id
	}
	return r
}

func at(p int) *int { return &p }

// ruleOrder lists the rule names in priority order, checking that the
// priorities are exactly 0..n-1.
func ruleOrder(t *testing.T, s *store.Store) []string {
	t.Helper()
	list, err := s.ListRules(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for i, r := range list {
		if r.Priority == nil || *r.Priority != i {
			t.Fatalf("rule %q at position %d has priority %v; want dense priorities 0..%d", r.Name, i, r.Priority, len(list)-1)
		}
		names = append(names, r.Name)
	}
	return names
}

func wantOrder(t *testing.T, s *store.Store, want ...string) {
	t.Helper()
	if got := ruleOrder(t, s); !slices.Equal(got, want) {
		t.Fatalf("rule order %q, want %q", got, want)
	}
}

func fieldError(t *testing.T, err error, field, contains string) {
	t.Helper()
	var fe rules.FieldErrors
	if !errors.As(err, &fe) || !strings.Contains(fe[field], contains) {
		t.Fatalf("got %v (%T), want a field error on %q containing %q", err, err, field, contains)
	}
}

func TestRuleCreateListGet(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		gw := outboundConnector(t, s, "Encryption gateway", "gw.contoso.com")
		r := routeRule("  Legal to the encryption gateway ", gw)
		activation := time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))
		r.ActivationDate = &activation
		r.Comment = "legal wants it"
		r.Conditions.HeaderContains = []rules.HeaderWords{{Header: "x-classification", Words: []string{"confidential"}}}
		r.Exceptions.SenderAddressIs = []string{"CEO@contoso.com"}
		r.Actions.StopProcessing = true
		r.ID = 99 // ignored
		created, err := s.CreateRule(ctx, admin, r)
		if err != nil {
			t.Fatal(err)
		}
		if created.ID == 0 || created.ID == 99 || created.Name != "Legal to the encryption gateway" || *created.Priority != 0 ||
			created.Mode != rules.Enforce || created.OnError != rules.Defer || created.CreatedAt.IsZero() ||
			!created.ActivationDate.Equal(activation) || created.ActivationDate.Location() != time.UTC ||
			created.Conditions.RecipientDomainIs[0] != "fabrikam.com" || created.Exceptions.SenderAddressIs[0] != "ceo@contoso.com" {
			t.Fatalf("created rule %+v", created)
		}
		second, err := s.CreateRule(ctx, admin, routeRule("Reject fabrikam", 0))
		if err != nil {
			t.Fatal(err)
		}
		if *second.Priority != 1 || second.Actions.Reject == nil || second.Actions.Reject.Code != 550 {
			t.Fatalf("second rule %+v", second)
		}

		got, err := s.GetRule(ctx, created.ID)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := json.Marshal(created)
		b, _ := json.Marshal(got)
		if string(a) != string(b) {
			t.Fatalf("read back\n%s\nwant\n%s", b, a)
		}
		list, err := s.ListRules(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0].ID != created.ID || list[1].ID != second.ID {
			t.Fatalf("list %+v", list)
		}
		if b, _ := json.Marshal(list[0]); string(b) != string(a) {
			t.Fatalf("listed\n%s\nwant\n%s", b, a)
		}
		if _, err := s.GetRule(ctx, created.ID+second.ID+100); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("missing rule: %v", err)
		}
		if _, err := s.UpdateRule(ctx, admin, 12345, routeRule("x", 0)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("update missing rule: %v", err)
		}
		if err := s.DeleteRule(ctx, admin, 12345); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete missing rule: %v", err)
		}

		// Invalid rules are the model's field errors.
		_, err = s.CreateRule(ctx, admin, rules.Rule{Name: "no condition", Actions: rules.Actions{Reject: &rules.Reject{}}})
		fieldError(t, err, "conditions", "at least one condition")
		bad := routeRule("x", 0)
		bad.ID = created.ID
		_, err = s.UpdateRule(ctx, admin, second.ID, bad)
		fieldError(t, err, "id", "not the id")

		// An update replaces the rule; its priority and created_at stay.
		upd := routeRule("Legal to the encryption gateway", gw)
		upd.Mode = rules.Audit
		upd.ID = created.ID
		after, err := s.UpdateRule(ctx, admin, created.ID, upd)
		if err != nil {
			t.Fatal(err)
		}
		if *after.Priority != 0 || after.Mode != rules.Audit || after.Comment != "" || after.ActivationDate != nil ||
			!after.CreatedAt.Equal(created.CreatedAt) || after.UpdatedAt.Before(created.UpdatedAt) {
			t.Fatalf("updated rule %+v", after)
		}
		got, _ = s.GetRule(ctx, created.ID)
		if a, b := mustJSON(t, after), mustJSON(t, got); a != b {
			t.Fatalf("read back after update\n%s\nwant\n%s", b, a)
		}
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRuleNamesAndConnectors(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		gw := outboundConnector(t, s, "Encryption gateway", "gw.contoso.com")
		a, err := s.CreateRule(ctx, admin, routeRule("Legal", gw))
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.CreateRule(ctx, admin, routeRule("Finance", 0))
		if err != nil {
			t.Fatal(err)
		}
		var conflict *store.ConflictError
		_, err = s.CreateRule(ctx, admin, routeRule("LEGAL", 0))
		if !errors.As(err, &conflict) || conflict.Field != "name" || !strings.Contains(conflict.Message, `"Legal"`) {
			t.Fatalf("duplicate name, other case: %v", err)
		}
		_, err = s.UpdateRule(ctx, admin, b.ID, routeRule("legal", 0))
		if !errors.As(err, &conflict) || conflict.Field != "name" {
			t.Fatalf("rename onto another rule's name: %v", err)
		}
		if _, err := s.UpdateRule(ctx, admin, a.ID, routeRule("LEGAL", gw)); err != nil {
			t.Fatalf("a rule may change the case of its own name: %v", err)
		}
		// The database refuses a duplicate name (and priority) too, and
		// its error names the index, which the store reads.
		now := time.Now().UTC()
		for _, dup := range []struct {
			key      string
			priority int
			index    string
		}{{"legal", 99, "name_key"}, {"other", 0, "priority"}} {
			err = s.DB().Exec(`INSERT INTO rules (name, name_key, priority, enabled, mode, body, created_at, updated_at)
				VALUES (?, ?, ?, ?, 'enforce', '{}', ?, ?)`, dup.key, dup.key, dup.priority, true, now, now).Error
			if err == nil || !strings.Contains(err.Error(), dup.index) {
				t.Fatalf("duplicate %s inserted: %v", dup.index, err)
			}
		}

		// The route must be an existing outbound connector.
		_, err = s.CreateRule(ctx, admin, routeRule("Nowhere", 12345))
		fieldError(t, err, "actions.route_to_outbound_connector", "no outbound connector has id 12345")
		in, err := s.CreateConnector(ctx, admin, bankSpec("Contoso Bank", "contosobank.com"), true)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.CreateRule(ctx, admin, routeRule("To inbound", in.ID))
		fieldError(t, err, "actions.route_to_outbound_connector", "inbound connector")
		_, err = s.UpdateRule(ctx, admin, b.ID, routeRule("Finance", in.ID))
		fieldError(t, err, "actions.route_to_outbound_connector", "inbound connector")
		old := outboundConnector(t, s, "Old gateway", "old.contoso.com")
		if err := s.DeleteConnector(ctx, admin, connector.Outbound, old); err != nil {
			t.Fatal(err)
		}
		_, err = s.CreateRule(ctx, admin, routeRule("To deleted", old))
		fieldError(t, err, "actions.route_to_outbound_connector", fmt.Sprintf("no outbound connector has id %d", old))
		// A disabled connector is accepted: on_error decides at delivery.
		off := outboundConnector(t, s, "Off gateway", "off.contoso.com")
		if _, err := s.SetConnectorEnabled(ctx, admin, connector.Outbound, off, false); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateRule(ctx, admin, routeRule("To disabled", off)); err != nil {
			t.Fatalf("rule to a disabled connector: %v", err)
		}
		// Nothing refused was written.
		wantOrder(t, s, "LEGAL", "Finance", "To disabled")
	})
}

func TestRulePriorities(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		ids := map[string]int64{}
		create := func(name string, priority *int) {
			t.Helper()
			r := routeRule(name, 0)
			r.Priority = priority
			got, err := s.CreateRule(ctx, admin, r)
			if err != nil {
				t.Fatalf("create %s: %v", name, err)
			}
			ids[name] = got.ID
		}
		move := func(name string, p int) {
			t.Helper()
			got, err := s.MoveRule(ctx, admin, ids[name], p)
			if err != nil {
				t.Fatalf("move %s to %d: %v", name, p, err)
			}
			if *got.Priority != p {
				t.Fatalf("move %s to %d answered priority %d", name, p, *got.Priority)
			}
		}
		for _, n := range []string{"A", "B", "C"} {
			create(n, nil)
		}
		wantOrder(t, s, "A", "B", "C")
		create("D", at(0))
		wantOrder(t, s, "D", "A", "B", "C")
		create("E", at(2))
		wantOrder(t, s, "D", "A", "E", "B", "C")
		create("F", at(5)) // = the number of rules: last
		wantOrder(t, s, "D", "A", "E", "B", "C", "F")

		move("D", 5) // first to last
		wantOrder(t, s, "A", "E", "B", "C", "F", "D")
		move("D", 0) // last to first
		wantOrder(t, s, "D", "A", "E", "B", "C", "F")
		move("F", 0) // last to first
		wantOrder(t, s, "F", "D", "A", "E", "B", "C")
		move("F", 5) // first to last
		wantOrder(t, s, "D", "A", "E", "B", "C", "F")
		move("E", 1) // up
		wantOrder(t, s, "D", "E", "A", "B", "C", "F")
		move("E", 4) // down
		wantOrder(t, s, "D", "A", "B", "C", "E", "F")
		move("B", 2) // where it is
		wantOrder(t, s, "D", "A", "B", "C", "E", "F")

		// An update with a priority moves the rule; without, it stays.
		r := routeRule("C", 0)
		r.Priority = at(0)
		if _, err := s.UpdateRule(ctx, admin, ids["C"], r); err != nil {
			t.Fatal(err)
		}
		wantOrder(t, s, "C", "D", "A", "B", "E", "F")
		r.Priority = nil
		r.Comment = "kept in place"
		if got, err := s.UpdateRule(ctx, admin, ids["C"], r); err != nil || *got.Priority != 0 {
			t.Fatalf("update without priority: %v %v", got, err)
		}
		r.Priority = at(5)
		if _, err := s.UpdateRule(ctx, admin, ids["C"], r); err != nil {
			t.Fatal(err)
		}
		wantOrder(t, s, "D", "A", "B", "E", "F", "C")

		// Deleting closes the gap: in the middle, first, last.
		for _, step := range []struct {
			name string
			want []string
		}{
			{"B", []string{"D", "A", "E", "F", "C"}},
			{"D", []string{"A", "E", "F", "C"}},
			{"C", []string{"A", "E", "F"}},
		} {
			if err := s.DeleteRule(ctx, admin, ids[step.name]); err != nil {
				t.Fatal(err)
			}
			wantOrder(t, s, step.want...)
		}
		create("G", at(1))
		wantOrder(t, s, "A", "G", "E", "F")

		// Out of range is a field error, and changes nothing.
		_, err := s.CreateRule(ctx, admin, func() rules.Rule { r := routeRule("H", 0); r.Priority = at(5); return r }())
		fieldError(t, err, "priority", "at most 4")
		_, err = s.MoveRule(ctx, admin, ids["A"], 4)
		fieldError(t, err, "priority", "at most 3")
		_, err = s.MoveRule(ctx, admin, ids["A"], -1)
		fieldError(t, err, "priority", "negative")
		r = routeRule("A", 0)
		r.Priority = at(4)
		_, err = s.UpdateRule(ctx, admin, ids["A"], r)
		fieldError(t, err, "priority", "at most 3")
		r.Priority = at(-1)
		_, err = s.UpdateRule(ctx, admin, ids["A"], r)
		fieldError(t, err, "priority", "negative")
		if _, err := s.MoveRule(ctx, admin, 12345, 0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("move a missing rule: %v", err)
		}
		wantOrder(t, s, "A", "G", "E", "F")
	})
}

// TestRuleConcurrentChanges: several goroutines (several connections)
// creating, moving and deleting rules at once leave the priorities dense
// and unique.
func TestRuleConcurrentChanges(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		const workers, each = 8, 6
		var wg sync.WaitGroup
		errs := make(chan error, workers*each*2)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					r := routeRule(fmt.Sprintf("w%d-%d", w, i), 0)
					switch i % 3 {
					case 1:
						r.Priority = at(0)
					case 2:
						r.Priority = at(1)
					}
					got, err := s.CreateRule(ctx, admin, r)
					if err != nil {
						errs <- fmt.Errorf("create %s: %w", r.Name, err)
						continue
					}
					if i%2 == 1 {
						if _, err := s.MoveRule(ctx, admin, got.ID, 0); err != nil {
							errs <- fmt.Errorf("move %s: %w", r.Name, err)
						}
					}
					if i == each-1 {
						if err := s.DeleteRule(ctx, admin, got.ID); err != nil {
							errs <- fmt.Errorf("delete %s: %w", r.Name, err)
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if got := ruleOrder(t, s); len(got) != workers*(each-1) {
			t.Fatalf("%d rules, want %d", len(got), workers*(each-1))
		}
	})
}

func TestRuleAuditAndChanges(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		changes, unsubscribe := s.SubscribeChanges()
		defer unsubscribe()
		drain := func() {
			for {
				select {
				case <-changes:
				default:
					return
				}
			}
		}
		changed := func(what string) {
			t.Helper()
			select {
			case <-changes:
			case <-time.After(time.Second):
				t.Fatalf("%s: no configuration change announced", what)
			}
		}
		epoch := func() int64 {
			t.Helper()
			n, err := s.ConfigEpoch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		drain()
		e0 := epoch()
		r, err := s.CreateRule(ctx, admin, routeRule("Legal", 0))
		if err != nil {
			t.Fatal(err)
		}
		changed("create")
		if epoch() <= e0 {
			t.Fatal("create did not bump the configuration epoch")
		}
		if _, err := s.CreateRule(ctx, admin, routeRule("Other", 0)); err != nil {
			t.Fatal(err)
		}
		changed("create")
		upd := routeRule("Legal", 0)
		upd.Comment = "now with a comment"
		if _, err := s.UpdateRule(ctx, admin, r.ID, upd); err != nil {
			t.Fatal(err)
		}
		changed("update")
		if _, err := s.MoveRule(ctx, admin, r.ID, 1); err != nil {
			t.Fatal(err)
		}
		changed("move")
		if _, err := s.SetRuleEnabled(ctx, admin, r.ID, false); err != nil {
			t.Fatal(err)
		}
		changed("disable")
		if got, _ := s.GetRule(ctx, r.ID); got.Enabled {
			t.Fatal("rule still enabled")
		}
		if _, err := s.SetRuleEnabled(ctx, admin, r.ID, true); err != nil {
			t.Fatal(err)
		}
		changed("enable")
		// Changes that change nothing write no audit row.
		if _, err := s.SetRuleEnabled(ctx, admin, r.ID, true); err != nil {
			t.Fatal(err)
		}
		if _, err := s.MoveRule(ctx, admin, r.ID, 1); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRule(ctx, admin, r.ID); err != nil {
			t.Fatal(err)
		}
		changed("delete")
		// A refused change is not announced.
		drain()
		e1 := epoch()
		if _, err := s.CreateRule(ctx, admin, routeRule("other", 0)); err == nil {
			t.Fatal("duplicate accepted")
		}
		select {
		case <-changes:
			t.Fatal("a refused change was announced")
		default:
		}
		if epoch() != e1 {
			t.Fatal("a refused change bumped the epoch")
		}

		entries, err := s.ListAudit(ctx, store.AuditFilter{ObjectType: "rule"})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		byAction := map[string]store.AuditEntry{}
		for i := len(entries) - 1; i >= 0; i-- {
			e := entries[i]
			if e.ObjectID == nil || *e.ObjectID != r.ID {
				continue
			}
			got = append(got, e.Action)
			byAction[e.Action] = e
			if e.Actor != admin.String() || e.ObjectName != "Legal" {
				t.Fatalf("audit entry %+v", e)
			}
		}
		if want := []string{"create", "update", "move", "disable", "enable", "delete"}; !slices.Equal(got, want) {
			t.Fatalf("audit actions %q, want %q", got, want)
		}
		var create struct{ Rule rules.Rule }
		if err := json.Unmarshal([]byte(byAction["create"].Detail), &create); err != nil || create.Rule.ID != r.ID || create.Rule.Name != "Legal" {
			t.Fatalf("create detail %s (%v)", byAction["create"].Detail, err)
		}
		var diff struct{ Before, After rules.Rule }
		if err := json.Unmarshal([]byte(byAction["update"].Detail), &diff); err != nil || diff.Before.Comment != "" || diff.After.Comment != "now with a comment" {
			t.Fatalf("update detail %s (%v)", byAction["update"].Detail, err)
		}
		diff = struct{ Before, After rules.Rule }{}
		if err := json.Unmarshal([]byte(byAction["move"].Detail), &diff); err != nil || *diff.Before.Priority != 0 || *diff.After.Priority != 1 {
			t.Fatalf("move detail %s (%v)", byAction["move"].Detail, err)
		}
		diff = struct{ Before, After rules.Rule }{}
		if err := json.Unmarshal([]byte(byAction["disable"].Detail), &diff); err != nil || !diff.Before.Enabled || diff.After.Enabled {
			t.Fatalf("disable detail %s (%v)", byAction["disable"].Detail, err)
		}
		var del struct{ Rule rules.Rule }
		if err := json.Unmarshal([]byte(byAction["delete"].Detail), &del); err != nil || del.Rule.Comment != "now with a comment" {
			t.Fatalf("delete detail %s (%v)", byAction["delete"].Detail, err)
		}
	})
}

// TestRuleChangeReachesOtherProcess: a second Store on the same database
// (another process) hears of a rule change through ListenChanges.
func TestRuleChangeReachesOtherProcess(t *testing.T) {
	for _, e := range testutil.Engines {
		t.Run(e.Name, func(t *testing.T) {
			opts := e.Options(t)
			a, b := testutil.OpenStoreWith(t, opts), testutil.OpenStoreWith(t, opts)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			heard := make(chan struct{}, 16)
			go b.ListenChanges(ctx, func() {
				select {
				case heard <- struct{}{}:
				default:
				}
			})
			// Wait until the listener hears changes at all (LISTEN is
			// connected), then let late signals arrive and drop them.
			for i := 0; ; i++ {
				if _, err := a.CreateRule(context.Background(), admin, routeRule(fmt.Sprintf("warm-up %d", i), 0)); err != nil {
					t.Fatal(err)
				}
				select {
				case <-heard:
				case <-time.After(200 * time.Millisecond):
					if i < 50 {
						continue
					}
					t.Fatal("the other store never heard of a rule change")
				}
				break
			}
			time.Sleep(2 * store.EpochPoll)
			for len(heard) > 0 {
				<-heard
			}
			if _, err := a.CreateRule(context.Background(), admin, routeRule("Legal", 0)); err != nil {
				t.Fatal(err)
			}
			select {
			case <-heard:
			case <-time.After(time.Second):
				t.Fatal("the other store did not hear of the rule change within 1 s")
			}
		})
	}
}

func TestConnectorInUseByRules(t *testing.T) {
	testutil.ForEachEngine(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		gw := outboundConnector(t, s, "Encryption gateway", "gw.contoso.com")
		create := func(r rules.Rule) *rules.Rule {
			t.Helper()
			got, err := s.CreateRule(ctx, admin, r)
			if err != nil {
				t.Fatal(err)
			}
			return got
		}
		legal := create(routeRule("Legal to the encryption gateway", gw))
		audit := routeRule("Audit the gateway", gw)
		audit.Mode = rules.Audit
		create(audit)
		off := routeRule("Disabled route", gw)
		off.Enabled = false
		create(off)
		create(routeRule("Reject spam", 0))
		finance := create(routeRule("Finance to the gateway", gw))

		using, err := s.RulesRoutingTo(ctx, gw)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, r := range using {
			names = append(names, r.Name)
		}
		if want := []string{"Legal to the encryption gateway", "Audit the gateway", "Disabled route", "Finance to the gateway"}; !slices.Equal(names, want) {
			t.Fatalf("rules routing to the gateway %q, want %q", names, want)
		}

		wantMsg := `rules route to this connector: "Legal to the encryption gateway", "Finance to the gateway"; change or disable those rules first`
		refused := func(what string, err error) {
			t.Helper()
			var conflict *store.ConflictError
			if !errors.As(err, &conflict) || conflict.Field != "connector" || conflict.Message != wantMsg {
				t.Fatalf("%s: %v, want a conflict: %s", what, err, wantMsg)
			}
		}
		refused("delete", s.DeleteConnector(ctx, admin, connector.Outbound, gw))
		_, err = s.SetConnectorEnabled(ctx, admin, connector.Outbound, gw, false)
		refused("disable", err)
		if c, err := s.GetConnector(ctx, connector.Outbound, gw); err != nil || !c.Enabled {
			t.Fatalf("connector after refusals: %+v %v", c, err)
		}
		if _, err := s.SetConnectorEnabled(ctx, admin, connector.Outbound, gw, true); err != nil {
			t.Fatalf("enabling is never refused: %v", err)
		}

		// Audit-mode and disabled rules do not hold the connector.
		if _, err := s.SetRuleEnabled(ctx, admin, finance.ID, false); err != nil {
			t.Fatal(err)
		}
		wantMsg = `rules route to this connector: "Legal to the encryption gateway"; change or disable those rules first`
		refused("delete", s.DeleteConnector(ctx, admin, connector.Outbound, gw))
		toAudit := routeRule("Legal to the encryption gateway", gw)
		toAudit.Mode = rules.Audit
		if _, err := s.UpdateRule(ctx, admin, legal.ID, toAudit); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SetConnectorEnabled(ctx, admin, connector.Outbound, gw, false); err != nil {
			t.Fatalf("disable with only audit and disabled rules: %v", err)
		}
		if err := s.DeleteConnector(ctx, admin, connector.Outbound, gw); err != nil {
			t.Fatalf("delete with only audit and disabled rules: %v", err)
		}
		// The rules still point at the deleted connector; turning one on
		// or saving one asks for another route.
		if using, _ := s.RulesRoutingTo(ctx, gw); len(using) != 4 {
			t.Fatalf("%d rules route to the deleted connector, want 4", len(using))
		}
		_, err = s.SetRuleEnabled(ctx, admin, finance.ID, true)
		fieldError(t, err, "actions.route_to_outbound_connector", "no outbound connector")
		_, err = s.UpdateRule(ctx, admin, legal.ID, toAudit)
		fieldError(t, err, "actions.route_to_outbound_connector", "no outbound connector")
		if _, err := s.MoveRule(ctx, admin, legal.ID, 4); err != nil {
			t.Fatalf("moving a rule does not check its route: %v", err)
		}

		// Inbound connectors are not affected by rules.
		in, err := s.CreateConnector(ctx, admin, bankSpec("Contoso Bank", "contosobank.com"), true)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteConnector(ctx, admin, connector.Inbound, in.ID); err != nil {
			t.Fatal(err)
		}
	})
}
