package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/rules"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/web"
)

// The mail flow rules pages (SPEC 4 and 7): the list in priority order
// with move up / down, turn on / off and delete; the new and edit forms,
// whose Preview button replays the draft over the traced mail before it
// is saved.
//
// Every post redirects. A refused save keeps what was typed, and its
// errors, for the form's page (Console.refuse); Preview keeps the draft
// the same way, without errors, and the form's page, finding a kept draft
// that asked for a preview, runs the preview as it renders: the page shows
// the draft, still to be saved, and what it would have changed. Like a
// refused form, the kept draft is shown once.

const rulesPath = "/rules"

// outboundChoices are the outbound connectors a rule may route to, as the
// form's select offers them, and their names by id for the summaries.
func (c *Console) outboundChoices(r *http.Request, selected string) ([]web.Option, map[int64]string, error) {
	list, err := c.store.ListConnectors(r.Context(), connector.Outbound)
	if err != nil {
		return nil, nil, err
	}
	names := map[int64]string{}
	var opts []web.Option
	found := selected == ""
	for _, conn := range list {
		names[conn.ID] = conn.Name
		v := strconv.FormatInt(conn.ID, 10)
		opts = append(opts, web.Option{Value: v, Label: conn.Name + " — " + connectorUse(conn), Selected: v == selected})
		found = found || v == selected
	}
	if !found {
		opts = append(opts, web.Option{Value: selected, Label: "Connector " + selected + " (deleted)", Selected: true})
	}
	return opts, names, nil
}

// connectorUse says which mail an outbound connector carries besides what
// rules route to it, and whether it carries mail at all.
func connectorUse(conn *store.Connector) string {
	var use string
	if s, ok := conn.Spec.(*connector.OutboundSpec); ok {
		switch {
		case s.IsTransportRuleScoped:
			use = "rule-scoped: carries only what rules route to it"
		case s.AllAcceptedDomains:
			use = "also carries mail for all accepted domains"
		case len(s.RecipientDomains) > 0:
			use = "also carries mail for " + listWords(s.RecipientDomains)
		}
	}
	switch {
	case !conn.Enabled:
		use += " (turned off)"
	case conn.ActiveRevision == nil:
		use += " (no active revision yet)"
	}
	return strings.TrimSpace(use)
}

func (c *Console) listRules(w http.ResponseWriter, r *http.Request) {
	list, err := c.store.ListRules(r.Context())
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	_, names, err := c.outboundChoices(r, "")
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	p := web.RulesPage{Page: c.page(w, r, "Mail flow rules", "rules")}
	now := time.Now()
	for i := range list {
		rule := &list[i]
		row := web.RuleRow{
			ID: rule.ID, Name: rule.Name, Comment: rule.Comment, Mode: string(rule.Mode), Enabled: rule.Enabled,
			Summary: ruleSummary(rule, names), CreatedAt: rule.CreatedAt, UpdatedAt: rule.UpdatedAt,
			First: i == 0, Last: i == len(list)-1,
		}
		if rule.Priority != nil {
			row.Priority = *rule.Priority
		}
		row.Dates, row.Dormant = ruleDates(rule, now)
		p.Rows = append(p.Rows, row)
	}
	c.render(w, r, http.StatusOK, web.Rules(p))
}

// loadRule reads the rule the URL names; it answers 404 itself.
func (c *Console) loadRule(w http.ResponseWriter, r *http.Request) (*rules.Rule, bool) {
	id, ok := pathInt(r, "id")
	if !ok {
		c.notFound(w, r)
		return nil, false
	}
	rule, err := c.store.GetRule(r.Context(), id)
	if err != nil {
		c.storeError(w, r, err)
		return nil, false
	}
	return rule, true
}

func ruleFormPath(id int64) string {
	if id == 0 {
		return "/rules/new"
	}
	return fmt.Sprintf("/rules/%d/edit", id)
}

