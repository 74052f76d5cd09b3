package console

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/rules"
	"github.com/flowgate/flowgate/web"
)

// The rule form (SPEC 7 in form fields). A list key is a textarea, one
// entry a line; header_contains and header_matches are rows of two
// inputs; dates are datetime-local inputs read as UTC. The form is read
// into a web.RuleForm (what was typed), built into a rules.Rule, and the
// rule's problems, keyed by JSON path, are put back next to the fields
// that hold them (ruleErrors.add).

// minHeaderRows is how many header rows the form shows at least; it
// always shows one empty row past those filled in, to add one more.
const minHeaderRows = 3

// maxHeaderRows bounds the header rows read from a post.
const maxHeaderRows = 200

// Preview windows the form offers, the first the default.
var previewWindows = []struct {
	Value string
	Label string
	Since time.Duration
}{
	{"24h", "the last 24 hours", 24 * time.Hour},
	{"1h", "the last hour", time.Hour},
	{"7d", "the last 7 days", 7 * 24 * time.Hour},
}

func previewWindow(v string) (label string, since time.Duration) {
	for _, w := range previewWindows {
		if w.Value == v {
			return w.Label, w.Since
		}
	}
	return previewWindows[0].Label, previewWindows[0].Since
}

// newRuleForm is the form of a new rule: on, enforced, routing, with the
// reject defaults shown.
func newRuleForm() web.RuleForm {
	f := web.RuleForm{
		Enabled: true, Mode: string(rules.Enforce), Action: "route",
		RejectCode: strconv.Itoa(rules.DefaultRejectCode), RejectEnhanced: rules.DefaultRejectEnhanced, RejectText: rules.DefaultRejectText,
		OnError: string(rules.Defer), PreviewSince: previewWindows[0].Value,
		Conditions: web.PredicatesForm{Prefix: "c"}, Exceptions: web.PredicatesForm{Prefix: "x"},
	}
	padHeaderRows(&f)
	return f
}

// ruleFormFrom reads the form as typed from a post's values, or from the
// values a refused post kept.
func ruleFormFrom(v url.Values) web.RuleForm {
	f := web.RuleForm{
		Name: v.Get("name"), Comment: v.Get("comment"), Enabled: v.Get("enabled") == "on",
		Mode: v.Get("mode"), Priority: strings.TrimSpace(v.Get("priority")),
		ActivationDate: strings.TrimSpace(v.Get("activation_date")), ExpiryDate: strings.TrimSpace(v.Get("expiry_date")),
		Action: v.Get("action"), Connector: v.Get("connector"),
		RejectCode: strings.TrimSpace(v.Get("reject_code")), RejectEnhanced: v.Get("reject_enhanced"), RejectText: v.Get("reject_text"),
		StopProcessing: v.Get("stop_processing") == "on", OnError: v.Get("on_error"), PreviewSince: v.Get("preview_since"),
	}
	f.Conditions = predicatesFormFrom(v, "c")
	f.Exceptions = predicatesFormFrom(v, "x")
	padHeaderRows(&f)
	return f
}

func predicatesFormFrom(v url.Values, prefix string) web.PredicatesForm {
	p := web.PredicatesForm{Prefix: prefix}
	p.SenderAddressIs = v.Get(p.Name("sender_address_is"))
	p.SenderDomainIs = v.Get(p.Name("sender_domain_is"))
	p.RecipientAddressIs = v.Get(p.Name("recipient_address_is"))
	p.RecipientDomainIs = v.Get(p.Name("recipient_domain_is"))
	p.FromScope = v.Get(p.Name("from_scope"))
	p.SentToScope = v.Get(p.Name("sent_to_scope"))
	p.SenderIPRanges = v.Get(p.Name("sender_ip_ranges"))
	p.MessageSizeOver = strings.TrimSpace(v.Get(p.Name("message_size_over")))
	p.InboundConnectorIs = v.Get(p.Name("inbound_connector_is"))
	p.HeaderContains = headerRowsFrom(v, p, "hc", "words")
	p.HeaderMatches = headerRowsFrom(v, p, "hm", "pattern")
	return p
}

// headerRowsFrom reads rows 0, 1, … of a header key for as long as the
// post has them.
func headerRowsFrom(v url.Values, p web.PredicatesForm, key, part string) []web.HeaderRow {
	var rows []web.HeaderRow
	for i := 0; i < maxHeaderRows; i++ {
		h, hok := v[p.RowName(key, "header", i)]
		w, wok := v[p.RowName(key, part, i)]
		if !hok && !wok {
			break
		}
		row := web.HeaderRow{}
		if len(h) > 0 {
			row.Header = h[0]
		}
		if len(w) > 0 {
			row.Value = w[0]
		}
		rows = append(rows, row)
	}
	return rows
}

