package console

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/web"
)

// connectorRow is how the console shows a connector: what carries mail
// (the badge: active, or disabled, or the newest revision's state when
// none does) and, separately, the state of the newest revision when it is
// not simply the one carrying mail — so a newer revision that failed
// validation never makes a connector that carries mail look failed.
func connectorRow(c *store.Connector) web.ConnectorRow {
	row := web.ConnectorRow{
		ID: c.ID, Direction: string(c.Direction), Name: c.Name, FromTo: fromTo(c.Spec),
		Status: string(c.Status()), Enabled: c.Enabled, Revision: c.Revision,
		LastValidation: "never", Draft: c.ActiveRevision == nil,
	}
	newest := newestState(c)
	if c.ActiveRevision != nil {
		row.ActiveRevision = *c.ActiveRevision
		if c.Enabled {
			row.Status = string(store.StatusActive)
		}
		if *c.ActiveRevision != c.Revision && c.Enabled {
			row.CarriesMail = fmt.Sprintf("revision %d carries mail", *c.ActiveRevision)
		}
		switch {
		case *c.ActiveRevision != c.Revision:
			row.Newest = fmt.Sprintf("revision %d %s", c.Revision, newest)
		case c.LastValidation != nil && c.LastValidation.Revision == c.Revision && c.LastValidation.Status != store.ValidationPassed:
			row.Newest = fmt.Sprintf("revision %d failed its last validation", c.Revision)
		}
	}
	row.NewestFailed = strings.Contains(row.Newest, "failed")
	if row.Draft && row.Status == string(store.StatusFailed) {
		row.NewestFailed = true
	}
	if lv := c.LastValidation; lv != nil {
		row.LastValidation = fmt.Sprintf("%s, revision %d, %s", lv.Status, lv.Revision, web.When(lv.At))
		row.LastValidationHref = validationHref(c.Direction, c.ID, lv.ID)
	}
	return row
}

// newestState says where the newest revision stands: "is a draft",
// "passed validation", "failed validation".
func newestState(c *store.Connector) string {
	switch {
	case c.LastValidation != nil && c.LastValidation.Revision == c.Revision:
		if c.LastValidation.Status == store.ValidationPassed {
			return "passed validation and waits for activation"
		}
		return "failed validation"
	case c.ValidatedRevision != nil && *c.ValidatedRevision == c.Revision:
		return "passed validation and waits for activation"
	}
	return "is a draft, not validated yet"
}

func (c *Console) allConnectors(r *http.Request) ([]*store.Connector, error) {
	var all []*store.Connector
	for _, dir := range []connector.Direction{connector.Inbound, connector.Outbound} {
		list, err := c.store.ListConnectors(r.Context(), dir)
		if err != nil {
			return nil, err
		}
		all = append(all, list...)
	}
	sort.SliceStable(all, func(i, j int) bool {
		if all[i].Direction != all[j].Direction {
			return all[i].Direction < all[j].Direction
		}
		return strings.ToLower(all[i].Name) < strings.ToLower(all[j].Name)
	})
	return all, nil
}

func (c *Console) listConnectors(w http.ResponseWriter, r *http.Request) {
	all, err := c.allConnectors(r)
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	p := web.ConnectorsPage{Page: c.page(w, r, "Connectors", "connectors")}
	for _, conn := range all {
		p.Rows = append(p.Rows, connectorRow(conn))
	}
	// Mail flow rules: mark the rule-scoped connectors no rule routes to.
	unused, err := c.unusedRuleScoped(r, all)
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	// The live view's overview: a sparkline and the queue depth (liveview.go).
	overview, err := c.connectorOverviews(r, all, time.Now())
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, web.ConnectorsWith(web.ConnectorsView{ConnectorsPage: p, Unused: unused, Overview: overview}))
}