// keptRuleForm is what a refused save or a preview kept for the form's
// page, read back: the form as typed, its errors, and whether it asked
// for a preview.
func (c *Console) keptRuleForm(w http.ResponseWriter, r *http.Request, id int64) (web.RuleForm, web.Errors, []string, bool, bool) {
	f := c.refused(w, r, ruleFormPath(id))
	if f == nil {
		return web.RuleForm{}, nil, nil, false, false
	}
	v := url.Values{}
	for k, s := range f.Values {
		v.Set(k, s)
	}
	var formErrs []string
	if f.FormError != "" {
		formErrs = strings.Split(f.FormError, "\n")
	}
	preview := f.value("nav") == "preview" && len(f.Errors) == 0 && len(formErrs) == 0
	return ruleFormFrom(v), web.Errors(f.Errors), formErrs, preview, true
}

func (c *Console) newRule(w http.ResponseWriter, r *http.Request) {
	form, errs, formErrs, preview, kept := c.keptRuleForm(w, r, 0)
	if !kept {
		form = newRuleForm()
		// From a rule-scoped connector's page: route to it.
		if id, err := strconv.ParseInt(r.URL.Query().Get("connector"), 10, 64); err == nil && id > 0 {
			if _, err := c.store.GetConnector(r.Context(), connector.Outbound, id); err == nil {
				form.Action, form.Connector = "route", strconv.FormatInt(id, 10)
			}
		}
	}
	c.ruleFormPage(w, r, web.RuleFormPage{Form: form, Errors: errs, FormErrors: formErrs}, preview)
}

func (c *Console) editRule(w http.ResponseWriter, r *http.Request) {
	rule, ok := c.loadRule(w, r)
	if !ok {
		return
	}
	form, errs, formErrs, preview, kept := c.keptRuleForm(w, r, rule.ID)
	if !kept {
		form = ruleFormOf(rule)
	}
	p := web.RuleFormPage{ID: rule.ID, EditName: rule.Name, Form: form, Errors: errs, FormErrors: formErrs}
	if rule.Priority != nil {
		p.CurrentPriority = *rule.Priority
	}
	c.ruleFormPage(w, r, p, preview)
}

// ruleFormPage renders the new or edit form; with preview, it runs the
// preview of the draft the form holds and shows it below the form.
func (c *Console) ruleFormPage(w http.ResponseWriter, r *http.Request, p web.RuleFormPage, preview bool) {
	title := "New mail flow rule"
	if p.ID != 0 {
		title = "Edit " + p.EditName
	}
	p.Page = c.page(w, r, title, "rules")
	opts, _, err := c.outboundChoices(r, p.Form.Connector)
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	p.Connectors = opts
	if p.Errors == nil {
		p.Errors = web.Errors{}
	}
	for _, win := range previewWindows {
		p.PreviewWindows = append(p.PreviewWindows, web.Option{Value: win.Value, Label: win.Label, Selected: win.Value == p.Form.PreviewSince})
	}
	if preview {
		rule, errs := ruleFromForm(p.Form, p.ID)
		if errs.empty() {
			p.Preview, err = c.runPreview(r, &rule, p.Form.PreviewSince, errs)
			if err != nil {
				c.serverError(w, r, err)
				return
			}
		}
		for k, v := range errs.fields {
			p.Errors[k] = v
		}
		p.FormErrors = append(p.FormErrors, errs.form...)
	}
	c.render(w, r, http.StatusOK, web.RuleFormView(p))
}

// keepRuleForm keeps the posted form, with errs when it has any, for the
// form's page and sends the browser there (to anchor on the page): a post
// is never answered with a page of its own.
func (c *Console) keepRuleForm(w http.ResponseWriter, r *http.Request, id int64, errs *ruleErrors, anchor string) {
	values := map[string]string{}
	for k, v := range r.PostForm {
		if len(v) > 0 {
			values[k] = v[0]
		}
	}
	f := &refusedForm{Values: values}
	if errs != nil && !errs.empty() {
		f.Errors = errs.fields
		f.FormError = strings.Join(errs.form, "\n")
	}
	page := ruleFormPath(id)
	s := sessionFrom(r)
	if s.data.Forms == nil {
		s.data.Forms = map[string]*refusedForm{}
	}
	s.data.Forms[page] = f
	if err := c.sessions.save(r, w, s); err != nil {
		c.serverError(w, r, err)
		return
	}
	seeOther(w, r, page+anchor)
}

