package connector

// InboundSpec is one revision of an inbound connector: mail that arrives at
// flowgate from a partner or from the organization's own email server.
type InboundSpec struct {
	Common
	SenderDomains                []string `json:"sender_domains"`
	SenderIPAddresses            []string `json:"sender_ip_addresses"`
	RequireTLS                   bool     `json:"require_tls"`
	TLSSenderCertificateName     string   `json:"tls_sender_certificate_name"`
	RestrictDomainsToCertificate bool     `json:"restrict_domains_to_certificate"`
	RestrictDomainsToIPAddresses bool     `json:"restrict_domains_to_ip_addresses"`
}

func (s *InboundSpec) Direction() Direction { return Inbound }
func (s *InboundSpec) Base() *Common        { return &s.Common }

// Identification says how attribution finds an inbound connector.
type Identification string

const (
	ByDomain      Identification = "sender_domain"
	ByIP          Identification = "sender_ip"
	ByCertificate Identification = "certificate"
)

// Parsed is the typed form of an inbound spec, for the routing engine.
type ParsedInbound struct {
	SenderDomains   []DomainPattern
	SenderIPs       []IPSpec
	CertificateName *DomainPattern
}

// Parse returns the typed form of a spec that Normalize accepted.
func (s *InboundSpec) Parse() ParsedInbound {
	var p ParsedInbound
	for _, d := range s.SenderDomains {
		if v, err := ParseDomainPattern(d); err == nil {
			p.SenderDomains = append(p.SenderDomains, v)
		}
	}
	for _, d := range s.SenderIPAddresses {
		if v, err := ParseIPSpec(d); err == nil {
			p.SenderIPs = append(p.SenderIPs, v)
		}
	}
	if s.TLSSenderCertificateName != "" {
		if v, err := ParseCertificateName(s.TLSSenderCertificateName); err == nil {
			p.CertificateName = &v
		}
	}
	return p
}

// IdentifiedBy says how the connector is found for a message:
//   - on_premises: by certificate name and/or by IP address;
//   - partner with sender_domains: by the envelope sender's domain (its
//     sender_ip_addresses are then a restriction);
//   - partner without sender_domains: by the client's IP address.
func (s *InboundSpec) IdentifiedBy() []Identification {
	if s.ConnectorType == OnPremises {
		var out []Identification
		if s.TLSSenderCertificateName != "" {
			out = append(out, ByCertificate)
		}
		if len(s.SenderIPAddresses) > 0 {
			out = append(out, ByIP)
		}
		return out
	}
	if len(s.SenderDomains) > 0 {
		return []Identification{ByDomain}
	}
	return []Identification{ByIP}
}

// Normalize canonicalizes the spec and checks every field and the rules
// between fields.
func (s *InboundSpec) Normalize() FieldErrors {
	errs := FieldErrors{}
	s.Common.normalize(errs)
	normalizeList(&s.SenderDomains, "sender_domains", errs, ParseDomainPattern, DomainPattern.String)
	normalizeList(&s.SenderIPAddresses, "sender_ip_addresses", errs, ParseIPSpec, IPSpec.String)
	if s.TLSSenderCertificateName != "" {
		if p, err := ParseCertificateName(s.TLSSenderCertificateName); err != nil {
			errs.add("tls_sender_certificate_name", "%s", err.Error())
		} else {
			s.TLSSenderCertificateName = p.String()
		}
	}
	if _, bad := errs["sender_domains"]; bad {
		return errs
	}
	if _, bad := errs["sender_ip_addresses"]; bad {
		return errs
	}
	hasDomains, hasIPs := len(s.SenderDomains) > 0, len(s.SenderIPAddresses) > 0
	hasCert := s.TLSSenderCertificateName != ""
	switch s.ConnectorType {
	case OnPremises:
		if hasDomains {
			errs.add("sender_domains", "an on_premises connector identifies your email server by certificate name or IP address, not by sender domain; leave sender_domains empty")
		}
		if !hasIPs && !hasCert {
			errs.add("sender_ip_addresses", "enter your email server's IP addresses, or a certificate name in tls_sender_certificate_name")
		}
		if s.RestrictDomainsToIPAddresses {
			errs.add("restrict_domains_to_ip_addresses", "an on_premises connector is identified by its IP addresses already; this restriction is for partner connectors")
		}
		if s.RestrictDomainsToCertificate && !hasCert {
			errs.add("tls_sender_certificate_name", "enter the certificate name the restriction checks")
		}
	case Partner:
		if !hasDomains && !hasIPs {
			errs.add("sender_domains", "identify the partner by sender domain (sender_domains) or by IP address (sender_ip_addresses)")
		}
		if hasDomains && hasIPs && !s.RestrictDomainsToIPAddresses {
			errs.add("restrict_domains_to_ip_addresses", "a partner identified by sender domain uses sender_ip_addresses only as a restriction; turn on restrict_domains_to_ip_addresses or remove the addresses")
		}
		if s.RestrictDomainsToIPAddresses && !hasIPs {
			errs.add("sender_ip_addresses", "enter the IP addresses or ranges the partner sends from")
		}
		if s.RestrictDomainsToIPAddresses && !hasDomains {
			errs.add("restrict_domains_to_ip_addresses", "a partner identified by IP address is already limited to those addresses; this restriction needs sender_domains")
		}
		if hasCert && !s.RestrictDomainsToCertificate {
			errs.add("restrict_domains_to_certificate", "turn on restrict_domains_to_certificate to require the certificate name, or clear tls_sender_certificate_name")
		}
		if s.RestrictDomainsToCertificate && !hasCert {
			errs.add("tls_sender_certificate_name", "enter the certificate name the partner's server presents, like mail.contosobank.com")
		}
		if !s.RequireTLS && !s.RestrictDomainsToCertificate && !s.RestrictDomainsToIPAddresses {
			errs.add("require_tls", "a partner connector needs at least one security restriction: require TLS, a certificate name, or IP addresses")
		}
	}
	return errs
}
