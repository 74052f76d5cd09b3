package console

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/flowgate/flowgate/internal/connector"
)

// fromTo is the direction and type in the words of the wizard's scenario.
func fromTo(spec connector.Spec) string {
	partner := spec.Base().ConnectorType == connector.Partner
	switch {
	case spec.Direction() == connector.Inbound && partner:
		return "Partner organization → flowgate"
	case spec.Direction() == connector.Inbound:
		return "Your organization's email server → flowgate"
	case partner:
		return "flowgate → Partner organization"
	}
	return "flowgate → Your organization's email server"
}

// list joins entries as "a, b and c".
func list(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

func orNone(s string) string {
	if strings.TrimSpace(s) == "" {
		return "(none)"
	}
	return s
}

// describe says what a connector revision does, one plain sentence per
// setting, as the review step and the connector page show it. revision is
// the revision described and active the one that carries mail (nil: none,
// as for a connector being created).
func describe(spec connector.Spec, enabled bool, revision int, active *int) []string {
	b := spec.Base()
	out := []string{fmt.Sprintf("%s: %s.", orNone(b.Name), fromTo(spec))}
	if b.Comment != "" {
		out = append(out, "Description: "+b.Comment)
	}
	switch s := spec.(type) {
	case *connector.InboundSpec:
		out = append(out, describeInbound(s)...)
	case *connector.OutboundSpec:
		out = append(out, describeOutbound(s)...)
	}
	switch {
	case enabled && active == nil:
		out = append(out, "Turned on: it carries mail as soon as a validated revision is activated.")
	case enabled && *active == revision:
		out = append(out, "Turned on: this revision carries mail.")
	case enabled:
		out = append(out, fmt.Sprintf("Turned on: revision %d carries mail until this one is validated and activated.", *active))
	default:
		out = append(out, "Turned off: it carries no mail until you turn it on.")
	}
	return out
}

func describeInbound(s *connector.InboundSpec) []string {
	var out []string
	if s.ConnectorType == connector.OnPremises {
		var by []string
		if s.TLSSenderCertificateName != "" {
			by = append(by, "the TLS certificate name "+s.TLSSenderCertificateName)
		}
		if len(s.SenderIPAddresses) > 0 {
			by = append(by, "the IP addresses "+list(s.SenderIPAddresses))
		}
		if len(by) == 0 {
			by = append(by, "(nothing yet: enter a certificate name or IP addresses)")
		}
		out = append(out, "Recognize your email server by "+strings.Join(by, " or by ")+".")
		out = append(out, "Mail from your email server may be relayed to any recipient, Internet included, when its sender's domain is one of your accepted domains.")
		if s.RequireTLS {
			out = append(out, "Reject mail from your email server that is not sent over TLS.")
		}
		if s.RestrictDomainsToCertificate {
			out = append(out, fmt.Sprintf("Reject mail from your email server unless it presents a trusted certificate for %s.", orNone(s.TLSSenderCertificateName)))
		}
		return out
	}
	who := "the partner"
	if len(s.SenderDomains) > 0 {
		who = list(s.SenderDomains)
		out = append(out, fmt.Sprintf("Apply to mail arriving at flowgate from senders in %s.", who))
	} else {
		who = "these addresses"
		out = append(out, fmt.Sprintf("Apply to mail arriving at flowgate from the IP addresses %s.", orNone(list(s.SenderIPAddresses))))
	}
	if s.RequireTLS {
		out = append(out, fmt.Sprintf("Reject mail from %s that is not sent over TLS.", who))
	}
	if s.RestrictDomainsToCertificate {
		out = append(out, fmt.Sprintf("Reject mail from %s unless the sending server presents a trusted certificate for %s.", who, orNone(s.TLSSenderCertificateName)))
	}
	if s.RestrictDomainsToIPAddresses {
		out = append(out, fmt.Sprintf("Reject mail from %s unless it comes from %s.", who, orNone(list(s.SenderIPAddresses))))
	}
	if !s.RequireTLS && !s.RestrictDomainsToCertificate && !s.RestrictDomainsToIPAddresses {
		out = append(out, "No security restriction is set yet.")
	}
	return out
}

func describeOutbound(s *connector.OutboundSpec) []string {
	var out []string
	switch {
	case s.IsTransportRuleScoped:
		out = append(out, "Use it only when a mail flow rule routes a message to it.")
	case s.AllAcceptedDomains:
		out = append(out, "Use it for mail to all of your accepted domains.")
	case len(s.RecipientDomains) > 0:
		out = append(out, fmt.Sprintf("Use it for mail to %s.", list(s.RecipientDomains)))
	default:
		out = append(out, "When to use it is not chosen yet.")
	}
	switch {
	case s.UseMXRecord:
		out = append(out, "Deliver to the mail servers in the MX records of each recipient's domain.")
	case len(s.SmartHosts) == 1:
		out = append(out, fmt.Sprintf("Deliver to the smart host %s.", s.SmartHosts[0]))
	case len(s.SmartHosts) > 1:
		out = append(out, fmt.Sprintf("Deliver to the smart host %s; if it fails, try %s, in that order.", s.SmartHosts[0], list(s.SmartHosts[1:])))
	default:
		out = append(out, "How to route is not chosen yet.")
	}
	switch s.TLSSettings {
	case connector.TLSEncryptionOnly:
		out = append(out, "Always use TLS; any certificate is accepted. Mail waits in the queue if the server offers no TLS.")
	case connector.TLSCertificateValidation:
		out = append(out, "Always use TLS, and only with a certificate issued by a trusted certificate authority; otherwise mail waits in the queue.")
	case connector.TLSDomainValidation:
		out = append(out, fmt.Sprintf("Always use TLS, and only with a trusted certificate issued to %s; otherwise mail waits in the queue.", orNone(s.TLSDomain)))
	default:
		out = append(out, "Use TLS when the receiving server offers it; otherwise send unencrypted.")
	}
	if len(s.ValidationRecipients) > 0 {
		out = append(out, fmt.Sprintf("Validate sends its test message to %s.", list(s.ValidationRecipients)))
	} else {
		out = append(out, "No test message recipients yet; Validate asks for them.")
	}
	return out
}

// fieldLabels name the spec's fields in the diff.
var fieldLabels = map[string]string{
	"name": "Name", "comment": "Description", "connector_type": "Connector type",
	"sender_domains": "Sender domains", "sender_ip_addresses": "Sender IP addresses",
	"require_tls": "Require TLS", "tls_sender_certificate_name": "Certificate name",
	"restrict_domains_to_certificate": "Require the certificate name", "restrict_domains_to_ip_addresses": "Require the IP addresses",
	"is_transport_rule_scoped": "Only through mail flow rules", "all_accepted_domains": "All accepted domains",
	"recipient_domains": "Recipient domains", "use_mx_record": "Use MX records", "smart_hosts": "Smart hosts",
	"tls_settings": "TLS settings", "tls_domain": "TLS certificate domain", "validation_recipients": "Test message recipients",
}

// fieldOrder keeps the diff in the wizard's order.
var fieldOrder = []string{
	"name", "comment", "connector_type", "sender_domains", "sender_ip_addresses", "tls_sender_certificate_name",
	"require_tls", "restrict_domains_to_certificate", "restrict_domains_to_ip_addresses",
	"is_transport_rule_scoped", "all_accepted_domains", "recipient_domains", "use_mx_record", "smart_hosts",
	"tls_settings", "tls_domain", "validation_recipients",
}

func specFields(spec connector.Spec) map[string]any {
	m := map[string]any{}
	b, _ := json.Marshal(spec)
	_ = json.Unmarshal(b, &m)
	return m
}

func showValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "(none)"
	case bool:
		if x {
			return "yes"
		}
		return "no"
	case string:
		return orNone(x)
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			parts = append(parts, fmt.Sprint(e))
		}
		return orNone(strings.Join(parts, ", "))
	}
	return fmt.Sprint(v)
}

