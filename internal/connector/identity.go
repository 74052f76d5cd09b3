package connector

import "fmt"

// Identity is what finds a connector for a message. Two connectors of one
// direction must not share any part of it: the seeds warn that duplicate
// connectors for one partner break delivery.
type Identity struct {
	Direction          Direction
	Domains            []DomainPattern // partner sender domains, or outbound recipient domains
	IPs                []IPSpec        // addresses that identify an inbound connector
	CertificateName    *DomainPattern  // certificate name that identifies an on_premises connector
	AllAcceptedDomains bool            // outbound connector for all accepted domains
}

// IdentityOf returns the identity of a valid spec. IP addresses that only
// restrict a domain-identified partner are not part of its identity.
func IdentityOf(spec Spec) Identity {
	switch s := spec.(type) {
	case *InboundSpec:
		p := s.Parse()
		id := Identity{Direction: Inbound}
		for _, by := range s.IdentifiedBy() {
			switch by {
			case ByDomain:
				id.Domains = p.SenderDomains
			case ByIP:
				id.IPs = p.SenderIPs
			case ByCertificate:
				id.CertificateName = p.CertificateName
			}
		}
		return id
	case *OutboundSpec:
		return Identity{Direction: Outbound, Domains: s.Parse().RecipientDomains, AllAcceptedDomains: s.AllAcceptedDomains}
	}
	return Identity{}
}

// Clash is a key two connectors share: the field it belongs to, and a
// description of it.
type Clash struct{ Field, What string }

// Overlap finds the first key two identities of one direction share. It
// returns the field the key belongs to and a description of it, or two empty
// strings when they share nothing.
func Overlap(a, b Identity) (field, what string) {
	if c := Overlaps(a, b); len(c) > 0 {
		return c[0].Field, c[0].What
	}
	return "", ""
}

// Overlaps finds the keys two identities of one direction share, the first
// one of each field, in the order domains, IP addresses, certificate name,
// all accepted domains.
func Overlaps(a, b Identity) []Clash {
	if a.Direction != b.Direction {
		return nil
	}
	var out []Clash
	domainField := "sender_domains"
	if a.Direction == Outbound {
		domainField = "recipient_domains"
	}
domains:
	for _, x := range a.Domains {
		for _, y := range b.Domains {
			if x == y {
				out = append(out, Clash{domainField, fmt.Sprintf("domain %s", x)})
				break domains
			}
		}
	}
ips:
	for _, x := range a.IPs {
		for _, y := range b.IPs {
			if !x.Overlaps(y) {
				continue
			}
			what := fmt.Sprintf("IP address %s (it overlaps %s)", x, y)
			if x.String() == y.String() {
				what = fmt.Sprintf("IP address %s", x)
			}
			out = append(out, Clash{"sender_ip_addresses", what})
			break ips
		}
	}
	if a.CertificateName != nil && b.CertificateName != nil && *a.CertificateName == *b.CertificateName {
		out = append(out, Clash{"tls_sender_certificate_name", fmt.Sprintf("certificate name %s", a.CertificateName)})
	}
	if a.AllAcceptedDomains && b.AllAcceptedDomains {
		out = append(out, Clash{"all_accepted_domains", "all accepted domains"})
	}
	return out
}
