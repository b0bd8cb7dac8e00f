package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tip-project/tip/mail"
)

// The publishing agent's Store is what the server serves.
var _ Source = (*Store)(nil)

// testAgent is an agent folder with published batches and raw mails, served
// over HTTPS on loopback.
type testAgent struct {
	dir         string
	url         string
	fingerprint string
	tokens      *Tokens
	facts, raw  string   // tokens of scope facts and raw
	shas        []string // the raw mails, by batch then mail
	log         *syncBuffer
	srv         *Server
}

const testAgentID = "mx1.example.org"

// syncBuffer is a log sink the server's goroutines write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// writeTestBatches publishes batches of the given mail counts into dir through
// a Store, raw mails included, and returns the raw mails' hashes.
func writeTestBatches(t testing.TB, dir string, counts ...int) []string {
	t.Helper()
	st, err := OpenStore(dir, testAgentID)
	if err != nil {
		t.Fatal(err)
	}
	var shas []string
	created := time.Date(2026, 11, 27, 1, 2, 3, 0, time.UTC)
	for i, n := range counts {
		v := uint64(i + 1)
		var mails []Mail
		for j := range n {
			raw := fmt.Appendf(nil, "Received: from x\r\nSubject: mail %d of batch %d\r\n\r\nhttp://spam%d-%d.example/\r\n", j, v, v, j)
			sha, size, off, err := st.PutRaw(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			shas = append(shas, sha)
			mails = append(mails, Mail{Name: fmt.Sprintf("17642%05d.M%dP1.mx1", v, j), Folder: "spam", Delivered: created, Raw: true, RawOffset: off,
				Facts: mail.Facts{SHA256: sha, Size: size, Subject: fmt.Sprintf("mail %d of batch %d", j, v)}})
		}
		if _, err := st.Append(mails); err != nil {
			t.Fatal(err)
		}
	}
	return shas
}

// serveTestAgent serves dir over HTTPS on 127.0.0.1 within lim until the test
// ends.
func serveTestAgent(t testing.TB, dir string, lim Limits, log *slog.Logger) (url, fingerprint string, srv *Server) {
	t.Helper()
	c := DefaultConfig(dir)
	c.ID = testAgentID
	fp, _, err := EnsureCert(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	conf, fp2, err := ServerTLS(c)
	if err != nil || fp2 != fp {
		t.Fatalf("ServerTLS: %v, fingerprint %s want %s", err, fp2, fp)
	}
	src, err := OpenStore(dir, testAgentID)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err = NewLimitedServer(src, OpenTokens(dir), lim, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, conf) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "https://" + ln.Addr().String(), fp, srv
}

func newTestAgent(t *testing.T, counts ...int) *testAgent {
	t.Helper()
	a := &testAgent{dir: t.TempDir(), log: &syncBuffer{}}
	a.shas = writeTestBatches(t, a.dir, counts...)
	a.tokens = OpenTokens(a.dir)
	var err error
	if a.facts, _, err = a.tokens.Add("alice", ScopeFacts, 0); err != nil {
		t.Fatal(err)
	}
	if a.raw, _, err = a.tokens.Add("bob", ScopeRaw, 0); err != nil {
		t.Fatal(err)
	}
	a.url, a.fingerprint, a.srv = serveTestAgent(t, a.dir, Limits{Rate: 1000}, slog.New(slog.NewTextHandler(a.log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	return a
}

func (a *testAgent) client(token string) *Client {
	return &Client{URL: a.url, Token: token, Fingerprint: a.fingerprint}
}

// do sends one request with exactly the given request target, bypassing every
// cleaning a URL type would do, and returns the status and body.
func (a *testAgent) do(t *testing.T, target, token string) (int, string) {
	t.Helper()
	conf, err := a.client(token).TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", strings.TrimPrefix(a.url, "https://"), conf)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: agent\r\n", target)
	if token != "" {
		fmt.Fprintf(conn, "Authorization: Bearer %s\r\n", token)
	}
	fmt.Fprintf(conn, "Connection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func statusOf(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

func TestClientPullsEverything(t *testing.T) {
	a := newTestAgent(t, 3, 1, 5, 2)
	ctx := context.Background()
	c := a.client(a.raw)

	h, err := c.Latest(ctx)
	if err != nil || h != (Head{Agent: testAgentID, Schema: Schema, Latest: 4}) {
		t.Fatalf("Latest = %+v, %v", h, err)
	}
	p, err := c.Manifest(ctx, 1, 2)
	if err != nil || p.Latest != 4 || len(p.Versions) != 2 || p.Versions[0].Version != 2 || p.Versions[1].Mails != 5 {
		t.Fatalf("Manifest(1, 2) = %+v, %v", p, err)
	}
	if p, err := c.Manifest(ctx, 4, 0); err != nil || len(p.Versions) != 0 || p.Latest != 4 {
		t.Fatalf("Manifest(4) = %+v, %v", p, err)
	}

	var mails []Mail
	last, err := c.Stream(ctx, 0, 0, func(it StreamItem, r io.Reader) error {
		b, err := DecodeBatch(r, it.Version)
		mails = append(mails, b.Mails...)
		return err
	})
	if err != nil || last != 4 || len(mails) != 11 {
		t.Fatalf("Stream(0) = %d, %d mails, %v", last, len(mails), err)
	}
	if last, err := c.Stream(ctx, 4, 0, func(StreamItem, io.Reader) error { return errors.New("called") }); err != nil || last != 4 {
		t.Fatalf("Stream(latest) = %d, %v", last, err)
	}

	// mails[6] is the third mail of batch 3 (batches of 3, 1, 5 and 2 mails).
	r, err := c.Raw(ctx, 3, mails[6].Facts.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(r)
	r.Close()
	if err != nil || int64(len(raw)) != mails[6].Facts.Size || !strings.Contains(string(raw), "mail 2 of batch 3") {
		t.Fatalf("Raw: %q, %v", raw, err)
	}
	for _, v := range []uint64{2, 9} {
		if _, err := c.Raw(ctx, v, mails[6].Facts.SHA256); statusOf(err) != http.StatusNotFound {
			t.Fatalf("Raw of a mail in batch %d, which does not hold it: %v, want 404", v, err)
		}
	}
	if _, err := c.Raw(ctx, 3, strings.Repeat("0", 64)); statusOf(err) != http.StatusNotFound {
		t.Fatalf("Raw of an unknown mail: %v, want 404", err)
	}
	// The raw mails of a batch in one request, each checked against its hash.
	st, err := OpenStore(a.dir, testAgentID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.ReadBatch(3)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	err = c.RawMails(ctx, b, func(m *Mail, r io.Reader) error {
		raw, err := io.ReadAll(r)
		got = append(got, string(raw))
		return err
	})
	if err != nil || len(got) != 5 || !strings.Contains(got[4], "mail 4 of batch 3") {
		t.Fatalf("RawMails(3) = %q, %v", got, err)
	}
	if _, err := c.Stream(ctx, 9, 0, nil); err != nil {
		t.Fatalf("Stream past latest: %v, want an empty stream", err)
	}
}

// A stream stops before the batch that would take it over max_bytes, but holds
// at least one.
func TestStreamMaxBytes(t *testing.T) {
	a := newTestAgent(t, 4, 4, 4, 4)
	ctx := context.Background()
	c := a.client(a.facts)
	p, err := c.Manifest(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	itemLen := func(e Entry) int64 {
		line, _ := json.Marshal(StreamItem{Version: e.Version, SHA256: e.SHA256, Size: e.Size})
		return int64(len(line)) + 1 + e.Size
	}
	two := itemLen(p.Versions[0]) + itemLen(p.Versions[1])
	for _, tc := range []struct {
		max  int64
		want uint64
	}{{1, 1}, {two - 1, 1}, {two, 2}, {1 << 30, 4}} {
		var got []uint64
		last, err := c.Stream(ctx, 0, tc.max, func(it StreamItem, r io.Reader) error {
			got = append(got, it.Version)
			return nil
		})
		if err != nil || last != tc.want || len(got) != int(tc.want) {
			t.Errorf("max_bytes %d: last %d, versions %v, %v; want %d", tc.max, last, got, err, tc.want)
		}
	}
	// Continuing from the last version pulls the rest, a page at a time.
	var after uint64
	for n := 0; after < 4; n++ {
		if n > 4 {
			t.Fatal("no progress")
		}
		if after, err = c.Stream(ctx, after, 1, func(StreamItem, io.Reader) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRefusedTokens(t *testing.T) {
	a := newTestAgent(t, 1)
	expired, _, err := a.tokens.Add("carol", ScopeRaw, time.Nanosecond)
	if err != nil {
		t.Fatal(err)
	}
	revoked, _, err := a.tokens.Add("dave", ScopeRaw, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.tokens.Revoke("dave"); err != nil {
		t.Fatal(err)
	}
	unknown := "tipa_" + strings.Repeat("A", 43)
	for name, tc := range map[string]struct{ token, reason, logged string }{
		"none":      {"", "no bearer token", ""},
		"malformed": {"secret", "unknown token", ""},
		"unknown":   {unknown, "unknown token", ""},
		"other":     {a.raw[:len(a.raw)-1] + "x", "unknown token", ""},
		"expired":   {expired, "token expired", "carol"},
		"revoked":   {revoked, "token revoked", "dave"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := a.client(tc.token).Latest(context.Background())
			var se *StatusError
			if !errors.As(err, &se) || se.Status != http.StatusUnauthorized || se.Message != tc.reason {
				t.Fatalf("Latest = %v, want 401 %q", err, tc.reason)
			}
			if tc.logged != "" && !strings.Contains(a.log.String(), "token="+tc.logged) {
				t.Errorf("the log does not name token %s:\n%s", tc.logged, a.log)
			}
		})
	}
	// A scheme other than Bearer is no token either.
	if code, _ := a.do(t, "/v1/latest", ""); code != http.StatusUnauthorized {
		t.Errorf("no Authorization: %d", code)
	}
	log := a.log.String()
	for _, secret := range []string{expired, revoked, a.raw, unknown} {
		if strings.Contains(log, secret[5:]) {
			t.Errorf("the log holds a token")
		}
	}
	if n := strings.Count(log, "agent: refused"); n < 7 {
		t.Errorf("%d refusals logged, want at least 7:\n%s", n, log)
	}
}

// Revoking a token (from another process: the CLI) takes effect on the running
// agent's next request.
func TestRevokeWithoutRestart(t *testing.T) {
	a := newTestAgent(t, 1)
	ctx := context.Background()
	c := a.client(a.facts)
	if _, err := c.Latest(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenTokens(a.dir).Revoke("alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Latest(ctx); statusOf(err) != http.StatusUnauthorized {
		t.Fatalf("after revocation: %v, want 401", err)
	}
	if _, err := a.client(a.raw).Latest(ctx); err != nil {
		t.Fatalf("another token after the revocation: %v", err)
	}
	// A tokens.json that cannot be read refuses every token.
	if err := os.WriteFile(filepath.Join(a.dir, TokensFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.client(a.raw).Latest(ctx); statusOf(err) != http.StatusUnauthorized {
		t.Fatalf("with a broken tokens.json: %v, want 401", err)
	}
}

func TestFactsScopeCannotFetchRaw(t *testing.T) {
	a := newTestAgent(t, 2)
	ctx := context.Background()
	c := a.client(a.facts)
	if _, err := c.Raw(ctx, 1, a.shas[0]); statusOf(err) != http.StatusForbidden {
		t.Fatalf("Raw with a facts token: %v, want 403", err)
	}
	if code, _ := a.do(t, "/v1/batches/1/raw", a.facts); code != http.StatusForbidden {
		t.Fatalf("raw pack with a facts token: %d, want 403", code)
	}
	if _, err := c.Stream(ctx, 0, 0, func(StreamItem, io.Reader) error { return nil }); err != nil {
		t.Fatalf("Stream with a facts token: %v", err)
	}
	if code, _ := a.do(t, "/v1/batches/1", a.facts); code != http.StatusOK {
		t.Fatalf("batch with a facts token: %d", code)
	}
	if !strings.Contains(a.log.String(), "scope facts cannot fetch raw mail") {
		t.Errorf("the refusal is not logged:\n%s", a.log)
	}
}

// Every parameter refuses what is not a version, a count or a hash, whatever
// the encoding; nothing outside the published files is ever served.
func TestPathTraversalRefused(t *testing.T) {
	a := newTestAgent(t, 1)
	sha := a.shas[0]
	cases := []string{
		"/v1/batches/1/raw/../../etc/passwd",
		"/v1/batches/1/raw/%2e%2e/%2e%2e/etc/passwd",
		"/v1/batches/1/raw/..%2f..%2fetc%2fpasswd",
		"/v1/batches/1/raw/%2E%2E%2F%2E%2E%2Fmanifest.json",
		"/v1/batches/1/raw/" + sha[:2] + "/" + sha,
		"/v1/batches/1/raw/" + sha + "/..",
		"/v1/batches/1/raw/" + strings.ToUpper(sha),
		"/v1/batches/1/raw/" + sha[:63],
		"/v1/batches/1/raw/" + sha + "%00",
		"/v1/batches/1/raw/..\\..\\tokens.json",
		"/v1/batches/1/raw/%252e%252e%252ftokens.json",
		"/v1/batches/1/raw/",
		"/v1/batches/1/raws",
		"/v1/batches/1/raw/" + sha + "/x",
		"/v1/batches/../raw/" + sha,
		"/v1/batches/00000000000000000001.raw",
		"/v1/batches/1/raw?after=1",
		"/v1/batches/1/raw/" + sha + "?version=1",
		"/v1/batches/../manifest.json",
		"/v1/batches/..%2fmanifest.json",
		"/v1/batches/%2e%2e",
		"/v1/batches/1/../2",
		"/v1/batches/1/",
		"/v1/batches/-1",
		"/v1/batches/+1",
		"/v1/batches/0x1",
		"/v1/batches/1e3",
		"/v1/batches/%31",
		"/v1/batches/99999999999999999999999",
		"/v1/batches/00000000000000000001.jsonl.gz",
		"/v1/batches?after=../1",
		"/v1/batches?after=%2e%2e%2f1",
		"/v1/batches?after=-1",
		"/v1/batches?after=1&after=2",
		"/v1/batches?after=1;max_bytes=2",
		"/v1/batches?max_bytes=0",
		"/v1/batches?max_bytes=abc",
		"/v1/batches?file=../../etc/passwd",
		"/v1/manifest?after=x",
		"/v1/manifest?limit=0",
		"/v1/manifest?limit=-1",
		"/v1/manifest?after=%zz",
		"/v1/latest?after=1",
		"/v1//latest",
		"/v1/./latest",
		"/../v1/latest",
		"/v1/../v1/latest",
		"/v1/latest/..",
		"/v1%2flatest",
	}
	bad := 0
	for _, target := range cases {
		for _, token := range []string{a.raw, a.facts} {
			code, body := a.do(t, target, token)
			if code == http.StatusBadRequest {
				bad++
			}
			if code != http.StatusBadRequest && !(code == http.StatusForbidden && token == a.facts) {
				t.Errorf("%s: %d %s, want 400", target, code, body)
			}
			var e struct{ Error string }
			if json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
				t.Errorf("%s: body %q, want {\"error\":…}", target, body)
			}
		}
	}
	for _, target := range []string{"/", "/v2/latest", "/v1", "/v1/tokens.json", "/v1/batches/2", "/v1/raw/" + strings.Repeat("a", 64)} {
		if code, body := a.do(t, target, a.raw); code != http.StatusNotFound {
			t.Errorf("%s: %d %s, want 404", target, code, body)
		}
	}
	// Every refusal is counted; the first of each kind in a minute are logged
	// with their status, remote address and token name.
	if n := testutil.ToFloat64(a.srv.ev.refused.WithLabelValues(refusedBadRequest)); n != float64(bad) || bad < len(cases) {
		t.Errorf("%v refusals with 400 counted, %d answered", n, bad)
	}
	if log := a.log.String(); strings.Count(log, "status=400") != eventSamples || !strings.Contains(log, "remote=127.0.0.1:") || !strings.Contains(log, "token=bob") {
		t.Errorf("refusals not logged with status, remote address and token name:\n%.2000s", log)
	}
}

// A batch file changed on disk is served with the manifest's SHA-256, so the
// client refuses it and everything after it.
func TestTamperedBatchRefused(t *testing.T) {
	a := newTestAgent(t, 3, 3, 3)
	p := filepath.Join(a.dir, BatchesDir, BatchName(2))
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x01
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := a.client(a.raw)

	var got []uint64
	last, err := c.Stream(ctx, 0, 0, func(it StreamItem, r io.Reader) error {
		if _, err := io.ReadAll(r); err != nil {
			return err
		}
		got = append(got, it.Version)
		return nil
	})
	if !errors.Is(err, ErrChecksum) || last != 1 || len(got) != 1 {
		t.Fatalf("Stream over a tampered batch 2: last %d, accepted %v, %v; want last 1 and ErrChecksum", last, got, err)
	}
	// A consumer that decodes as it reads is stopped as well, and one that does
	// not read at all is checked by Stream.
	last, err = c.Stream(ctx, 1, 0, func(it StreamItem, r io.Reader) error { _, err := DecodeBatch(r, it.Version); return err })
	if err == nil || last != 1 {
		t.Fatalf("decoding Stream: last %d, %v", last, err)
	}
	last, err = c.Stream(ctx, 1, 0, func(StreamItem, io.Reader) error { return nil })
	if !errors.Is(err, ErrChecksum) || last != 1 {
		t.Fatalf("lazy Stream: last %d, %v", last, err)
	}

	// A raw mail changed on disk (same size) no longer hashes to its name,
	// whether fetched alone or with its batch's.
	sha := a.shas[0]
	pack := filepath.Join(a.dir, RawDir, PackName(1))
	data, err = os.ReadFile(pack)
	if err != nil {
		t.Fatal(err)
	}
	data[3] ^= 1
	if err := os.WriteFile(pack, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := c.Raw(ctx, 1, sha)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(r)
	r.Close()
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("Raw of a forged mail: %v, want ErrChecksum", err)
	}
	st, err := OpenStore(a.dir, testAgentID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.ReadBatch(1)
	if err != nil {
		t.Fatal(err)
	}
	kept := 0
	err = c.RawMails(ctx, b, func(_ *Mail, r io.Reader) error {
		if _, err := io.ReadAll(r); err != nil {
			return err
		}
		kept++
		return nil
	})
	if !errors.Is(err, ErrChecksum) || kept != 0 {
		t.Fatalf("RawMails over a forged mail: %d kept, %v, want ErrChecksum before any", kept, err)
	}
	// A pack cut short on disk is not served as if whole.
	if err := os.Truncate(pack, 10); err != nil {
		t.Fatal(err)
	}
	if code, _ := a.do(t, "/v1/batches/1/raw", a.raw); code != http.StatusInternalServerError {
		t.Fatalf("a cut raw pack: %d, want 500", code)
	}

	// A batch file cut short is not served as if whole: refused before the
	// answer starts, or the stream is cut where it is.
	p3 := filepath.Join(a.dir, BatchesDir, BatchName(3))
	if err := os.Truncate(p3, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stream(ctx, 2, 0, func(StreamItem, io.Reader) error { return nil }); statusOf(err) != http.StatusInternalServerError {
		t.Fatalf("Stream from a cut batch: %v, want 500", err)
	}
	if last, err := c.Stream(ctx, 0, 0, func(StreamItem, io.Reader) error { return nil }); err == nil || last > 1 {
		t.Fatalf("Stream through a cut batch: last %d, %v", last, err)
	}
}

func TestRateLimit(t *testing.T) {
	dir := t.TempDir()
	writeTestBatches(t, dir, 1)
	tokens := OpenTokens(dir)
	secret, _, err := tokens.Add("eve", ScopeFacts, 0)
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := tokens.Add("frank", ScopeFacts, 0)
	if err != nil {
		t.Fatal(err)
	}
	url, fp, _ := serveTestAgent(t, dir, Limits{Rate: 1}, slog.New(slog.DiscardHandler)) // 1/s, a burst of 2
	c := &Client{URL: url, Token: secret, Fingerprint: fp}
	ctx := context.Background()
	for range 2 {
		if _, err := c.Latest(ctx); err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.getOnce(ctx, "/v1/latest", nil, "application/json")
	var se *StatusError
	if !errors.As(err, &se) || se.Status != http.StatusTooManyRequests || se.RetryAfter < time.Second {
		t.Fatalf("third request at once: %v (%+v), want 429 with Retry-After", err, se)
	}
	// The client waits as the agent says and gets its answer.
	start := time.Now()
	if _, err := c.Latest(ctx); err != nil || time.Since(start) < 900*time.Millisecond {
		t.Fatalf("a rate-limited Latest: %v after %s, want an answer after the agent's Retry-After", err, time.Since(start))
	}
	if _, err := (&Client{URL: url, Token: other, Fingerprint: fp}).Latest(ctx); err != nil {
		t.Fatalf("another token is not limited by the first: %v", err)
	}
}

func TestRateBucket(t *testing.T) {
	now := time.Unix(0, 0)
	l := newRateLimits[string](2, 10, func() time.Time { return now })
	for i := range 4 {
		if _, ok := l.allow("a"); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	wait, ok := l.allow("a")
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("past the burst: %v %v, want a wait of 500ms", ok, wait)
	}
	now = now.Add(500 * time.Millisecond)
	if _, ok := l.allow("a"); !ok {
		t.Fatal("refused after refilling one")
	}
}

// countingListener counts the plaintext bytes of its connections: what HTTP
// reads and writes above TLS.
type countingListener struct {
	net.Listener
	mu      sync.Mutex
	in, out int64
}

type countingConn struct {
	net.Conn
	l *countingListener
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, l: l}, nil
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.l.mu.Lock()
	c.l.in += int64(n)
	c.l.mu.Unlock()
	return n, err
}

// Write counts before writing: the client may have the bytes before Write returns.
func (c *countingConn) Write(p []byte) (int, error) {
	c.l.mu.Lock()
	c.l.out += int64(len(p))
	c.l.mu.Unlock()
	return c.Conn.Write(p)
}

func (l *countingListener) take() (in, out int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	in, out, l.in, l.out = l.in, l.out, 0, 0
	return in, out
}

// An up-to-date collector's question, GET /v1/latest and its answer, takes at
// most 1 KB of HTTP on the wire.
func TestLatestIsTiny(t *testing.T) {
	dir := t.TempDir()
	writeTestBatches(t, dir, 2, 2, 2)
	c := DefaultConfig(dir)
	c.ID = testAgentID
	fp, _, err := EnsureCert(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	conf, _, err := ServerTLS(c)
	if err != nil {
		t.Fatal(err)
	}
	secret, _, err := OpenTokens(dir).Add("alice", ScopeRaw, 0)
	if err != nil {
		t.Fatal(err)
	}
	src, err := OpenStore(dir, testAgentID)
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// TLS below the counter: it sees the HTTP bytes.
	ln := &countingListener{Listener: tls.NewListener(tcp, conf)}
	hs := &http.Server{Handler: NewServer(src, OpenTokens(dir), 100, slog.New(slog.DiscardHandler))}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })

	cl := &Client{URL: "https://" + tcp.Addr().String(), Token: secret, Fingerprint: fp}
	ctx := context.Background()
	for i := range 3 {
		h, err := cl.Latest(ctx)
		if err != nil || h.Latest != 3 {
			t.Fatalf("Latest = %+v, %v", h, err)
		}
		in, out := ln.take()
		t.Logf("GET /v1/latest: request %d bytes, answer %d bytes", in, out)
		if in+out > 1024 {
			t.Errorf("request %d: %d + %d bytes of HTTP, want at most 1 KB", i, in, out)
		}
	}
}

func TestClientRefusesWrongCertificate(t *testing.T) {
	a := newTestAgent(t, 1)
	ctx := context.Background()
	wrong := strings.Repeat("ab", 32)
	_, err := (&Client{URL: a.url, Token: a.raw, Fingerprint: wrong}).Latest(ctx)
	if !errors.Is(err, ErrPin) {
		t.Fatalf("a wrong pin: %v, want ErrPin", err)
	}
	if _, err := (&Client{URL: a.url, Token: a.raw}).Latest(ctx); err == nil {
		t.Fatal("no pin and a self-signed certificate: accepted")
	}
	for _, u := range []string{"http://" + strings.TrimPrefix(a.url, "https://"), "https://user:pw@x:1", "ftp://x", "https://"} {
		if _, err := (&Client{URL: u, Token: a.raw, Fingerprint: a.fingerprint}).Latest(ctx); err == nil || statusOf(err) != 0 {
			t.Errorf("URL %q: %v, want refused by the client", u, err)
		}
	}
	// TLS 1.1 is refused.
	conn, err := tls.Dial("tcp", strings.TrimPrefix(a.url, "https://"), &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11})
	if err == nil {
		conn.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
}

// FuzzRoute: whatever request target arrives, an accepted one names an endpoint
// of the API with a well-formed argument, and nothing that could leave the
// agent's folder.
func FuzzRoute(f *testing.F) {
	for _, s := range []string{"/v1/latest", "/v1/batches/7", "/v1/batches/7/raw", "/v1/batches/7/raw/" + strings.Repeat("a", 64), "/v1/batches/7/raw/../x", "/v1/batches?after=1&max_bytes=9", "/v1/%2e%2e/x", "/v1/manifest?after=1&limit=2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		ep, v, sha, ref := route(u)
		if ref != nil {
			if ref.status != http.StatusBadRequest && ref.status != http.StatusNotFound {
				t.Fatalf("%q: status %d", target, ref.status)
			}
			return
		}
		if strings.Contains(u.Path, "..") || strings.Contains(u.Path, "//") || strings.ContainsAny(u.Path, "%\\\x00") {
			t.Fatalf("%q accepted: path %q", target, u.Path)
		}
		if ep == epRaw && !ValidSHA256(sha) || ep != epRaw && sha != "" {
			t.Fatalf("%q: sha %q", target, sha)
		}
		// The path is exactly the endpoint's, with its version and hash.
		segs := strings.Split(u.Path, "/")
		want := map[endpoint][]string{epLatest: {"", "v1", "latest"}, epManifest: {"", "v1", "manifest"}, epStream: {"", "v1", "batches"},
			epBatch: {"", "v1", "batches", ""}, epPack: {"", "v1", "batches", "", "raw"}, epRaw: {"", "v1", "batches", "", "raw", sha}}[ep]
		if len(segs) == len(want) && len(segs) >= 4 {
			if n, err := ParseVersion(segs[3]); err == nil && n == v {
				want[3] = segs[3]
			}
		}
		if !slices.Equal(segs, want) {
			t.Fatalf("%q: endpoint %d, version %d, sha %q", target, ep, v, sha)
		}
		if _, ref := query(u, ep); ref == nil && ep != epManifest && ep != epStream && u.RawQuery != "" {
			if q, _ := url.ParseQuery(u.RawQuery); len(q) > 0 {
				t.Fatalf("%q: parameters accepted by an endpoint without any", target)
			}
		}
	})
}

// A token sent in the query string (or the path) by mistake is never logged:
// nor is any query string.
func TestQueryStringNotLogged(t *testing.T) {
	a := newTestAgent(t, 1)
	for _, target := range []string{
		"/v1/latest?token=" + a.raw,
		"/v1/latest?access_token=" + url.QueryEscape(a.facts) + "&x=1",
		"/v1/manifest?after=0&secret=hunter2",
		"/v1/batches/" + a.raw,
	} {
		for _, token := range []string{"", a.raw} {
			if code, _ := a.do(t, target, token); code == http.StatusOK {
				t.Errorf("%s: 200", target)
			}
		}
	}
	log := a.log.String()
	for _, secret := range []string{a.raw[5:], a.facts[5:], "hunter2", "?"} {
		if strings.Contains(log, secret) {
			t.Errorf("the log holds %q:\n%s", secret, log)
		}
	}
	if !strings.Contains(log, "path=/v1/latest\n") || !strings.Contains(log, "path=/v1/batches/tipa_…") {
		t.Errorf("the refusals are not logged with their paths:\n%s", log)
	}
}

// A refusal's reason is cut to a readable length in the answer and the log,
// whatever the client sent.
func TestRefusalReasonCapped(t *testing.T) {
	a := newTestAgent(t, 1)
	long := strings.Repeat("9", 12_000)
	for _, target := range []string{"/v1/batches/" + long, "/v1/batches?after=" + long, "/v1/manifest?limit=x" + long} {
		code, body := a.do(t, target, a.raw)
		var e struct{ Error string }
		if code != http.StatusBadRequest || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" || len(e.Error) > maxReason {
			t.Errorf("%.40s…: %d, a reason of %d bytes, want 400 and at most %d", target, code, len(e.Error), maxReason)
		}
	}
	for line := range strings.Lines(a.log.String()) {
		if len(line) > 1000 {
			t.Errorf("a log line of %d bytes: %.300s…", len(line), line)
		}
	}
}

// FuzzLogPath: whatever path a client sends, the logged path is short, cut on
// a character boundary, and holds nothing shaped like a token.
func FuzzLogPath(f *testing.F) {
	for _, s := range []string{"/v1/latest", "/v1/batches/tipa_" + strings.Repeat("A", 43), strings.Repeat("é", 150), strings.Repeat("x", 199) + "tipa_abc", "tipa_tipa_x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		got := logPath(path)
		if len(got) > maxLogPath {
			t.Fatalf("%d bytes logged", len(got))
		}
		if utf8.ValidString(path) && !utf8.ValidString(got) {
			t.Fatalf("cut inside a character: %q", got)
		}
		if m := tokenLikeRE.FindAllString(got, -1); slices.ContainsFunc(m, func(s string) bool { return s != "tipa_" }) {
			t.Fatalf("a token-shaped string logged: %q", got)
		}
		if reason := refuseAs(400, refusedBadRequest, "%s", path).reason; len(reason) > maxReason || strings.Contains(reason, "tipa_") && tokenLikeRE.FindString(reason) != "tipa_" {
			t.Fatalf("reason %q", reason)
		}
	})
}
