package apiserve

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tip-project/tip/export"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
)

// seedDB is a migrated database of its own listing a few indicators: evil.example
// by two sources, 45.10.0.7 and a URL by one.
func seedDB(t *testing.T) *storage.DB {
	t.Helper()
	ctx := context.Background()
	db := testenv.MigratedDB(t)
	_, err := testenv.SQL(t, db).Exec(ctx, `
		INSERT INTO sources (name, url, format, type, prior, enabled, last_success, last_attempt) VALUES
		  ('feed-a', 'https://x/a', 'generic', 'domain', 0.7, true, now(), now()),
		  ('feed-b', 'https://x/b', 'generic', 'domain', 0.6, true, NULL, NULL);
		INSERT INTO indicators (type, value, registrable, first_seen) VALUES
		  ('domain', 'evil.example', 'evil.example', now() - interval '2 days'),
		  ('ipv4', '45.10.0.7', '', now() - interval '1 day'),
		  ('url', 'http://evil.example/x.exe', 'evil.example', now());
		INSERT INTO source_listings (source_id, indicator_id, first_seen, last_seen, active)
		  SELECT s.id, i.id, now() - interval '1 day', NULL, true FROM sources s, indicators i
		   WHERE s.name = 'feed-a' AND i.value IN ('evil.example', '45.10.0.7')
		      OR s.name = 'feed-b' AND i.value IN ('evil.example', 'http://evil.example/x.exe');
		INSERT INTO source_runs (source, run_key, started_at, status, http_status, entries, added)
		  VALUES ('feed-a', 'r1', now() - interval '1 minute', 'loaded', 200, 2, 2);
		INSERT INTO source_metrics (source, computed_at, volume, added_share, churn_share, exclusive_share, shared, accuracy, health, weight)
		  VALUES ('feed-a', now(), 2, 1, 0, 0.5, 1, 1, 1, 0.8);
		INSERT INTO listing_changes (seq, kind) VALUES (nextval('listing_change_seq'), 'weights')`)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// validatingTransport holds every exchange that passes through it to the
// description, and notes the operations answered with success.
type validatingTransport struct {
	t    *testing.T
	c    *contract
	next http.RoundTripper

	mu       sync.Mutex
	answered map[string]bool
	protos   map[string]bool
}

func (v *validatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	resp, err := v.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil { // a stream broken off: the caller sees it
		resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), errReader{err}))
		return resp, nil
	}
	if req.Method == http.MethodHead {
		return resp, nil
	}
	op, cerr := v.c.check(req, reqBody, resp.StatusCode, resp.Header, body)
	v.mu.Lock()
	defer v.mu.Unlock()
	if cerr != nil {
		v.t.Errorf("over %s: %v", resp.Proto, cerr)
	}
	if resp.StatusCode < 300 {
		v.answered[op] = true
	}
	v.protos[resp.Proto] = true
	return resp, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// apiClient sends requests with a token (none when "").
type apiClient struct {
	t    *testing.T
	base string
	http *http.Client
}

func (c apiClient) do(method, path, token string, body io.Reader, header ...string) (*http.Response, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp, b
}

