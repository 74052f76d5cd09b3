package routing

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/flowgate/flowgate/internal/connector"
)

// Client holds what the relay knows about the sending side of a session.
type Client struct {
	IP  netip.Addr
	TLS bool // the session is encrypted (STARTTLS done)
	// CertNames are the subject CN and DNS SANs of a client certificate that
	// chained to a trusted CA; empty when none was presented or it did not
	// verify.
	CertNames []string
}

// Attribution is the inbound connector that applies to a message, and why.
type Attribution struct {
	Connector *Inbound // nil when no connector applies
	By        connector.Identification
	Matched   string // the certificate name, IP entry or domain pattern that matched
	Reason    string
}

// OnPremises reports whether the message came from the organization's own
// email server.
func (a Attribution) OnPremises() bool {
	return a.Connector != nil && a.Connector.Spec.ConnectorType == connector.OnPremises
}

// AttributeClient finds the inbound connector known before MAIL FROM:
// an on_premises connector by client certificate name or client IP, then a
// partner connector by client IP (SPEC 3.2, first two steps).
func (ix *Index) AttributeClient(c Client) (Attribution, bool) {
	if a, ok := ix.onPremByCert(c.CertNames); ok {
		return a, true
	}
	ip := addrOf(c.IP)
	if !ip.IsValid() {
		return Attribution{}, false
	}
	if pfx, conn, ok := ix.onPremIP.LookupPrefixLPM(netip.PrefixFrom(ip, ip.BitLen())); ok {
		return Attribution{Connector: conn, By: connector.ByIP, Matched: pfx.String(),
			Reason: fmt.Sprintf("on_premises connector %q matched by client IP %s (in %s)", conn.Name, ip, pfx)}, true
	}
	if pfx, conn, ok := ix.partnerIP.LookupPrefixLPM(netip.PrefixFrom(ip, ip.BitLen())); ok {
		return Attribution{Connector: conn, By: connector.ByIP, Matched: pfx.String(),
			Reason: fmt.Sprintf("partner connector %q matched by client IP %s (in %s)", conn.Name, ip, pfx)}, true
	}
	return Attribution{}, false
}

// Attribute finds the inbound connector for a message, in the order of SPEC
// 3.2: an on_premises connector by client certificate name or client IP; a
// partner connector by client IP; a partner connector by sender domain
// (exact, most specific wildcard, then "*"). senderDomain is the envelope
// sender's domain; "" is the null sender (MAIL FROM:<>), which only "*"
// matches: "every sender" includes bounces.
func (ix *Index) Attribute(c Client, senderDomain string) Attribution {
	if a, ok := ix.AttributeClient(c); ok {
		return a
	}
	d := CanonicalDomain(senderDomain)
	var buf [8]match[*Inbound]
	var ms []match[*Inbound]
	if d == "" {
		if ix.partnerDomain.hasAny {
			ms = append(buf[:0], match[*Inbound]{connector.DomainPattern{Kind: connector.Any}, ix.partnerDomain.any})
		}
	} else {
		ms = ix.partnerDomain.matches(d, buf[:0])
	}
	sender := d
	if sender == "" {
		sender = "<> (null sender)"
	}
	if len(ms) == 0 {
		return Attribution{Reason: fmt.Sprintf("no inbound connector matches client IP %s or sender domain %s", addrOf(c.IP), sender)}
	}
	w := ms[0]
	return Attribution{Connector: w.value, By: connector.ByDomain, Matched: w.pattern.String(),
		Reason: fmt.Sprintf("sender %s%s: partner connector %q", describePattern(w.pattern, sender), beats(ms[1:]), w.value.Name)}
}

