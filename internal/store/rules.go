package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/rules"
)

// Mail flow rules (SPEC 7).
//
// A rule is one row of the rules table. Its body column is the rule as
// rules.Rule marshals it, without the priority and the timestamps: the
// source of truth for the conditions, exceptions, actions, dates, on_error
// and comment. The columns beside it (name, priority, enabled, mode,
// route_connector_id, created_at, updated_at) are what the store queries
// and enforces, and they win over the body when a rule is read. The
// priority lives only in its column, so that shifting the other rules
// never rewrites their bodies.
//
// Priorities are unique and dense: with n rules they are 0..n-1. A unique
// index guarantees the uniqueness; every change keeps them dense in its
// transaction (and checks that they are before it commits). Rule changes
// are serialized: on PostgreSQL by an advisory transaction lock, on SQLite
// by its write transactions, which are exclusive. Every change goes
// through configChange, so that every process reloads the rules, and
// writes its audit row in the same transaction.
//
// Rules are deleted for good; the audit row of the deletion keeps the rule.

type ruleRow struct {
	ID               int64 `gorm:"primaryKey"`
	Name             string
	NameKey          string
	Priority         int
	Enabled          bool
	Mode             string
	Body             string
	RouteConnectorID *int64
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

func (ruleRow) TableName() string { return "rules" }

// rule decodes the row: the body, then the columns over it.
func (row *ruleRow) rule() (*rules.Rule, error) {
	var r rules.Rule
	if err := json.Unmarshal([]byte(row.Body), &r); err != nil {
		return nil, fmt.Errorf("decode rule %d: %w", row.ID, err)
	}
	priority := row.Priority
	r.ID, r.Name, r.Priority = row.ID, row.Name, &priority
	r.Enabled, r.Mode = row.Enabled, rules.Mode(row.Mode)
	r.CreatedAt, r.UpdatedAt = row.CreatedAt.UTC(), row.UpdatedAt.UTC()
	return &r, nil
}

// ruleBody is the JSON kept in the body column: the rule without its
// priority and timestamps, which only the columns hold.
func ruleBody(r *rules.Rule) (string, error) {
	c := *r
	c.Priority = nil
	c.CreatedAt, c.UpdatedAt = time.Time{}, time.Time{}
	b, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode rule: %w", err)
	}
	return string(b), nil
}

// ruleColumns are the columns written from a normalized rule; the
// priority is written by the shifting code.
func ruleColumns(r *rules.Rule, body string, now time.Time) map[string]any {
	return map[string]any{
		"name":               r.Name,
		"name_key":           nameKey(r.Name),
		"enabled":            r.Enabled,
		"mode":               string(r.Mode),
		"body":               body,
		"route_connector_id": r.Actions.RouteToOutboundConnector,
		"updated_at":         now,
	}
}

// rulesLockKey is the advisory lock key of rule changes ("flowrule"); the
// connector locks use "flowgate" and "flowgate"+1.
const rulesLockKey = int64(0x666c6f7772756c65)

// lockRules serializes rule changes, and the connector changes that
// depend on the rules, so that the priority, name and connector checks see
// every committed change. SQLite write transactions are already exclusive
// (_txlock=immediate).
func (s *Store) lockRules(tx *gorm.DB) error {
	if s.dialect != Postgres {
		return nil
	}
	if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", rulesLockKey).Error; err != nil {
		return fmt.Errorf("lock rules: %w", err)
	}
	return nil
}

func loadRuleRow(tx *gorm.DB, id int64) (*ruleRow, error) {
	row := &ruleRow{}
	err := tx.Where("id = ?", id).Take(row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("load rule %d: %w", id, err)
	}
	return row, nil
}

func countRules(tx *gorm.DB) (int, error) {
	var n int64
	if err := tx.Model(&ruleRow{}).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count rules: %w", err)
	}
	return int(n), nil
}

// ruleNameTaken is the conflict of a rule name that another rule has.
func ruleNameTaken(name string) *ConflictError {
	return &ConflictError{Field: "name", Message: fmt.Sprintf("a rule named %q already exists", name)}
}