// TestServeAgainstPostgres runs the server on the real stack's PostgreSQL and
// asks every route over HTTP/1.1 and HTTP/2 (cleartext), each exchange held to
// the description: lookups, exports with their ETag (which a change moves,
// through PostgreSQL's notification), the MISP feed, the sources, tokens
// revoked while the server runs.
func TestServeAgainstPostgres(t *testing.T) {
	testenv.Stack(t)
	ctx := context.Background()
	db := seedDB(t)
	s, err := New(Config{MISPCache: t.TempDir(), MinScore: 0.5, Poll: time.Minute, Build: "test"}, db, Options{TAXII: fakeTAXII})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addr := serveOnLoopback(t, s)
	vt := &validatingTransport{t: t, c: loadContract(t), answered: map[string]bool{}, protos: map[string]bool{}}
	h1 := &http.Transport{}
	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	defer h1.CloseIdleConnections()
	defer h2c.CloseIdleConnections()

	analyst, _, err := db.AddAPIToken(ctx, "analyst", []storage.APIScope{storage.ScopeAll}, 0)
	if err != nil {
		t.Fatal(err)
	}
	resolver, _, err := db.AddAPIToken(ctx, "resolver", []storage.APIScope{storage.ScopeLookup}, 0)
	if err != nil {
		t.Fatal(err)
	}

	for _, next := range []http.RoundTripper{h1, h2c} {
		vt.next = next
		c := apiClient{t: t, base: "http://" + addr, http: &http.Client{Transport: vt}}

		// Lookups, answered with SQL.
		resp, body := c.do("GET", "/v1/lookup?q=evil.example", resolver, nil)
		var doc struct {
			Query    any
			Score    float64
			Listings []struct{ Source string }
		}
		if resp.StatusCode != 200 || json.Unmarshal(body, &doc) != nil || len(doc.Listings) != 2 || doc.Score < 0.9 {
			t.Fatalf("lookup: %d %s", resp.StatusCode, body)
		}
		var lk struct {
			Results []struct {
				Query    any
				Score    float64
				Listings []struct{ Source string }
				Error    string
			}
		}
		resp, body = c.do("POST", "/v1/lookup", resolver, strings.NewReader(`{"values": ["evil.example", "10.0.0.1"]}`), "Content-Type", "application/json")
		if resp.StatusCode != 200 || json.Unmarshal(body, &lk) != nil || len(lk.Results) != 2 ||
			len(lk.Results[0].Listings) != 2 || lk.Results[0].Score < 0.9 || lk.Results[1].Error == "" {
			t.Fatalf("POST lookup: %d %s", resp.StatusCode, body)
		}
		if resp, body := c.do("POST", "/v1/lookup", resolver, strings.NewReader(`{"values": ["45.10.0.7"]}`), "Content-Type", "application/json"); resp.StatusCode != 200 || !strings.Contains(string(body), `"feed-a"`) {
			t.Fatalf("POST lookup: %d %s", resp.StatusCode, body)
		}
		if resp, body := c.do("GET", "/v1/pdns?q=evil.example", resolver, nil); resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("pdns: %d %s", resp.StatusCode, body)
		}
		if resp, _ := c.do("GET", "/v1/sources", resolver, nil); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("sources with scope lookup: %d", resp.StatusCode)
		}

		// Every export format, then 304.
		for _, format := range export.Formats {
			resp, body := c.do("GET", "/v1/export/"+format+"?min_score=0", analyst, nil)
			if resp.StatusCode != 200 || resp.Header.Get("ETag") == "" {
				t.Fatalf("export %s: %d %s", format, resp.StatusCode, body)
			}
			if resp, _ := c.do("GET", "/v1/export/"+format+"?min_score=0", analyst, nil, "If-None-Match", resp.Header.Get("ETag")); resp.StatusCode != http.StatusNotModified {
				t.Errorf("export %s again: %d, want 304", format, resp.StatusCode)
			}
		}
		resp, body = c.do("GET", "/v1/export/plain", analyst, nil)
		if got := string(body); got != "evil.example\n45.10.0.7\nhttp://evil.example/x.exe\n" {
			t.Errorf("plain export at min_score 0.5:\n%s", got)
		}

		// The MISP feed, its manifest's events and hashes.
		resp, body = c.do("GET", "/misp/manifest.json", analyst, nil)
		var manifest map[string]any
		if resp.StatusCode != 200 || json.Unmarshal(body, &manifest) != nil || len(manifest) == 0 {
			t.Fatalf("MISP manifest: %d %s", resp.StatusCode, body)
		}
		for id := range manifest {
			if resp, body := c.do("GET", "/misp/"+id+".json", analyst, nil); resp.StatusCode != 200 {
				t.Errorf("MISP event %s: %d %s", id, resp.StatusCode, body)
			}
		}
		if resp, _ := c.do("GET", "/misp/hashes.csv", analyst, nil); resp.StatusCode != 200 {
			t.Errorf("hashes.csv: %d", resp.StatusCode)
		}

		// The sources, what storage says of them.
		resp, body = c.do("GET", "/v1/sources", analyst, nil)
		var src sourcesResponse
		if resp.StatusCode != 200 || json.Unmarshal(body, &src) != nil || len(src.Sources) != 2 {
			t.Fatalf("sources: %d %s", resp.StatusCode, body)
		}
		if a, b := src.Sources[0], src.Sources[1]; a.Name != "feed-a" || a.Health != "ok" || a.Weight != 0.8 || a.LastSuccess == nil || a.ActiveListings != 2 ||
			b.Name != "feed-b" || b.Health != "never-run" || b.Weight != 0.6 || b.LastRun != nil || b.Metrics.ComputedAt != nil {
			t.Errorf("sources: %+v", src.Sources)
		}
		c.do("GET", "/v1/openapi.json", "", nil)
		c.do("GET", "/taxii2/", analyst, nil)
	}
	vt.c.assertAnswered(t, vt.answered)
	if !vt.protos["HTTP/1.1"] || !vt.protos["HTTP/2.0"] {
		t.Errorf("protocols spoken: %v, want HTTP/1.1 and HTTP/2.0", vt.protos)
	}

	// A change (an analyst allows evil.example) reaches the server by
	// PostgreSQL's notification: the export's ETag moves, and the value is gone.
	vt.next = h1
	c := apiClient{t: t, base: "http://" + addr, http: &http.Client{Transport: vt}}
	resp, _ := c.do("GET", "/v1/export/plain", analyst, nil)
	tag, lm := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	o, err := storage.ParseOverrideTarget("evil.example")
	if err != nil {
		t.Fatal(err)
	}
	o.Kind, o.Reason, o.Author = storage.OverrideAllow, "a test", "tester"
	if _, err := db.AddOverride(ctx, o); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second) // Poll is a minute: only the notification can be this quick
	var body []byte
	for {
		resp, body = c.do("GET", "/v1/export/plain", analyst, nil, "If-None-Match", tag)
		if resp.StatusCode == 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if resp.StatusCode != 200 || resp.Header.Get("ETag") == tag || string(body) != "45.10.0.7\n" {
		t.Fatalf("after an allow: %d ETag %q (was %q):\n%s", resp.StatusCode, resp.Header.Get("ETag"), tag, body)
	}
	if resp, _ := c.do("GET", "/v1/export/plain", analyst, nil, "If-Modified-Since", lm); resp.StatusCode != 200 {
		t.Errorf("If-Modified-Since the version before: %d", resp.StatusCode)
	}

	// A revocation acts on the very next request.
	if _, err := db.RevokeAPIToken(ctx, "resolver"); err != nil {
		t.Fatal(err)
	}
	if resp, body := c.do("GET", "/v1/lookup?q=evil.example", resolver, nil); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "revoked") {
		t.Errorf("after the revocation: %d %s", resp.StatusCode, body)
	}
	if got := testutil.ToFloat64(s.m.requests.WithLabelValues("/v1/export/{format}", "304")); got < float64(2*len(export.Formats)) {
		t.Errorf("tip_api_requests_total{route=/v1/export/{format},code=304} = %v", got)
	}
}