func (ix *Index) onPremByCert(names []string) (Attribution, bool) {
	if len(names) == 0 {
		return Attribution{}, false
	}
	found := func(conn *Inbound, name string, how string) (Attribution, bool) {
		return Attribution{Connector: conn, By: connector.ByCertificate, Matched: conn.Spec.TLSSenderCertificateName,
			Reason: fmt.Sprintf("on_premises connector %q matched by client certificate name %s (%s)", conn.Name, name, how)}, true
	}
	// Exact names first, across all names on the certificate.
	for _, raw := range names {
		n := CanonicalDomain(raw)
		if conn, ok := ix.onPremCert.exact[n]; ok && !strings.HasPrefix(n, "*.") {
			return found(conn, n, "exact match")
		}
	}
	for _, raw := range names {
		n := CanonicalDomain(raw)
		if rest, ok := strings.CutPrefix(n, "*."); ok {
			// A wildcard certificate: equal to a wildcard connector name, or
			// covering an exact name one label below (RFC 6125).
			if conn, ok := ix.onPremCert.wildcard[rest]; ok {
				return found(conn, n, "same wildcard")
			}
			if conns := ix.onPremByParent[rest]; len(conns) > 0 {
				return found(conns[0], n, "the certificate's wildcard covers "+conns[0].Spec.TLSSenderCertificateName)
			}
			continue
		}
		var buf [8]match[*Inbound]
		for _, m := range ix.onPremCert.matches(n, buf[:0]) {
			if m.pattern.Kind == connector.Wildcard {
				return found(m.value, n, "wildcard "+m.pattern.String())
			}
		}
	}
	return Attribution{}, false
}

// Violation is a failed security restriction of an inbound connector.
type Violation struct {
	Restriction string // "tls", "certificate" or "ip"
	Reply       string // safe text for the SMTP reply
	Detail      string // for the trace: names the connector
}

// Check applies the attributed connector's security restrictions to the
// client. It returns nil when they hold or no connector applies.
func (a Attribution) Check(c Client) *Violation {
	conn := a.Connector
	if conn == nil {
		return nil
	}
	s := &conn.Spec
	if (s.RequireTLS || s.RestrictDomainsToCertificate || a.By == connector.ByCertificate) && !c.TLS {
		return &Violation{Restriction: "tls",
			Reply:  "TLS required: this sender must use STARTTLS before sending mail",
			Detail: fmt.Sprintf("connector %q requires TLS; the session is not encrypted", conn.Name)}
	}
	if s.RestrictDomainsToCertificate && s.TLSSenderCertificateName != "" && a.By != connector.ByCertificate {
		want := conn.parsed.CertificateName
		if want == nil || !certMatches(*want, c.CertNames) {
			got := "no trusted client certificate"
			if len(c.CertNames) > 0 {
				got = "a certificate for " + strings.Join(c.CertNames, ", ")
			}
			return &Violation{Restriction: "certificate",
				Reply:  "certificate name mismatch: this sender must present the agreed TLS client certificate",
				Detail: fmt.Sprintf("connector %q requires a client certificate for %s; the client presented %s", conn.Name, s.TLSSenderCertificateName, got)}
		}
	}
	if s.RestrictDomainsToIPAddresses && a.By == connector.ByDomain {
		ip := addrOf(c.IP)
		ok := false
		for _, r := range conn.parsed.SenderIPs {
			if r.Contains(ip) {
				ok = true
				break
			}
		}
		if !ok {
			return &Violation{Restriction: "ip",
				Reply:  "IP address not allowed: this sender must send from its agreed IP address range",
				Detail: fmt.Sprintf("connector %q accepts mail for %s only from %s; the client is %s", conn.Name, a.Matched, strings.Join(s.SenderIPAddresses, ", "), ip)}
		}
	}
	return nil
}

