package opsmetrics_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/opsmetrics"
	"github.com/tip-project/tip/workflows/contract"
)

// Scale of TestReadingCost besides the listings: the flux benchmark's 10,000
// monitors with a day of checks at a 5-minute cadence, and a large spam
// archive.
const (
	costMonitors = 10000
	costChecks   = 288 // per monitor
	costMails    = 200000
	costSources  = 20
	costRuns     = 720 // per source: a month of hourly refreshes
)

// TestReadingCost measures a reading of the operations metrics, and each of
// its statements, on the seeded deployment grown to TIP_OPSMETRICS_LISTINGS
// active listings (1000000: the lab's) over costSources sources, with
// costMonitors monitors of costChecks checks each and costMails mails. It
// only measures: it runs when that variable is set.
func TestReadingCost(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("TIP_OPSMETRICS_LISTINGS"))
	if n <= 0 {
		t.Skip("set TIP_OPSMETRICS_LISTINGS (1000000: the lab's) to measure a reading at scale")
	}
	ctx := context.Background()
	d := newDeployment(t)
	sql := testenv.SQL(t, d.db)
	start := time.Now()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO sources (name, url, format, type, prior, enabled)
		  SELECT 'bulk-' || i, 'http://127.0.0.1:1/bulk-' || i, 'ip-list', 'ipv4', 0.5, true FROM generate_series(1, $1) i`, []any{costSources}},
		{`INSERT INTO indicators (type, value, first_seen)
		  SELECT CASE WHEN g % 4 = 0 THEN 'domain' ELSE 'ipv4' END, 'bulk-' || g, now() FROM generate_series(1, $1) g`, []any{n}},
		{`INSERT INTO source_listings (indicator_id, first_seen, source_id, active)
		  SELECT i.id, now(), s.id, true FROM indicators i JOIN sources s ON s.name = 'bulk-' || (1 + i.id % $1)
		   WHERE i.value LIKE 'bulk-%'`, []any{costSources}},
		{`INSERT INTO source_runs (source, run_key, started_at, finished_at, status, bytes)
		  SELECT 'bulk-' || s, 'r' || r, now() - r * interval '1 hour', now() - r * interval '1 hour' + interval '5 s',
		         CASE WHEN r % 10 = 0 THEN 'unchanged' ELSE 'loaded' END, 1000000
		    FROM generate_series(1, $1) s, generate_series(1, $2) r`, []any{costSources, costRuns}},
		{`INSERT INTO flux_domains (domain, verdict, triaged_at, seen_at, monitor)
		  SELECT 'f' || i || '.example', 'flux', now(), now(), 'watching' FROM generate_series(1, $1) i`, []any{costMonitors}},
		{`SELECT tip_flux_partitions(now() - $1 * interval '5 min', now())`, []any{costChecks}},
		{`INSERT INTO flux_observations (domain, at, due, status, addrs, data, late_ms)
		  SELECT 'f' || i || '.example', now() - k * interval '5 min' - i * interval '1 ms', now() - k * interval '5 min' - i * interval '1 ms',
		         'NOERROR', 1, '{}', (random() * 2000)::int
		    FROM generate_series(1, $1) i, generate_series(0, $2 - 1) k`, []any{costMonitors, costChecks}},
		{`INSERT INTO spam_messages (sha256, digest, size, facts) SELECT md5(g::text) || md5(g::text), md5(g::text) || md5(g::text), 1000, '{}' FROM generate_series(1, $1) g`, []any{costMails}},
		{`INSERT INTO spam_sightings (origin, name, sha256)
		  SELECT 'archive:http://127.0.0.1:1/spam/2026-10.7z', g::text, md5(g::text) || md5(g::text) FROM generate_series(1, $1) g`, []any{costMails}},
		{`ANALYZE`, nil},
	} {
		if _, err := sql.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	t.Logf("grown to %d listings, %d runs, %d monitors with %d checks, %d mails in %v",
		n, costSources*costRuns, costMonitors, costMonitors*costChecks, costMails, time.Since(start).Round(time.Second))

	timed := func(what string, f func() error) {
		t.Helper()
		start := time.Now()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		t.Logf("%-40s %v", what, time.Since(start).Round(time.Millisecond))
	}
	for range 2 { // the second: warm caches, as every reading after the first
		timed("OpsSources", func() error { _, err := d.db.OpsSources(ctx); return err })
		timed("SpamCollectors (one archive)", func() error { _, err := d.db.SpamCollectors(ctx, nil); return err })
		timed("OpsFlux", func() error { _, err := d.db.OpsFlux(ctx, contract.FluxAgentsSource); return err })
		timed("FluxCheckWindow (the first: an hour)", func() error {
			_, err := d.db.FluxCheckWindow(ctx, time.Now().Add(-time.Hour), 30*time.Second, opsmetrics.LatenessBuckets)
			return err
		})
		timed("FluxCheckWindow (10 s)", func() error {
			_, err := d.db.FluxCheckWindow(ctx, time.Now().Add(-40*time.Second), 30*time.Second, opsmetrics.LatenessBuckets)
			return err
		})
		timed("CountFluxChecks (the first reading only)", func() error { _, err := d.db.CountFluxChecks(ctx, time.Now()); return err })
	}
	cfg := opsmetrics.FromConfig(d.cfg)
	cfg.MinInterval = time.Millisecond
	c := opsmetrics.New(d.db, d.tmp, cfg)
	for i := range 3 {
		got := opsmetrics.Scrape(t, c)
		t.Logf("reading %d: tip_ops_scrape_duration_seconds %.3f s; tip_flux_checks_total %v; errors %v %v %v %v", i+1,
			got["tip_ops_scrape_duration_seconds{}"], got["tip_flux_checks_total{}"],
			got[`tip_ops_scrape_errors_total{part="sources"}`], got[`tip_ops_scrape_errors_total{part="spam"}`],
			got[`tip_ops_scrape_errors_total{part="flux"}`], got[`tip_ops_scrape_errors_total{part="core"}`])
		time.Sleep(10 * time.Millisecond)
	}
}
