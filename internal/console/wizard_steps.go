package console

import (
	"maps"
	"net/url"
	"strings"

	"github.com/a-h/templ"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/web"
)

// wizardStep is one step of the connector wizard (SPEC section 4): one
// page, and everything that page owns. The flow in wizard.go and the page
// web.Wizard only walk a direction's list of steps, so a new field goes
// into the entry of the step that shows it, and a new step is a new entry
// placed in the lists of the directions that have it.
type wizardStep struct {
	number int    // its number in SPEC section 4, and in its URL
	label  string // in the steps bar and in the review's links to it

	// fields are the error keys the step shows next to its fields: the
	// connector model's errors on them are this step's to show, and the
	// review links an error on one of them to this step. nil: none.
	fields func(f web.WizardForm) []string

	// read copies the step's fields from the posted form into f. Fields of
	// other steps are left alone; an unticked checkbox is absent, so false.
	// nil: the step has no fields.
	read func(f *web.WizardForm, form url.Values)

	// check returns the errors on the step's own fields that the connector
	// model cannot tell, such as a choice not made. nil: none, or the
	// model's checks suffice.
	check func(d *draft) web.Errors

	// view renders the step's fields inside the wizard's form.
	view func(web.WizardPage) templ.Component
}

// scenarioStep asks where the mail comes from and goes to. The answer
// sets the direction, and so the steps that follow (see steps).
var scenarioStep = wizardStep{
	number: 1,
	label:  "Scenario",
	fields: func(web.WizardForm) []string { return []string{"from", "to", "scenario"} },
	read: func(f *web.WizardForm, form url.Values) {
		f.From, f.To = form.Get("from"), form.Get("to")
	},
	check: func(d *draft) web.Errors {
		f := d.Form
		errs := web.Errors{}
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
	},
	view: web.ScenarioStep,
}

// nameStep asks for the name, the description, and whether to turn the
// connector on once a revision is validated and activated.
var nameStep = wizardStep{
	number: 2,
	label:  "Name",
	fields: func(web.WizardForm) []string { return []string{"name", "comment", "connector_type"} },
	read: func(f *web.WizardForm, form url.Values) {
		f.Name, f.Comment, f.Enabled = form.Get("name"), form.Get("comment"), ticked(form, "enabled")
	},
	view: web.NameStep,
}

// identifyStep is inbound step 3: a partner is identified by sender
// domain or by IP address, your email server by certificate name or IP
// address.
var identifyStep = wizardStep{
	number: 3,
	label:  "Identify the sender",
	fields: func(f web.WizardForm) []string {
		switch {
		case f.Partner() && f.IdentifyBy == "ip":
			return []string{"identify_by", "sender_ip_addresses"}
		case f.Partner():
			return []string{"identify_by", "sender_domains"}
		}
		return []string{"sender_ip_addresses", "tls_sender_certificate_name", "sender_domains"}
	},
	read: func(f *web.WizardForm, form url.Values) {
		if f.Partner() {
			f.IdentifyBy, f.SenderDomains, f.SenderIPs = form.Get("identify_by"), form.Get("sender_domains"), form.Get("sender_ips")
			return
		}
		f.CertName, f.SenderIPs = form.Get("cert_name"), form.Get("sender_ips")
	},
	check: func(d *draft) web.Errors {
		f := d.Form
		switch {
		case !f.Partner():
			return nil // your email server: the connector model's checks suffice
		case f.IdentifyBy == "domain" && len(lines(f.SenderDomains)) == 0:
			return web.Errors{"sender_domains": "enter at least one sender domain, like contosobank.com"}
		case f.IdentifyBy == "ip" && len(lines(f.SenderIPs)) == 0:
			return web.Errors{"sender_ip_addresses": "enter at least one IP address or range, like 203.0.113.0/24"}
		case f.IdentifyBy != "domain" && f.IdentifyBy != "ip":
			return web.Errors{"identify_by": "choose how to identify the partner"}
		case f.IdentifyBy == "ip" && len(lines(f.SenderDomains)) > 0:
			return web.Errors{"sender_domains": unchosen("The sender's email address domain")}
		case f.IdentifyBy == "domain" && !f.RestrictIPs && len(lines(f.SenderIPs)) > 0:
			// With a domain, the addresses are the IP restriction of the
			// next step; typed here without it, they would do nothing.
			return web.Errors{"sender_ip_addresses": unchosen("The IP address of the sending server") +
				" (to accept these domains only from these addresses, tick the IP restriction on the next step)"}
		}
		return nil
	},
	view: web.IdentifyStep,
}

