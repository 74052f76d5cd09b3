package console

import (
	"strings"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/web"
)

// directionOf is the scenario's direction: inbound when the mail goes to
// flowgate, outbound otherwise.
func directionOf(f web.WizardForm) connector.Direction {
	if f.To == "flowgate" {
		return connector.Inbound
	}
	return connector.Outbound
}

// typeOf is the connector type of the scenario's other side.
func typeOf(f web.WizardForm) connector.Type {
	if f.Partner() {
		return connector.Partner
	}
	return connector.OnPremises
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

// directionWords names the scenario side that keeps direction d.
func directionWords(d connector.Direction) string {
	if d == connector.Inbound {
		return "flowgate as To"
	}
	return "flowgate as From"
}
