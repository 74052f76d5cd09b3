package console

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
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
	Reached      int            `json:"reached"`
	Updated      time.Time      `json:"updated"`
}

func (d *draft) editing() bool { return d.ConnectorID != 0 }

// The wizard's steps, numbered as in SPEC section 4 (the inbound wizard has
// no TLS step 5).
const (
	stepScenario = 1
	stepName     = 2
	stepIdentify = 3 // inbound: identification; outbound: when to use
	stepSecurity = 4 // inbound: restrictions; outbound: routing
	stepTLS      = 5
	stepReview   = 6
)

func steps(f web.WizardForm) []web.WizardStep {
	switch {
	case f.To == "flowgate":
		return []web.WizardStep{{Number: 1, Label: "Scenario"}, {Number: 2, Label: "Name"}, {Number: 3, Label: "Identify the sender"}, {Number: 4, Label: "Security restrictions"}, {Number: 6, Label: "Review"}}
	case f.From == "flowgate":
		return []web.WizardStep{{Number: 1, Label: "Scenario"}, {Number: 2, Label: "Name"}, {Number: 3, Label: "When to use"}, {Number: 4, Label: "Routing"}, {Number: 5, Label: "TLS"}, {Number: 6, Label: "Review"}}
	}
	return []web.WizardStep{{Number: 1, Label: "Scenario"}, {Number: 2, Label: "Name"}, {Number: 3, Label: "Identify or when to use"}, {Number: 4, Label: "Restrictions or routing"}, {Number: 5, Label: "TLS"}, {Number: 6, Label: "Review"}}
}

func hasStep(f web.WizardForm, n int) bool {
	for _, s := range steps(f) {
		if s.Number == n {
			return true
		}
	}
	return false
}

// neighbour returns the step after (dir=+1) or before (dir=-1) n.
func neighbour(f web.WizardForm, n, dir int) int {
	list := steps(f)
	for i, s := range list {
		if s.Number == n {
			j := i + dir
			if j < 0 {
				return list[0].Number
			}
			if j >= len(list) {
				return list[len(list)-1].Number
			}
			return list[j].Number
		}
	}
	return stepScenario
}

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
	d := &draft{Reached: stepScenario, Form: web.WizardForm{Enabled: true, IdentifyBy: "domain", Use: "domains", TLSSettings: string(connector.TLSOpportunistic)}}
	id, err := c.addDraft(w, r, d)
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	seeOther(w, r, fmt.Sprintf("/wizard/%s/%d", id, stepScenario))
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
	d.Reached = stepReview // every step of an existing connector is filled in
	id, err := c.addDraft(w, r, d)
	if err != nil {
		c.serverError(w, r, err)
		return
	}
	seeOther(w, r, fmt.Sprintf("/wizard/%s/%d", id, stepScenario))
}

// wizardDraft finds the draft and step of the URL.
func (c *Console) wizardDraft(w http.ResponseWriter, r *http.Request) (string, *draft, int, bool) {
	id := chi.URLParam(r, "wid")
	d := sessionFrom(r).data.Drafts[id]
	if d == nil {
		c.errorPage(w, r, http.StatusNotFound, "This wizard has expired or was finished already. Start again from the connectors list.")
		return "", nil, 0, false
	}
	step, err := strconv.Atoi(chi.URLParam(r, "step"))
	if err != nil || !hasStep(d.Form, step) {
		c.notFound(w, r)
		return "", nil, 0, false
	}
	return id, d, step, true
}

func (c *Console) wizardStep(w http.ResponseWriter, r *http.Request) {
	id, d, step, ok := c.wizardDraft(w, r)
	if !ok {
		return
	}
	if step > d.Reached {
		// Steps are filled in order; go to the furthest one reached.
		seeOther(w, r, fmt.Sprintf("/wizard/%s/%d", id, d.Reached))
		return
	}
	c.renderStep(w, r, http.StatusOK, id, d, step, nil, "")
}