// restrictionsStep is inbound step 4. A partner identified by IP address
// is limited to those addresses already, so it has no IP restriction.
var restrictionsStep = wizardStep{
	number: 4,
	label:  "Security restrictions",
	fields: func(f web.WizardForm) []string {
		switch {
		case f.Partner() && f.IdentifyBy == "ip":
			return []string{"require_tls", "restrict_domains_to_certificate", "tls_sender_certificate_name", "restrict_domains_to_ip_addresses"}
		case f.Partner():
			return []string{"require_tls", "restrict_domains_to_certificate", "tls_sender_certificate_name", "restrict_domains_to_ip_addresses", "sender_ip_addresses"}
		}
		return []string{"require_tls", "restrict_domains_to_certificate", "restrict_domains_to_ip_addresses"}
	},
	read: func(f *web.WizardForm, form url.Values) {
		f.RequireTLS, f.RestrictCert = ticked(form, "require_tls"), ticked(form, "restrict_cert")
		if !f.Partner() {
			return
		}
		f.CertName = form.Get("cert_name")
		if f.IdentifyBy != "ip" {
			f.RestrictIPs, f.SenderIPs = ticked(form, "restrict_ips"), form.Get("sender_ips")
		}
	},
	check: func(d *draft) web.Errors {
		f := d.Form
		errs := web.Errors{}
		if !f.Partner() {
			return nil // your email server's certificate name is on the identify step
		}
		if !f.RestrictCert && strings.TrimSpace(f.CertName) != "" {
			errs["tls_sender_certificate_name"] = unchosen("And require that the subject name on the certificate the partner uses matches this name")
		}
		if f.IdentifyBy != "ip" && !f.RestrictIPs && len(lines(f.SenderIPs)) > 0 {
			errs["sender_ip_addresses"] = unchosen("Reject email messages if they aren't sent from within these IP address ranges")
		}
		return errs
	},
	view: web.RestrictionsStep,
}

// whenToUseStep is outbound step 3: through a mail flow rule, for all
// accepted domains, or for these recipient domains.
var whenToUseStep = wizardStep{
	number: 3,
	label:  "When to use",
	fields: func(web.WizardForm) []string {
		return []string{"use", "recipient_domains", "is_transport_rule_scoped", "all_accepted_domains"}
	},
	read: func(f *web.WizardForm, form url.Values) {
		f.Use, f.RecipientDomains = form.Get("use"), form.Get("recipient_domains")
	},
	check: func(d *draft) web.Errors {
		f := d.Form
		switch {
		case f.Use != "rule" && f.Use != "accepted" && f.Use != "domains":
			return web.Errors{"use": "choose when to use the connector"}
		case f.Use == "domains" && len(lines(f.RecipientDomains)) == 0:
			return web.Errors{"recipient_domains": "enter at least one recipient domain, like fabrikam.com"}
		case f.Use != "domains" && len(lines(f.RecipientDomains)) > 0:
			return web.Errors{"recipient_domains": unchosen("Only when email messages are sent to these domains")}
		}
		return nil
	},
	view: web.WhenToUseStep,
}

// routingStep is outbound step 4: the MX record or smart hosts.
var routingStep = wizardStep{
	number: 4,
	label:  "Routing",
	fields: func(web.WizardForm) []string { return []string{"route_by", "smart_hosts", "use_mx_record"} },
	read: func(f *web.WizardForm, form url.Values) {
		f.RouteBy, f.SmartHosts = form.Get("route_by"), form.Get("smart_hosts")
		if f.RouteBy == "" && len(lines(f.SmartHosts)) > 0 {
			// Smart hosts typed with no choice made: that is the choice.
			f.RouteBy = "smarthosts"
		}
	},
	check: func(d *draft) web.Errors {
		f := d.Form
		switch {
		case f.RouteBy != "mx" && f.RouteBy != "smarthosts":
			return web.Errors{"route_by": "choose how to route the mail"}
		case f.RouteBy == "mx" && len(lines(f.SmartHosts)) > 0:
			return web.Errors{"smart_hosts": unchosen("Route email through these smart hosts")}
		}
		return nil
	},
	view: web.RoutingStep,
}

// tlsStep is outbound step 5: the TLS settings, and the recipients of
// Validate's test message.
var tlsStep = wizardStep{
	number: 5,
	label:  "TLS",
	fields: func(web.WizardForm) []string { return []string{"tls_settings", "tls_domain", "validation_recipients"} },
	read: func(f *web.WizardForm, form url.Values) {
		f.TLSSettings, f.TLSDomain, f.ValidationRecipients = form.Get("tls_settings"), form.Get("tls_domain"), form.Get("validation_recipients")
	},
	check: func(d *draft) web.Errors {
		if d.Form.TLSSettings == "" {
			return web.Errors{"tls_settings": "choose how to connect"}
		}
		return nil
	},
	view: web.TLSStep,
}

