package console

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/web"
)

// maxDrafts is how many unfinished wizards a session keeps.
const maxDrafts = 10

// draft is one wizard in progress, kept server-side in the session.
type draft struct {
	Form         web.WizardForm `json:"form"`
	ConnectorID  int64          `json:"connector_id,omitempty"` // editing this connector
	Direction    string         `json:"direction,omitempty"`    // its direction
	BaseRevision int            `json:"base_revision,omitempty"`
	EditName     string         `json:"edit_name,omitempty"`
	EditActive   bool           `json:"edit_active,omitempty"`
	Reached      int            `json:"reached"` // the number of the furthest step reached
	Updated      time.Time      `json:"updated"`

	// What the last post of step ErrorStep found wrong, shown when that
	// step is opened: a post with errors redirects to its step's page, so
	// Back and reload never resend a form. The next post clears them.
	ErrorStep int                `json:"error_step,omitempty"`
	Errors    web.Errors         `json:"errors,omitempty"`
	FormError string             `json:"form_error,omitempty"`
	Newer     *web.NewerRevision `json:"newer,omitempty"` // a save refused: someone saved this revision meanwhile
}

// setErrors keeps what step's post found wrong for its page.
func (d *draft) setErrors(step int, errs web.Errors, formErr string, newer *web.NewerRevision) {
	d.ErrorStep, d.Errors, d.FormError, d.Newer = step, errs, formErr, newer
}

func (d *draft) editing() bool { return d.ConnectorID != 0 }

// stepHref is the URL of step n of draft id.
func stepHref(id string, n int) string { return fmt.Sprintf("/wizard/%s/%d", id, n) }

func newDraftID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// addDraft stores a new draft in the session, dropping the oldest beyond
// maxDrafts, and returns its id.
func (c *Console) addDraft(w http.ResponseWriter, r *http.Request, d *draft) (string, error) {
	s := sessionFrom(r)
	if s.data.Drafts == nil {
		s.data.Drafts = map[string]*draft{}
	}
	for len(s.data.Drafts) >= maxDrafts {
		oldest := ""
		for id, x := range s.data.Drafts {
			if oldest == "" || x.Updated.Before(s.data.Drafts[oldest].Updated) {
				oldest = id
			}
		}
		delete(s.data.Drafts, oldest)
	}
	id := newDraftID()
	d.Updated = time.Now().UTC()
	s.data.Drafts[id] = d
	return id, c.sessions.save(r, w, s)
}

func (c *Console) newWizard(w http.ResponseWriter, r *http.Request) {
	// Every step starts with a choice made: the seeds' first scenario, a
	// partner sending to us, and the defaults of applyDefaults.
	d := &draft{Reached: scenarioStep.number, Form: web.WizardForm{
		From: "partner", To: "flowgate",
		Enabled: true, IdentifyBy: "domain", Use: "domains", TLSSettings: string(connector.TLSOpportunistic),
	}}
	applyDefaults(d)
	id, err := c.addDraft(w, r, d)
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	seeOther(w, r, stepHref(id, scenarioStep.number))
}

func (c *Console) editWizard(w http.ResponseWriter, r *http.Request) {
	conn, ok := c.loadConnector(w, r)
	if !ok {
		return
	}
	d := &draft{
		Form:        formFromSpec(conn.Spec, conn.Enabled),
		ConnectorID: conn.ID, Direction: string(conn.Direction), BaseRevision: conn.Revision,
		EditName: conn.Name, EditActive: conn.ActiveRevision != nil,
	}
	d.Reached = reviewStep.number // every step of an existing connector is filled in
	id, err := c.addDraft(w, r, d)
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	seeOther(w, r, stepHref(id, scenarioStep.number))
}

// wizardDraft finds the draft of the URL, and its step among the steps of
// the draft's scenario.
func (c *Console) wizardDraft(w http.ResponseWriter, r *http.Request) (string, *draft, wizardStep, bool) {
	id := chi.URLParam(r, "wid")
	d := sessionFrom(r).data.Drafts[id]
	if d == nil {
		c.errorPage(w, r, http.StatusNotFound, "This wizard has expired or was finished already. Start again from the connectors list.")
		return "", nil, wizardStep{}, false
	}
	n, err := strconv.Atoi(chi.URLParam(r, "step"))
	step, found := stepNumbered(steps(d.Form), n)
	if err != nil || !found {
		c.notFound(w, r)
		return "", nil, wizardStep{}, false
	}
	return id, d, step, true
}

