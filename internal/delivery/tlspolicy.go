package delivery

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
)

// PeerCert describes one certificate of the peer's chain, for the trace
// and the validation transcript.
type PeerCert struct {
	Subject  string
	Issuer   string
	DNSNames []string
	NotAfter time.Time
}

// PolicyError is a TLS policy failure: delivery is deferred, never
// downgraded.
type PolicyError struct{ Reason string }

func (e *PolicyError) Error() string { return e.Reason }

// certNames returns the CN and DNS SANs of a certificate, lowercased.
func certNames(c *x509.Certificate) []string {
	names := []string{}
	seen := map[string]bool{}
	for _, n := range append([]string{c.Subject.CommonName}, c.DNSNames...) {
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		if n != "" && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	return names
}

// nameMatches reports whether a certificate name satisfies tls_domain:
// equal, under the tls_domain's wildcard, or a certificate wildcard that
// covers an exact tls_domain by one label (RFC 6125).
func nameMatches(want connector.DomainPattern, name string) bool {
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		switch want.Kind {
		case connector.Wildcard:
			return want.Domain == rest
		case connector.Exact:
			i := strings.IndexByte(want.Domain, '.')
			return i > 0 && want.Domain[i+1:] == rest
		}
		return false
	}
	return want.Matches(name)
}

// PolicyCheck is the check delivery applies to a TLS connection under a
// connector's tls_settings (and tls_domain), for use as
// tls.Config.VerifyConnection; a failure is a *PolicyError whose reason an
// admin can act on. The handshake itself never verifies
// (InsecureSkipVerify), so that the policy — not Go's default hostname
// check — decides. Validation uses it too, so that it judges a certificate
// exactly as delivery will.
func PolicyCheck(setting connector.TLSSettings, tlsDomain *connector.DomainPattern, roots *x509.CertPool, host string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if setting == connector.TLSOpportunistic || setting == connector.TLSEncryptionOnly {
			return nil
		}
		if len(cs.PeerCertificates) == 0 {
			return &PolicyError{fmt.Sprintf("%s presented no certificate", host)}
		}
		leaf := cs.PeerCertificates[0]
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
			var unknown x509.UnknownAuthorityError
			var invalid x509.CertificateInvalidError
			switch {
			case errors.As(err, &unknown):
				return &PolicyError{fmt.Sprintf("certificate of %s (%s) is not issued by a trusted CA (issuer %s); add the CA to FLOWGATE_OUTBOUND_CA or use encryption_only", host, leaf.Subject.CommonName, leaf.Issuer.String())}
			case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
				return &PolicyError{fmt.Sprintf("certificate of %s (%s) expired or is not yet valid (valid %s to %s)", host, leaf.Subject.CommonName, leaf.NotBefore.Format(time.DateOnly), leaf.NotAfter.Format(time.DateOnly))}
			}
			return &PolicyError{fmt.Sprintf("certificate of %s does not validate: %v", host, err)}
		}
		if setting == connector.TLSDomainValidation && tlsDomain != nil {
			names := certNames(leaf)
			for _, n := range names {
				if nameMatches(*tlsDomain, n) {
					return nil
				}
			}
			return &PolicyError{fmt.Sprintf("certificate for %s does not match tls_domain %s", strings.Join(names, ", "), tlsDomain)}
		}
		return nil
	}
}

// DescribeChain lists the peer's certificate chain for the trace and a
// validation transcript.
func DescribeChain(cs tls.ConnectionState) []PeerCert {
	var out []PeerCert
	for _, c := range cs.PeerCertificates {
		out = append(out, PeerCert{Subject: c.Subject.String(), Issuer: c.Issuer.String(), DNSNames: c.DNSNames, NotAfter: c.NotAfter})
	}
	return out
}