// loadConnector reads the connector the URL names; it answers 404 itself.
func (c *Console) loadConnector(w http.ResponseWriter, r *http.Request) (*store.Connector, bool) {
	dir := connector.Direction(chi.URLParam(r, "dir"))
	id, ok := pathInt(r, "id")
	if !dir.Valid() || !ok {
		c.notFound(w, r)
		return nil, false
	}
	conn, err := c.store.GetConnector(r.Context(), dir, id)
	if err != nil {
		c.storeError(w, r, err)
		return nil, false
	}
	return conn, true
}

func (c *Console) showConnector(w http.ResponseWriter, r *http.Request) {
	conn, ok := c.loadConnector(w, r)
	if !ok {
		return
	}
	revs, err := c.store.ListRevisions(r.Context(), conn.Direction, conn.ID)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	p := web.ConnectorPage{
		Page:    c.page(w, r, conn.Name, "connectors"),
		Row:     connectorRow(conn),
		Summary: describe(conn.Spec, conn.Enabled, conn.Revision, conn.ActiveRevision),
	}
	switch {
	case !conn.Enabled:
		p.ActiveNote = "Turned off: this connector carries no mail."
	case conn.ActiveRevision == nil:
		p.ActiveNote = "No revision carries mail yet: validate and activate one."
	case *conn.ActiveRevision == conn.Revision:
		p.ActiveNote = fmt.Sprintf("Revision %d, the newest, carries mail.", conn.Revision)
	default:
		p.ActiveNote = fmt.Sprintf("Revision %d carries mail; revision %d is newer and waits for validation and activation.", *conn.ActiveRevision, conn.Revision)
	}
	active, validated := "none", "none"
	if conn.ActiveRevision != nil {
		active = strconv.Itoa(*conn.ActiveRevision)
	}
	if conn.ValidatedRevision != nil {
		validated = strconv.Itoa(*conn.ValidatedRevision)
	}
	enabled := "no"
	if conn.Enabled {
		enabled = "yes"
	}
	p.Props = []web.Prop{
		{Label: "Direction", Value: p.Row.FromTo},
		{Label: "Connector type", Value: string(conn.Spec.Base().ConnectorType)},
		{Label: "Turned on", Value: enabled},
		{Label: "Newest revision", Value: strconv.Itoa(conn.Revision)},
		{Label: "Active revision", Value: active},
		{Label: "Last validated revision", Value: validated},
		{Label: "Created", Value: web.When(conn.CreatedAt)},
		{Label: "Changed", Value: web.When(conn.UpdatedAt)},
	}
	byRev := map[int]connector.Spec{}
	for i, rv := range revs {
		byRev[rv.Revision] = rv.Spec
		p.Revisions = append(p.Revisions, web.RevisionRow{
			Revision: rv.Revision, CreatedAt: rv.CreatedAt, CreatedBy: who(rv.CreatedBy), Latest: i == 0,
			Active:    conn.ActiveRevision != nil && *conn.ActiveRevision == rv.Revision,
			Validated: conn.ValidatedRevision != nil && *conn.ValidatedRevision == rv.Revision,
		})
	}
	if len(revs) > 1 {
		p.DiffA, p.DiffB = conn.Revision-1, conn.Revision
		if a, err := strconv.Atoi(r.URL.Query().Get("a")); err == nil {
			p.DiffA = a
		}
		if b, err := strconv.Atoi(r.URL.Query().Get("b")); err == nil {
			p.DiffB = b
		}
		sa, sb := byRev[p.DiffA], byRev[p.DiffB]
		switch {
		case sa == nil || sb == nil:
			p.DiffMessage = "Choose two revisions of this connector."
		case p.DiffA == p.DiffB:
			p.DiffMessage = "Choose two different revisions."
		default:
			for _, d := range diffSpecs(sa, sb) {
				p.Diff = append(p.Diff, web.DiffLine{Field: d.Field, Old: d.Old, New: d.New})
			}
			if len(p.Diff) == 0 {
				p.DiffMessage = fmt.Sprintf("Revisions %d and %d have the same settings.", p.DiffA, p.DiffB)
			}
		}
		p.DiffShown = true
	}
	vals, err := c.store.ListValidations(r.Context(), conn.ID, 50)
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	for _, v := range vals {
		p.Validations = append(p.Validations, validationView(conn.Direction, v))
	}
	p.CanValidate = c.validation != nil
	if lv := conn.LastValidation; lv != nil && lv.Revision == conn.Revision && lv.Status == store.ValidationPassed &&
		(conn.ActiveRevision == nil || *conn.ActiveRevision != conn.Revision) {
		p.ActivateRevision = conn.Revision
	}
	// Mail flow rules: a rule-scoped connector lists the rules that route
	// to it, or is marked unused.
	v := web.ConnectorDetailView{ConnectorPage: p, RuleScoped: ruleScoped(conn)}
	// The live view of its mail (liveview.go).
	if v.Live, err = c.connectorLiveView(r, conn, time.Now()); err != nil {
		c.serverError(w, r, err)
		return
	}
	if v.RuleScoped {
		if v.Rules, err = c.rulesRoutingTo(r, conn.ID); err != nil {
			c.serverError(w, r, err)
			return
		}
	}
	c.render(w, r, http.StatusOK, web.ConnectorDetailWith(v))
}

