// Package web holds the admin console's pages: templ components and the
// plain view structs they render. The handlers that fill them live in
// internal/console; this package knows nothing of the database.
package web

import (
	"fmt"
	"time"

	"github.com/a-h/templ"
)

// Page is what every page's layout needs.
type Page struct {
	Title   string
	Section string // nav item to highlight: connectors, rules, domains, audit, users
	User    *User  // nil on the sign-in and setup pages
	Flash   string // a one-line confirmation ("Connector saved")
	// FlashWarns: Flash reports a failure and is shown as a warning.
	FlashWarns bool
	Refresh    int // seconds: reload the page (a run in progress); 0: never
}

// CanEdit reports whether the signed-in user may change configuration.
func (p Page) CanEdit() bool { return p.User != nil && p.User.Role == "admin" }

// User is the signed-in user.
type User struct {
	ID    int64
	Email string
	Role  string
}

// Errors maps a field name to the message shown next to it.
type Errors map[string]string

// Has reports whether field has an error.
func (e Errors) Has(field string) bool { _, ok := e[field]; return ok }

// SignInForm is the sign-in and setup pages' form.
type SignInForm struct {
	Email  string
	Next   string
	Errors Errors
	Error  string // a form-level error ("wrong e-mail address or password")
}

// ConnectorRow is one line of the connectors list.
type ConnectorRow struct {
	ID                 int64
	Direction          string // inbound or outbound
	Name               string
	FromTo             string // "Partner organization → flowgate"
	Status             string
	Enabled            bool
	Revision           int
	ActiveRevision     int // 0: none
	LastValidation     string
	LastValidationHref string // the newest run's report, if any
	CarriesMail        string // "revision 1 carries mail" when an older revision is active
	// Newest says, apart from what carries mail, the state of the newest
	// revision when it is not simply the active one ("revision 2 failed
	// validation"); NewestFailed marks a failure, shown as a warning.
	Newest       string
	NewestFailed bool
	// Draft: no revision carries mail yet; "enabled" then only says
	// whether the connector turns on once a revision is activated.
	Draft bool
}

// Href is the connector's page.
func (c ConnectorRow) Href() string { return fmt.Sprintf("/connectors/%s/%d", c.Direction, c.ID) }

// ConnectorsPage is the connectors list.
type ConnectorsPage struct {
	Page
	Rows []ConnectorRow
}

// Prop is one labelled value on a detail page.
type Prop struct {
	Label string
	Value string
}

// RevisionRow is one revision in a connector's history.
type RevisionRow struct {
	Revision  int
	CreatedAt time.Time
	CreatedBy string
	Active    bool
	Validated bool
	Latest    bool
}

// DiffLine is one changed setting between two revisions.
type DiffLine struct {
	Field string
	Old   string
	New   string
}

// ConnectorPage is one connector: settings in plain words, revisions, diff.
type ConnectorPage struct {
	Page
	Row         ConnectorRow
	Summary     []string // the settings of the newest revision in plain words
	Props       []Prop
	ActiveNote  string // which revision carries mail, in words
	Revisions   []RevisionRow
	DiffA       int
	DiffB       int
	Diff        []DiffLine
	DiffShown   bool
	DiffMessage string

	CanValidate      bool             // validation runs in this process
	ActivateRevision int              // a revision that may be activated now; 0: none
	Validations      []ValidationView // newest first
}

// ConfirmPage asks before a destructive action.
type ConfirmPage struct {
	Page
	Heading  string
	Message  string
	Details  []string // what is about to go, one sentence each
	Warnings []string
	Action   string // form action (POST)
	Button   string
	Cancel   string // link back
}

// WizardForm is everything the connector wizard collects, as typed. It is
// kept server-side between steps.
type WizardForm struct {
	From string `json:"from"` // partner, org, flowgate
	To   string `json:"to"`   // flowgate, partner, org

	Name    string `json:"name"`
	Comment string `json:"comment"`
	Enabled bool   `json:"enabled"`

	// inbound
	IdentifyBy    string `json:"identify_by"` // partner: domain or ip
	SenderDomains string `json:"sender_domains"`
	SenderIPs     string `json:"sender_ips"`
	RequireTLS    bool   `json:"require_tls"`
	CertName      string `json:"cert_name"`
	RestrictCert  bool   `json:"restrict_cert"`
	RestrictIPs   bool   `json:"restrict_ips"`

	// outbound
	Use                  string `json:"use"` // rule, accepted, domains
	RecipientDomains     string `json:"recipient_domains"`
	RouteBy              string `json:"route_by"` // mx, smarthosts
	SmartHosts           string `json:"smart_hosts"`
	TLSSettings          string `json:"tls_settings"`
	TLSDomain            string `json:"tls_domain"`
	ValidationRecipients string `json:"validation_recipients"`
}

// Inbound reports whether the scenario ends at flowgate.
func (f WizardForm) Inbound() bool { return f.To == "flowgate" }

// Partner reports whether the other side is a partner organization.
func (f WizardForm) Partner() bool { return f.From == "partner" || f.To == "partner" }

// WizardStep is one step of the connector wizard as its pages show it.
type WizardStep struct {
	Number int    // in the step's URL
	Label  string // in the steps bar
	// View renders the step's fields inside the wizard's form. The
	// Validate step has a page of its own and no View.
	View func(WizardPage) templ.Component
}

