package apiserve

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tip-project/tip/export"
	"github.com/tip-project/tip/storage"
)

// TestMISPFeed: the feed is generated once a version, whoever asks at once;
// its files carry an ETag and answer 304; a new version generates a new feed
// and the older ones are removed.
func TestMISPFeed(t *testing.T) {
	f := newFakeStore()
	cache := t.TempDir()
	stale := filepath.Join(cache, mispGenPrefix+"left-by-a-crash")
	if err := os.MkdirAll(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	s := testServer(t, Config{MISPCache: cache}, f)
	if _, err := os.Stat(stale); err == nil {
		t.Error("a stale feed is kept")
	}
	h := s.Handler()
	tok := f.addToken("misp", storage.ScopeExport)

	var wg sync.WaitGroup
	codes := make([]int, 20)
	for i := range codes {
		wg.Go(func() { codes[i] = do(h, "GET", "/misp/manifest.json", tok).Code })
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Fatalf("request %d: %d", i, c)
		}
	}
	if f.exports != 1 {
		t.Fatalf("%d generations for 20 requests of one version", f.exports)
	}

	w := do(h, "GET", "/misp/manifest.json", tok)
	var manifest map[string]json.RawMessage
	if err := json.Unmarshal(w.Body.Bytes(), &manifest); err != nil || len(manifest) != 2 {
		t.Fatalf("manifest: %v\n%s", err, w.Body)
	}
	// The events are export's own, from the same rows and time.
	dir := t.TempDir()
	feed, _ := export.NewMISPFeed(dir, f.version.Modified)
	for _, r := range f.rows {
		feed.Write(r)
	}
	feed.Close()
	for id := range manifest {
		want, _ := os.ReadFile(filepath.Join(dir, id+".json"))
		ev := do(h, "GET", "/misp/"+id+".json", tok)
		if ev.Code != http.StatusOK || ev.Body.String() != string(want) || ev.Header().Get("Content-Type") != "application/json" {
			t.Errorf("event %s: %d %s", id, ev.Code, ev.Body)
		}
	}
	hashes := do(h, "GET", "/misp/hashes.csv", tok)
	if hashes.Code != http.StatusOK || strings.Count(hashes.Body.String(), "\n") != 4 || !strings.HasPrefix(hashes.Header().Get("Content-Type"), "text/csv") {
		t.Errorf("hashes.csv: %d %q\n%s", hashes.Code, hashes.Header().Get("Content-Type"), hashes.Body)
	}
	tag, lm := w.Header().Get("ETag"), w.Header().Get("Last-Modified")
	if tag == "" || lm != "Fri, 27 Nov 2026 10:00:00 GMT" || tag == hashes.Header().Get("ETag") {
		t.Errorf("ETag %q, Last-Modified %q: want one a file, and the version's time", tag, lm)
	}
	if w := do(h, "GET", "/misp/manifest.json", tok, "If-None-Match", tag); w.Code != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", w.Code)
	}
	if w := do(h, "GET", "/misp/manifest.json", tok, "If-Modified-Since", lm); w.Code != http.StatusNotModified {
		t.Errorf("If-Modified-Since: %d", w.Code)
	}

	// A new version: a new feed, the ETags change, and an event gone from it
	// is still served from the feed before while a client pulls.
	gone := ""
	for id := range manifest {
		if strings.Contains(string(manifest[id]), "feed-b") {
			gone = id
		}
	}
	f.mu.Lock()
	f.rows = f.rows[1:2] // only feed-a's address is left
	f.mu.Unlock()
	f.change()
	if err := s.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	w2 := do(h, "GET", "/misp/manifest.json", tok, "If-None-Match", tag)
	if w2.Code != http.StatusOK || w2.Header().Get("ETag") == tag || f.exports != 2 {
		t.Fatalf("after a change: %d, ETag %q, %d generations", w2.Code, w2.Header().Get("ETag"), f.exports)
	}
	if strings.Contains(w2.Body.String(), gone) {
		t.Fatalf("the new manifest still lists %s", gone)
	}
	if w := do(h, "GET", "/misp/"+gone+".json", tok); w.Code != http.StatusOK {
		t.Errorf("an event of the manifest before: %d", w.Code)
	}
	f.change()
	s.Refresh(context.Background())
	do(h, "GET", "/misp/manifest.json", tok)
	gens, _ := filepath.Glob(filepath.Join(cache, mispGenPrefix+"*"))
	if len(gens) != 2 {
		t.Errorf("%d feeds kept after three versions, want the current one and the one before: %v", len(gens), gens)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if gens, _ := filepath.Glob(filepath.Join(cache, mispGenPrefix+"*")); len(gens) != 0 {
		t.Errorf("Close left %v", gens)
	}
}
