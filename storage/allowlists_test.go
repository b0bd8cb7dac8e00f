package storage_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/tip-project/tip/export"
	"github.com/tip-project/tip/feeds"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
)

// replace loads entries into an allowlist of type typ (domain or cidr) the way
// the activity does: a domain list as a ranking (tranco-csv, ranked in order),
// a CIDR list as a netset.
func replace(t *testing.T, db *storage.DB, name, typ string, values ...string) int {
	t.Helper()
	format, lines := "netset", values
	if typ == "domain" {
		format, lines = "tranco-csv", nil
		for i, v := range values {
			lines = append(lines, fmt.Sprintf("%d,%s", i+1, v))
		}
	}
	n, _, err := db.LoadAllowlist(context.Background(), name, storage.AllowlistContent{Format: format,
		Options: feeds.Options{KeepPublicSuffix: true}, Body: strings.NewReader(strings.Join(lines, "\n") + "\n"),
		Type: typ, Validators: storage.Validators{ETag: `"e1"`, SHA256: "abc"}})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAllowlistsMeasureAccuracyAndStayOutOfExports(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.SyncAllowlists(ctx, []storage.AllowlistRow{
		{Name: "top", URL: "https://x/top.zip", Format: "tranco-csv-zip", Type: "domain"},
		{Name: "cdn", URL: "https://x/cdn", Format: "netset", Type: "cidr"},
		{Name: "old", URL: "https://x/old", Format: "netset", Type: "cidr"},
	}); err != nil {
		t.Fatal(err)
	}
	// A ranking with a duplicate keeps its best rank.
	if n := replace(t, db, "top", "domain", "google.com", "example.org", "google.com"); n != 2 {
		t.Fatalf("top: %d entries, want 2", n)
	}
	if n := replace(t, db, "cdn", "cidr", "104.16.0.0/13", "2606:4700::/32"); n != 2 {
		t.Fatalf("cdn: %d entries", n)
	}
	replace(t, db, "old", "cidr", "9.0.0.0/8")
	// "old" leaves the catalog: it and its entries are forgotten.
	if err := db.SyncAllowlists(ctx, []storage.AllowlistRow{
		{Name: "top", URL: "https://x/top.zip", Format: "tranco-csv-zip", Type: "domain"},
		{Name: "cdn", URL: "https://x/cdn", Format: "netset", Type: "cidr"},
	}); err != nil {
		t.Fatal(err)
	}
	if top, err := db.Allowlist(ctx, "top"); err != nil || top.Entries != 2 || top.ETag != `"e1"` || top.LoadedAt == nil {
		t.Fatalf("top after sync: %+v, %v", top, err)
	}
	_, err := testenv.SQL(t, db).Exec(ctx, `
		INSERT INTO sources (name, url, format, type, prior, enabled) VALUES
		  ('dom', 'https://x/d', 'hosts', 'domain', 0.5, true),
		  ('ips', 'https://x/i', 'ip-list', 'ipv4', 0.5, true),
		  ('clean', 'https://x/c', 'ip-list', 'ipv4', 0.5, true);
		INSERT INTO indicators (type, value, registrable, first_seen) VALUES
		  ('domain', 'login.google.com', 'google.com', now()),
		  ('domain', 'evil.com', 'evil.com', now()),
		  ('domain', 'bad.net', 'bad.net', now()),
		  ('domain', 'worse.net', 'worse.net', now()),
		  ('ipv4', '104.17.1.1', '', now()),
		  ('ipv4', '9.9.9.9', '', now()),
		  ('cidr', '104.0.0.0/8', '', now());
		INSERT INTO source_listings (source_id, indicator_id, first_seen, last_seen, active)
		  SELECT (SELECT id FROM sources WHERE name = 'dom'), id, now(), NULL, true FROM indicators WHERE type = 'domain';
		INSERT INTO source_listings (source_id, indicator_id, first_seen, last_seen, active)
		  SELECT (SELECT id FROM sources WHERE name = 'ips'), id, now(), NULL, true FROM indicators WHERE type IN ('ipv4', 'cidr');
		INSERT INTO source_listings (source_id, indicator_id, first_seen, last_seen, active)
		  SELECT (SELECT id FROM sources WHERE name = 'clean'), id, now(), NULL, true FROM indicators WHERE value = '9.9.9.9';
		INSERT INTO source_runs (source, run_key, started_at, status, entries, dropped) VALUES
		  ('dom', 'r', now(), 'loaded', 4, 7), ('ips', 'r', now(), 'loaded', 3, 1), ('clean', 'r', now(), 'loaded', 1, 0);`)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := db.ComputeSourceMetrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]storage.SourceMetrics{}
	for _, m := range ms {
		by[m.Source] = m
	}
	near := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	// dom: 1 of 4 on the ranking; its 7 dropped lines are no listing mistake (a hosts preamble).
	if d := by["dom"]; d.Allowlisted != 1 || d.Reserved != 0 || !near(d.Accuracy, 0.75) {
		t.Errorf("dom = %+v", d)
	}
	// ips: the CDN address and the /8 overlapping a CDN range, plus 1 reserved drop.
	if i := by["ips"]; i.Allowlisted != 2 || i.Reserved != 1 || !near(i.Accuracy, 1-3.0/4) {
		t.Errorf("ips = %+v", i)
	}
	if c := by["clean"]; c.Accuracy != 1 || !(c.Weight > by["ips"].Weight) {
		t.Errorf("clean = %+v, ips weight %.3f", c, by["ips"].Weight)
	}

	hits, err := db.AllowlistHits(ctx, "url", "https://login.google.com/x", "login.google.com", "google.com")
	if err != nil || len(hits) != 1 || hits[0] != (storage.AllowHit{List: "top", Entry: "google.com", Rank: 1}) {
		t.Errorf("url hits: %+v, %v", hits, err)
	}
	if hits, err := db.AllowlistHits(ctx, "ipv4", "104.17.1.1", "", ""); err != nil || len(hits) != 1 || hits[0].Entry != "104.16.0.0/13" {
		t.Errorf("ip hits: %+v, %v", hits, err)
	}
	if hits, err := db.AllowlistHits(ctx, "ipv4", "9.9.9.9", "", ""); err != nil || len(hits) != 0 {
		t.Errorf("9.9.9.9 hits (the forgotten list): %+v, %v", hits, err)
	}

	var exported, all []string
	if err := db.ExportListed(ctx, nil, 0, false, func(r export.Row) error { exported = append(exported, r.Value); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := db.ExportListed(ctx, nil, 0, true, func(r export.Row) error { all = append(all, r.Value); return nil }); err != nil {
		t.Fatal(err)
	}
	// in type/value order; the /8 overlapping a CDN range is held back too
	if want := []string{"bad.net", "evil.com", "worse.net", "9.9.9.9"}; !slices.Equal(exported, want) || len(all) != 7 {
		t.Errorf("exported %q, want %q; with allowlisted %q (want 7)", exported, want, all)
	}
}