// padHeaderRows drops the empty header rows and adds empty ones: at least
// minHeaderRows in all and one past the filled ones.
func padHeaderRows(f *web.RuleForm) {
	for _, p := range []*web.PredicatesForm{&f.Conditions, &f.Exceptions} {
		p.HeaderContains = padRows(p.HeaderContains)
		p.HeaderMatches = padRows(p.HeaderMatches)
	}
}

func padRows(rows []web.HeaderRow) []web.HeaderRow {
	// Empty rows in the middle stay, so that a row's errors, keyed by its
	// number, stay next to it.
	n := len(rows)
	for n > 0 && rows[n-1] == (web.HeaderRow{}) {
		n--
	}
	out := append([]web.HeaderRow(nil), rows[:n]...)
	for len(out) < minHeaderRows || len(out) == n {
		out = append(out, web.HeaderRow{})
	}
	return out
}

// ruleFormOf is the edit form of a stored rule.
func ruleFormOf(r *rules.Rule) web.RuleForm {
	f := web.RuleForm{
		Name: r.Name, Comment: r.Comment, Enabled: r.Enabled, Mode: string(r.Mode),
		ActivationDate: formDate(r.ActivationDate), ExpiryDate: formDate(r.ExpiryDate),
		Conditions: predicatesFormOf(r.Conditions, "c"), Exceptions: predicatesFormOf(r.Exceptions, "x"),
		RejectCode: strconv.Itoa(rules.DefaultRejectCode), RejectEnhanced: rules.DefaultRejectEnhanced, RejectText: rules.DefaultRejectText,
		StopProcessing: r.Actions.StopProcessing, OnError: string(r.OnError), PreviewSince: previewWindows[0].Value,
	}
	if f.Mode == "" {
		f.Mode = string(rules.Enforce)
	}
	if f.OnError == "" {
		f.OnError = string(rules.Defer)
	}
	switch {
	case r.Actions.RouteToOutboundConnector != nil:
		f.Action, f.Connector = "route", strconv.FormatInt(*r.Actions.RouteToOutboundConnector, 10)
	case r.Actions.Reject != nil:
		f.Action = "reject"
		rj := r.Actions.Reject
		f.RejectCode, f.RejectEnhanced, f.RejectText = strconv.Itoa(rj.Code), rj.Enhanced, rj.Text
	}
	padHeaderRows(&f)
	return f
}

func predicatesFormOf(p rules.Predicates, prefix string) web.PredicatesForm {
	lines := func(l []string) string { return strings.Join(l, "\n") }
	out := web.PredicatesForm{
		Prefix:          prefix,
		SenderAddressIs: lines(p.SenderAddressIs), SenderDomainIs: lines(p.SenderDomainIs),
		RecipientAddressIs: lines(p.RecipientAddressIs), RecipientDomainIs: lines(p.RecipientDomainIs),
		FromScope: string(p.FromScope), SentToScope: string(p.SentToScope),
		SenderIPRanges: lines(p.SenderIPRanges), InboundConnectorIs: lines(p.InboundConnectorIs),
	}
	if p.MessageSizeOver != nil {
		out.MessageSizeOver = strconv.FormatInt(*p.MessageSizeOver, 10)
	}
	for _, hw := range p.HeaderContains {
		out.HeaderContains = append(out.HeaderContains, web.HeaderRow{Header: hw.Header, Value: strings.Join(hw.Words, ", ")})
	}
	for _, hp := range p.HeaderMatches {
		out.HeaderMatches = append(out.HeaderMatches, web.HeaderRow{Header: hp.Header, Value: hp.Pattern})
	}
	return out
}

// formDateLayouts are the date forms the date fields take: what a
// datetime-local input sends, with or without seconds, a bare date (its
// midnight) and RFC 3339.
var formDateLayouts = []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02 15:04:05", "2006-01-02"}

// formDate is a date as a datetime-local input holds it, in UTC.
func formDate(t *time.Time) string {
	if t == nil {
		return ""
	}
	u := t.UTC()
	if u.Second() != 0 || u.Nanosecond() != 0 {
		return u.Format("2006-01-02T15:04:05")
	}
	return u.Format("2006-01-02T15:04")
}

func parseFormDate(s string) (*time.Time, bool) {
	if s == "" {
		return nil, true
	}
	for _, l := range formDateLayouts {
		if t, err := time.ParseInLocation(l, s, time.UTC); err == nil {
			return &t, true
		}
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		u := t.UTC()
		return &u, true
	}
	return nil, false
}

// ruleErrors collects a form's errors by field name, with what it takes
// to find a rule's JSON paths among the fields: the line of each list
// entry, the row of each header entry.
type ruleErrors struct {
	fields web.Errors
	form   []string
	// lines[path] is the textarea line (from 1) of each entry of a list
	// key ("conditions.sender_domain_is"); rows[path] the form row of each
	// entry of a header key ("conditions.header_contains").
	lines map[string][]int
	rows  map[string][]int
}

