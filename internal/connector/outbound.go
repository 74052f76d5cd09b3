package connector

// OutboundSpec is one revision of an outbound connector: where mail leaving
// flowgate goes and how it is protected on the way.
type OutboundSpec struct {
	Common
	IsTransportRuleScoped bool        `json:"is_transport_rule_scoped"`
	AllAcceptedDomains    bool        `json:"all_accepted_domains"`
	RecipientDomains      []string    `json:"recipient_domains"`
	UseMXRecord           bool        `json:"use_mx_record"`
	SmartHosts            []string    `json:"smart_hosts"`
	TLSSettings           TLSSettings `json:"tls_settings"`
	TLSDomain             string      `json:"tls_domain"`
	ValidationRecipients  []string    `json:"validation_recipients"`
}

func (s *OutboundSpec) Direction() Direction { return Outbound }
func (s *OutboundSpec) Base() *Common        { return &s.Common }

// ParsedOutbound is the typed form of an outbound spec.
type ParsedOutbound struct {
	RecipientDomains []DomainPattern
	SmartHosts       []SmartHost
	TLSDomain        *DomainPattern
}

// Parse returns the typed form of a spec that Normalize accepted.
func (s *OutboundSpec) Parse() ParsedOutbound {
	var p ParsedOutbound
	for _, d := range s.RecipientDomains {
		if v, err := ParseDomainPattern(d); err == nil {
			p.RecipientDomains = append(p.RecipientDomains, v)
		}
	}
	for _, h := range s.SmartHosts {
		if v, err := ParseSmartHost(h); err == nil {
			p.SmartHosts = append(p.SmartHosts, v)
		}
	}
	if s.TLSDomain != "" {
		if v, err := ParseCertificateName(s.TLSDomain); err == nil {
			p.TLSDomain = &v
		}
	}
	return p
}

// Normalize canonicalizes the spec and checks every field and the rules
// between fields.
func (s *OutboundSpec) Normalize() FieldErrors {
	errs := FieldErrors{}
	s.Common.normalize(errs)
	normalizeList(&s.RecipientDomains, "recipient_domains", errs, ParseDomainPattern, DomainPattern.String)
	normalizeList(&s.SmartHosts, "smart_hosts", errs, ParseSmartHost, SmartHost.String)
	normalizeList(&s.ValidationRecipients, "validation_recipients", errs, ParseAddress, Address.String)

	scopes := 0
	for _, on := range []bool{s.IsTransportRuleScoped, s.AllAcceptedDomains, len(s.RecipientDomains) > 0} {
		if on {
			scopes++
		}
	}
	if _, bad := errs["recipient_domains"]; !bad {
		switch {
		case scopes == 0:
			errs.add("recipient_domains", "choose when to use the connector: only through a mail flow rule (is_transport_rule_scoped), for all accepted domains (all_accepted_domains), or for these recipient_domains")
		case scopes > 1:
			errs.add("recipient_domains", "choose one of is_transport_rule_scoped, all_accepted_domains and recipient_domains")
		}
	}
	if s.AllAcceptedDomains && s.ConnectorType == Partner {
		errs.add("all_accepted_domains", "only an on_premises connector can carry mail for all accepted domains")
	} else if s.AllAcceptedDomains && s.UseMXRecord {
		errs.add("use_mx_record", "the MX records of your accepted domains point at flowgate itself; route mail for all accepted domains to your email server's smart hosts")
	}
	if _, bad := errs["smart_hosts"]; !bad {
		switch {
		case s.UseMXRecord && len(s.SmartHosts) > 0:
			errs.add("smart_hosts", "use the MX record or smart hosts, not both")
		case !s.UseMXRecord && len(s.SmartHosts) == 0:
			errs.add("smart_hosts", "enter at least one smart host, or turn on use_mx_record")
		}
	}
	switch s.TLSSettings {
	case "":
		s.TLSSettings = TLSOpportunistic
	case TLSOpportunistic, TLSEncryptionOnly, TLSCertificateValidation, TLSDomainValidation:
	default:
		errs.add("tls_settings", "%q is not a TLS setting; choose opportunistic, encryption_only, certificate_validation or domain_validation", s.TLSSettings)
	}
	if s.TLSDomain != "" {
		if p, err := ParseCertificateName(s.TLSDomain); err != nil {
			errs.add("tls_domain", "%s", err.Error())
		} else {
			s.TLSDomain = p.String()
		}
		if s.TLSSettings != TLSDomainValidation {
			errs.add("tls_domain", "tls_domain is only used with tls_settings domain_validation")
		}
	} else if s.TLSSettings == TLSDomainValidation {
		errs.add("tls_domain", "enter the domain the certificate must be issued to, like mail.contoso.com or *.contoso.com")
	}
	return errs
}