// TestServeTLS: with a certificate the server answers HTTPS only, HTTP/2 and
// HTTP/1.1 as the client asks.
func TestServeTLS(t *testing.T) {
	testenv.Stack(t)
	db := seedDB(t)
	certFile, keyFile, pool := selfSigned(t)
	cfg := Config{TLSCert: certFile, TLSKey: keyFile, MISPCache: t.TempDir()}
	s, err := New(cfg, db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addr := serveOnLoopback(t, s)
	tok, _, err := db.AddAPIToken(context.Background(), "tls", []storage.APIScope{storage.ScopeLookup}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, h2 := range []bool{true, false} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, Protocols: new(http.Protocols)}
		tr.Protocols.SetHTTP1(!h2)
		tr.Protocols.SetHTTP2(h2)
		vt := &validatingTransport{t: t, c: loadContract(t), next: tr, answered: map[string]bool{}, protos: map[string]bool{}}
		c := apiClient{t: t, base: "https://" + addr, http: &http.Client{Transport: vt}}
		resp, body := c.do("GET", "/v1/lookup?q=45.10.0.7", tok, nil)
		want := map[bool]string{true: "HTTP/2.0", false: "HTTP/1.1"}[h2]
		if resp.StatusCode != 200 || resp.Proto != want {
			t.Errorf("over TLS: %d %s, want 200 over %s: %s", resp.StatusCode, resp.Proto, want, body)
		}
		tr.CloseIdleConnections()
	}
	// Plain HTTP to the TLS port is not served.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, "GET /v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
	reply, _ := io.ReadAll(conn)
	if strings.Contains(string(reply), "openapi") {
		t.Errorf("plain HTTP answered on the TLS port: %.80q", reply)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their files and a pool trusting it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tip test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// BenchmarkAuthenticatedRequest: what a token costs a request. An export
// answered 304 reads nothing but its token; the description needs none.
func BenchmarkAuthenticatedRequest(b *testing.B) {
	ctx := context.Background()
	db, err := storage.OpenDB(ctx, testenv.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	s, err := New(Config{MISPCache: b.TempDir()}, db, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	tok, _, err := db.AddAPIToken(ctx, "bench", []storage.APIScope{storage.ScopeExport}, 0)
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	tag := do(h, "GET", "/v1/export/plain", tok).Header().Get("ETag")
	b.Run("export 304 with a token", func(b *testing.B) {
		for b.Loop() {
			if w := do(h, "GET", "/v1/export/plain", tok, "If-None-Match", tag); w.Code != http.StatusNotModified {
				b.Fatal(w.Code)
			}
		}
	})
	b.Run("openapi.json without one", func(b *testing.B) {
		for b.Loop() {
			if w := do(h, "GET", "/v1/openapi.json", "", "If-None-Match", openAPITag); w.Code != http.StatusNotModified {
				b.Fatal(w.Code)
			}
		}
	})
}
