package apiserve

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tip-project/tip/export"
	"github.com/tip-project/tip/feeds"
	"github.com/tip-project/tip/lookup"
	"github.com/tip-project/tip/storage"
)

// fakeStore holds tokens, listings and sources in memory, as storage keeps them.
type fakeStore struct {
	mu       sync.Mutex
	tokens   map[string]storage.APIToken // by secret
	version  storage.ExportVersion
	rows     []export.Row
	health   []storage.SourceHealth
	states   []storage.SourceState
	pdns     []storage.PDNSRecord
	exports  int   // ExportListed calls
	failRows int   // ExportListed fails after this many rows; 0: never
	err      error // every read fails with it
	wake     chan struct{}
}

func newFakeStore() *fakeStore {
	modified := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	first := modified.Add(-48 * time.Hour)
	return &fakeStore{
		tokens:  map[string]storage.APIToken{},
		version: storage.ExportVersion{Key: "1.1.1.0", Seq: 1, Modified: modified},
		rows: []export.Row{
			{Type: "domain", Value: "evil.example", Score: 0.9, Sources: []string{"feed-a", "feed-b"}, FirstSeen: []time.Time{first, first.Add(time.Hour)}},
			{Type: "ipv4", Value: "45.10.0.7", Score: 0.8, Sources: []string{"feed-a"}, FirstSeen: []time.Time{first}},
			{Type: "url", Value: "http://evil.example/x.exe", Score: 0.6, Sources: []string{"feed-b"}, FirstSeen: []time.Time{first}},
		},
		health: []storage.SourceHealth{
			{Name: "feed-a", Format: "generic", Enabled: true, Prior: 0.6, Active: 2, LastStatus: "loaded", LastRun: modified, LastHTTPStatus: 200,
				LastEntries: 2, LastAdded: 2, Health: "ok", Weight: 0.55, Accuracy: 1},
			{Name: "feed-b", Format: "generic", Enabled: true, Prior: 0.5, Health: "never-run", Accuracy: 1},
		},
		states: []storage.SourceState{
			{Name: "feed-a", LastSuccess: &modified, LastAttempt: &modified, Weight: 0.55, MetricsAt: &modified},
			{Name: "feed-b", LastAttemptError: "HTTP 503", Weight: 0.5},
		},
		pdns: []storage.PDNSRecord{
			{RRName: "flux.example", RRType: "A", RData: "45.10.0.7", TimeFirst: first.Unix(), TimeLast: modified.Unix(), Count: 12},
			{RRName: "flux.example", RRType: "AAAA", RData: "2001:db8::7", TimeFirst: first.Unix(), TimeLast: first.Unix(), Count: 1},
			{RRName: "flux.example", RRType: "NS", RData: "ns1.flux.example", TimeFirst: first.Unix(), TimeLast: modified.Unix(), Count: 12},
			{RRName: "ns1.flux.example", RRType: "A", RData: "45.10.0.53", TimeFirst: first.Unix(), TimeLast: modified.Unix(), Count: 12},
		},
		wake: make(chan struct{}, 1),
	}
}

// PassiveDNS gives the records whose rrname or rdata is q.
func (f *fakeStore) PassiveDNS(_ context.Context, q string) ([]storage.PDNSRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []storage.PDNSRecord
	for _, r := range f.pdns {
		if r.RRName == q || r.RData == q {
			out = append(out, r)
		}
	}
	return out, f.err
}

// addToken stores a token the way AddAPIToken does and returns its secret.
func (f *fakeStore) addToken(name string, scopes ...storage.APIScope) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	secret := fmt.Sprintf("tipk_%043d", len(f.tokens))
	f.tokens[secret] = storage.APIToken{Name: name, Scopes: scopes, Created: time.Now()}
	return secret
}

func (f *fakeStore) setToken(secret string, edit func(*storage.APIToken)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.tokens[secret]
	edit(&t)
	f.tokens[secret] = t
}

// change moves the exports to a new version, a second later.
func (f *fakeStore) change() storage.ExportVersion {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.version.Seq++
	f.version.Key = fmt.Sprintf("%d.%d.x.0", f.version.Seq, f.version.Seq)
	f.version.Modified = f.version.Modified.Add(time.Second)
	select {
	case f.wake <- struct{}{}:
	default:
	}
	return f.version
}

func (f *fakeStore) VerifyAPIToken(_ context.Context, secret string) (storage.APIToken, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return storage.APIToken{}, f.err
	}
	if secret == "" {
		return storage.APIToken{}, storage.ErrAPITokenMissing
	}
	t, ok := f.tokens[secret]
	switch {
	case !ok:
		return t, storage.ErrAPITokenUnknown
	case t.Status(time.Now()) == "revoked":
		return t, storage.ErrAPITokenRevoked
	case t.Status(time.Now()) == "expired":
		return t, storage.ErrAPITokenExpired
	}
	return t, nil
}

func (f *fakeStore) ExportVersion(context.Context) (storage.ExportVersion, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.version, f.err
}

func (f *fakeStore) ExportListed(ctx context.Context, types []string, minScore float64, _ bool, fn func(export.Row) error) error {
	f.mu.Lock()
	f.exports++
	rows, failAfter, err := slices.Clone(f.rows), f.failRows, f.err
	f.mu.Unlock()
	if err != nil {
		return err
	}
	for i, r := range rows {
		if failAfter > 0 && i == failAfter {
			return errors.New("connection to the database lost")
		}
		if (len(types) == 0 || slices.Contains(types, r.Type)) && r.Score >= minScore {
			if err := fn(r); err != nil {
				return err
			}
		}
	}
	return ctx.Err()
}

func (f *fakeStore) SourcesHealth(context.Context) ([]storage.SourceHealth, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.health), f.err
}

func (f *fakeStore) SourceStates(context.Context) ([]storage.SourceState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.states), f.err
}

func (f *fakeStore) WaitListingChange(ctx context.Context) error {
	select {
	case <-f.wake:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fakeLookuper answers from the rows of a fakeStore, as an index would.
type fakeLookuper struct{ f *fakeStore }

func (l fakeLookuper) Lookup(_ context.Context, q lookup.Query) (lookup.Document, error) {
	d := lookup.Document{Query: q.Indicator, Listings: []storage.Listing{}, Allowlisted: []storage.AllowHit{}, Overrides: []storage.Override{}}
	l.f.mu.Lock()
	defer l.f.mu.Unlock()
	if l.f.err != nil {
		return d, l.f.err
	}
	for _, r := range l.f.rows {
		if r.Value != q.Indicator.Value {
			continue
		}
		d.Score = r.Score
		for i, src := range r.Sources {
			d.Listings = append(d.Listings, storage.Listing{Source: src, Type: r.Type, Value: r.Value, Match: "exact",
				FirstSeen: r.FirstSeen[i], LastSeen: l.f.version.Modified, Active: true, Weight: 0.5, TLP: "clear"})
		}
	}
	if q.Indicator.Type == feeds.Domain && strings.HasSuffix(q.Indicator.Value, "example.org") {
		d.Allowlisted = append(d.Allowlisted, storage.AllowHit{List: "tranco", Entry: "example.org", Rank: 12})
	}
	return d, nil
}

// testServer is a server on a fake store, with its handler.
func testServer(t *testing.T, cfg Config, f *fakeStore) *Server {
	t.Helper()
	if cfg.MISPCache == "" {
		cfg.MISPCache = t.TempDir()
	}
	s, err := New(cfg, f, Options{Lookuper: fakeLookuper{f}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// do sends a request to h with a bearer token (none when "") and returns the
// recorded answer.
func do(h http.Handler, method, target, token string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}