// isRuleNameViolation recognizes the unique index on name_key (and not
// the one on priority, which the lock and the shifting keep from failing).
func isRuleNameViolation(err error) bool {
	return isUniqueViolation(err) && strings.Contains(err.Error(), "name_key")
}

func checkRuleName(tx *gorm.DB, name string, exceptID int64) error {
	var other ruleRow
	err := tx.Where("name_key = ? AND id <> ?", nameKey(name), exceptID).Take(&other).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check rule name: %w", err)
	}
	return ruleNameTaken(other.Name)
}

// checkRoute adds a field error when the rule routes to something that is
// not an outbound connector: an id no connector has (or had: a deleted
// connector counts as missing), or an inbound connector's. A disabled
// outbound connector, or one without an active revision, is accepted: the
// rule's on_error says what delivery does then.
func checkRoute(tx *gorm.DB, r *rules.Rule, fe rules.FieldErrors) error {
	id := r.Actions.RouteToOutboundConnector
	if id == nil {
		return nil
	}
	const field = "actions.route_to_outbound_connector"
	var row connectorRow
	err := tx.Where("id = ?", *id).Take(&row).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		fe[field] = fmt.Sprintf("no outbound connector has id %d", *id)
	case err != nil:
		return fmt.Errorf("check rule connector: %w", err)
	case row.Direction != string(connector.Outbound):
		fe[field] = fmt.Sprintf("connector %d (%q) is an inbound connector; a rule routes to an outbound connector", *id, row.Name)
	}
	return nil
}

// createRange and moveRange are the field errors of a priority past the
// end of the list.
func createRange(n int) string {
	return fmt.Sprintf("at most %d (the number of rules); %d, or no priority, puts the rule last", n, n)
}

func moveRange(n int) string {
	return fmt.Sprintf("at most %d (the number of rules after the first, as 0 runs first); %d puts the rule last", n-1, n-1)
}

// shiftPriorities adds delta (+1 or -1) to the priorities lo..hi. It goes
// through negative values, each row's distinct from every other row's, so
// that the unique index on priority never sees two rows with one priority
// whatever order the database updates the rows in: first x becomes
// -(x+delta)-2 (at most -2; -1 is left for a rule being moved), then y
// (<= -2) becomes -y-2, which is x+delta.
func shiftPriorities(tx *gorm.DB, lo, hi, delta int) error {
	if lo > hi {
		return nil
	}
	if err := tx.Exec("UPDATE rules SET priority = -(priority + ?) - 2 WHERE priority >= ? AND priority <= ?", delta, lo, hi).Error; err != nil {
		return fmt.Errorf("shift rule priorities: %w", err)
	}
	if err := tx.Exec("UPDATE rules SET priority = -priority - 2 WHERE priority <= -2").Error; err != nil {
		return fmt.Errorf("shift rule priorities: %w", err)
	}
	return nil
}

// moveRule moves rule id from priority from to priority to, shifting the
// rules in between by one towards from.
func moveRule(tx *gorm.DB, id int64, from, to int) error {
	if from == to {
		return nil
	}
	if err := tx.Exec("UPDATE rules SET priority = -1 WHERE id = ?", id).Error; err != nil {
		return fmt.Errorf("move rule: %w", err)
	}
	var err error
	if to < from {
		err = shiftPriorities(tx, to, from-1, +1)
	} else {
		err = shiftPriorities(tx, from+1, to, -1)
	}
	if err != nil {
		return err
	}
	if err := tx.Exec("UPDATE rules SET priority = ? WHERE id = ?", to, id).Error; err != nil {
		return fmt.Errorf("move rule: %w", err)
	}
	return nil
}

// checkDense fails the transaction unless the priorities are 0..n-1 (with
// the unique index, that is: the minimum is 0 and the maximum n-1). It
// guards against a bug in the shifting: the rules are never left out of
// order.
func checkDense(tx *gorm.DB) error {
	var st struct {
		N  int64
		Lo *int64
		Hi *int64
	}
	if err := tx.Raw("SELECT COUNT(*) AS n, MIN(priority) AS lo, MAX(priority) AS hi FROM rules").Scan(&st).Error; err != nil {
		return fmt.Errorf("check rule priorities: %w", err)
	}
	if st.N == 0 {
		return nil
	}
	if st.Lo == nil || st.Hi == nil || *st.Lo != 0 || *st.Hi != st.N-1 {
		return fmt.Errorf("rule priorities would not be 0..%d (min %v, max %v); change refused", st.N-1, st.Lo, st.Hi)
	}
	return nil
}