func newRuleErrors() *ruleErrors {
	return &ruleErrors{fields: web.Errors{}, lines: map[string][]int{}, rows: map[string][]int{}}
}

// set puts msg next to field, after what the field already says.
func (e *ruleErrors) set(field, msg string) {
	if old, ok := e.fields[field]; ok {
		if strings.Contains(old, msg) {
			return
		}
		msg = old + " " + msg
	}
	e.fields[field] = msg
}

func (e *ruleErrors) empty() bool { return len(e.fields) == 0 && len(e.form) == 0 }

// predicatePath reads a path inside conditions or exceptions:
// conditions.sender_ip_ranges[1], exceptions.header_contains[0].words[2].
var predicatePath = regexp.MustCompile(`^(conditions|exceptions)\.([a-z_]+)(?:\[(\d+)\])?(?:\.([a-z_]+)(?:\[(\d+)\])?)?$`)

// headerKeys are the short names of the header keys in field names.
var headerKeys = map[string]string{"header_contains": "hc", "header_matches": "hm"}

// add puts the errors of a rule, by JSON path, next to the fields that
// hold what they are about; a path no field holds goes to the form's list.
func (e *ruleErrors) add(fe rules.FieldErrors) {
	paths := make([]string, 0, len(fe))
	for p := range fe {
		paths = append(paths, p)
	}
	sort.Strings(paths) // entries in order: "Line 2: …" before "Line 5: …"
	for _, path := range paths {
		msg := sentenceCase(fe[path])
		if field, ok := e.field(path, &msg); ok {
			e.set(field, msg)
		} else if path == "" || path == "id" {
			e.form = append(e.form, msg)
		} else {
			e.form = append(e.form, path+": "+msg)
		}
	}
}

// field finds the form field of path and may prefix msg with the line or
// word it is about.
func (e *ruleErrors) field(path string, msg *string) (string, bool) {
	switch path {
	case "name", "comment", "priority", "mode", "enabled", "activation_date", "expiry_date", "on_error", "conditions", "exceptions":
		return path, true
	case "actions", "actions.reject":
		return "action", true
	case "actions.route_to_outbound_connector":
		return "connector", true
	case "actions.reject.code", "actions.reject.enhanced", "actions.reject.text":
		return "reject_" + strings.TrimPrefix(path, "actions.reject."), true
	case "actions.stop_processing":
		return "stop_processing", true
	}
	m := predicatePath.FindStringSubmatch(path)
	if m == nil {
		return "", false
	}
	section, key, index, part, sub := m[1], m[2], m[3], m[4], m[5]
	p := web.PredicatesForm{Prefix: "c"}
	if section == "exceptions" {
		p.Prefix = "x"
	}
	list := section + "." + key
	if short, ok := headerKeys[key]; ok {
		if index == "" {
			return p.Name(key), true
		}
		i, _ := strconv.Atoi(index)
		row := i
		if rows := e.rows[list]; i < len(rows) {
			row = rows[i]
		}
		switch part {
		case "header", "words", "pattern":
			if sub != "" {
				n, _ := strconv.Atoi(sub)
				*msg = fmt.Sprintf("Word %d: %s", n+1, *msg)
			}
			return p.RowName(short, part, row), true
		}
		return p.RowName(short, "header", row), true
	}
	if part != "" {
		return "", false
	}
	if index != "" {
		i, _ := strconv.Atoi(index)
		line := i + 1
		if lines := e.lines[list]; i < len(lines) {
			line = lines[i]
		}
		*msg = fmt.Sprintf("Line %d: %s", line, *msg)
	}
	return p.Name(key), true
}

