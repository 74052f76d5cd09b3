package connector

import "fmt"

// DomainType is an accepted domain's domain_type.
type DomainType string

const (
	Authoritative DomainType = "authoritative"
	InternalRelay DomainType = "internal_relay"
)

// AcceptedDomain is a domain the organization receives mail for.
type AcceptedDomain struct {
	Domain string
	Type   DomainType
	// AllowExternalSenders lets mail whose envelope sender is in the
	// domain arrive from anyone (SPEC 3.3); by default only through an
	// on_premises connector or a partner connector that identified the
	// client by IP or certificate.
	AllowExternalSenders bool
}

// ValidateAcceptedDomain canonicalizes the domain and type, returning field
// errors keyed "domain" and "domain_type".
func ValidateAcceptedDomain(domain string, typ DomainType) (string, DomainType, FieldErrors) {
	errs := FieldErrors{}
	d, err := NormalizeDomain(domain)
	if err != nil {
		errs["domain"] = err.Error()
	}
	switch typ {
	case "":
		typ = Authoritative
	case Authoritative, InternalRelay:
	default:
		errs["domain_type"] = fmt.Sprintf("%q is not a domain type; choose authoritative or internal_relay", typ)
	}
	return d, typ, errs
}
