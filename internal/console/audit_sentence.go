package console

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/web"
)

// auditDetail is an audit entry's detail: the JSON object the store wrote.
type auditDetail map[string]any

func parseAuditDetail(e store.AuditEntry) auditDetail {
	d := auditDetail{}
	if e.Detail != "" {
		_ = json.Unmarshal([]byte(e.Detail), &d) // not JSON: no details to read
	}
	return d
}

func (d auditDetail) str(k string) string {
	s, _ := d[k].(string)
	return s
}

func (d auditDetail) int(k string) int {
	f, _ := d[k].(float64)
	return int(f)
}

func (d auditDetail) bool(k string) (value, ok bool) {
	value, ok = d[k].(bool)
	return value, ok
}

// maxShown is how many characters of a name or value a row shows; the rest
// is in the title attribute.
const maxShown = 300

func shorten(s string) string {
	if utf8.RuneCountInString(s) <= maxShown {
		return s
	}
	r := []rune(s)
	return string(r[:maxShown-1]) + "…"
}

// sentence builds an audit row's sentence a piece at a time.
type sentence []web.Span

func (s *sentence) text(format string, args ...any) *sentence {
	*s = append(*s, web.Span{Text: fmt.Sprintf(format, args...)})
	return s
}

func (s *sentence) strong(t string) *sentence {
	*s = append(*s, web.Span{Text: shorten(t), Strong: true, Title: t})
	return s
}

// name is an object's name in quotes, a link when href is set.
func (s *sentence) name(t, href string) *sentence {
	return s.object("“"+t+"”", href)
}

// object is an object's name as it is (a domain, an address), a link when
// href is set.
func (s *sentence) object(t, href string) *sentence {
	*s = append(*s, web.Span{Text: shorten(t), Href: href, Strong: href == "", Title: t})
	return s
}

// describeAudit tells an audit entry as a sentence, with the settings an
// edit changed. live holds the connectors that still exist, for links;
// specs the connector revisions the entries name.
func describeAudit(e store.AuditEntry, live map[int64]*store.Connector, specs map[store.RevisionKey]connector.Spec) web.AuditLogRow {
	row := web.AuditLogRow{At: e.At}
	d := parseAuditDetail(e)
	s := &sentence{}
	s.strong(who(e.Actor)).text(" ")
	switch e.ObjectType {
	case "connector":
		describeConnector(&row, s, e, d, live, specs)
	case "accepted_domain":
		typ := strings.ReplaceAll(d.str("domain_type"), "_", " ")
		verb := map[string]string{"create": "added", "delete": "removed"}[e.Action]
		if verb == "" {
			verb = e.Action
		}
		s.text("%s the accepted domain ", verb).object(e.ObjectName, "/domains")
		if typ != "" {
			s.text(" (%s)", typ)
		}
		if ext, _ := d.bool("allow_external_senders"); ext && e.Action == "create" {
			s.text("; anyone may send as it")
		}
	case "user":
		switch e.Action {
		case "create":
			s.text("added the user ").object(e.ObjectName, "/users").text(" as %s", orNone(d.str("role")))
		case "delete":
			s.text("removed the user ").object(e.ObjectName, "")
			if role := d.str("role"); role != "" {
				s.text(" (%s)", role)
			}
		default:
			describeOther(&row, s, e, d)
		}
	case "api_token":
		switch e.Action {
		case "create":
			s.text("created the API token ").name(e.ObjectName, "/users")
			var parts []string
			if role := d.str("role"); role != "" {
				parts = append(parts, role)
			}
			if p := d.str("prefix"); p != "" {
				parts = append(parts, "it starts "+p)
			}
			if len(parts) > 0 {
				s.text(" (%s)", strings.Join(parts, "; "))
			}
		case "revoke":
			s.text("revoked the API token ").name(e.ObjectName, "/users").text(": it no longer works")
		default:
			describeOther(&row, s, e, d)
		}
	case "rule": // mail flow rules: rules_audit.go
		describeRuleAudit(&row, s, e, d, live)
	case "message": // the queue's per-message actions
		describeMessageAudit(&row, s, e, d)
	default:
		describeOther(&row, s, e, d)
	}
	row.Sentence = *s
	return row
}

