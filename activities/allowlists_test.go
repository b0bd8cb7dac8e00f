package activities

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/lab"
	labfeeds "github.com/tip-project/tip/lab/feeds"
	"github.com/tip-project/tip/lab/world"
	"github.com/tip-project/tip/workflows/contract"
)

func refreshAllowlists(t *testing.T, a *stack) []contract.AllowlistResult {
	t.Helper()
	out, err := runActivity[[]contract.AllowlistResult](t, a, a.RefreshAllowlists)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The lab's feeds carry known false positives: URLs and domains of popular sites,
// CDN edge addresses, reserved addresses. Against the lab's top-sites ranking and
// CDN ranges, every source's accuracy must count exactly those.
func TestAccuracyCountsExactlyTheLabsFalsePositives(t *testing.T) {
	ctx := context.Background()
	a := newActivities(t)
	w := world.NewWorld(1)
	clock := world.FixedClock(world.DefaultStart.Add(5 * 24 * time.Hour)) // every kind of false positive is listed by now
	fs := labfeeds.New(w, clock, labfeeds.Options{})
	mux := http.NewServeMux()
	mux.Handle("/feeds/", fs.Handler())
	mux.Handle("/allowlists/", lab.AllowlistHandler(w, slog.New(slog.DiscardHandler)))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	var yaml strings.Builder
	yaml.WriteString("allow_private: true\nsources:\n") // the lab is on loopback
	var sources []catalog.Source
	for _, f := range fs.Catalog() {
		if f.Behaviour != labfeeds.OK {
			continue
		}
		fmt.Fprintf(&yaml, "  - {name: %s, url: %q, format: %s, type: %s}\n", f.Name, srv.URL+f.Path, f.Format, f.Indicator)
	}
	fmt.Fprintf(&yaml, "allowlists:\n  - {name: top, url: %q, format: tranco-csv-zip, top: 10000}\n  - {name: cdn, url: %q, format: netset}\n",
		srv.URL+"/allowlists/tranco/top-1m.csv.zip", srv.URL+"/allowlists/cdn-ranges.txt")
	a.Blacklist.Catalog = filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(a.Blacklist.Catalog, []byte(yaml.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Load(a.Blacklist.Catalog, KnownFormat)
	if err != nil {
		t.Fatal(err)
	}
	sources = c.Sources
	for _, src := range sources {
		if _, r := fetchAndLoad(t, a, src, "r1"); r.Status != contract.RunLoaded {
			t.Fatalf("%s: %+v", src.Name, r)
		}
	}
	res := refreshAllowlists(t, a)
	if len(res) != 2 || res[0].Status != contract.RunLoaded || res[0].Entries != 10000 || res[1].Status != contract.RunLoaded || res[1].Entries != len(w.CDNRanges()) {
		t.Fatalf("allowlists: %+v", res)
	}
	ms, err := a.DB.ComputeSourceMetrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byFeed := map[string]labfeeds.FeedTruth{}
	for _, ft := range fs.Truth(clock.Now()) {
		byFeed[ft.Feed] = ft
	}
	benign, reserved := 0, 0
	for _, m := range ms {
		wantAllow, wantReserved := 0, 0
		for _, e := range byFeed[m.Source].Entries {
			switch e.Set {
			case "fp-popular-url", "fp-popular-domain", "fp-cdn-addr":
				wantAllow++
			case "fp-reserved-addr", "fp-bogon":
				wantReserved++
			}
		}
		if m.Allowlisted != int64(wantAllow) || m.Reserved != int64(wantReserved) {
			t.Errorf("%s: %d allowlisted, %d reserved; the lab lists %d popular/CDN and %d reserved false positives",
				m.Source, m.Allowlisted, m.Reserved, wantAllow, wantReserved)
		}
		if (wantAllow+wantReserved > 0) != (m.Accuracy < 1) {
			t.Errorf("%s: accuracy %.4f with %d false positives", m.Source, m.Accuracy, wantAllow+wantReserved)
		}
		benign += wantAllow
		reserved += wantReserved
	}
	if benign == 0 || reserved == 0 {
		t.Fatalf("the lab listed %d popular/CDN and %d reserved false positives by now; the test proves nothing", benign, reserved)
	}

	// Nothing changed upstream: the next refresh asks conditionally and keeps the entries.
	for _, r := range refreshAllowlistsAfter(t, a, 48*time.Hour) {
		if r.Status != contract.FetchUnchanged {
			t.Errorf("second refresh: %+v", r)
		}
	}
}

// refreshAllowlistsAfter refreshes as if d had passed since the last check.
func refreshAllowlistsAfter(t *testing.T, a *stack, d time.Duration) []contract.AllowlistResult {
	t.Helper()
	if _, err := testenv.SQL(t, a.DB).Exec(context.Background(), `UPDATE allowlists SET checked_at = checked_at - $1::interval`, d); err != nil {
		t.Fatal(err)
	}
	return refreshAllowlists(t, a)
}

// A MISP warninglist on disk, named by a path relative to the catalog, loads
// without any download; an edit is picked up at the next refresh, an unchanged
// file is not reloaded, and entries of the other kind are skipped.
func TestLocalWarninglistAllowlist(t *testing.T) {
	ctx := context.Background()
	a := newActivities(t)
	dir := t.TempDir()
	a.Blacklist.Catalog = filepath.Join(dir, "catalog.yaml")
	doc := "sources:\n  - {name: a, url: \"https://feeds.example/a\", format: ip-list, type: ipv4}\n" +
		"allowlists:\n  - {name: ours, url: lists/ours.json, format: misp-warninglist, type: domain}\n"
	if err := os.WriteFile(a.Blacklist.Catalog, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "lists"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(entries string) {
		body := `{"description":"d","list":[` + entries + `],"name":"ours","type":"string","version":1}`
		if err := os.WriteFile(filepath.Join(dir, "lists", "ours.json"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`"portal.example-cert.org","8.8.8.8","intranet.example-cert.org"`)
	if res := refreshAllowlists(t, a); len(res) != 1 || res[0].Status != contract.RunLoaded || res[0].Entries != 2 || res[0].Skipped != 1 {
		t.Fatalf("first refresh: %+v", res)
	}
	if res := refreshAllowlists(t, a); res[0].Status != contract.FetchUnchanged || res[0].Entries != 2 {
		t.Fatalf("unchanged file: %+v", res)
	}
	write(`"portal.example-cert.org"`)
	if res := refreshAllowlists(t, a); res[0].Status != contract.RunLoaded || res[0].Entries != 1 {
		t.Fatalf("edited file: %+v", res)
	}
	hits, err := a.DB.AllowlistHits(ctx, "domain", "portal.example-cert.org", "portal.example-cert.org", "example-cert.org")
	if err != nil || len(hits) != 1 || hits[0].List != "ours" {
		t.Fatalf("hits: %+v, %v", hits, err)
	}
	if err := os.Remove(filepath.Join(dir, "lists", "ours.json")); err != nil {
		t.Fatal(err)
	}
	res := refreshAllowlists(t, a)
	if res[0].Status != "failed" || !strings.Contains(res[0].Error, "ours.json") {
		t.Fatalf("missing file: %+v", res)
	}
	if row, err := a.DB.Allowlist(ctx, "ours"); err != nil || row.Entries != 1 || row.Error == "" {
		t.Fatalf("a missing file keeps the entries and records why: %+v, %v", row, err)
	}
}