// wizardGet shows a step, once the steps before it have been filled in.
func (c *Console) wizardGet(w http.ResponseWriter, r *http.Request) {
	id, d, step, ok := c.wizardDraft(w, r)
	if !ok {
		return
	}
	if step.number > d.Reached {
		// Steps are filled in order; go to the furthest one reached.
		seeOther(w, r, stepHref(id, d.Reached))
		return
	}
	var errs web.Errors
	switch {
	case d.ErrorStep == step.number:
		// What this step's last post found wrong.
		errs = d.Errors
	case r.URL.Query().Get("check") == "1":
		// Opened from the review's list of what stops the save: show
		// the errors at their fields.
		errs = c.stepErrors(r, d, step)
	}
	c.renderStep(w, r, id, d, step, errs)
}

// stepErrors checks the step's fields (fieldErrors), and, when they are
// valid, whether what they say is already another connector's: a name in
// use, or a domain, address or certificate name another connector of the
// direction has.
func (c *Console) stepErrors(r *http.Request, d *draft, step wizardStep) web.Errors {
	errs := step.fieldErrors(d)
	if len(errs) > 0 || step.fields == nil {
		return errs
	}
	for field, msg := range c.conflicts(r, d) {
		if slices.Contains(step.shownFields(d.Form), field) {
			errs[field] = msg
		}
	}
	return errs
}

// conflicts returns the draft's conflicts with other connectors, by
// field. The save checks again under a lock; this check is the early
// word, so a store error here is logged and the save left to refuse.
func (c *Console) conflicts(r *http.Request, d *draft) map[string]string {
	spec := specFromForm(d.Form)
	spec.Normalize()
	list, err := c.store.Conflicts(r.Context(), spec, d.ConnectorID)
	if err != nil {
		c.log.Warn("console: check the draft for conflicts", "err", err)
		return nil
	}
	out := map[string]string{}
	for _, conflict := range list {
		out[conflict.Field] = conflict.Message
	}
	return inWords(out)
}

// renderStep shows step of draft id, with errs next to their fields and,
// when the step's last post left them, the draft's form error and the
// newer revision that refused its save.
func (c *Console) renderStep(w http.ResponseWriter, r *http.Request, id string, d *draft, step wizardStep, errs web.Errors) {
	title := "Add a connector"
	if d.editing() {
		title = "Edit " + d.EditName
	}
	pg := web.WizardPage{
		Page: c.page(w, r, title, "connectors"),
		ID:   id, Step: step.number, Steps: pageSteps(steps(d.Form)), Reached: d.Reached,
		EditName: d.EditName, EditRev: d.BaseRevision, EditActive: d.EditActive,
		Form: d.Form, Errors: errs,
	}
	if d.ErrorStep == step.number {
		pg.FormError, pg.Newer = d.FormError, d.Newer
	}
	if step.number == reviewStep.number {
		var conflicts map[string]string
		if errs == nil {
			conflicts = c.conflicts(r, d)
		}
		fillReview(&pg, conflicts)
	}
	if pg.Errors == nil {
		pg.Errors = web.Errors{}
	}
	c.render(w, r, http.StatusOK, web.Wizard(pg))
}

// wizardPost reads a step's fields into the draft, then goes Back, saves
// (from the review), or checks the step and goes on to the next one.
func (c *Console) wizardPost(w http.ResponseWriter, r *http.Request) {
	id, d, step, ok := c.wizardDraft(w, r)
	if !ok {
		return
	}
	if err := r.ParseForm(); err != nil {
		c.errorPage(w, r, http.StatusBadRequest, "The form could not be read: "+err.Error())
		return
	}
	nav := r.PostForm.Get("nav")
	before := d.Form
	d.setErrors(0, nil, "", nil)
	if step.read != nil {
		step.read(&d.Form, r.PostForm)
	}
	if step.number == scenarioStep.number && (before.From != d.Form.From || before.To != d.Form.To) && directionOf(before) != directionOf(d.Form) && !d.editing() {
		// Another direction has other steps: walk them again.
		d.Reached = scenarioStep.number
	}
	applyDefaults(d)
	d.Updated = time.Now().UTC()
	save := func() bool {
		if err := c.sessions.save(r, w, sessionFrom(r)); err != nil {
			c.serverError(w, r, err)
			return false
		}
		return true
	}
	switch nav {
	case "back":
		// Back keeps what was typed, valid or not.
		if save() {
			seeOther(w, r, stepHref(id, neighbour(steps(d.Form), step.number, -1)))
		}
		return
	case "save", "overwrite":
		if step.number != reviewStep.number {
			break
		}
		if nav == "overwrite" {
			// Save over the revision someone saved meanwhile, which the
			// page named (not whatever is newest by now).
			if rev, err := strconv.Atoi(r.PostForm.Get("over")); err == nil && rev > d.BaseRevision {
				d.BaseRevision = rev
			}
		}
		c.saveWizard(w, r, id, d)
		return
	}
	errs := c.stepErrors(r, d, step)
	if len(errs) > 0 && step.number == scenarioStep.number && d.editing() {
		// A refused direction change must not change the steps shown.
		d.Form.From, d.Form.To = before.From, before.To
	}
	if len(errs) > 0 {
		d.setErrors(step.number, errs, "", nil)
		if save() {
			seeOther(w, r, stepHref(id, step.number))
		}
		return
	}
	next := neighbour(steps(d.Form), step.number, +1)
	if next > d.Reached {
		d.Reached = next
	}
	if save() {
		seeOther(w, r, stepHref(id, next))
	}
}

