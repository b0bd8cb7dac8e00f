package storage_test

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/tip-project/tip/internal/seed"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
)

func TestReportReadsTheSeededWorld(t *testing.T) {
	ctx := context.Background()
	db, w := seed.New(t)

	tot, err := db.Totals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	everListed := map[string]bool{"45.20.0.4": true, "45.20.0.5": true, "evil-three.org": true} // removed since
	active := 0
	for _, l := range w.Lists {
		active += len(l)
		for _, v := range l {
			everListed[v] = true
		}
	}
	want := storage.Totals{Sources: 5, Indicators: int64(len(everListed)), ActiveListings: int64(active), SpamMails: int64(len(w.Mails)),
		FluxTriaged: 4, FluxMonitored: 3, FluxObservations: int64(len(w.Checks[seed.FluxBig]) + len(w.Checks[seed.FluxSmall]))}
	if tot != want {
		t.Errorf("totals %+v, want %+v", tot, want)
	}

	t.Run("metrics history", func(t *testing.T) {
		hist, err := db.MetricsHistory(ctx, time.Time{}, 100)
		if err != nil || len(hist) != seed.Refreshes*len(w.Sources) {
			t.Fatalf("%d points, %v; want %d", len(hist), err, seed.Refreshes*len(w.Sources))
		}
		// the last refresh's are the current metrics
		now, err := db.SourcesHealth(ctx)
		if err != nil {
			t.Fatal(err)
		}
		last := hist[len(hist)-len(w.Sources):]
		for i, h := range now {
			if p := last[i]; p.Source != h.Name || math.Abs(p.Weight-h.Weight) > 1e-12 || p.Volume != h.Active {
				t.Errorf("last point %+v, current %s weight %v active %d", p, h.Name, h.Weight, h.Active)
			}
		}
		health := map[string][]float64{}
		for _, p := range hist {
			health[p.Source] = append(health[p.Source], p.Health)
		}
		if !slices.Equal(health["gamma"], []float64{1, 1, 0.5}) || !slices.Equal(health["gone"], []float64{0, 0, 0}) {
			t.Errorf("health over time: %v", health)
		}
		// two points a source: the last refresh and one before
		few, err := db.MetricsHistory(ctx, time.Time{}, 2)
		if err != nil || len(few) != 2*len(w.Sources) || !few[len(few)-1].At.Equal(hist[len(hist)-1].At) || few[0].At.Equal(few[len(few)-1].At) {
			t.Errorf("at most 2 refreshes: %d points, %v", len(few), err)
		}
		if none, err := db.MetricsHistory(ctx, time.Now().Add(time.Hour), 100); err != nil || len(none) != 0 {
			t.Errorf("since the future: %v, %v", none, err)
		}
	})

	t.Run("run history", func(t *testing.T) {
		step, counts, err := db.RunHistory(ctx, time.Time{}, 50)
		if err != nil || !slices.Contains(storage.RunSteps, step) {
			t.Fatalf("step %s, %v", step, err)
		}
		starts := map[time.Time]bool{}
		got := map[string]map[string]int{}
		for _, c := range counts {
			if got[c.Source] == nil {
				got[c.Source] = map[string]int{}
			}
			got[c.Source][c.Status] += c.Runs
			if c.Start.After(time.Now()) || !c.Start.Equal(c.Start.Truncate(step)) {
				t.Errorf("slice not on a multiple of %s or in the future: %+v", step, c)
			}
			starts[c.Start] = true
		}
		if len(starts) > 50 {
			t.Errorf("%d slices", len(starts))
		}
		for s, byStatus := range w.Runs {
			for status, n := range byStatus {
				if got[s][status] != n {
					t.Errorf("%s %s: %d runs, want %d", s, status, got[s][status], n)
				}
			}
		}
		if _, counts, err := db.RunHistory(ctx, time.Now().Add(time.Hour), 50); err != nil || counts != nil {
			t.Errorf("since the future: %v, %v", counts, err)
		}
	})

	t.Run("overlap", func(t *testing.T) {
		o, err := db.SourceOverlap(ctx)
		if err != nil || !slices.Equal(o.Sources, w.Sources) {
			t.Fatalf("sources %v, %v; want %v", o.Sources, err, w.Sources)
		}
		for i, a := range o.Sources {
			if o.Volume[i] != int64(len(w.Lists[a])) {
				t.Errorf("%s: volume %d, want %d", a, o.Volume[i], len(w.Lists[a]))
			}
			for j, b := range o.Sources {
				shared := 0
				for _, v := range w.Lists[a] {
					if slices.Contains(w.Lists[b], v) {
						shared++
					}
				}
				share := 0.0
				if shared > 0 {
					share = float64(shared) / float64(len(w.Lists[a]))
				}
				if o.Shared[i][j] != int64(shared) || math.Abs(o.Share[i][j]-share) > 1e-12 {
					t.Errorf("%s ∩ %s: %d (%.3f), want %d (%.3f)", a, b, o.Shared[i][j], o.Share[i][j], shared, share)
				}
			}
		}
	})

	t.Run("flux", func(t *testing.T) {
		ds, total, err := db.MonitoredFluxDomains(ctx, 2)
		if err != nil || total != 3 || len(ds) != 2 || ds[0].Domain != seed.FluxBig || ds[1].Domain != seed.FluxSmall || ds[0].IPs != 60 {
			t.Fatalf("monitored: %d of %d, %+v, %v", len(ds), total, ds, err)
		}
		obs := w.Checks[seed.FluxBig]
		all, n, err := db.FluxChecks(ctx, seed.FluxBig, time.Time{}, time.Time{}, 100)
		if err != nil || n != len(obs) || len(all) != len(obs) {
			t.Fatalf("checks: %d of %d, %v", len(all), n, err)
		}
		for k, c := range all {
			o := obs[k]
			if !c.Obs.At.Equal(o.At) || c.Obs.Status != o.Status || len(c.Obs.A) != len(o.A) || len(c.Obs.NS) != 0 {
				t.Fatalf("check %d: %+v, wrote %+v", k, c.Obs, o)
			}
			for j, r := range c.Obs.A {
				if r != o.A[j] {
					t.Fatalf("check %d record %d: %+v, wrote %+v", k, j, r, o.A[j])
				}
			}
			// the answer before, when both answered: k-1, or k-2 after the NXDOMAIN
			var wantPrev *time.Time
			switch {
			case k == 0 || o.Status != "NOERROR":
			case obs[k-1].Status == "NOERROR":
				wantPrev = &obs[k-1].At
			default:
				wantPrev = &obs[k-2].At
			}
			if (c.Prev == nil) != (wantPrev == nil) || c.Prev != nil && (!c.Prev.At.Equal(*wantPrev) || len(c.Prev.A) != 5) {
				t.Errorf("check %d: previous answer %+v, want at %v", k, c.Prev, wantPrev)
			}
		}
		few, n, err := db.FluxChecks(ctx, seed.FluxBig, time.Time{}, time.Time{}, 10)
		if err != nil || n != len(obs) || len(few) != 10 || !few[0].Obs.At.Equal(obs[0].At) || !few[9].Obs.At.Equal(obs[len(obs)-1].At) {
			t.Errorf("10 of the checks: %d of %d, %v", len(few), n, err)
		}
		recent, n, err := db.FluxChecks(ctx, seed.FluxBig, seed.Start.Add(100*time.Minute), time.Time{}, 100)
		if err != nil || n != 20 || len(recent) != 20 || recent[0].Prev == nil {
			t.Errorf("checks since the 20th: %d of %d, %v", len(recent), n, err)
		}
		if none, n, err := db.FluxChecks(ctx, seed.FluxQuiet, time.Time{}, time.Time{}, 100); err != nil || n != 0 || none != nil {
			t.Errorf("no checks: %v %d %v", none, n, err)
		}
		sight, err := db.FluxSightings(ctx, seed.FluxBig)
		if err != nil || len(sight) != 60 || !sight[0].FirstSeen.Equal(seed.Start) || sight[0].ASN == 0 ||
			!slices.IsSortedFunc(sight, func(a, b storage.FluxSighting) int { return a.FirstSeen.Compare(b.FirstSeen) }) {
			t.Errorf("sightings: %d, %v", len(sight), err)
		}
	})

	st, err := db.SpamStats(ctx, 5)
	if err != nil || st.WithSender != 91 || st.Mails != 95 {
		t.Errorf("spam: %d mails, %d with a sender, %v", st.Mails, st.WithSender, err)
	}
}