func (c *Console) enableConnector(on bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, ok := c.loadConnector(w, r)
		if !ok {
			return
		}
		if _, err := c.store.SetConnectorEnabled(r.Context(), c.actor(r), conn.Direction, conn.ID, on); err != nil {
			c.failed(w, r, localPath(refererPath(r, "/connectors")), err)
			return
		}
		if on {
			c.flash(w, r, "Turned on "+conn.Name+".")
		} else {
			c.flash(w, r, "Turned off "+conn.Name+": it carries no mail now.")
		}
		seeOther(w, r, localPath(refererPath(r, "/connectors")))
	}
}

// refererPath returns the path of a same-site Referer, to send the user
// back where the button was; fallback otherwise.
func refererPath(r *http.Request, fallback string) string {
	ref := r.Referer()
	if ref == "" {
		return fallback
	}
	host := r.Host
	for _, scheme := range []string{"http://", "https://"} {
		if p, ok := strings.CutPrefix(ref, scheme+host); ok && strings.HasPrefix(p, "/") {
			return p
		}
	}
	return fallback
}

func (c *Console) confirmDeleteConnector(w http.ResponseWriter, r *http.Request) {
	conn, ok := c.loadConnector(w, r)
	if !ok {
		return
	}
	href := fmt.Sprintf("/connectors/%s/%d", conn.Direction, conn.ID)
	cp := web.ConfirmPage{
		Page:    c.page(w, r, "Delete "+conn.Name, "connectors"),
		Heading: "Delete " + conn.Name + "?",
		Message: "The connector stops carrying mail at once. Its revisions stay in the audit log.",
		Details: describe(conn.Spec, conn.Enabled, conn.Revision, conn.ActiveRevision),
		Action:  href + "/delete", Button: "Delete connector", Cancel: href,
	}
	if conn.ActiveRevision != nil && conn.Enabled {
		if conn.Direction == connector.Inbound {
			cp.Warnings = append(cp.Warnings, fmt.Sprintf("This connector is active (revision %d carries mail): mail it applies to will be handled without its restrictions (or, for your own server, no longer relayed) after deletion.", *conn.ActiveRevision))
		} else {
			cp.Warnings = append(cp.Warnings, fmt.Sprintf("This connector is active (revision %d carries mail): mail it routes will go by the next matching connector, or by MX, after deletion.", *conn.ActiveRevision))
		}
	}
	c.render(w, r, http.StatusOK, web.Confirm(cp))
}

func (c *Console) deleteConnector(w http.ResponseWriter, r *http.Request) {
	conn, ok := c.loadConnector(w, r)
	if !ok {
		return
	}
	if err := c.store.DeleteConnector(r.Context(), c.actor(r), conn.Direction, conn.ID); err != nil {
		c.failed(w, r, fmt.Sprintf("/connectors/%s/%d", conn.Direction, conn.ID), err)
		return
	}
	c.flash(w, r, "Deleted "+conn.Name+".")
	seeOther(w, r, "/connectors")
}
