package agent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestEnsureCert(t *testing.T) {
	c := DefaultConfig(t.TempDir())
	c.ID = "mx1.example.org"
	fp, created, err := EnsureCert(c, []string{"mail.example.org", "192.0.2.25"})
	if err != nil || !created || !ValidSHA256(fp) {
		t.Fatalf("EnsureCert = %q, %v, %v", fp, created, err)
	}
	data, err := os.ReadFile(c.Path(c.TLS.Cert))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if Fingerprint(b.Bytes) != fp {
		t.Fatal("the fingerprint is not of the certificate's DER bytes")
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("key %T, want ECDSA P-256", cert.PublicKey)
	}
	if !slices.Equal(cert.DNSNames, []string{"mx1.example.org", "localhost", "mail.example.org"}) {
		t.Errorf("DNS names %v", cert.DNSNames)
	}
	var ips []string
	for _, ip := range cert.IPAddresses {
		ips = append(ips, ip.String())
	}
	if !slices.Equal(ips, []string{"127.0.0.1", "::1", "192.0.2.25"}) {
		t.Errorf("addresses %v", ips)
	}
	if err := cert.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if fi, err := os.Stat(c.Path(c.TLS.Key)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key: %v, mode %v", err, fi.Mode())
	}

	// A second run keeps the certificate.
	fp2, created, err := EnsureCert(c, nil)
	if err != nil || created || fp2 != fp {
		t.Fatalf("second EnsureCert = %q, %v, %v", fp2, created, err)
	}
	if got, err := CertFingerprint(c.Path(c.TLS.Cert)); err != nil || got != fp {
		t.Fatalf("CertFingerprint = %q, %v", got, err)
	}
	// openssl prints the same fingerprint, with colons and in upper case.
	if path, err := exec.LookPath("openssl"); err == nil {
		out, err := exec.Command(path, "x509", "-in", c.Path(c.TLS.Cert), "-noout", "-fingerprint", "-sha256").Output()
		if err != nil {
			t.Fatal(err)
		}
		_, hex, _ := strings.Cut(strings.TrimSpace(string(out)), "=")
		if strings.ToLower(strings.ReplaceAll(hex, ":", "")) != fp {
			t.Errorf("openssl says %s, TIP %s", hex, fp)
		}
	}

	// A key without its certificate is not overwritten.
	os.Remove(c.Path(c.TLS.Cert))
	if _, _, err := EnsureCert(c, nil); err == nil {
		t.Fatal("a lone key was replaced")
	}
}

// The agent's TLS 1.2 suites are ECDHE with AEAD only: a client offering
// nothing else than a CBC suite with SHA-1 is refused, one offering AES-GCM is
// served, and TLS 1.3 is served.
func TestServerTLSSuites(t *testing.T) {
	a := newTestAgent(t, 1)
	addr := strings.TrimPrefix(a.url, "https://")
	for _, tc := range []struct {
		name  string
		suite uint16
		ok    bool
	}{
		{"ECDHE-ECDSA-AES128-SHA", tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, false},
		{"ECDHE-ECDSA-AES256-SHA", tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, false},
		{"ECDHE-ECDSA-AES128-SHA256", tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, false},
		{"ECDHE-ECDSA-AES128-GCM-SHA256", tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, true},
		{"ECDHE-ECDSA-CHACHA20-POLY1305", tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, true},
	} {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tc.suite}})
		if err == nil {
			conn.Close()
		}
		if (err == nil) != tc.ok {
			t.Errorf("TLS 1.2 with only %s: handshake error %v, want success %v", tc.name, err, tc.ok)
		}
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatalf("TLS 1.3: %v", err)
	}
	conn.Close()
	for _, id := range ServerTLSConfig(tls.Certificate{}).CipherSuites {
		for _, s := range tls.InsecureCipherSuites() {
			if s.ID == id {
				t.Errorf("ServerTLSConfig offers %s", s.Name)
			}
		}
	}
}
