package console

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/web"
)

// auditPageSize is how many changes one page of the audit log shows.
const auditPageSize = 50

// auditObjects and auditActions are the choices of the "What" and "Change"
// filters, in the order shown: every object kind and action the store
// records.
var (
	auditObjects = []web.Option{
		{Value: "connector", Label: "Connectors"}, {Value: "rule", Label: "Mail flow rules"}, {Value: "accepted_domain", Label: "Accepted domains"},
		{Value: "user", Label: "Users"}, {Value: "api_token", Label: "API tokens"}, {Value: "message", Label: "Queued messages"},
	}
	auditActions = []web.Option{
		{Value: "create", Label: "Created or added"}, {Value: "update", Label: "Changed"},
		{Value: "validate", Label: "Validated"}, {Value: "activate", Label: "Activated"},
		{Value: "enable", Label: "Turned on"}, {Value: "disable", Label: "Turned off"}, {Value: "move", Label: "Moved"},
		{Value: "delete", Label: "Deleted or removed"}, {Value: "revoke", Label: "Revoked"},
		{Value: "hold", Label: "Held"}, {Value: "release", Label: "Released"}, {Value: "reroute", Label: "Re-routed"},
		{Value: "retry", Label: "Retried"}, {Value: "bounce", Label: "Bounced"},
	}
	auditActorPattern = regexp.MustCompile(`^(user|token|system):.+$`)
)

const dateLayout = "2006-01-02"

// auditQuery is the audit log's query string read into a store filter, with
// an error for each parameter it could not read.
type auditQuery struct {
	form   web.AuditFilterForm
	filter store.AuditFilter
	errs   web.Errors
}

func parseAuditQuery(q url.Values) auditQuery {
	a := auditQuery{errs: web.Errors{}, filter: store.AuditFilter{Limit: auditPageSize}}
	f := &a.form
	f.Actor, f.Object, f.Action, f.Connector, f.From, f.To = q.Get("actor"), q.Get("object"), q.Get("action"), q.Get("connector"), q.Get("from"), q.Get("to")
	f.Filtered = f.Actor != "" || f.Object != "" || f.Action != "" || f.Connector != "" || f.From != "" || f.To != ""
	if f.Actor != "" {
		if !auditActorPattern.MatchString(f.Actor) {
			a.errs["actor"] = "Choose someone from the list."
		}
		a.filter.Actor = f.Actor
	}
	if f.Object != "" {
		if !hasOption(auditObjects, f.Object) {
			a.errs["object"] = "Choose a kind of object from the list."
		}
		a.filter.ObjectType = f.Object
	}
	if f.Action != "" {
		if !hasOption(auditActions, f.Action) {
			a.errs["action"] = "Choose a change from the list."
		}
		a.filter.Action = f.Action
	}
	if f.Connector != "" {
		id, err := strconv.ParseInt(f.Connector, 10, 64)
		if err != nil || id < 1 {
			a.errs["connector"] = "Choose a connector from the list."
		}
		a.filter.ConnectorID = id
	}
	from, fromOK := parseDate(f.From)
	to, toOK := parseDate(f.To)
	if !fromOK {
		a.errs["from"] = "Enter a date as year-month-day, like 2026-12-03."
	}
	if !toOK {
		a.errs["to"] = "Enter a date as year-month-day, like 2026-12-03."
	}
	if fromOK && toOK && !from.IsZero() && !to.IsZero() && to.Before(from) {
		a.errs["to"] = "The end date is before the start date."
	}
	a.filter.From = from
	if !to.IsZero() {
		a.filter.To = to.AddDate(0, 0, 1) // the whole of the last day
	}
	before, beforeOK := parseID(q.Get("before"))
	after, afterOK := parseID(q.Get("after"))
	switch {
	case !beforeOK || !afterOK:
		a.errs["page"] = "This page of the audit log does not exist: the page position must be an entry's number. Start again from the newest changes."
	case before != 0 && after != 0:
		a.errs["page"] = "This page of the audit log does not exist: it cannot be both older and newer than an entry."
	}
	a.filter.BeforeID, a.filter.AfterID = before, after
	return a
}

func hasOption(opts []web.Option, v string) bool {
	for _, o := range opts {
		if o.Value == v {
			return true
		}
	}
	return false
}

// parseDate reads a date of the filter form; "" is no date.
func parseDate(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, true
	}
	t, err := time.Parse(dateLayout, s)
	if err != nil || t.Year() < 1970 || t.Year() > 9998 {
		return time.Time{}, false
	}
	return t, true
}

// parseID reads a page position; "" is none.
func parseID(s string) (int64, bool) {
	if s == "" {
		return 0, true
	}
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil && id > 0
}

