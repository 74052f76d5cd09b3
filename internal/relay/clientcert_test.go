package relay_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connector"
	"github.com/flowgate/flowgate/internal/testutil"
)

// issueClientCert makes a leaf certificate signed by ca with exactly the
// given extended key usages (none when eku is nil) and DNS names.
func issueClientCert(t *testing.T, ca *testutil.CA, cn string, eku []x509.ExtKeyUsage, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 100))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: n,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  eku,
		DNSNames:     names,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// A client certificate identifies an on_premises server only when it is
// meant for client authentication, and its CN counts only when it has no
// DNS names.
func TestClientCertificateRules(t *testing.T) {
	h := newHarness(t, testutil.Engines[0], nil)
	h.acceptedDomain("contoso.com")
	h.activeConnector(&connector.InboundSpec{Common: connector.Common{Name: "Our server by cert", ConnectorType: connector.OnPremises},
		TLSSenderCertificateName: "mail.contoso.com"})
	internet := []string{"sun@internet.test"}
	for _, tc := range []struct {
		name   string
		cert   tls.Certificate
		counts bool
	}{
		{"clientAuth", issueClientCert(t, h.ca, "mail.contoso.com", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, "mail.contoso.com"), true},
		{"no extended key usage", issueClientCert(t, h.ca, "mail.contoso.com", nil, "mail.contoso.com"), true},
		{"serverAuth and clientAuth", issueClientCert(t, h.ca, "x", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, "mail.contoso.com"), true},
		{"CN without DNS names", issueClientCert(t, h.ca, "mail.contoso.com", nil), true},
		{"codeSigning only", issueClientCert(t, h.ca, "mail.contoso.com", []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}, "mail.contoso.com"), false},
		{"serverAuth only", issueClientCert(t, h.ca, "mail.contoso.com", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, "mail.contoso.com"), false},
		{"CN beside other DNS names", issueClientCert(t, h.ca, "mail.contoso.com", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, "host.fabrikam.test"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := send(h.dial(clientOpts{src: "127.0.0.90", tls: true, cert: &tc.cert}), "app@other.test", internet, "")
			if tc.counts {
				expectAccepted(t, h, r, "Our server by cert")
				return
			}
			if r.accepted() || len(r.rcpt) != 1 || r.rcpt[0] != 550 || !strings.Contains(r.rcptText[0], "5.7.64") {
				t.Fatalf("relay with a certificate that must not count: %+v", r)
			}
			if tr := h.lastTrace(); tr.InboundConnector != "" {
				t.Fatalf("attributed to %q", tr.InboundConnector)
			}
		})
	}
}