func describeConnector(row *web.AuditLogRow, s *sentence, e store.AuditEntry, d auditDetail, live map[int64]*store.Connector, specs map[store.RevisionKey]connector.Spec) {
	dir, rev := d.str("direction"), d.int("revision")
	href := ""
	if e.ObjectID != nil {
		if c := live[*e.ObjectID]; c != nil {
			href = fmt.Sprintf("/connectors/%s/%d", c.Direction, c.ID)
			dir = string(c.Direction)
		}
	}
	the := "the connector "
	if dir != "" {
		the = "the " + dir + " connector "
	}
	key := func(r int) store.RevisionKey {
		if e.ObjectID == nil {
			return store.RevisionKey{}
		}
		return store.RevisionKey{ConnectorID: *e.ObjectID, Revision: r}
	}
	switch e.Action {
	case "create":
		s.text("created %s", the).name(e.ObjectName, href).text(" (revision %d)", max(rev, 1))
		if on, ok := d.bool("enabled"); ok && !on {
			s.text(", turned off")
		}
		if spec := specs[key(max(rev, 1))]; spec != nil {
			for _, l := range diffSpecs(nil, spec) {
				row.Settings = append(row.Settings, change(l))
			}
		}
	case "update":
		s.text("changed %s", the).name(e.ObjectName, href)
		if on, ok := d.bool("enabled"); ok {
			if on {
				s.text(" and turned it on")
			} else {
				s.text(" and turned it off")
			}
		}
		s.text(" (revision %d)", rev)
		before, after := specs[key(rev-1)], specs[key(rev)]
		if before != nil && after != nil {
			row.Changes = specChanges(before, after)
			if len(row.Changes) == 0 {
				s.text(": the same settings as revision %d", rev-1)
			} else {
				s.text(":")
			}
		}
	case "enable":
		s.text("turned on %s", the).name(e.ObjectName, href).text(": it carries mail again")
	case "disable":
		s.text("turned off %s", the).name(e.ObjectName, href).text(": it carries no mail")
	case "delete":
		s.text("deleted %s", the).name(e.ObjectName, "")
		if rev > 0 {
			s.text(" (its newest revision was %d)", rev)
		}
	case "activate":
		s.text("activated revision %d of %s", rev, the).name(e.ObjectName, href).text(": it carries mail now")
	case "hold":
		s.text("held %s", the).name(e.ObjectName, href).text(": its mail is queued but not attempted until released")
	case "release":
		s.text("released %s", the).name(e.ObjectName, href).text(" from hold")
		if since := d.str("held_since"); since != "" {
			s.text(" (held since %s by %s)", since, who(d.str("held_by")))
		}
	case "reroute":
		s.text("re-routed the waiting mail of %s", the).name(e.ObjectName, href).text(": %d recipient(s) routed again under today's connectors", d.int("rerouted"))
	case "validate":
		s.text("validated revision %d of %s", rev, the).name(e.ObjectName, href).text(": ")
		status := d.str("status")
		if status == "" {
			status = "no result"
		}
		vid := d.int("validation_id")
		if href != "" && vid > 0 {
			*s = append(*s, web.Span{Text: status, Href: fmt.Sprintf("%s/validations/%d", href, vid), Title: "The report of this validation"})
		} else {
			s.strong(status)
		}
	default:
		describeOther(row, s, e, d)
	}
}

// describeOther tells an entry the console has no words for: the action,
// the object, and each detail as a line.
func describeOther(row *web.AuditLogRow, s *sentence, e store.AuditEntry, d auditDetail) {
	*s = (*s)[:1] // the actor
	s.text(" %s the %s ", e.Action, strings.ReplaceAll(e.ObjectType, "_", " ")).name(e.ObjectName, "")
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := d[k]
		if _, nested := v.(map[string]any); nested {
			b, _ := json.Marshal(v)
			v = string(b)
		}
		row.Changes = append(row.Changes, change(diffLine{Field: strings.ReplaceAll(k, "_", " "), Old: "", New: showValue(v)}))
	}
	if len(d) == 0 && e.Detail != "" {
		row.Changes = append(row.Changes, change(diffLine{Field: "detail", New: e.Detail}))
	}
}

// specChanges is the connector page's revision diff (diffSpecs), with a
// changed list told as the items added and removed, not as two whole lists.
func specChanges(before, after connector.Spec) []web.AuditChange {
	ma, mb := specFields(before), specFields(after)
	keyOf := map[string]string{}
	for k, label := range fieldLabels {
		keyOf[label] = k
	}
	var out []web.AuditChange
	for _, l := range diffSpecs(before, after) {
		k := keyOf[l.Field]
		if k == "" {
			k = l.Field
		}
		la, aok := ma[k].([]any)
		lb, bok := mb[k].([]any)
		if !aok && !bok || len(la) == 0 || len(lb) == 0 {
			out = append(out, change(l))
			continue
		}
		out = append(out, listChange(l.Field, la, lb))
	}
	return out
}

// listChange tells the items removed from a list and added to it.
func listChange(field string, before, after []any) web.AuditChange {
	in := func(list []any, v any) bool {
		for _, x := range list {
			if fmt.Sprint(x) == fmt.Sprint(v) {
				return true
			}
		}
		return false
	}
	var removed, added []any
	for _, v := range before {
		if !in(after, v) {
			removed = append(removed, v)
		}
	}
	for _, v := range after {
		if !in(before, v) {
			added = append(added, v)
		}
	}
	c := web.AuditChange{Field: field, List: true}
	if len(removed) > 0 {
		c.OldFull = showValue(removed)
		c.Old = shorten(c.OldFull)
	}
	if len(added) > 0 {
		c.NewFull = showValue(added)
		c.New = shorten(c.NewFull)
	}
	if c.Old == "" && c.New == "" { // the same items in another order
		c.List = false
		c.OldFull, c.NewFull = showValue(before), showValue(after)
		c.Old, c.New = shorten(c.OldFull), shorten(c.NewFull)
	}
	return c
}

func change(l diffLine) web.AuditChange {
	return web.AuditChange{Field: l.Field, Old: shorten(l.Old), New: shorten(l.New), OldFull: l.Old, NewFull: l.New}
}

// describeMessageAudit tells the queue's per-message actions.
func describeMessageAudit(row *web.AuditLogRow, s *sentence, e store.AuditEntry, d auditDetail) {
	href := "/trace/" + url.PathEscape(e.ObjectName)
	switch e.Action {
	case "retry":
		s.text("asked for message ").object(e.ObjectName, href).text(" to be tried now")
	case "bounce":
		s.text("returned message ").object(e.ObjectName, href).text(" to its sender %s", orNone(d.str("sender")))
		if r := d.str("recipients"); r != "" {
			s.text(", giving up %s", r)
		}
		if dsn := d.str("dsn"); dsn != "" {
			s.text("; the DSN is message ").object(dsn, "/trace/"+url.PathEscape(dsn))
		}
	case "delete":
		s.text("deleted message ").object(e.ObjectName, "").text(" from the queue without a DSN: from %s to %s, received %s",
			orNone(d.str("sender")), orNone(d.str("recipients")), orNone(d.str("received_at")))
	default:
		describeOther(row, s, e, d)
	}
}
