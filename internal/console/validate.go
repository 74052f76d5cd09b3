package console

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/validation"
	"github.com/flowgate/flowgate/web"
)

// WithValidation enables the Validate and Activate pages.
func (c *Console) WithValidation(v *validation.Service) *Console {
	c.validation = v
	return c
}

func validationHref(dir connector.Direction, connID, id int64) string {
	return fmt.Sprintf("/connectors/%s/%d/validations/%d", dir, connID, id)
}

func validationView(dir connector.Direction, v *store.Validation) web.ValidationView {
	out := web.ValidationView{
		ID: v.ID, Href: validationHref(dir, v.ConnectorID, v.ID), Revision: v.Revision, Status: v.Status,
		StartedAt: v.StartedAt, FinishedAt: v.FinishedAt, Sender: v.Sender, Recipients: v.Recipients,
		Transcript: v.Transcript, CreatedBy: who(v.CreatedBy),
	}
	for _, s := range v.Steps {
		out.Steps = append(out.Steps, web.ValidationStep{Name: s.Name, Status: s.Status, Detail: s.Detail, DurationMS: s.DurationMS})
	}
	return out
}

// wizardStepsWithValidate is the wizard's step list with its last step,
// Validate, for the page the wizard's Save leads to.
func wizardStepsWithValidate(spec connector.Spec) []web.WizardStep {
	f := formFromSpec(spec, true)
	return append(pageSteps(steps(f)), validateStep.page())
}

func (c *Console) validateForm(w http.ResponseWriter, r *http.Request, conn *store.Connector, rcpts, sender string, errs web.Errors, formErr string) {
	p := web.ValidatePage{
		Page: c.page(w, r, "Validate "+conn.Name, "connectors"),
		Row:  connectorRow(conn), Revision: conn.Revision, Inbound: conn.Direction == connector.Inbound,
		Recipients: rcpts, Sender: sender, DefaultSender: validation.DefaultSender(c.validation.Outbound.Hostname),
		Errors: errs, FormError: formErr,
	}
	if p.Errors == nil {
		p.Errors = web.Errors{}
	}
	if p.Inbound {
		p.RcptHint = "One address per line, in one of your accepted domains (or, for your own server, anywhere). Leave empty for postmaster of your first accepted domain."
		p.DefaultSender = "an address in the partner's sender domain"
	} else {
		p.RcptHint = "One address per line; prefilled from the last run, or else the connector's test message recipients."
	}
	if r.URL.Query().Get("wizard") == "1" {
		p.Steps = wizardStepsWithValidate(conn.Spec)
	}
	if o, ok := conn.Spec.(*connector.OutboundSpec); ok && o.IsTransportRuleScoped {
		p.RuleScoped = true
	}
	c.render(w, r, http.StatusOK, web.Validate(p))
}

func (c *Console) validatePage(w http.ResponseWriter, r *http.Request) {
	if c.validation == nil {
		c.errorPage(w, r, http.StatusServiceUnavailable, "Validation is not available in this process.")
		return
	}
	conn, ok := c.loadConnector(w, r)
	if !ok {
		return
	}
	// The recipients of the connector's last run, as typed then; else
	// the connector's validation_recipients.
	rcpts := ""
	if o, ok := conn.Spec.(*connector.OutboundSpec); ok {
		rcpts = strings.Join(o.ValidationRecipients, "\n")
	}
	last, err := c.store.ListValidations(r.Context(), conn.ID, 1)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	if len(last) == 1 && len(last[0].Recipients) > 0 {
		rcpts = strings.Join(last[0].Recipients, "\n")
	}
	if f := c.refused(w, r, r.URL.Path); f != nil {
		c.validateForm(w, r, conn, f.value("recipients"), f.value("sender"), f.Errors, f.FormError)
		return
	}
	c.validateForm(w, r, conn, rcpts, "", nil, "")
}

func (c *Console) runValidation(w http.ResponseWriter, r *http.Request) {
	if c.validation == nil {
		c.errorPage(w, r, http.StatusServiceUnavailable, "Validation is not available in this process.")
		return
	}
	conn, ok := c.loadConnector(w, r)
	if !ok {
		return
	}
	rcptText, sender := r.PostFormValue("recipients"), r.PostFormValue("sender")
	refuse := func(errs web.Errors, formErr string) {
		// Back to the form (with ?wizard=1 if it came from the wizard).
		c.refuse(w, r, r.URL.RequestURI(), &refusedForm{Errors: errs, FormError: formErr, Values: map[string]string{"recipients": rcptText, "sender": sender}})
	}
	// The page names the revision it offered to validate; a revision saved
	// since (in another tab, or by someone else) is not validated unseen.
	if rev, err := strconv.Atoi(r.PostFormValue("revision")); err != nil || rev != conn.Revision {
		msg := fmt.Sprintf("Nothing was validated: this page was for revision %s, and revision %d has been saved since", r.PostFormValue("revision"), conn.Revision)
		if newer, err := c.newerRevision(r, conn); err == nil && newer.By != "" {
			msg += fmt.Sprintf(" by %s at %s", newer.By, web.When(newer.At))
		}
		msg += fmt.Sprintf(". The page now shows revision %d: check what it changed on the connector's page, then run validation again to validate it.", conn.Revision)
		refuse(nil, msg)
		return
	}
	runID, _, err := c.validation.Start(r.Context(), c.actor(r), conn.Direction, conn.ID, validation.Request{Recipients: lines(rcptText), Sender: sender})
	var fe connector.FieldErrors
	switch {
	case errors.As(err, &fe):
		refuse(web.Errors(fe), "")
		return
	case err != nil:
		c.storeError(w, r, err)
		return
	}
	seeOther(w, r, fmt.Sprintf("/connectors/%s/%d/validations/running/%s", conn.Direction, conn.ID, runID))
}