// ListRules returns every rule, in priority order (0 first).
func (s *Store) ListRules(ctx context.Context) ([]rules.Rule, error) {
	return s.listRules(s.db.WithContext(ctx).Order("priority"))
}

// RulesRoutingTo returns the rules whose action routes to the connector,
// enabled or not and in either mode, in priority order: for the console's
// "unused" mark and for naming the rules that stop a connector's removal.
func (s *Store) RulesRoutingTo(ctx context.Context, connectorID int64) ([]rules.Rule, error) {
	return s.listRules(s.db.WithContext(ctx).Where("route_connector_id = ?", connectorID).Order("priority"))
}

func (s *Store) listRules(q *gorm.DB) ([]rules.Rule, error) {
	var rows []ruleRow
	if err := q.Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list rules: %w", err)
	}
	out := make([]rules.Rule, 0, len(rows))
	for i := range rows {
		r, err := rows[i].rule()
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	return out, nil
}

// GetRule returns a rule, or ErrNotFound.
func (s *Store) GetRule(ctx context.Context, id int64) (*rules.Rule, error) {
	row, err := loadRuleRow(s.db.WithContext(ctx), id)
	if err != nil {
		return nil, err
	}
	return row.rule()
}

// CreateRule normalizes r and stores it as a new rule, with an audit row
// ("create", {"rule": …}). r.ID, r.CreatedAt and r.UpdatedAt are ignored.
// A nil priority puts the rule last; priority N, from 0 to the number of
// rules, puts it at N and shifts the rules from N on down by one. It
// returns rules.FieldErrors for an invalid rule, a priority past the end
// (a 400, not clamped: SPEC 5 calls it out of range), or a route to
// something that is not an outbound connector, and *ConflictError (Field
// "name") for a name another rule has, ignoring case.
func (s *Store) CreateRule(ctx context.Context, actor Actor, r rules.Rule) (*rules.Rule, error) {
	r.ID = 0
	if errs := r.Normalize(); len(errs) > 0 {
		return nil, errs
	}
	var out *rules.Rule
	err := s.configChange(ctx, func(tx *gorm.DB) error {
		if err := s.lockRules(tx); err != nil {
			return err
		}
		n, err := countRules(tx)
		if err != nil {
			return err
		}
		fe := rules.FieldErrors{}
		pos := n
		if r.Priority != nil {
			if *r.Priority > n {
				fe["priority"] = createRange(n)
			} else {
				pos = *r.Priority
			}
		}
		if err := checkRoute(tx, &r, fe); err != nil {
			return err
		}
		if len(fe) > 0 {
			return fe
		}
		if err := checkRuleName(tx, r.Name, 0); err != nil {
			return err
		}
		if err := shiftPriorities(tx, pos, n-1, +1); err != nil {
			return err
		}
		now := tx.NowFunc()
		r.Priority, r.CreatedAt, r.UpdatedAt = &pos, now, now
		row := &ruleRow{
			Name: r.Name, NameKey: nameKey(r.Name), Priority: pos, Enabled: r.Enabled, Mode: string(r.Mode),
			Body: "{}", RouteConnectorID: r.Actions.RouteToOutboundConnector, CreatedAt: now, UpdatedAt: now,
		}
		if err := tx.Create(row).Error; err != nil {
			if isRuleNameViolation(err) {
				return ruleNameTaken(r.Name)
			}
			return fmt.Errorf("create rule: %w", err)
		}
		r.ID = row.ID
		body, err := ruleBody(&r)
		if err != nil {
			return err
		}
		if err := tx.Model(row).UpdateColumn("body", body).Error; err != nil { // UpdateColumn: updated_at stays created_at
			return fmt.Errorf("create rule: %w", err)
		}
		if err := checkDense(tx); err != nil {
			return err
		}
		if _, err := audit(tx, actor, "create", "rule", r.ID, r.Name, map[string]any{"rule": r}); err != nil {
			return err
		}
		out = &r
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateRule replaces rule id with r (normalized), with an audit row
// ("update", {"before": …, "after": …}). A nil priority keeps the rule's
// place; priority N, from 0 to the number of rules less one, moves it
// there and shifts the rules in between by one. r.ID must be 0 or id. The
// errors are CreateRule's, and ErrNotFound. The route is checked again
// even when it did not change: a rule that routes to a connector deleted
// since cannot be saved until the route is changed.
func (s *Store) UpdateRule(ctx context.Context, actor Actor, id int64, r rules.Rule) (*rules.Rule, error) {
	if r.ID != 0 && r.ID != id {
		return nil, rules.FieldErrors{"id": fmt.Sprintf("the id %d is not the id of the rule being changed (%d)", r.ID, id)}
	}
	r.ID = id
	if errs := r.Normalize(); len(errs) > 0 {
		return nil, errs
	}
	var out *rules.Rule
	err := s.configChange(ctx, func(tx *gorm.DB) error {
		if err := s.lockRules(tx); err != nil {
			return err
		}
		row, err := loadRuleRow(tx, id)
		if err != nil {
			return err
		}
		before, err := row.rule()
		if err != nil {
			return err
		}
		n, err := countRules(tx)
		if err != nil {
			return err
		}
		fe := rules.FieldErrors{}
		pos := row.Priority
		if r.Priority != nil {
			if *r.Priority > n-1 {
				fe["priority"] = moveRange(n)
			} else {
				pos = *r.Priority
			}
		}
		if err := checkRoute(tx, &r, fe); err != nil {
			return err
		}
		if len(fe) > 0 {
			return fe
		}
		if err := checkRuleName(tx, r.Name, id); err != nil {
			return err
		}
		if err := moveRule(tx, id, row.Priority, pos); err != nil {
			return err
		}
		now := tx.NowFunc()
		r.Priority, r.CreatedAt, r.UpdatedAt = &pos, row.CreatedAt.UTC(), now
		body, err := ruleBody(&r)
		if err != nil {
			return err
		}
		if err := tx.Model(&ruleRow{}).Where("id = ?", id).Updates(ruleColumns(&r, body, now)).Error; err != nil {
			if isRuleNameViolation(err) {
				return ruleNameTaken(r.Name)
			}
			return fmt.Errorf("update rule: %w", err)
		}
		if err := checkDense(tx); err != nil {
			return err
		}
		if _, err := audit(tx, actor, "update", "rule", id, r.Name, map[string]any{"before": before, "after": r}); err != nil {
			return err
		}
		out = &r
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// MoveRule gives rule id the priority, from 0 to the number of rules less
// one, shifting the rules in between by one (the console's up and down),
// with an audit row ("move", {"before": …, "after": …}). Moving a rule to
// the priority it has changes nothing and writes no audit row. A priority
// out of range is a rules.FieldErrors on "priority".
func (s *Store) MoveRule(ctx context.Context, actor Actor, id int64, priority int) (*rules.Rule, error) {
	if priority < 0 {
		return nil, rules.FieldErrors{"priority": "the priority cannot be negative; 0 runs first"}
	}
	var out *rules.Rule
	err := s.configChange(ctx, func(tx *gorm.DB) error {
		if err := s.lockRules(tx); err != nil {
			return err
		}
		row, err := loadRuleRow(tx, id)
		if err != nil {
			return err
		}
		before, err := row.rule()
		if err != nil {
			return err
		}
		if priority == row.Priority {
			out = before
			return nil
		}
		n, err := countRules(tx)
		if err != nil {
			return err
		}
		if priority > n-1 {
			return rules.FieldErrors{"priority": moveRange(n)}
		}
		if err := moveRule(tx, id, row.Priority, priority); err != nil {
			return err
		}
		now := tx.NowFunc()
		if err := tx.Model(&ruleRow{}).Where("id = ?", id).Update("updated_at", now).Error; err != nil {
			return fmt.Errorf("move rule: %w", err)
		}
		if err := checkDense(tx); err != nil {
			return err
		}
		after := *before
		after.Priority, after.UpdatedAt = &priority, now
		if _, err := audit(tx, actor, "move", "rule", id, row.Name, map[string]any{"before": before, "after": after}); err != nil {
			return err
		}
		out = &after
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SetRuleEnabled turns a rule on or off, with an audit row ("enable" or
// "disable", {"before": …, "after": …}); setting what the rule already has
// changes nothing and writes no audit row. Turning a rule on checks its
// route again: a rule that routes to a connector deleted since is refused
// with a rules.FieldErrors on "actions.route_to_outbound_connector".
func (s *Store) SetRuleEnabled(ctx context.Context, actor Actor, id int64, enabled bool) (*rules.Rule, error) {
	var out *rules.Rule
	err := s.configChange(ctx, func(tx *gorm.DB) error {
		if err := s.lockRules(tx); err != nil {
			return err
		}
		row, err := loadRuleRow(tx, id)
		if err != nil {
			return err
		}
		before, err := row.rule()
		if err != nil {
			return err
		}
		if row.Enabled == enabled {
			out = before
			return nil
		}
		after := *before
		after.Enabled, after.UpdatedAt = enabled, tx.NowFunc()
		if enabled {
			fe := rules.FieldErrors{}
			if err := checkRoute(tx, &after, fe); err != nil {
				return err
			}
			if len(fe) > 0 {
				return fe
			}
		}
		body, err := ruleBody(&after)
		if err != nil {
			return err
		}
		if err := tx.Model(&ruleRow{}).Where("id = ?", id).Updates(map[string]any{"enabled": enabled, "body": body, "updated_at": after.UpdatedAt}).Error; err != nil {
			return fmt.Errorf("set rule enabled: %w", err)
		}
		action := "disable"
		if enabled {
			action = "enable"
		}
		if _, err := audit(tx, actor, action, "rule", id, row.Name, map[string]any{"before": before, "after": after}); err != nil {
			return err
		}
		out = &after
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteRule deletes a rule and closes the gap it leaves in the
// priorities, with an audit row ("delete", {"rule": …}) that keeps the
// rule. It returns ErrNotFound for a rule that does not exist.
func (s *Store) DeleteRule(ctx context.Context, actor Actor, id int64) error {
	return s.configChange(ctx, func(tx *gorm.DB) error {
		if err := s.lockRules(tx); err != nil {
			return err
		}
		row, err := loadRuleRow(tx, id)
		if err != nil {
			return err
		}
		old, err := row.rule()
		if err != nil {
			return err
		}
		if err := tx.Delete(&ruleRow{}, id).Error; err != nil {
			return fmt.Errorf("delete rule: %w", err)
		}
		n, err := countRules(tx)
		if err != nil {
			return err
		}
		if err := shiftPriorities(tx, row.Priority+1, n, -1); err != nil {
			return err
		}
		if err := checkDense(tx); err != nil {
			return err
		}
		_, err = audit(tx, actor, "delete", "rule", id, row.Name, map[string]any{"rule": old})
		return err
	})
}

// checkConnectorUnrouted refuses to delete or disable an outbound
// connector that an enabled enforce rule routes to (SPEC 7), naming every
// such rule. Audit-mode rules and disabled rules do not hold a connector:
// an audit rule only records what it would have done, and a disabled rule
// does nothing; both keep pointing at the connector and are reported by
// RulesRoutingTo, and delivery treats their route like any unusable one
// (on_error) should they be turned on or enforced (turning a rule on, or
// saving it, checks again that its connector exists). It takes the rules
// lock, so that no rule change can slip in between the check and the
// connector change.
func (s *Store) checkConnectorUnrouted(tx *gorm.DB, dir connector.Direction, id int64) error {
	if dir != connector.Outbound {
		return nil
	}
	if err := s.lockRules(tx); err != nil {
		return err
	}
	var names []string
	err := tx.Model(&ruleRow{}).
		Where("route_connector_id = ? AND enabled = ? AND mode = ?", id, true, string(rules.Enforce)).
		Order("priority").Pluck("name", &names).Error
	if err != nil {
		return fmt.Errorf("check rules routing to connector %d: %w", id, err)
	}
	if len(names) == 0 {
		return nil
	}
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = `"` + n + `"`
	}
	return &ConflictError{Field: "connector", Message: fmt.Sprintf(
		"rules route to this connector: %s; change or disable those rules first", strings.Join(quoted, ", "))}
}