// certMatches reports whether one of the presented names satisfies the
// connector's certificate name: equal, under the connector's wildcard, or a
// certificate wildcard covering the connector's exact name by one label.
func certMatches(want connector.DomainPattern, names []string) bool {
	for _, raw := range names {
		n := CanonicalDomain(raw)
		if rest, ok := strings.CutPrefix(n, "*."); ok {
			if want.Kind == connector.Wildcard && want.Domain == rest {
				return true
			}
			if want.Kind == connector.Exact {
				if i := strings.IndexByte(want.Domain, '.'); i >= 0 && want.Domain[i+1:] == rest {
					return true
				}
			}
			continue
		}
		if want.Matches(n) {
			return true
		}
	}
	return false
}

// CheckOwnDomain applies "our own domains are not for strangers" (SPEC
// 3.3): a message whose envelope sender is in an accepted domain is
// accepted only when it came through an on_premises connector, or a partner
// connector that identified the client by IP or certificate (matched by
// client IP, or matched by sender domain with its IP or certificate
// restriction, which Check has then verified), unless the domain allows
// external senders. It returns nil when the message may go on. The null
// sender ("") is no domain of ours.
func (ix *Index) CheckOwnDomain(a Attribution, senderDomain string) *Violation {
	if senderDomain == "" {
		return nil
	}
	d, ok := ix.accepted[CanonicalDomain(senderDomain)]
	if !ok || d.AllowExternalSenders || a.OnPremises() {
		return nil
	}
	if c := a.Connector; c != nil {
		if a.By == connector.ByIP || a.By == connector.ByCertificate ||
			(a.By == connector.ByDomain && (c.Spec.RestrictDomainsToCertificate || c.Spec.RestrictDomainsToIPAddresses)) {
			return nil
		}
	}
	how := "no connector identified the client by IP address or certificate"
	if c := a.Connector; c != nil {
		how = fmt.Sprintf("partner connector %q matched by sender domain only, without an IP or certificate restriction", c.Name)
	}
	return &Violation{Restriction: "own_domain",
		Reply:  fmt.Sprintf("%s is one of our domains; mail from it must come through our own servers or a partner connector that identifies the sender", d.Domain),
		Detail: fmt.Sprintf("sender domain %s is an accepted domain that does not allow external senders; %s", d.Domain, how)}
}

// RelayDecision says whether a recipient may be accepted.
type RelayDecision struct {
	Allowed bool
	Reason  string
}

// AuthorizeRecipient applies SPEC 3.3. A recipient is accepted when its
// domain is an accepted domain, or when the message is attributed to an
// on_premises connector and the envelope sender's domain (or a name on the
// verified client certificate, or one of its parents) is an accepted domain.
// rcptDomain and senderDomain must be plain domains; the relay refuses
// source routes, IP literals and the like before it asks.
func (ix *Index) AuthorizeRecipient(a Attribution, c Client, senderDomain, rcptDomain string) RelayDecision {
	rd := CanonicalDomain(rcptDomain)
	if d, ok := ix.accepted[rd]; ok {
		return RelayDecision{true, fmt.Sprintf("%s is an accepted domain (%s)", rd, d.Type)}
	}
	if !a.OnPremises() {
		return RelayDecision{false, fmt.Sprintf("%s is not an accepted domain and the message is not from an on_premises connector", rd)}
	}
	if senderDomain != "" {
		if _, ok := ix.accepted[CanonicalDomain(senderDomain)]; ok {
			return RelayDecision{true, fmt.Sprintf("relay for on_premises connector %q: sender domain %s is accepted", a.Connector.Name, CanonicalDomain(senderDomain))}
		}
	}
	for _, raw := range c.CertNames {
		n := strings.TrimPrefix(CanonicalDomain(raw), "*.")
		for _, p := range connector.ParentDomains(n) {
			if _, ok := ix.accepted[p]; ok {
				return RelayDecision{true, fmt.Sprintf("relay for on_premises connector %q: certificate name %s is in accepted domain %s", a.Connector.Name, raw, p)}
			}
		}
	}
	return RelayDecision{false, fmt.Sprintf("on_premises connector %q may relay only for accepted sender domains; %q is not one", a.Connector.Name, senderDomain)}
}
