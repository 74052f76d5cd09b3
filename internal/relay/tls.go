package relay

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ServerCertificate loads the relay's certificate from certFile/keyFile, or
// when both are empty, from the data directory, generating a self-signed
// one there on first start.
func ServerCertificate(certFile, keyFile, dataDir, hostname string) (tls.Certificate, error) {
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("load relay certificate: %w", err)
		}
		return c, nil
	}
	dir := filepath.Join(dataDir, "tls")
	certFile, keyFile = filepath.Join(dir, "relay-cert.pem"), filepath.Join(dir, "relay-key.pem")
	if c, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil {
		return c, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return tls.Certificate{}, fmt.Errorf("load generated relay certificate: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("generate relay certificate: %w", err)
	}
	certPEM, keyPEM, err := selfSigned(hostname)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate relay certificate: %w", err)
	}
	// Write the key first and the certificate last, each atomically, so a
	// crash never leaves a certificate without its key.
	if err := writeAtomic(keyFile, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := writeAtomic(certFile, certPEM, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

func selfSigned(hostname string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hostname, Organization: []string{"flowgate (self-signed)"}},
		DNSNames:     []string{hostname},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(5, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// CertPool returns the system roots plus the certificates in bundleFile.
func CertPool(bundleFile string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if bundleFile == "" {
		return pool, nil
	}
	pemData, err := os.ReadFile(bundleFile)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	if !pool.AppendCertsFromPEM(pemData) {
		return nil, fmt.Errorf("CA bundle %s holds no PEM certificate", bundleFile)
	}
	return pool, nil
}

// clientCert is what the relay learned from a client certificate.
type clientCert struct {
	Names    []string // CN and DNS SANs, only when Verified
	Subject  string
	Verified bool
	Problem  string // why it did not verify
}

// verifyClientCert checks the presented chain against roots. The relay
// requests a certificate without requiring one and without failing the
// handshake on a bad one: an unverifiable certificate just does not count.
func verifyClientCert(state tls.ConnectionState, roots *x509.CertPool) clientCert {
	if len(state.PeerCertificates) == 0 {
		return clientCert{}
	}
	leaf := state.PeerCertificates[0]
	cc := clientCert{Subject: leaf.Subject.String()}
	inter := x509.NewCertPool()
	for _, c := range state.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		cc.Problem = err.Error()
		return cc
	}
	cc.Verified = true
	seen := map[string]bool{}
	for _, n := range append([]string{leaf.Subject.CommonName}, leaf.DNSNames...) {
		n = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(n), "."))
		if n != "" && !seen[n] {
			seen[n] = true
			cc.Names = append(cc.Names, n)
		}
	}
	return cc
}