func (c *Console) renderStep(w http.ResponseWriter, r *http.Request, status int, id string, d *draft, step int, errs web.Errors, formErr string) {
	title := "Add a connector"
	if d.editing() {
		title = "Edit " + d.EditName
	}
	pg := web.WizardPage{
		Page: c.page(w, r, title, "connectors"),
		ID:   id, Step: step, Steps: steps(d.Form), Reached: d.Reached,
		EditName: d.EditName, EditRev: d.BaseRevision, EditActive: d.EditActive,
		Form: d.Form, Errors: errs, FormError: formErr,
	}
	if step == stepReview {
		spec := specFromForm(d.Form)
		all := spec.Normalize()
		if errs == nil {
			errs = web.Errors(all)
		}
		errs = web.Errors(inWords(errs))
		pg.Review = describe(spec, d.Form.Enabled)
		pg.ReviewErrors = reviewErrors(d.Form, errs)
		pg.SaveAllowed = len(errs) == 0 && formErr == ""
		pg.Errors = errs
	}
	if pg.Errors == nil {
		pg.Errors = web.Errors{}
	}
	c.render(w, r, status, web.Wizard(pg))
}

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
	readStep(&d.Form, step, r)
	if step == stepScenario && (before.From != d.Form.From || before.To != d.Form.To) && directionOf(before) != directionOf(d.Form) && !d.editing() {
		// Another direction has other steps: walk them again.
		d.Reached = stepScenario
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
			seeOther(w, r, fmt.Sprintf("/wizard/%s/%d", id, neighbour(d.Form, step, -1)))
		}
		return
	case "save":
		if step != stepReview {
			break
		}
		if !save() {
			return
		}
		c.saveWizard(w, r, id, d)
		return
	}
	errs := validateStep(d, step)
	if len(errs) > 0 && step == stepScenario && d.editing() {
		// A refused direction change must not change the steps shown.
		d.Form.From, d.Form.To = before.From, before.To
	}
	if len(errs) > 0 {
		if save() {
			c.renderStep(w, r, http.StatusBadRequest, id, d, step, errs, "")
		}
		return
	}
	next := neighbour(d.Form, step, +1)
	if next > d.Reached {
		d.Reached = next
	}
	if save() {
		seeOther(w, r, fmt.Sprintf("/wizard/%s/%d", id, next))
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
			c.renderStep(w, r, http.StatusConflict, id, d, stepReview, nil,
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
		c.renderStep(w, r, http.StatusBadRequest, id, d, stepReview, web.Errors(fe), "")
		return
	case errors.As(err, &conflict):
		c.renderStep(w, r, http.StatusConflict, id, d, stepReview, web.Errors{conflict.Field: conflict.Message}, "")
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

func directionOf(f web.WizardForm) connector.Direction {
	if f.To == "flowgate" {
		return connector.Inbound
	}
	return connector.Outbound
}

func typeOf(f web.WizardForm) connector.Type {
	if f.Partner() {
		return connector.Partner
	}
	return connector.OnPremises
}

// readStep copies the fields shown on a step from the form. Fields of
// other steps are left alone; an unticked checkbox is absent, so false.
func readStep(f *web.WizardForm, step int, r *http.Request) {
	v := func(k string) string { return r.PostForm.Get(k) }
	on := func(k string) bool { return r.PostForm.Get(k) == "on" }
	switch step {
	case stepScenario:
		f.From, f.To = v("from"), v("to")
	case stepName:
		f.Name, f.Comment, f.Enabled = v("name"), v("comment"), on("enabled")
	case stepIdentify:
		switch {
		case f.Inbound() && f.Partner():
			f.IdentifyBy, f.SenderDomains, f.SenderIPs = v("identify_by"), v("sender_domains"), v("sender_ips")
		case f.Inbound():
			f.CertName, f.SenderIPs = v("cert_name"), v("sender_ips")
		default:
			f.Use, f.RecipientDomains = v("use"), v("recipient_domains")
		}
	case stepSecurity:
		switch {
		case f.Inbound() && f.Partner():
			f.RequireTLS, f.RestrictCert, f.CertName = on("require_tls"), on("restrict_cert"), v("cert_name")
			if f.IdentifyBy != "ip" {
				f.RestrictIPs, f.SenderIPs = on("restrict_ips"), v("sender_ips")
			}
		case f.Inbound():
			f.RequireTLS, f.RestrictCert = on("require_tls"), on("restrict_cert")
		default:
			f.RouteBy, f.SmartHosts = v("route_by"), v("smart_hosts")
		}
	case stepTLS:
		f.TLSSettings, f.TLSDomain, f.ValidationRecipients = v("tls_settings"), v("tls_domain"), v("validation_recipients")
	}
}

// lines splits a textarea into entries: one per line or comma.
func lines(s string) []string {
	var out []string
	for _, l := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' || r == ',' }) {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// specFromForm turns the wizard's answers into a connector spec.
func specFromForm(f web.WizardForm) connector.Spec {
	common := connector.Common{Name: f.Name, Comment: f.Comment, ConnectorType: typeOf(f)}
	if f.Inbound() {
		s := &connector.InboundSpec{Common: common, RequireTLS: f.RequireTLS}
		if f.Partner() {
			if f.IdentifyBy == "ip" {
				s.SenderIPAddresses = lines(f.SenderIPs)
			} else {
				s.SenderDomains = lines(f.SenderDomains)
				if f.RestrictIPs {
					s.SenderIPAddresses = lines(f.SenderIPs)
					s.RestrictDomainsToIPAddresses = true
				}
			}
			if f.RestrictCert {
				s.TLSSenderCertificateName = strings.TrimSpace(f.CertName)
				s.RestrictDomainsToCertificate = true
			}
		} else {
			s.SenderIPAddresses = lines(f.SenderIPs)
			s.TLSSenderCertificateName = strings.TrimSpace(f.CertName)
			s.RestrictDomainsToCertificate = f.RestrictCert
		}
		return s
	}
	s := &connector.OutboundSpec{Common: common, TLSSettings: connector.TLSSettings(f.TLSSettings), ValidationRecipients: lines(f.ValidationRecipients)}
	switch f.Use {
	case "rule":
		s.IsTransportRuleScoped = true
	case "accepted":
		s.AllAcceptedDomains = true
	case "domains":
		s.RecipientDomains = lines(f.RecipientDomains)
	}
	switch f.RouteBy {
	case "mx":
		s.UseMXRecord = true
	case "smarthosts":
		s.SmartHosts = lines(f.SmartHosts)
	}
	if s.TLSSettings == connector.TLSDomainValidation || strings.TrimSpace(f.TLSDomain) != "" {
		s.TLSDomain = strings.TrimSpace(f.TLSDomain)
	}
	return s
}

// formFromSpec fills the wizard from a revision, for the pencil.
func formFromSpec(spec connector.Spec, enabled bool) web.WizardForm {
	b := spec.Base()
	f := web.WizardForm{Name: b.Name, Comment: b.Comment, Enabled: enabled}
	partner := b.ConnectorType == connector.Partner
	switch s := spec.(type) {
	case *connector.InboundSpec:
		f.To = "flowgate"
		f.From = "org"
		if partner {
			f.From = "partner"
		}
		f.RequireTLS = s.RequireTLS
		f.CertName = s.TLSSenderCertificateName
		f.RestrictCert = s.RestrictDomainsToCertificate
		f.SenderIPs = strings.Join(s.SenderIPAddresses, "\n")
		f.SenderDomains = strings.Join(s.SenderDomains, "\n")
		f.IdentifyBy = "domain"
		if partner && len(s.SenderDomains) == 0 {
			f.IdentifyBy = "ip"
		}
		f.RestrictIPs = s.RestrictDomainsToIPAddresses
	case *connector.OutboundSpec:
		f.From = "flowgate"
		f.To = "org"
		if partner {
			f.To = "partner"
		}
		switch {
		case s.IsTransportRuleScoped:
			f.Use = "rule"
		case s.AllAcceptedDomains:
			f.Use = "accepted"
		default:
			f.Use = "domains"
		}
		f.RecipientDomains = strings.Join(s.RecipientDomains, "\n")
		f.RouteBy = "smarthosts"
		if s.UseMXRecord {
			f.RouteBy = "mx"
		}
		f.SmartHosts = strings.Join(s.SmartHosts, "\n")
		f.TLSSettings = string(s.TLSSettings)
		if f.TLSSettings == "" {
			f.TLSSettings = string(connector.TLSOpportunistic)
		}
		f.TLSDomain = s.TLSDomain
		f.ValidationRecipients = strings.Join(s.ValidationRecipients, "\n")
	}
	return f
}

// stepFields lists the spec fields a step shows, so a step reports only
// its own errors.
func stepFields(f web.WizardForm, step int) []string {
	inPartner := f.Inbound() && f.Partner()
	switch step {
	case stepName:
		return []string{"name", "comment", "connector_type"}
	case stepIdentify:
		switch {
		case inPartner && f.IdentifyBy == "ip":
			return []string{"identify_by", "sender_ip_addresses"}
		case inPartner:
			return []string{"identify_by", "sender_domains"}
		case f.Inbound():
			return []string{"sender_ip_addresses", "tls_sender_certificate_name", "sender_domains"}
		}
		return []string{"use", "recipient_domains", "is_transport_rule_scoped", "all_accepted_domains"}
	case stepSecurity:
		switch {
		case inPartner && f.IdentifyBy == "ip":
			return []string{"require_tls", "restrict_domains_to_certificate", "tls_sender_certificate_name", "restrict_domains_to_ip_addresses"}
		case inPartner:
			return []string{"require_tls", "restrict_domains_to_certificate", "tls_sender_certificate_name", "restrict_domains_to_ip_addresses", "sender_ip_addresses"}
		case f.Inbound():
			return []string{"require_tls", "restrict_domains_to_certificate", "restrict_domains_to_ip_addresses"}
		}
		return []string{"route_by", "smart_hosts", "use_mx_record"}
	case stepTLS:
		return []string{"tls_settings", "tls_domain", "validation_recipients"}
	}
	return nil
}

// fieldStep is the step that shows a field (for the review's links).
func fieldStep(f web.WizardForm, field string) int {
	for _, s := range steps(f) {
		for _, name := range stepFields(f, s.Number) {
			if name == field {
				return s.Number
			}
		}
	}
	if field == "from" || field == "to" || field == "scenario" {
		return stepScenario
	}
	return stepName
}

func reviewErrors(f web.WizardForm, errs web.Errors) []web.ReviewError {
	out := make([]web.ReviewError, 0, len(errs))
	labels := map[int]string{}
	for _, s := range steps(f) {
		labels[s.Number] = s.Label
	}
	for field, msg := range errs {
		step := fieldStep(f, field)
		out = append(out, web.ReviewError{Message: msg, Step: step, Label: labels[step]})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Step != out[j].Step {
			return out[i].Step < out[j].Step
		}
		return out[i].Message < out[j].Message
	})
	return out
}

// validateStep checks the fields of one step, using the connector model's
// own validation (the same the API and the store apply).
func validateStep(d *draft, step int) web.Errors {
	f := d.Form
	errs := web.Errors{}
	switch step {
	case stepScenario:
		if f.From == "" {
			errs["from"] = "choose where the mail comes from"
		}
		if f.To == "" {
			errs["to"] = "choose where the mail goes"
		}
		if len(errs) > 0 {
			return errs
		}
		valid := map[[2]string]bool{{"partner", "flowgate"}: true, {"org", "flowgate"}: true, {"flowgate", "partner"}: true, {"flowgate", "org"}: true}
		if !valid[[2]string{f.From, f.To}] {
			switch {
			case f.From == "flowgate" && f.To == "flowgate":
				errs["scenario"] = "mail from flowgate to flowgate needs no connector; choose a partner or your email server on one side"
			case f.From != "flowgate" && f.To != "flowgate":
				errs["scenario"] = "a connector handles mail that arrives at flowgate or leaves it: choose flowgate as From or as To"
			default:
				errs["scenario"] = "choose one of the four scenarios"
			}
			return errs
		}
		if d.editing() && string(directionOf(f)) != d.Direction {
			errs["scenario"] = "an existing connector's direction cannot change; keep " + directionWords(connector.Direction(d.Direction)) + ", or add a new connector for the other direction"
		}
		return errs
	case stepIdentify:
		if f.Inbound() && f.Partner() {
			switch {
			case f.IdentifyBy == "domain" && len(lines(f.SenderDomains)) == 0:
				errs["sender_domains"] = "enter at least one sender domain, like contosobank.com"
			case f.IdentifyBy == "ip" && len(lines(f.SenderIPs)) == 0:
				errs["sender_ip_addresses"] = "enter at least one IP address or range, like 203.0.113.0/24"
			case f.IdentifyBy != "domain" && f.IdentifyBy != "ip":
				errs["identify_by"] = "choose how to identify the partner"
			}
		}
		if !f.Inbound() && f.Use != "rule" && f.Use != "accepted" && f.Use != "domains" {
			errs["use"] = "choose when to use the connector"
		}
		if !f.Inbound() && f.Use == "domains" && len(lines(f.RecipientDomains)) == 0 {
			errs["recipient_domains"] = "enter at least one recipient domain, like fabrikam.com"
		}
	case stepSecurity:
		if !f.Inbound() && f.RouteBy != "mx" && f.RouteBy != "smarthosts" {
			errs["route_by"] = "choose how to route the mail"
		}
	case stepTLS:
		if f.TLSSettings == "" {
			errs["tls_settings"] = "choose how to connect"
		}
	}
	all := inWords(specFromForm(f).Normalize())
	for _, field := range stepFields(f, step) {
		if msg, ok := all[field]; ok {
			if _, already := errs[field]; !already {
				errs[field] = msg
			}
		}
	}
	return errs
}

func directionWords(d connector.Direction) string {
	if d == connector.Inbound {
		return "flowgate as To"
	}
	return "flowgate as From"
}