// diffLine is one changed setting.
type diffLine struct{ Field, Old, New string }

// diffSpecs lists the settings that differ between two revisions.
func diffSpecs(a, b connector.Spec) []diffLine {
	ma, mb := specFields(a), specFields(b)
	keys := map[string]bool{}
	for k := range ma {
		keys[k] = true
	}
	for k := range mb {
		keys[k] = true
	}
	order := append([]string(nil), fieldOrder...)
	var extra []string
	for k := range keys {
		if _, known := fieldLabels[k]; !known {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	order = append(order, extra...)
	var out []diffLine
	for _, k := range order {
		if !keys[k] {
			continue
		}
		oa, ob := showValue(ma[k]), showValue(mb[k])
		if oa == ob {
			continue
		}
		label := fieldLabels[k]
		if label == "" {
			label = k
		}
		out = append(out, diffLine{Field: label, Old: oa, New: ob})
	}
	return out
}

// who shows an audit actor ("user:a@b", "token:ci", "system:startup") in
// words.
func who(actor string) string {
	kind, name, ok := strings.Cut(actor, ":")
	if !ok {
		return actor
	}
	switch kind {
	case "user":
		return name
	case "token":
		return "API token " + name
	case "system":
		return "flowgate (" + name + ")"
	}
	return actor
}

// consoleWords rewrites the connector model's messages, which name the
// API's fields, in the words of the console's forms.
var consoleWords = strings.NewReplacer(
	"tls_domain is only used with tls_settings domain_validation", "a certificate domain is only used with the last choice (a trusted certificate matching a domain); clear it, or choose that",
	", or a certificate name in tls_sender_certificate_name", ", or its certificate name",
	"tls_sender_certificate_name", "the certificate name",
	"restrict_domains_to_ip_addresses", "the IP address restriction",
	"restrict_domains_to_certificate", "the certificate restriction",
	"sender_ip_addresses", "the IP addresses",
	"sender_domains", "the sender domains",
	" (is_transport_rule_scoped)", "",
	" (all_accepted_domains)", "",
	"these recipient_domains", "these recipient domains",
	"recipient_domains", "recipient domains",
	"use_mx_record", "the MX record",
	"an on_premises connector", "a connector for your email server",
	"on_premises", "your-email-server",
)

// inWords rewrites every message of errs for the console.
func inWords(errs map[string]string) map[string]string {
	for k, v := range errs {
		errs[k] = consoleWords.Replace(v)
	}
	return errs
}
