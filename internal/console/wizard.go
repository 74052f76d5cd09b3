package console

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
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
	d := &draft{Reached: scenarioStep.number, Form: web.WizardForm{Enabled: true, IdentifyBy: "domain", Use: "domains", TLSSettings: string(connector.TLSOpportunistic)}}
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
	c.renderStep(w, r, http.StatusOK, id, d, step, nil, "")
}

// renderStep shows step of draft id, with errs next to their fields and
// formErr above them.
func (c *Console) renderStep(w http.ResponseWriter, r *http.Request, status int, id string, d *draft, step wizardStep, errs web.Errors, formErr string) {
	title := "Add a connector"
	if d.editing() {
		title = "Edit " + d.EditName
	}
	pg := web.WizardPage{
		Page: c.page(w, r, title, "connectors"),
		ID:   id, Step: step.number, Steps: pageSteps(steps(d.Form)), Reached: d.Reached,
		EditName: d.EditName, EditRev: d.BaseRevision, EditActive: d.EditActive,
		Form: d.Form, Errors: errs, FormError: formErr,
	}
	if step.number == reviewStep.number {
		fillReview(&pg)
	}
	if pg.Errors == nil {
		pg.Errors = web.Errors{}
	}
	c.render(w, r, status, web.Wizard(pg))
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
	if step.read != nil {
		step.read(&d.Form, r.PostForm)
	}
	if step.number == scenarioStep.number && (before.From != d.Form.From || before.To != d.Form.To) && directionOf(before) != directionOf(d.Form) && !d.editing() {
		// Another direction has other steps: walk them again.
		d.Reached = scenarioStep.number
	}
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
	case "save":
		if step.number != reviewStep.number {
			break
		}
		if !save() {
			return
		}
		c.saveWizard(w, r, id, d)
		return
	}
	errs := step.fieldErrors(d)
	if len(errs) > 0 && step.number == scenarioStep.number && d.editing() {
		// A refused direction change must not change the steps shown.
		d.Form.From, d.Form.To = before.From, before.To
	}
	if len(errs) > 0 {
		if save() {
			c.renderStep(w, r, http.StatusBadRequest, id, d, step, errs, "")
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
			c.renderStep(w, r, http.StatusConflict, id, d, reviewStep, nil,
				fmt.Sprintf("Someone saved revision %d of this connector after you started editing revision %d. Open the connector again to edit its newest settings.", cur.Revision, d.BaseRevision))
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
		c.renderStep(w, r, http.StatusBadRequest, id, d, reviewStep, web.Errors(fe), "")
		return
	case errors.As(err, &conflict):
		c.renderStep(w, r, http.StatusConflict, id, d, reviewStep, web.Errors{conflict.Field: conflict.Message}, "")
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
