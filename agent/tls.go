package agent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// selfSignedValidity is how long a certificate of `tip agent init` is valid.
// Collectors pin it by fingerprint rather than trusting a CA, so a short life
// would only force everyone to re-pin.
const selfSignedValidity = 10 * 365 * 24 * time.Hour

// Fingerprint is the SHA-256 of a certificate's DER bytes as TIP writes it: 64
// lower-case hex digits, no colons. Collectors pin an agent by it (the spam
// catalog's `fingerprint`, which also accepts the colon form openssl prints).
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// CertFingerprint is the fingerprint of the first (the leaf) certificate of a
// PEM file.
func CertFingerprint(certPath string) (string, error) {
	data, err := os.ReadFile(certPath)
	if err != nil {
		return "", err
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return "", fmt.Errorf("%s: no PEM certificate", certPath)
		}
		if b.Type == "CERTIFICATE" {
			return Fingerprint(b.Bytes), nil
		}
	}
}

// EnsureCert makes sure the configured certificate and key exist: when neither
// does, it writes a self-signed one (see WriteSelfSigned) for the agent's id,
// localhost, 127.0.0.1, ::1 and hosts. It returns the certificate's fingerprint
// and whether it was created. One of the two files without the other is an
// error rather than something to overwrite.
func EnsureCert(c Config, hosts []string) (fingerprint string, created bool, err error) {
	certPath, keyPath := c.Path(c.TLS.Cert), c.Path(c.TLS.Key)
	_, certErr := os.Stat(certPath)
	_, keyErr := os.Stat(keyPath)
	switch {
	case certErr == nil && keyErr == nil:
		fp, err := CertFingerprint(certPath)
		return fp, false, err
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
	case certErr != nil && !errors.Is(certErr, fs.ErrNotExist):
		return "", false, certErr
	case keyErr != nil && !errors.Is(keyErr, fs.ErrNotExist):
		return "", false, keyErr
	default:
		return "", false, fmt.Errorf("tls: one of %s and %s exists without the other", certPath, keyPath)
	}
	names := append([]string{c.ID, "localhost", "127.0.0.1", "::1"}, hosts...)
	fp, err := WriteSelfSigned(certPath, keyPath, names, time.Now())
	return fp, err == nil, err
}

// WriteSelfSigned writes a self-signed ECDSA P-256 server certificate for names
// (host names and addresses, its subject alternative names) and its key (PKCS #8,
// mode 0600), and returns the certificate's fingerprint.
func WriteSelfSigned(certPath, keyPath string, names []string, now time.Time) (string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: names[0], Organization: []string{"TIP agent"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			if !slices.ContainsFunc(tmpl.IPAddresses, ip.Equal) {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		} else if n != "" && !slices.Contains(tmpl.DNSNames, n) {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", err
	}
	for _, d := range []string{filepath.Dir(certPath), filepath.Dir(keyPath)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return "", err
		}
	}
	// The key first: a certificate on disk always has its key.
	if err := WriteFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", err
	}
	if err := WriteFileAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", err
	}
	return Fingerprint(der), nil
}

// ServerTLS is the TLS configuration the agent serves: the configured certificate
// and key, as ServerTLSConfig has it. It also returns the certificate's
// fingerprint.
func ServerTLS(c Config) (*tls.Config, string, error) {
	cert, err := tls.LoadX509KeyPair(c.Path(c.TLS.Cert), c.Path(c.TLS.Key))
	if err != nil {
		return nil, "", fmt.Errorf("tls: %w", err)
	}
	return ServerTLSConfig(cert), Fingerprint(cert.Certificate[0]), nil
}

// ServerTLSConfig is the TLS configuration of a server of TIP serving cert:
// TLS 1.2 at least and, in TLS 1.2, only ECDHE key exchanges with AES-GCM or
// ChaCha20-Poly1305: forward secrecy and AEAD. Go's defaults would also accept
// the CBC suites with SHA-1 in TLS 1.2. TLS 1.3's suites are all AEAD with
// forward secrecy and are not configurable.
func ServerTLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
}