func (c *Console) createRule(w http.ResponseWriter, r *http.Request) {
	c.postRule(w, r, nil)
}

func (c *Console) updateRule(w http.ResponseWriter, r *http.Request) {
	rule, ok := c.loadRule(w, r)
	if !ok {
		return
	}
	c.postRule(w, r, rule)
}

// postRule answers the form's buttons: Preview keeps the draft for the
// form's page, which shows the preview; Save creates the rule, or saves
// over old.
func (c *Console) postRule(w http.ResponseWriter, r *http.Request, old *rules.Rule) {
	if err := r.ParseForm(); err != nil {
		c.errorPage(w, r, http.StatusBadRequest, "The form could not be read; open it again.")
		return
	}
	var id int64
	if old != nil {
		id = old.ID
	}
	form := ruleFormFrom(r.PostForm)
	rule, errs := ruleFromForm(form, id)
	if r.PostForm.Get("nav") == "preview" {
		if !errs.empty() {
			errs.form = append([]string{"The preview runs once the rule has no errors."}, errs.form...)
			c.keepRuleForm(w, r, id, errs, "")
			return
		}
		c.keepRuleForm(w, r, id, nil, "#preview")
		return
	}
	if !errs.empty() {
		c.keepRuleForm(w, r, id, errs, "")
		return
	}
	var saved *rules.Rule
	var err error
	if old == nil {
		saved, err = c.store.CreateRule(r.Context(), c.actor(r), rule)
	} else {
		saved, err = c.store.UpdateRule(r.Context(), c.actor(r), id, rule)
	}
	if err != nil {
		if c.ruleRefused(errs, err) {
			c.keepRuleForm(w, r, id, errs, "")
			return
		}
		c.storeError(w, r, err)
		return
	}
	priority := 0
	if saved.Priority != nil {
		priority = *saved.Priority
	}
	msg := fmt.Sprintf("Saved the mail flow rule “%s” at priority %d. It takes effect within a second.", saved.Name, priority)
	if old == nil {
		msg = fmt.Sprintf("Created the mail flow rule “%s” at priority %d. It takes effect within a second.", saved.Name, priority)
	}
	switch {
	case !saved.Enabled:
		msg = strings.TrimSuffix(msg, " It takes effect within a second.") + " It is turned off: it does nothing until you turn it on."
	case saved.Mode == rules.Audit:
		msg += " In audit mode it only records in the message trace what it would do."
	}
	c.flash(w, r, msg)
	seeOther(w, r, rulesPath+"#rule-"+strconv.FormatInt(saved.ID, 10))
}

// ruleRefused adds the store's reasons for refusing a rule to errs and
// reports whether it refused the rule (rather than failed).
func (c *Console) ruleRefused(errs *ruleErrors, err error) bool {
	var fe rules.FieldErrors
	var conflict *store.ConflictError
	switch {
	case errors.As(err, &fe):
		errs.add(fe)
		return true
	case errors.As(err, &conflict):
		if conflict.Field == "name" {
			errs.set("name", sentenceCase(conflict.Message)+" Choose another name.")
		} else {
			errs.form = append(errs.form, sentenceCase(conflict.Message))
		}
		return true
	}
	return false
}

