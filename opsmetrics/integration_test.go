package opsmetrics_test

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/internal/seed"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/opsmetrics"
	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// recentLates are how late the checks recorded in the last hour ran: the
// first reading's lateness histogram holds them.
var recentLates = []time.Duration{200 * time.Millisecond, 1500 * time.Millisecond, 40 * time.Second}

// deployment is the seeded database (internal/seed: alpha and beta ok, gamma
// failing, gone dead by 404s, 95 mails of one archive, three monitors), with
// catalogs naming its sources and archive, the archive's last good run now,
// one monitor stable, recent checks of big-flux, and the test stack's
// Temporal, where no core runs and no worker polls.
type deployment struct {
	db  *storage.DB
	w   *seed.World
	cfg config.Config
	tmp *opsmetrics.TemporalClient
}

func newDeployment(t *testing.T) *deployment {
	t.Helper()
	ctx := context.Background()
	cfg := testenv.Config(t)
	db, w := seed.New(t)
	dir := t.TempDir()
	cfg.Blacklists.Catalog = filepath.Join(dir, "sources.yaml")
	cfg.Spam.Catalog = filepath.Join(dir, "spam.yaml")
	// The seed's odd source is not in the catalog: it is not exported.
	catalog := "sources:\n"
	for name, interval := range map[string]string{"alpha": "30m", "beta": "1h", "gamma": "1h", "gone": "1h"} {
		catalog += fmt.Sprintf("  - {name: %s, url: \"http://127.0.0.1:1/%s\", format: ip-list, type: ipv4, interval: %s}\n", name, name, interval)
	}
	spam := `traps:
  - {name: trap, mx: [mx.trap.example]}
archives:
  - {name: lab, index: "http://127.0.0.1:1/spam/", trap: trap, interval: 2m}
`
	for path, body := range map[string]string{cfg.Blacklists.Catalog: catalog, cfg.Spam.Catalog: spam} {
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := db.ClaimCollectorRun(ctx, "archive:lab", 2*time.Minute); err != nil || !ok {
		t.Fatalf("claim archive:lab: %v, %v", ok, err)
	}
	if err := db.SetFluxMonitor(ctx, seed.FluxSmall, contract.MonitorStable, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	var ws []storage.FluxWrite
	for i, late := range recentLates {
		at := time.Now().Add(time.Duration(i-10) * time.Minute)
		ws = append(ws, storage.FluxWrite{Obs: flux.Observation{Domain: seed.FluxBig, At: at, Status: flux.NoError,
			A: []flux.Record{{Addr: netip.MustParseAddr("91.0.1.1"), TTL: 60}}}, Late: late, Due: at.Add(-late)})
	}
	if err := db.RecordFluxChecks(ctx, ws); err != nil {
		t.Fatal(err)
	}
	tmp := opsmetrics.NewTemporalClient(cfg.Temporal, func(ctx context.Context) (client.Client, error) {
		return starter.Dial(ctx, cfg.Temporal, nil, client.Options{})
	})
	t.Cleanup(tmp.Close)
	return &deployment{db: db, w: w, cfg: cfg, tmp: tmp}
}

func (d *deployment) collector() *opsmetrics.Collector {
	return opsmetrics.New(d.db, d.tmp, opsmetrics.FromConfig(d.cfg))
}

// checks is how many checks the deployment recorded.
func (d *deployment) checks() int {
	return len(d.w.Checks[seed.FluxBig]) + len(d.w.Checks[seed.FluxSmall]) + len(recentLates)
}

func TestCollectorReadsTheSeededDeployment(t *testing.T) {
	d := newDeployment(t)
	start := time.Now()
	got := opsmetrics.Scrape(t, d.collector())
	t.Logf("one reading of the seeded deployment took %v (tip_ops_scrape_duration_seconds %.3f s)",
		time.Since(start).Round(time.Millisecond), got["tip_ops_scrape_duration_seconds{}"])
	absent := opsmetrics.Absent
	opsmetrics.Check(t, got, map[string]float64{
		`tip_source_up{source="alpha"}`:                                1,
		`tip_source_up{source="gamma"}`:                                0,
		`tip_source_up{source="gone"}`:                                 0,
		`tip_source_up{source="` + seed.OddSource + `"}`:               absent, // not in the catalog
		`tip_source_state{source="gone",state="dead"}`:                 1,
		`tip_source_state{source="gone",state="ok"}`:                   0,
		`tip_source_state{source="gamma",state="failing"}`:             1,
		`tip_source_state{source="beta",state="ok"}`:                   1,
		`tip_source_consecutive_failures{source="gone"}`:               seed.Refreshes,
		`tip_source_consecutive_failures{source="gamma"}`:              1,
		`tip_source_interval_seconds{source="alpha"}`:                  1800,
		`tip_source_interval_seconds{source="gone"}`:                   3600,
		`tip_source_listings{source="alpha",type="ipv4"}`:              float64(len(d.w.Lists["alpha"])),
		`tip_source_listings{source="gamma",type="domain"}`:            float64(len(d.w.Lists["gamma"])),
		`tip_source_listings{source="gone",type="ipv4"}`:               absent,
		`tip_source_weight{source="gone"}`:                             0, // dead: weighs nothing
		`tip_source_runs_total{source="gone",status="dead"}`:           seed.Refreshes,
		`tip_source_runs_total{source="beta",status="unchanged"}`:      1,
		`tip_source_runs_total{source="beta",status="loaded"}`:         2,
		`tip_source_runs_total{source="gamma",status="failed"}`:        1,
		`tip_source_fetched_bytes_total{source="gone"}`:                0,
		`tip_source_last_success_timestamp_seconds{source="gone"}`:     absent,
		`tip_spam_mails_total{collector="archive:lab"}`:                float64(len(d.w.Mails)),
		`tip_spam_collector_interval_seconds{collector="archive:lab"}`: 120,
		`tip_flux_monitors{state="watching"}`:                          2,
		`tip_flux_monitors{state="stable"}`:                            1,
		`tip_flux_monitors{state="paused"}`:                            0,
		`tip_flux_monitors{state="stopped"}`:                           0,
		`tip_flux_checks_total{}`:                                      float64(d.checks()),
		`tip_flux_check_lateness_seconds_count{}`:                      float64(len(recentLates)), // the last hour's only
		`tip_flux_check_lateness_seconds_bucket{le="0.25"}`:            1,
		`tip_flux_check_lateness_seconds_bucket{le="2"}`:               2,
		`tip_flux_check_lateness_seconds_bucket{le="60"}`:              3,
		`tip_flux_check_interval_seconds{}`:                            d.cfg.Flux.Interval.Seconds(),
		`tip_core_running{}`:                                           0,
		`tip_workers_polling{}`:                                        0,
		`tip_ops_scrape_errors_total{part="sources"}`:                  0,
		`tip_ops_scrape_errors_total{part="spam"}`:                     0,
		`tip_ops_scrape_errors_total{part="flux"}`:                     0,
		`tip_ops_scrape_errors_total{part="core"}`:                     0,
	})
	for _, s := range []string{`tip_source_weight{source="alpha"}`, `tip_source_last_success_timestamp_seconds{source="alpha"}`,
		`tip_spam_last_good_run_timestamp_seconds{collector="archive:lab"}`, `tip_spam_last_mail_timestamp_seconds{collector="archive:lab"}`,
		`tip_source_last_run_duration_seconds{source="alpha"}`} {
		if v, ok := got[s]; !ok || v <= 0 {
			t.Errorf("%s = %v (present %v), want a positive value", s, v, ok)
		}
	}
	if sum := got[`tip_flux_check_lateness_seconds_sum{}`]; math.Abs(sum-41.7) > 1e-9 {
		t.Errorf("lateness sum %v s, want 41.7", sum)
	}
	if age := float64(time.Now().UnixNano())/1e9 - got[`tip_spam_last_good_run_timestamp_seconds{collector="archive:lab"}`]; age < 0 || age > 60 {
		t.Errorf("archive:lab's last good run %v s ago, want just now", age)
	}
}