// runningValidation shows a run's steps as they happen, and what it waits
// for now (the page reloads itself every second, without JavaScript),
// then sends the browser to its report.
func (c *Console) runningValidation(w http.ResponseWriter, r *http.Request) {
	conn, ok := c.loadConnector(w, r)
	if !ok {
		return
	}
	var p *validation.Progress
	if c.validation != nil {
		p = c.validation.Progress(chi.URLParam(r, "run"))
	}
	if p == nil || p.ConnectorID != conn.ID {
		c.errorPage(w, r, http.StatusNotFound, "This validation run is not known to this flowgate process (it may have run on another one, or ended long ago). Its report is in the connector's validation history.")
		return
	}
	steps, done, v, err := p.Snapshot()
	if done {
		if err != nil {
			c.serverError(w, r, err)
			return
		}
		if v.Status == store.ValidationPassed {
			c.flash(w, r, fmt.Sprintf("Revision %d passed validation. Activate it to let it carry mail.", v.Revision))
		} else {
			c.flashWarning(w, r, fmt.Sprintf("Revision %d failed validation; the failed steps below say why. The connector's active settings, if any, keep carrying mail.", v.Revision))
		}
		seeOther(w, r, validationHref(conn.Direction, conn.ID, v.ID))
		return
	}
	pg := web.ValidationRunningPage{Page: c.page(w, r, "Validating "+conn.Name, "connectors"), Row: connectorRow(conn), Revision: p.Revision}
	pg.Refresh = 1
	for _, s := range steps {
		pg.Steps = append(pg.Steps, web.ValidationStep{Name: s.Name, Status: s.Status, Detail: s.Detail, DurationMS: s.DurationMS})
	}
	waiting := ""
	if wt, ok := p.Waiting(); ok {
		waiting = wt.Describe(time.Now())
	}
	c.render(w, r, http.StatusOK, web.ValidationRunning(pg, waiting))
}

func (c *Console) showValidation(w http.ResponseWriter, r *http.Request) {
	conn, ok := c.loadConnector(w, r)
	if !ok {
		return
	}
	vid, ok := pathInt(r, "vid")
	if !ok {
		c.notFound(w, r)
		return
	}
	v, err := c.store.GetValidation(r.Context(), conn.ID, vid)
	if err != nil {
		c.storeError(w, r, err)
		return
	}
	p := web.ValidationPage{
		Page: c.page(w, r, "Validation of "+conn.Name, "connectors"),
		Row:  connectorRow(conn), V: validationView(conn.Direction, v),
		Active: conn.ActiveRevision != nil && *conn.ActiveRevision == v.Revision,
	}
	if v.Status == store.ValidationPassed && !p.Active {
		newest, err := c.store.NewestValidation(r.Context(), conn.ID, v.Revision)
		if err != nil {
			c.storeError(w, r, err)
			return
		}
		p.CanActivate = newest.ID == v.ID
		if !p.CanActivate {
			p.Outdated = fmt.Sprintf("A newer validation of revision %d exists; activation follows the newest one.", v.Revision)
		}
	}
	if v.Revision < conn.Revision {
		p.Outdated = fmt.Sprintf("Revision %d is not the newest: revision %d was saved since.", v.Revision, conn.Revision)
	}
	c.render(w, r, http.StatusOK, web.ValidationReport(p))
}

func (c *Console) activate(w http.ResponseWriter, r *http.Request) {
	conn, ok := c.loadConnector(w, r)
	if !ok {
		return
	}
	back := fmt.Sprintf("/connectors/%s/%d", conn.Direction, conn.ID)
	rev, err := strconv.Atoi(r.PostFormValue("revision"))
	if err != nil || rev < 1 || rev > conn.Revision {
		c.flashWarning(w, r, "Nothing was activated: choose a revision of this connector to activate.")
		seeOther(w, r, back)
		return
	}
	if _, err := c.store.Activate(r.Context(), c.actor(r), conn.Direction, conn.ID, rev); err != nil {
		if errors.Is(err, store.ErrNotValidated) {
			c.flashWarning(w, r, fmt.Sprintf("Nothing was activated: revision %d of %s has not passed validation, so it cannot carry mail. Validate it first.", rev, conn.Name))
			seeOther(w, r, back)
			return
		}
		c.failed(w, r, back, err)
		return
	}
	msg := fmt.Sprintf("Revision %d of %s is active: it carries mail from now on.", rev, conn.Name)
	if !conn.Enabled {
		msg += " The connector is turned off; turn it on to use it."
	}
	c.flash(w, r, msg)
	seeOther(w, r, back)
}