// sentenceCase starts a message with a capital letter and ends it with a
// full stop, as the console's other errors do.
func sentenceCase(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	if c := s[0]; c >= 'a' && c <= 'z' {
		s = string(c-'a'+'A') + s[1:]
	}
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

// ruleFromForm builds the rule the form describes, with id (0 for a new
// rule), and normalizes it. The errors hold what could not be read (a
// priority that is not a number) and what Normalize found; the store
// finds the rest (a connector that does not exist, a name taken), which
// errs.add places too.
func ruleFromForm(f web.RuleForm, id int64) (rules.Rule, *ruleErrors) {
	errs := newRuleErrors()
	r := rules.Rule{
		ID: id, Name: f.Name, Enabled: f.Enabled, Mode: rules.Mode(f.Mode), Comment: f.Comment,
		OnError: rules.OnError(f.OnError),
	}
	if f.Priority != "" {
		if n, err := strconv.Atoi(f.Priority); err != nil {
			errs.set("priority", "Enter a whole number (0 runs first), or leave it empty.")
		} else {
			r.Priority = &n
		}
	}
	var ok bool
	if r.ActivationDate, ok = parseFormDate(f.ActivationDate); !ok {
		errs.set("activation_date", "Enter a date and time in UTC, like 2026-12-03T09:00, or leave it empty.")
	}
	if r.ExpiryDate, ok = parseFormDate(f.ExpiryDate); !ok {
		errs.set("expiry_date", "Enter a date and time in UTC, like 2026-12-31T00:00, or leave it empty.")
	}
	r.Conditions = predicatesFromForm(f.Conditions, "conditions", errs)
	r.Exceptions = predicatesFromForm(f.Exceptions, "exceptions", errs)
	switch f.Action {
	case "route":
		if f.Connector == "" {
			errs.set("connector", "Choose the outbound connector to route to.")
		} else if n, err := strconv.ParseInt(f.Connector, 10, 64); err != nil || n < 1 {
			errs.set("connector", "Choose an outbound connector from the list.")
		} else {
			r.Actions.RouteToOutboundConnector = &n
		}
	case "reject":
		rj := &rules.Reject{Enhanced: f.RejectEnhanced, Text: f.RejectText}
		if f.RejectCode != "" {
			if n, err := strconv.Atoi(f.RejectCode); err != nil {
				errs.set("reject_code", "Enter a code from 500 to 599, like 550.")
				rj.Code = rules.DefaultRejectCode
			} else {
				rj.Code = n
			}
		}
		r.Actions.Reject = rj
	case "":
		errs.set("action", "Choose what the rule does: route to a connector or reject.")
	default:
		errs.set("action", "Choose one of the actions below.")
	}
	r.Actions.StopProcessing = f.StopProcessing
	if fe := r.Normalize(); len(fe) > 0 {
		for path := range fe {
			// What could not be read is already said better.
			if (path == "actions" && (errs.fields.Has("action") || errs.fields.Has("connector"))) ||
				(path == "conditions" && predicateFieldErrors(errs, "c")) {
				delete(fe, path)
			}
		}
		errs.add(fe)
	}
	return r, errs
}

// predicateFieldErrors reports whether a field of the conditions (prefix
// "c") or exceptions ("x") has an error already.
func predicateFieldErrors(e *ruleErrors, prefix string) bool {
	for k := range e.fields {
		if strings.HasPrefix(k, prefix+"_") {
			return true
		}
	}
	return false
}

func predicatesFromForm(p web.PredicatesForm, section string, errs *ruleErrors) rules.Predicates {
	list := func(key, text string) []string {
		var out []string
		var lines []int
		for i, l := range strings.Split(text, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
				lines = append(lines, i+1)
			}
		}
		errs.lines[section+"."+key] = lines
		return out
	}
	out := rules.Predicates{
		SenderAddressIs:    list("sender_address_is", p.SenderAddressIs),
		SenderDomainIs:     list("sender_domain_is", p.SenderDomainIs),
		RecipientAddressIs: list("recipient_address_is", p.RecipientAddressIs),
		RecipientDomainIs:  list("recipient_domain_is", p.RecipientDomainIs),
		FromScope:          rules.Scope(p.FromScope),
		SentToScope:        rules.Scope(p.SentToScope),
		SenderIPRanges:     list("sender_ip_ranges", p.SenderIPRanges),
		InboundConnectorIs: list("inbound_connector_is", p.InboundConnectorIs),
	}
	if p.MessageSizeOver != "" {
		n, err := strconv.ParseInt(strings.ReplaceAll(p.MessageSizeOver, ",", ""), 10, 64)
		if err != nil {
			errs.set(p.Name("message_size_over"), "Enter a number of bytes, like 10485760 for 10 MB.")
		} else {
			out.MessageSizeOver = &n
		}
	}
	var hcRows, hmRows []int
	for i, row := range p.HeaderContains {
		if strings.TrimSpace(row.Header) == "" && strings.TrimSpace(row.Value) == "" {
			continue
		}
		var words []string
		for _, w := range strings.Split(row.Value, ",") {
			if w = strings.TrimSpace(w); w != "" {
				words = append(words, w)
			}
		}
		out.HeaderContains = append(out.HeaderContains, rules.HeaderWords{Header: row.Header, Words: words})
		hcRows = append(hcRows, i)
	}
	for i, row := range p.HeaderMatches {
		if strings.TrimSpace(row.Header) == "" && strings.TrimSpace(row.Value) == "" {
			continue
		}
		out.HeaderMatches = append(out.HeaderMatches, rules.HeaderPattern{Header: row.Header, Pattern: row.Value})
		hmRows = append(hmRows, i)
	}
	errs.rows[section+".header_contains"] = hcRows
	errs.rows[section+".header_matches"] = hmRows
	return out
}