// moveRuleStep answers Move up and Move down.
func (c *Console) moveRuleStep(w http.ResponseWriter, r *http.Request) {
	rule, ok := c.loadRule(w, r)
	if !ok {
		return
	}
	from := 0
	if rule.Priority != nil {
		from = *rule.Priority
	}
	to, word := from-1, "up"
	if r.PostFormValue("direction") == "down" {
		to, word = from+1, "down"
	}
	if to < 0 {
		c.flashWarning(w, r, fmt.Sprintf("“%s” runs first already.", rule.Name))
		seeOther(w, r, rulesPath)
		return
	}
	moved, err := c.store.MoveRule(r.Context(), c.actor(r), rule.ID, to)
	if err != nil {
		var fe rules.FieldErrors
		if errors.As(err, &fe) {
			c.flashWarning(w, r, fmt.Sprintf("“%s” runs last already.", rule.Name))
			seeOther(w, r, rulesPath)
			return
		}
		c.failed(w, r, rulesPath, err)
		return
	}
	c.flash(w, r, fmt.Sprintf("Moved “%s” %s: it runs at priority %d now.", moved.Name, word, to))
	seeOther(w, r, rulesPath)
}

func (c *Console) enableRule(on bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rule, ok := c.loadRule(w, r)
		if !ok {
			return
		}
		if _, err := c.store.SetRuleEnabled(r.Context(), c.actor(r), rule.ID, on); err != nil {
			var fe rules.FieldErrors
			if errors.As(err, &fe) {
				msg := fe["actions.route_to_outbound_connector"]
				if msg == "" {
					msg = fe.Error()
				}
				c.flashWarning(w, r, fmt.Sprintf("“%s” was not turned on: %s. Edit the rule to choose another connector.", rule.Name, msg))
				seeOther(w, r, rulesPath)
				return
			}
			c.failed(w, r, rulesPath, err)
			return
		}
		if on {
			c.flash(w, r, fmt.Sprintf("Turned on “%s”: it acts on mail within a second.", rule.Name))
		} else {
			c.flash(w, r, fmt.Sprintf("Turned off “%s”: it no longer acts on mail.", rule.Name))
		}
		seeOther(w, r, rulesPath)
	}
}

func (c *Console) confirmDeleteRule(w http.ResponseWriter, r *http.Request) {
	rule, ok := c.loadRule(w, r)
	if !ok {
		return
	}
	_, names, err := c.outboundChoices(r, "")
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	priority := 0
	if rule.Priority != nil {
		priority = *rule.Priority
	}
	href := fmt.Sprintf("/rules/%d", rule.ID)
	cp := web.ConfirmPage{
		Page:    c.page(w, r, "Delete "+rule.Name, "rules"),
		Heading: "Delete the mail flow rule “" + rule.Name + "”?",
		Message: fmt.Sprintf("It runs at priority %d. Deleted, it stops acting within a second and the rules after it move up by one. The audit log keeps a copy of it.", priority),
		Details: ruleDetails(rule, names),
		Action:  href + "/delete", Button: "Delete rule", Cancel: rulesPath,
	}
	_, dormant := ruleDates(rule, time.Now())
	switch {
	case !rule.Enabled:
		cp.Message += " It is turned off, so deleting it changes no mail."
	case dormant != "":
		cp.Warnings = append(cp.Warnings, "This rule is turned on, but its dates keep it from acting now ("+dormant+").")
	case rule.Mode == rules.Audit:
		cp.Warnings = append(cp.Warnings, "This rule is turned on, in audit mode: it records in the message trace what it would do, and changes no mail.")
	default:
		cp.Warnings = append(cp.Warnings, "This rule is turned on and enforced: mail it matches is handled by it now ("+actionWords(rule.Actions, names)+"). After deletion that mail goes by the other rules and the connectors.")
	}
	c.render(w, r, http.StatusOK, web.Confirm(cp))
}

func (c *Console) deleteRule(w http.ResponseWriter, r *http.Request) {
	rule, ok := c.loadRule(w, r)
	if !ok {
		return
	}
	if err := c.store.DeleteRule(r.Context(), c.actor(r), rule.ID); err != nil {
		c.failed(w, r, rulesPath, err)
		return
	}
	c.flash(w, r, fmt.Sprintf("Deleted the mail flow rule “%s”.", rule.Name))
	seeOther(w, r, rulesPath)
}
