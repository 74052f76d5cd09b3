package relay

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"github.com/flowgate/flowgate/internal/testutil"
)

func TestServerCertificateGeneratedOnceAndKept(t *testing.T) {
	dir := t.TempDir()
	a, err := ServerCertificate("", "", dir, "gw.example.test")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ServerCertificate("", "", dir, "gw.example.test")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Certificate[0], b.Certificate[0]) {
		t.Fatal("a second start generated a new certificate instead of keeping the first")
	}
	if fi, err := os.Stat(filepath.Join(dir, "tls", "relay-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	leaf := a.Leaf
	if leaf == nil || leaf.Subject.CommonName != "gw.example.test" {
		t.Fatalf("generated certificate %+v", leaf)
	}
}

func TestServerCertificateFromFiles(t *testing.T) {
	ca := testutil.NewCA(t, "CA")
	want := ca.Issue(t, "mx.contoso.test", "mx.contoso.test")
	certFile, keyFile := testutil.WritePEM(t, want)
	got, err := ServerCertificate(certFile, keyFile, t.TempDir(), "ignored")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Certificate[0], want.Certificate[0]) {
		t.Fatal("configured certificate not used")
	}
	if _, err := ServerCertificate(certFile, certFile, t.TempDir(), "x"); err == nil {
		t.Fatal("a certificate file as key was accepted")
	}
}

func TestVerifyClientCert(t *testing.T) {
	ca := testutil.NewCA(t, "CA")
	good := ca.Issue(t, "Mail.Contoso.com", "mail.contoso.com", "*.relay.contoso.com")
	other := testutil.NewCA(t, "Other").Issue(t, "mail.contoso.com", "mail.contoso.com")
	got := verifyClientCert(tls.ConnectionState{PeerCertificates: []*x509.Certificate{good.Leaf}}, ca.Pool())
	if !got.Verified || len(got.Names) != 2 || got.Names[0] != "mail.contoso.com" || got.Names[1] != "*.relay.contoso.com" {
		t.Fatalf("verified cert: %+v", got)
	}
	got = verifyClientCert(tls.ConnectionState{PeerCertificates: []*x509.Certificate{other.Leaf}}, ca.Pool())
	if got.Verified || len(got.Names) != 0 || got.Problem == "" || got.Subject == "" {
		t.Fatalf("untrusted cert: %+v", got)
	}
	if got := verifyClientCert(tls.ConnectionState{}, ca.Pool()); got.Subject != "" || got.Verified {
		t.Fatalf("no cert: %+v", got)
	}
}
