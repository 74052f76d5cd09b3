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
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// LoadServerCertificate loads the relay's certificate from certFile and
// keyFile, which the admin configured: if they cannot be loaded, that is
// an error. When both are empty it loads the self-signed certificate
// flowgate generated in <dataDir>/tls, generating one on first start, and
// a new one, with a warning, when the generated pair cannot be loaded (a
// file empty, truncated, unreadable or missing, or the key not the
// certificate's). Nobody else made that pair, and a new one serves as
// well, where refusing to start would stop all mail; only a client that
// pinned the old certificate notices.
func LoadServerCertificate(certFile, keyFile, dataDir, hostname string, log *slog.Logger) (tls.Certificate, error) {
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("load relay certificate: %w", err)
		}
		return c, nil
	}
	dir := filepath.Join(dataDir, "tls")
	certFile, keyFile = filepath.Join(dir, "relay-cert.pem"), filepath.Join(dir, "relay-key.pem")
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err == nil {
		return c, nil
	}
	if missing(certFile) && missing(keyFile) {
		err = nil // first start
	} else {
		log.Warn("the generated relay certificate cannot be loaded; generating a new one", "dir", dir, "err", err)
	}
	c, gerr := generateCertificate(dir, certFile, keyFile, hostname)
	if gerr != nil {
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("generate relay certificate (the one in %s cannot be loaded: %v): %w", dir, err, gerr)
		}
		return tls.Certificate{}, fmt.Errorf("generate relay certificate: %w", gerr)
	}
	log.Info("generated a self-signed relay certificate", "cert", certFile, "hostname", hostname)
	return c, nil
}

func missing(path string) bool {
	_, err := os.Stat(path)
	return errors.Is(err, os.ErrNotExist)
}

// generateCertificate writes a new self-signed pair into dir, each file
// durably (writeDurable), the key first and the certificate last, so a
// crash never leaves a certificate without its key: it leaves the old
// pair, no pair, or a pair that does not match, which the next start
// replaces.
func generateCertificate(dir, certFile, keyFile, hostname string) (tls.Certificate, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, err
	}
	if err := syncDir(filepath.Dir(dir)); err != nil { // the tls directory's own entry
		return tls.Certificate{}, err
	}
	certPEM, keyPEM, err := selfSigned(hostname)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := writeDurable(keyFile, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := writeDurable(certFile, certPEM, 0o644); err != nil {
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

// writeDurable replaces path with data so that after a crash or power
// loss path holds the old content or all of data, never an empty or
// partial file: data goes to a temporary file, which is flushed to disk,
// renamed over path, and the directory flushed so that the rename is on
// disk too.
func writeDurable(path string, data []byte, mode os.FileMode) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	err = f.Chmod(mode) // a temporary file left by a crash keeps its mode
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir flushes a directory's entries (created, renamed files) to disk.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
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
	Names    []string // the DNS SANs, or the CN when there are none; only when Verified
	Subject  string
	Verified bool
	Problem  string // why it did not verify
}

// verifyClientCert checks the presented chain against roots. The relay
// requests a certificate without requiring one and without failing the
// handshake on a bad one: an unverifiable certificate just does not count.
// A certificate counts only for client authentication: with the clientAuth
// extended key usage, or with none at all (and so must every CA in its
// chain that restricts its usages). Its names are its DNS SANs; the
// subject CN only when it has none (RFC 6125 6.4.4).
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
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		cc.Problem = err.Error()
		return cc
	}
	cc.Verified = true
	seen := map[string]bool{}
	names := leaf.DNSNames
	if len(names) == 0 {
		names = []string{leaf.Subject.CommonName}
	}
	for _, n := range names {
		n = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(n), "."))
		if n != "" && !seen[n] {
			seen[n] = true
			cc.Names = append(cc.Names, n)
		}
	}
	return cc
}