// saveWizard creates the connector, or its next revision, through the same
// store methods the API uses.
func (c *Console) saveWizard(w http.ResponseWriter, r *http.Request, id string, d *draft) {
	// refused keeps why the save was refused for the review page, and
	// sends the browser there.
	refused := func(errs web.Errors, formErr string, newer *web.NewerRevision) {
		d.setErrors(reviewStep.number, errs, formErr, newer)
		if err := c.sessions.save(r, w, sessionFrom(r)); err != nil {
			c.serverError(w, r, err)
			return
		}
		seeOther(w, r, stepHref(id, reviewStep.number))
	}
	spec := specFromForm(d.Form)
	var (
		conn *store.Connector
		err  error
	)
	if d.editing() {
		cur, gerr := c.store.GetConnector(r.Context(), connector.Direction(d.Direction), d.ConnectorID)
		if gerr != nil {
			c.storeError(w, r, gerr)
			return
		}
		if cur.Revision != d.BaseRevision {
			newer, err := c.newerRevision(r, cur)
			if err != nil {
				c.storeError(w, r, err)
				return
			}
			refused(nil, "", newer)
			return
		}
		enabled := d.Form.Enabled
		conn, err = c.store.UpdateConnector(r.Context(), c.actor(r), d.ConnectorID, spec, &enabled)
	} else {
		conn, err = c.store.CreateConnector(r.Context(), c.actor(r), spec, d.Form.Enabled)
	}
	var fe connector.FieldErrors
	var conflict *store.ConflictError
	switch {
	case errors.As(err, &fe):
		refused(web.Errors(fe), "", nil)
		return
	case errors.As(err, &conflict):
		refused(web.Errors{conflict.Field: conflict.Message}, "", nil)
		return
	case errors.Is(err, store.ErrNotFound) && d.editing():
		refused(nil, "This connector was deleted after you started editing it, so there is nothing to save a revision of. Your answers are still here: to keep them, add a new connector with the same settings.", nil)
		return
	case err != nil:
		c.storeError(w, r, err)
		return
	}
	s := sessionFrom(r)
	delete(s.data.Drafts, id)
	msg := fmt.Sprintf("Saved %s as revision %d. It carries mail once this revision is validated and activated.", conn.Name, conn.Revision)
	if d.editing() && d.EditActive {
		msg = fmt.Sprintf("Saved revision %d of %s. The active revision keeps carrying mail until revision %d is validated and activated.", conn.Revision, conn.Name, conn.Revision)
	}
	s.data.Flash = msg
	if err := c.sessions.save(r, w, s); err != nil {
		c.serverError(w, r, err)
		return
	}
	if c.validation != nil {
		// The wizard's last step: validate what was just saved.
		seeOther(w, r, fmt.Sprintf("/connectors/%s/%d/validate?wizard=1", conn.Direction, conn.ID))
		return
	}
	seeOther(w, r, fmt.Sprintf("/connectors/%s/%d", conn.Direction, conn.ID))
}

// newerRevision describes the newest revision of conn, which someone
// saved after the draft's edit started: who, when, and where to see it.
func (c *Console) newerRevision(r *http.Request, conn *store.Connector) (*web.NewerRevision, error) {
	revs, err := c.store.ListRevisions(r.Context(), conn.Direction, conn.ID)
	if err != nil {
		return nil, err
	}
	n := &web.NewerRevision{Revision: conn.Revision, Href: fmt.Sprintf("/connectors/%s/%d#revisions", conn.Direction, conn.ID)}
	for _, rev := range revs {
		if rev.Revision == conn.Revision {
			n.By, n.At = who(rev.CreatedBy), rev.CreatedAt
		}
	}
	return n, nil
}