// WizardPage is one step of the "+" wizard or the pencil edit.
type WizardPage struct {
	Page
	ID           string // the draft's id, in the URL
	Step         int
	Steps        []WizardStep
	Reached      int    // the furthest step reached
	EditName     string // when editing: the connector's current name
	EditRev      int    // when editing: the revision the edit started from
	EditActive   bool   // when editing: whether some revision carries mail
	Form         WizardForm
	Errors       Errors
	FormError    string
	Review       []string // the review step's plain-word summary
	ReviewErrors []ReviewError
	SaveAllowed  bool
	Newer        *NewerRevision // the save was refused: this revision was saved meanwhile
}

// NewerRevision is a revision someone saved after an edit started from an
// older one.
type NewerRevision struct {
	Revision int       `json:"revision"`
	By       string    `json:"by"`
	At       time.Time `json:"at"`
	Href     string    `json:"href"` // the connector's page, at its revisions
}

// NextRevision is the revision a save of the edit creates: the one after
// the revision it started from, or after the newer one that refused it.
func (w WizardPage) NextRevision() int {
	if w.Newer != nil && w.Newer.Revision > w.EditRev {
		return w.Newer.Revision + 1
	}
	return w.EditRev + 1
}

// StepHref is the URL of a step.
func (w WizardPage) StepHref(n int) string { return fmt.Sprintf("/wizard/%s/%d", w.ID, n) }

// First reports whether the page is the first of Steps, which has no Back.
func (w WizardPage) First() bool { return len(w.Steps) > 0 && w.Step == w.Steps[0].Number }

// Last reports whether the page is the last of Steps, the review, which
// has Save instead of Next.
func (w WizardPage) Last() bool { return len(w.Steps) > 0 && w.Step == w.Steps[len(w.Steps)-1].Number }

// DomainRow is an accepted domain.
type DomainRow struct {
	ID        int64
	Domain    string
	Type      string
	CreatedAt time.Time
}

// DomainsPage lists accepted domains with the add form.
type DomainsPage struct {
	Page
	Rows       []DomainRow
	FormDomain string
	FormType   string
	Errors     Errors
}

// Option is a choice in a select.
type Option struct {
	Value    string
	Label    string
	Selected bool
}

// UserRow is a console user.
type UserRow struct {
	ID        int64
	Email     string
	Role      string
	CreatedAt time.Time
	Self      bool
}

// TokenRow is an API token (never the token itself).
type TokenRow struct {
	ID         int64
	Name       string
	Prefix     string
	Role       string
	CreatedBy  string
	CreatedAt  time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

// UsersPage lists users and API tokens with their create forms.
type UsersPage struct {
	Page
	Users       []UserRow
	Tokens      []TokenRow
	UserEmail   string
	UserRole    string
	UserErrors  Errors
	TokenName   string
	TokenRole   string
	TokenErrors Errors
	NewToken    string // shown once, right after creation
	NewTokenFor string
}

// ErrorPage is a 403, 404 or 500 page.
type ErrorPage struct {
	Page
	Status  int
	Message string
}

// When formats a time for tables.
func When(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// ReviewError is an error the review step lists, with a link to the step
// that shows the field.
type ReviewError struct {
	Message string
	Step    int
	Label   string
}

// ValidationStep is one step of a validation run.
type ValidationStep struct {
	Name       string
	Status     string // passed, failed, skipped
	Detail     string
	DurationMS int64
}

// ValidationView is one validation run.
type ValidationView struct {
	ID         int64
	Href       string
	Revision   int
	Status     string // passed or failed
	StartedAt  time.Time
	FinishedAt time.Time
	Sender     string
	Recipients []string
	Steps      []ValidationStep
	Transcript string
	CreatedBy  string
}

// ValidatePage is the form that starts a validation run.
type ValidatePage struct {
	Page
	Row           ConnectorRow
	Revision      int
	Inbound       bool
	Recipients    string
	Sender        string
	DefaultSender string
	RcptHint      string
	Errors        Errors
	FormError     string
	Steps         []WizardStep // set when the wizard led here: its steps, with Validate last
	RuleScoped    bool         // an outbound connector only mail flow rules route to
}

// CurrentStep is the number of the wizard step this page is: Validate, the
// last of Steps. Only for a page the wizard led to, whose Steps are set.
func (v ValidatePage) CurrentStep() int { return v.Steps[len(v.Steps)-1].Number }

// Action is where the form posts; it keeps the wizard's steps bar.
func (v ValidatePage) Action() string {
	if len(v.Steps) > 0 {
		return v.Row.Href() + "/validate?wizard=1"
	}
	return v.Row.Href() + "/validate"
}

// Took says how long a run took.
func (v ValidationView) Took() string {
	d := v.FinishedAt.Sub(v.StartedAt)
	if d < time.Second {
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

// ValidationPage is one run's report.
type ValidationPage struct {
	Page
	Row         ConnectorRow
	V           ValidationView
	CanActivate bool // passed, the newest run of its revision, not active yet
	Active      bool // this revision carries mail
	Outdated    string
}

// ValidationRunningPage shows a run in progress; it reloads itself.
type ValidationRunningPage struct {
	Page
	Row      ConnectorRow
	Revision int
	Steps    []ValidationStep
}
