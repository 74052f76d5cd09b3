package delivery

import (
	"crypto/tls"
	"crypto/x509"

	"github.com/flowgate/flowgate/internal/connector"
)

// PolicyCheck returns the check delivery applies to a TLS connection under
// a connector's tls_settings (and tls_domain), for use as
// tls.Config.VerifyConnection; a failure is a *PolicyError whose reason an
// admin can act on. Validation uses it so that it judges a certificate
// exactly as delivery will.
func PolicyCheck(setting connector.TLSSettings, tlsDomain *connector.DomainPattern, roots *x509.CertPool, host string) func(tls.ConnectionState) error {
	return verifier(setting, tlsDomain, roots, host)
}

// DescribeChain lists the peer's certificate chain for a transcript.
func DescribeChain(cs tls.ConnectionState) []PeerCert { return describeChain(cs) }
