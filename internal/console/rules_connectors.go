package console

import (
	"fmt"
	"net/http"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/web"
)

// What the connector pages show of the mail flow rules (SPEC 7): a
// rule-scoped outbound connector that no rule routes to is "unused".

// ruleScoped reports whether conn is an outbound connector whose newest
// revision carries only the mail rules route to it.
func ruleScoped(conn *store.Connector) bool {
	s, ok := conn.Spec.(*connector.OutboundSpec)
	return ok && s.IsTransportRuleScoped
}

// unusedRuleScoped returns the ids of the rule-scoped connectors among
// conns that no rule routes to, enabled or not, with one read of the
// rules.
func (c *Console) unusedRuleScoped(r *http.Request, conns []*store.Connector) (map[int64]bool, error) {
	unused := map[int64]bool{}
	for _, conn := range conns {
		if ruleScoped(conn) {
			unused[conn.ID] = true
		}
	}
	if len(unused) == 0 {
		return unused, nil
	}
	list, err := c.store.ListRules(r.Context())
	if err != nil {
		return nil, err
	}
	for _, rule := range list {
		if id := rule.Actions.RouteToOutboundConnector; id != nil {
			delete(unused, *id)
		}
	}
	return unused, nil
}

// rulesRoutingTo names the rules that route to connector id, in priority
// order, with how each stands.
func (c *Console) rulesRoutingTo(r *http.Request, id int64) ([]web.RuleRef, error) {
	list, err := c.store.RulesRoutingTo(r.Context(), id)
	if err != nil {
		return nil, err
	}
	out := make([]web.RuleRef, 0, len(list))
	for _, rule := range list {
		state := "off"
		if rule.Enabled {
			state = "on"
		}
		priority := 0
		if rule.Priority != nil {
			priority = *rule.Priority
		}
		out = append(out, web.RuleRef{Name: rule.Name, State: fmt.Sprintf("priority %d, %s, %s", priority, rule.Mode, state)})
	}
	return out, nil
}