// reviewStep shows the whole connector and saves it. It checks the whole
// connector rather than fields of its own, so the flow fills its page
// (fillReview) and handles its Save.
var reviewStep = wizardStep{
	number: 6,
	label:  "Review",
	view:   web.ReviewStep,
}

// validateStep is the wizard's last step. It has a page of its own (see
// validate.go), where the wizard's Save leads; the wizard's lists end at
// the review.
var validateStep = wizardStep{
	number: 7,
	label:  "Validate",
}

// inboundSteps are the steps of a connector for mail arriving at flowgate.
var inboundSteps = []wizardStep{scenarioStep, nameStep, identifyStep, restrictionsStep, reviewStep}

// outboundSteps are the steps of a connector for mail leaving flowgate.
var outboundSteps = []wizardStep{scenarioStep, nameStep, whenToUseStep, routingStep, tlsStep, reviewStep}

// undecidedSteps are the steps while the scenario has flowgate on neither
// side (a new wizard, or a scenario not valid): the step numbers either
// direction may have, with labels that fit both. directionOf counts such a
// scenario as outbound, so behind those labels are the outbound steps.
var undecidedSteps = []wizardStep{
	scenarioStep,
	nameStep,
	whenToUseStep.labelled("Identify or when to use"),
	routingStep.labelled("Restrictions or routing"),
	tlsStep,
	reviewStep,
}

// labelled returns the step under another label.
func (s wizardStep) labelled(label string) wizardStep {
	s.label = label
	return s
}

// steps returns the steps of the scenario chosen so far.
func steps(f web.WizardForm) []wizardStep {
	switch {
	case f.To == "flowgate":
		return inboundSteps
	case f.From == "flowgate":
		return outboundSteps
	}
	return undecidedSteps
}

// stepNumbered returns the step numbered n in list.
func stepNumbered(list []wizardStep, n int) (wizardStep, bool) {
	for _, s := range list {
		if s.number == n {
			return s, true
		}
	}
	return wizardStep{}, false
}

// neighbour returns the number of the step after (dir=+1) or before
// (dir=-1) step n in list; the first and the last step have none, so stay.
func neighbour(list []wizardStep, n, dir int) int {
	for i, s := range list {
		if s.number == n {
			j := min(max(i+dir, 0), len(list)-1)
			return list[j].number
		}
	}
	return list[0].number
}

// page is the step as the wizard's pages show it.
func (s wizardStep) page() web.WizardStep {
	return web.WizardStep{Number: s.number, Label: s.label, View: s.view}
}

// pageSteps is list as the wizard's pages show it.
func pageSteps(list []wizardStep) []web.WizardStep {
	out := make([]web.WizardStep, len(list))
	for i, s := range list {
		out[i] = s.page()
	}
	return out
}

// shownFields returns the error keys the step shows for the form f.
func (s wizardStep) shownFields(f web.WizardForm) []string {
	if s.fields == nil {
		return nil
	}
	return s.fields(f)
}

// fieldErrors checks the step's fields: its own check first, then the
// connector model's validation (the same the API and the store apply) of
// the fields it shows.
func (s wizardStep) fieldErrors(d *draft) web.Errors {
	errs := web.Errors{}
	if s.check != nil {
		maps.Copy(errs, s.check(d))
	}
	model := inWords(specFromForm(d.Form).Normalize())
	for _, field := range s.shownFields(d.Form) {
		if msg, ok := model[field]; ok && !errs.Has(field) {
			errs[field] = msg
		}
	}
	return errs
}

// unchosen is the error on a value typed under a choice that is not the
// one made, which would otherwise be dropped without a word: choice is the
// label of the choice that uses it.
func unchosen(choice string) string {
	return "this is used only with “" + choice + "”: choose that, or clear the box"
}

// applyDefaults preselects the choices of the steps the draft has not
// reached yet, for its scenario: a partner's mail is routed by MX record
// and must arrive over TLS (the reason to have a partner connector at
// all, in the seeds' words); mail to your own servers goes through smart
// hosts. Once a step has been reached, what it shows is the admin's.
func applyDefaults(d *draft) {
	f := &d.Form
	if d.Reached >= routingStep.number { // restrictionsStep has the same number
		return
	}
	if f.Inbound() {
		f.RequireTLS = f.Partner()
		return
	}
	f.RouteBy = "smarthosts"
	if f.Partner() {
		f.RouteBy = "mx"
	}
}

// ticked reports whether the checkbox name was ticked.
func ticked(form url.Values, name string) bool { return form.Get(name) == "on" }
