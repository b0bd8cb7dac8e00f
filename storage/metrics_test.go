package storage_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
)

func TestSourceMetricsFromListings(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// a lists 1,2,3 first; b lists 2,3,4 a day later; c lists 5 but is dead now.
	_, err := testenv.SQL(t, db).Exec(ctx, `
		INSERT INTO sources (name, url, format, type, prior, enabled, consecutive_failures) VALUES
		  ('a', 'https://x/a', 'ip-list', 'ipv4', 0.8, true, 0),
		  ('b', 'https://x/b', 'ip-list', 'ipv4', 0.5, true, 0),
		  ('c', 'https://x/c', 'ip-list', 'ipv4', 0.9, true, 1);
		INSERT INTO indicators (type, value, first_seen)
		  SELECT 'ipv4', '9.0.0.' || g, now() FROM generate_series(1, 5) g;
		INSERT INTO source_listings (source_id, indicator_id, first_seen, last_seen, active)
		  SELECT (SELECT id FROM sources WHERE name = 'a'), id, now() - interval '2 days', NULL, true FROM indicators WHERE value IN ('9.0.0.1', '9.0.0.2', '9.0.0.3');
		INSERT INTO source_listings (source_id, indicator_id, first_seen, last_seen, active)
		  SELECT (SELECT id FROM sources WHERE name = 'b'), id, now() - interval '1 day', NULL, true FROM indicators WHERE value IN ('9.0.0.2', '9.0.0.3', '9.0.0.4');
		INSERT INTO source_listings (source_id, indicator_id, first_seen, last_seen, active)
		  SELECT (SELECT id FROM sources WHERE name = 'c'), id, now(), NULL, true FROM indicators WHERE value = '9.0.0.5';
		INSERT INTO source_runs (source, run_key, started_at, status, added, removed) VALUES
		  ('a', 'r1', now(), 'loaded', 3, 0), ('b', 'r1', now(), 'loaded', 1, 1), ('c', 'r1', now(), 'dead', 0, 0);`)
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
	a, b, c := by["a"], by["b"], by["c"]
	near := func(x, y float64) bool { return math.Abs(x-y) < 1e-6 }
	if a.Volume != 3 || !near(a.ExclusiveShare, 1.0/3) || a.Shared != 2 || a.MeanLatency == nil || !near(*a.MeanLatency, 0) {
		t.Errorf("a = %+v", a)
	}
	if b.MeanLatency == nil || !near(*b.MeanLatency, 86400) || !near(b.AddedShare, 1.0/3) || !near(b.ChurnShare, 1.0/3) {
		t.Errorf("b = %+v (latency %v)", b, b.MeanLatency)
	}
	if c.Health != 0 || c.Weight != 0 || !near(c.ExclusiveShare, 1) {
		t.Errorf("dead c = %+v", c)
	}
	if !(a.Weight > b.Weight && b.Weight > 0) {
		t.Errorf("weights: a %.3f, b %.3f: the earlier, more trusted source must weigh more", a.Weight, b.Weight)
	}
	var share float64
	if err := testenv.SQL(t, db).QueryRow(ctx, `SELECT share FROM source_overlap WHERE a = 'a' AND b = 'b'`).Scan(&share); err != nil || !near(share, 2.0/3) {
		t.Errorf("O[a,b] = %v, %v; want 2/3", share, err)
	}
	// Lookup carries the weights, and the score is the noisy-or of the listing sources.
	ls, err := db.Lookup(ctx, "ipv4", "9.0.0.2", "9.0.0.2", "")
	if err != nil || len(ls) != 2 {
		t.Fatalf("lookup: %v, %v", ls, err)
	}
	want := 1 - (1-a.Weight)*(1-b.Weight)
	if got := storage.ScoreListings(ls, time.Now()); !near(got, want) {
		t.Errorf("score %.4f, want %.4f", got, want)
	}
}

func TestScoreDecaysAfterRemoval(t *testing.T) {
	removed := time.Now().Add(-storage.ScoreHalfLife)
	ls := []storage.Listing{{Source: "a", Weight: 0.8, Active: false, RemovedAt: &removed, LastSeen: removed}}
	if got := storage.ScoreListings(ls, time.Now()); math.Abs(got-0.4) > 1e-3 {
		t.Fatalf("one half-life after removal: %.3f, want 0.4", got)
	}
	if got := storage.Score(nil, nil); got != 0 {
		t.Fatalf("unlisted: %v", got)
	}
}
