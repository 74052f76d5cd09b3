package connector_test

import "github.com/flowgate/flowgate/internal/connector"

// The connectors of the two seed documents, as an admin would enter them.
// Each function returns a fresh spec, so a test may mutate it.

// Seed 003, example 1: mail from contosobank.com must use TLS.
func partnerExample1() connector.InboundSpec {
	return connector.InboundSpec{
		Common:        connector.Common{Name: "ContosoBank requires TLS", ConnectorType: connector.Partner},
		SenderDomains: []string{"ContosoBank.com"},
		RequireTLS:    true,
	}
}

// Seed 003, example 2: as example 1, and the partner's server must present
// its certificate.
func partnerExample2() connector.InboundSpec {
	s := partnerExample1()
	s.Name = "ContosoBank requires TLS and certificate"
	s.TLSSenderCertificateName = "mail.contosobank.com"
	s.RestrictDomainsToCertificate = true
	return s
}

// Seed 003, example 3: mail from contosobank.com must come from its IP range.
func partnerExample3() connector.InboundSpec {
	return connector.InboundSpec{
		Common:                       connector.Common{Name: "ContosoBank IP range", ConnectorType: connector.Partner},
		SenderDomains:                []string{"contosobank.com"},
		SenderIPAddresses:            []string{"198.51.100.0/24"},
		RestrictDomainsToIPAddresses: true,
	}
}

// Seed 003, example 4: all Internet mail must come from one third-party
// service's address range.
func partnerExample4() connector.InboundSpec {
	return connector.InboundSpec{
		Common:                       connector.Common{Name: "Third-party filter only", ConnectorType: connector.Partner},
		SenderDomains:                []string{"*"},
		SenderIPAddresses:            []string{"203.0.113.10-203.0.113.20"},
		RestrictDomainsToIPAddresses: true,
	}
}

// Seed 003, example 5: the partner is identified by IP address and must use TLS.
func partnerExample5() connector.InboundSpec {
	return connector.InboundSpec{
		Common:            connector.Common{Name: "Partner by IP requires TLS", ConnectorType: connector.Partner},
		SenderIPAddresses: []string{"192.0.2.0/28"},
		RequireTLS:        true,
	}
}

// Seed 000, part 2: the organization's own server, identified by its
// certificate.
func onPremByCertificate() connector.InboundSpec {
	return connector.InboundSpec{
		Common:                   connector.Common{Name: "From my email server (certificate)", ConnectorType: connector.OnPremises},
		TLSSenderCertificateName: "mail.contoso.com",
		RequireTLS:               true,
	}
}

// Seed 000, part 2: the organization's own server, identified by IP address.
func onPremByIP() connector.InboundSpec {
	return connector.InboundSpec{
		Common:            connector.Common{Name: "From my email server (IP)", ConnectorType: connector.OnPremises},
		SenderIPAddresses: []string{"10.1.0.0/24"},
	}
}

// Seed 000, part 1: mail for all accepted domains goes to the
// organization's server through a smart host. It is also connector 1 of
// the precedence example.
func onPremAllAccepted() connector.OutboundSpec {
	return connector.OutboundSpec{
		Common:             connector.Common{Name: "Connector 1", ConnectorType: connector.OnPremises},
		AllAcceptedDomains: true,
		SmartHosts:         []string{"mail.contoso.com"},
	}
}

// Connector 2 of the precedence example: contoso.com only.
func onPremContoso() connector.OutboundSpec {
	return connector.OutboundSpec{
		Common:           connector.Common{Name: "Connector 2", ConnectorType: connector.OnPremises},
		RecipientDomains: []string{"Contoso.com"},
		SmartHosts:       []string{"mail2.contoso.com"},
	}
}

// Connector 3 of the precedence example: *.contoso.com.
func onPremWildcardContoso() connector.OutboundSpec {
	return connector.OutboundSpec{
		Common:           connector.Common{Name: "Connector 3", ConnectorType: connector.OnPremises},
		RecipientDomains: []string{"*.Contoso.com"},
		SmartHosts:       []string{"mail3.contoso.com"},
	}
}

// Seed 003, outbound: mail to the partner must use TLS with a certificate
// issued to the partner's domain.
func partnerOutbound() connector.OutboundSpec {
	return connector.OutboundSpec{
		Common:               connector.Common{Name: "To ContosoBank", ConnectorType: connector.Partner},
		RecipientDomains:     []string{"contosobank.com"},
		UseMXRecord:          true,
		TLSSettings:          connector.TLSDomainValidation,
		TLSDomain:            "*.contosobank.com",
		ValidationRecipients: []string{"postmaster@contosobank.com"},
	}
}
