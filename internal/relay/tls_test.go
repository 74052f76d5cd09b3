package relay

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/testutil"
)

// logTo returns a logger writing text to b.
func logTo(b *bytes.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

func TestServerCertificateGeneratedOnceAndKept(t *testing.T) {
	dir := t.TempDir()
	var log bytes.Buffer
	a, err := LoadServerCertificate("", "", dir, "gw.example.test", logTo(&log))
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadServerCertificate("", "", dir, "gw.example.test", logTo(&log))
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
	if strings.Contains(log.String(), "WARN") {
		t.Errorf("warnings on first and second start:\n%s", log.String())
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, "tls", "*.tmp")); len(tmp) > 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

// A generated pair that a fault left unusable is replaced, with a
// warning, and the relay starts with the new one.
func TestServerCertificateBrokenGeneratedPairIsReplaced(t *testing.T) {
	other := t.TempDir()
	if _, err := LoadServerCertificate("", "", other, "gw.example.test", logTo(new(bytes.Buffer))); err != nil {
		t.Fatal(err)
	}
	otherCert, err := os.ReadFile(filepath.Join(other, "tls", "relay-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		damage func(cert, key string)
	}{
		{"both files empty", func(cert, key string) { write(t, cert, ""); write(t, key, "") }},
		{"certificate empty", func(cert, key string) { write(t, cert, "") }},
		{"key garbage", func(cert, key string) { write(t, key, "garbage\n") }},
		{"certificate truncated", func(cert, key string) {
			b, _ := os.ReadFile(cert)
			write(t, cert, string(b[:len(b)/2]))
		}},
		{"key missing", func(cert, key string) { os.Remove(key) }},
		{"key not the certificate's", func(cert, key string) { write(t, cert, string(otherCert)) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			var log bytes.Buffer
			first, err := LoadServerCertificate("", "", dir, "gw.example.test", logTo(&log))
			if err != nil {
				t.Fatal(err)
			}
			certFile, keyFile := filepath.Join(dir, "tls", "relay-cert.pem"), filepath.Join(dir, "tls", "relay-key.pem")
			c.damage(certFile, keyFile)
			log.Reset()
			got, err := LoadServerCertificate("", "", dir, "gw.example.test", logTo(&log))
			if err != nil {
				t.Fatalf("start with a damaged generated pair: %v", err)
			}
			if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "cannot be loaded") {
				t.Errorf("no warning logged:\n%s", log.String())
			}
			if bytes.Equal(got.Certificate[0], first.Certificate[0]) {
				t.Error("the damaged pair was not replaced")
			}
			// The new pair is on disk, whole: the next start loads it quietly.
			log.Reset()
			again, err := LoadServerCertificate("", "", dir, "gw.example.test", logTo(&log))
			if err != nil || !bytes.Equal(again.Certificate[0], got.Certificate[0]) || log.Len() > 0 {
				t.Errorf("the start after the replacement: %v, same certificate %v, log %q", err, err == nil && bytes.Equal(again.Certificate[0], got.Certificate[0]), log.String())
			}
		})
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestServerCertificateFromFiles(t *testing.T) {
	ca := testutil.NewCA(t, "CA")
	want := ca.Issue(t, "mx.contoso.test", "mx.contoso.test")
	certFile, keyFile := testutil.WritePEM(t, want)
	got, err := LoadServerCertificate(certFile, keyFile, t.TempDir(), "ignored", logTo(new(bytes.Buffer)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Certificate[0], want.Certificate[0]) {
		t.Fatal("configured certificate not used")
	}
	// A configured pair that cannot be loaded is an error, never replaced
	// by a generated one.
	empty := filepath.Join(t.TempDir(), "empty.pem")
	write(t, empty, "")
	for _, c := range []struct{ name, cert, key string }{
		{"a certificate file as key", certFile, certFile},
		{"an empty key", certFile, empty},
		{"an empty certificate", empty, keyFile},
		{"a missing key", certFile, filepath.Join(t.TempDir(), "missing.pem")},
	} {
		dataDir := t.TempDir()
		if _, err := LoadServerCertificate(c.cert, c.key, dataDir, "x", logTo(new(bytes.Buffer))); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
		if !missing(filepath.Join(dataDir, "tls")) {
			t.Errorf("%s: a certificate was generated instead", c.name)
		}
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