func TestMetricsHistoryOfAnOlderSchemaSaysSo(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.SQL(t, db).Exec(ctx, `DROP TABLE source_metrics_history`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.MetricsHistory(ctx, time.Time{}, 10); !errors.Is(err, storage.ErrSchemaBehind) {
		t.Errorf("without the table: %v, want ErrSchemaBehind", err)
	}
}

func TestMetricsHistoryDropsWhatIsOlderThanAYear(t *testing.T) {
	ctx := context.Background()
	db, w := seed.New(t)
	// the first refresh as if it were a year and a day ago
	if _, err := testenv.SQL(t, db).Exec(ctx, `UPDATE source_metrics_history SET computed_at = computed_at - $1::interval
		WHERE computed_at = (SELECT min(computed_at) FROM source_metrics_history)`, storage.MetricsHistoryKeep+24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ComputeSourceMetrics(ctx); err != nil {
		t.Fatal(err)
	}
	hist, err := db.MetricsHistory(ctx, time.Time{}, 100)
	if err != nil || len(hist) != seed.Refreshes*len(w.Sources) {
		t.Fatalf("%d points, %v: the old refresh should be gone, the new one there", len(hist), err)
	}
	if d := time.Since(hist[0].At); d > time.Hour {
		t.Errorf("oldest point %s old", d)
	}
}