// link is the audit log's URL with the same filters, on another page.
func (a auditQuery) link(param string, id int64) string {
	v := url.Values{}
	for k, s := range map[string]string{"actor": a.form.Actor, "object": a.form.Object, "action": a.form.Action, "connector": a.form.Connector, "from": a.form.From, "to": a.form.To} {
		if s != "" {
			v.Set(k, s)
		}
	}
	v.Set(param, strconv.FormatInt(id, 10))
	return "/audit?" + v.Encode()
}

func selectOption(opts []web.Option, v string) []web.Option {
	out := make([]web.Option, len(opts))
	for i, o := range opts {
		o.Selected = o.Value == v
		out[i] = o
	}
	return out
}

// auditLog shows the audit log: each change as a sentence, with its diff,
// filtered by who, what and when, a page at a time.
func (c *Console) auditLog(w http.ResponseWriter, r *http.Request) {
	a := parseAuditQuery(r.URL.Query())
	conns, err := c.allConnectors(r)
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	actors, err := c.store.AuditActors(r.Context())
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	p := web.AuditLogPage{Page: c.page(w, r, "Audit log", "audit"), Filter: a.form, Errors: a.errs}
	f := &p.Filter
	f.Objects = selectOption(auditObjects, f.Object)
	f.Actions = selectOption(auditActions, f.Action)
	known := false
	for _, act := range actors {
		f.Actors = append(f.Actors, web.Option{Value: act, Label: who(act), Selected: act == f.Actor})
		known = known || act == f.Actor
	}
	if f.Actor != "" && !known && !a.errs.Has("actor") {
		f.Actors = append(f.Actors, web.Option{Value: f.Actor, Label: who(f.Actor), Selected: true})
	}
	live := map[int64]*store.Connector{}
	for _, conn := range conns {
		live[conn.ID] = conn
		v := strconv.FormatInt(conn.ID, 10)
		f.Connectors = append(f.Connectors, web.Option{Value: v, Label: conn.Name + " (" + string(conn.Direction) + ")", Selected: v == f.Connector})
	}
	if a.filter.ConnectorID != 0 && live[a.filter.ConnectorID] == nil && !a.errs.Has("connector") {
		f.Connectors = append(f.Connectors, web.Option{Value: f.Connector, Label: "Connector " + f.Connector + " (deleted)", Selected: true})
	}
	if len(a.errs) > 0 {
		c.render(w, r, http.StatusBadRequest, web.AuditLog(p))
		return
	}
	page, err := c.store.ListAuditPage(r.Context(), a.filter)
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	specs, err := c.auditSpecs(r, page.Entries)
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	for _, e := range page.Entries {
		p.Rows = append(p.Rows, describeAudit(e, live, specs))
	}
	if n := len(page.Entries); n > 0 {
		if page.Newer {
			p.Newer = a.link("after", page.Entries[0].ID)
		}
		if page.Older {
			p.Older = a.link("before", page.Entries[n-1].ID)
		}
		p.Showing = showing(page)
	}
	c.render(w, r, http.StatusOK, web.AuditLog(p))
}

func showing(page *store.AuditPage) string {
	n := len(page.Entries)
	newest, oldest := web.When(page.Entries[0].At), web.When(page.Entries[n-1].At)
	what := "change"
	if n != 1 {
		what = "changes"
	}
	out := strconv.Itoa(n) + " " + what + ", newest first"
	if !page.Newer {
		out = "The newest " + out
	}
	if n > 1 && newest != oldest {
		out += ": " + newest + " back to " + oldest
	}
	return out + "."
}

// auditSpecs loads the connector revisions the page's saves name, for
// their diffs: revision 1 of a created connector, and both sides of each
// edit.
func (c *Console) auditSpecs(r *http.Request, entries []store.AuditEntry) (map[store.RevisionKey]connector.Spec, error) {
	dirs := map[int64]connector.Direction{}
	var keys []store.RevisionKey
	for _, e := range entries {
		if e.ObjectType != "connector" || e.ObjectID == nil || (e.Action != "create" && e.Action != "update") {
			continue
		}
		d := parseAuditDetail(e)
		rev, dir := d.int("revision"), connector.Direction(d.str("direction"))
		if rev < 1 || (dir != connector.Inbound && dir != connector.Outbound) {
			continue
		}
		dirs[*e.ObjectID] = dir
		keys = append(keys, store.RevisionKey{ConnectorID: *e.ObjectID, Revision: rev})
		if e.Action == "update" && rev > 1 {
			keys = append(keys, store.RevisionKey{ConnectorID: *e.ObjectID, Revision: rev - 1})
		}
	}
	return c.store.RevisionSpecs(r.Context(), dirs, keys)
}
