package opsmetrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

// fakeStore answers a reading with fixed rows, and counts what it was asked.
type fakeStore struct {
	mu      sync.Mutex
	sources []storage.OpsSource
	mails   map[string]storage.SpamCollector // by collector name: what the database recorded
	flux    storage.OpsFlux
	windows []storage.FluxCheckWindow // answered in turn, the last one again
	total   int64                     // every check recorded

	fail     map[string]error // by method name
	reads    int              // OpsSources calls
	froms    []time.Time      // FluxCheckWindow's from, each call
	counted  int              // CountFluxChecks calls
	collects [][]string       // the collector names SpamCollectors was given
}

func (f *fakeStore) OpsSources(context.Context) ([]storage.OpsSource, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return f.sources, f.fail["OpsSources"]
}

func (f *fakeStore) SpamCollectors(_ context.Context, cs []storage.SpamCollector) ([]storage.SpamCollector, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	f.collects = append(f.collects, names)
	if err := f.fail["SpamCollectors"]; err != nil {
		return nil, err
	}
	if len(cs) == 0 { // as storage does: one per origin recorded
		for _, name := range slices.Sorted(maps.Keys(f.mails)) {
			cs = append(cs, storage.SpamCollector{Name: name, Origin: name})
		}
	}
	out := make([]storage.SpamCollector, len(cs))
	for i, c := range cs {
		m := f.mails[c.Name]
		c.Mails, c.LastMail, c.LastRun = m.Mails, m.LastMail, m.LastRun
		out[i] = c
	}
	return out, nil
}

func (f *fakeStore) OpsFlux(context.Context, string) (storage.OpsFlux, error) {
	return f.flux, f.fail["OpsFlux"]
}

func (f *fakeStore) FluxCheckWindow(_ context.Context, from time.Time, _ time.Duration, bounds []float64) (storage.FluxCheckWindow, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail["FluxCheckWindow"]; err != nil {
		return storage.FluxCheckWindow{}, err
	}
	f.froms = append(f.froms, from)
	w := f.windows[min(len(f.froms), len(f.windows))-1]
	if len(w.LateLE) != len(bounds) {
		panic(fmt.Sprintf("window of %d buckets for %d bounds", len(w.LateLE), len(bounds)))
	}
	return w, nil
}

func (f *fakeStore) CountFluxChecks(context.Context, time.Time) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counted++
	return f.total, f.fail["CountFluxChecks"]
}

type fakeTemporal struct {
	st       contract.CoreStatus
	running  bool
	coreErr  error
	pollers  int
	pollsErr error
}

func (f *fakeTemporal) Core(context.Context) (contract.CoreStatus, bool, error) {
	return f.st, f.running, f.coreErr
}

func (f *fakeTemporal) Pollers(context.Context) (int, error) { return f.pollers, f.pollsErr }

// window is a window of checks as late as lates (seconds), ending at through.
func window(through time.Time, lates ...float64) storage.FluxCheckWindow {
	w := storage.FluxCheckWindow{Through: through, Checks: int64(len(lates)), LateLE: make([]int64, len(LatenessBuckets))}
	for _, l := range lates {
		w.LateSum += l
		for i, b := range LatenessBuckets {
			if l <= b {
				w.LateLE[i]++
			}
		}
	}
	return w
}

// world is a deployment with every kind of series: a healthy source, a dead
// one, one never run, one failing but disabled since, one dropped from the
// catalog, TIP's own flux agents; three spam collectors (one disabled);
// monitors and checks; a core with a module ok and one failed.
func world() (*fakeStore, *fakeTemporal) {
	db := &fakeStore{
		sources: []storage.OpsSource{
			{Name: "alpha", Health: "ok", LastSuccess: ptr(t0.Add(-10 * time.Minute)), LastRunDuration: ptr(1500 * time.Millisecond),
				Weight: ptr(0.72), Listings: map[string]int64{"ipv4": 12, "cidr": 3}, Runs: map[string]int64{"loaded": 3, "unchanged": 1}, FetchedBytes: 4096},
			{Name: "gone", Health: "dead", ConsecutiveFailures: 3, LastRunDuration: ptr(time.Second), Weight: ptr(0.0),
				Listings: map[string]int64{}, Runs: map[string]int64{"dead": 3}},
			{Name: "new", Health: "never-run", Listings: map[string]int64{}, Runs: map[string]int64{}},
			{Name: "off", Health: "failing", ConsecutiveFailures: 1, Listings: map[string]int64{}, Runs: map[string]int64{"failed": 1}},
			{Name: "dropped", Health: "dead", ConsecutiveFailures: 5, Listings: map[string]int64{}, Runs: map[string]int64{"failed": 5}},
			{Name: contract.FluxAgentsSource, Health: "ok", LastSuccess: ptr(t0.Add(-time.Hour)), Listings: map[string]int64{"ipv4": 7},
				Runs: map[string]int64{"loaded": 2}},
		},
		mails: map[string]storage.SpamCollector{
			"archive:arch": {Mails: 91, LastMail: ptr(t0.Add(-2 * time.Hour)), LastRun: ptr(t0.Add(-30 * time.Minute))},
			"agent:mx1":    {Mails: 5, LastMail: ptr(t0.Add(-time.Minute))},
		},
		flux:    storage.OpsFlux{FluxCounts: storage.FluxCounts{Watching: 2, Stable: 1, Stopped: 4, Networks: 2}, AgentsListed: 7},
		windows: []storage.FluxCheckWindow{window(t0.Add(-30*time.Second), 0.05, 0.3, 45)},
		total:   40,
	}
	tmp := &fakeTemporal{running: true, pollers: 2, st: contract.CoreStatus{Modules: []contract.ModuleStatus{
		{Name: contract.BlacklistModule, Enabled: true, Next: t0.Add(time.Hour),
			Last: &contract.RunResult{Status: contract.ModuleRunCompleted, Started: t0.Add(-time.Minute), Finished: t0.Add(-20 * time.Second)}},
		{Name: contract.SpamModule, Enabled: true, Running: "spam-collect/x", RunningSince: t0,
			Last: &contract.RunResult{Status: contract.ModuleRunFailed, Finished: t0.Add(-10 * time.Minute), Error: "boom"}},
		{Name: contract.FluxTriageModule, Enabled: true, Paused: true, Next: t0.Add(time.Minute)},
	}}}
	return db, tmp
}

func testConfig() Config {
	return Config{Catalog: "testdata/sources.yaml", SpamCatalog: "testdata/spam.yaml", FluxInterval: time.Minute,
		OwnIntervals: map[string]time.Duration{contract.FluxAgentsSource: 3 * time.Minute}}
}

// newTest is a Collector of db and tmp whose clock is *now.
func newTest(db Store, tmp Temporal, cfg Config, now *time.Time) *Collector {
	c := New(db, tmp, cfg)
	c.now = func() time.Time { return *now }
	return c
}

// scrape gathers c as a registry serves it (the pedantic registry checks
// that every metric matches a description), by `name{label="value",...}`;
// a histogram by its _count, _sum and _bucket series.
func scrape(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := func(suffix string, extra ...string) string {
				var ls []string
				for _, l := range m.GetLabel() {
					ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
				ls = append(ls, extra...)
				sort.Strings(ls)
				return mf.GetName() + suffix + "{" + strings.Join(ls, ",") + "}"
			}
			switch mf.GetType() {
			case dto.MetricType_GAUGE:
				out[key("")] = m.GetGauge().GetValue()
			case dto.MetricType_COUNTER:
				out[key("")] = m.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				out[key("_count")] = float64(h.GetSampleCount())
				out[key("_sum")] = h.GetSampleSum()
				for _, b := range h.GetBucket() {
					out[key("_bucket", fmt.Sprintf("le=%q", fmt.Sprint(b.GetUpperBound())))] = float64(b.GetCumulativeCount())
				}
			}
		}
	}
	return out
}

// check reports the series of got that differ from want (absent: a NaN want
// means the series must be absent).
func check(t *testing.T, got map[string]float64, want map[string]float64) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(want)) {
		v, ok := got[k]
		switch w := want[k]; {
		case w != w: // NaN: must be absent
			if ok {
				t.Errorf("%s = %v, want no such series", k, v)
			}
		case !ok:
			t.Errorf("%s missing", k)
		case v != w:
			t.Errorf("%s = %v, want %v", k, v, w)
		}
	}
}

var absent = func() float64 { var z float64; return z / z }()

func TestSeriesOfAReading(t *testing.T) {
	db, tmp := world()
	now := t0
	got := scrape(t, newTest(db, tmp, testConfig(), &now))
	ts := func(d time.Duration) float64 { return float64(t0.Add(d).Unix()) }
	check(t, got, map[string]float64{
		`tip_source_up{source="alpha"}`:                                             1,
		`tip_source_up{source="gone"}`:                                              0,
		`tip_source_up{source="new"}`:                                               0,
		`tip_source_state{source="alpha",state="ok"}`:                               1,
		`tip_source_state{source="alpha",state="dead"}`:                             0,
		`tip_source_state{source="gone",state="dead"}`:                              1,
		`tip_source_state{source="gone",state="ok"}`:                                0,
		`tip_source_state{source="gone",state="failing"}`:                           0,
		`tip_source_up{source="off"}`:                                               absent, // disabled in the catalog
		`tip_source_state{source="off",state="failing"}`:                            absent,
		`tip_source_state{source="dropped",state="dead"}`:                           absent, // no longer in it
		`tip_source_state{source="new",state="ok"}`:                                 0,      // never run: in no state
		`tip_source_state{source="new",state="dead"}`:                               0,
		`tip_source_state{source="new",state="never-run"}`:                          absent,
		`tip_source_last_success_timestamp_seconds{source="alpha"}`:                 ts(-10 * time.Minute),
		`tip_source_last_success_timestamp_seconds{source="gone"}`:                  absent,
		`tip_source_consecutive_failures{source="gone"}`:                            3,
		`tip_source_consecutive_failures{source="alpha"}`:                           0,
		`tip_source_interval_seconds{source="alpha"}`:                               1800,
		`tip_source_interval_seconds{source="gone"}`:                                3600,
		`tip_source_interval_seconds{source="new"}`:                                 7200,
		`tip_source_interval_seconds{source="tip-flux-agents"}`:                     180,
		`tip_source_listings{source="alpha",type="ipv4"}`:                           12,
		`tip_source_listings{source="alpha",type="cidr"}`:                           3,
		`tip_source_listings{source="tip-flux-agents",type="ipv4"}`:                 7,
		`tip_source_weight{source="alpha"}`:                                         0.72,
		`tip_source_weight{source="gone"}`:                                          0,
		`tip_source_weight{source="new"}`:                                           absent,
		`tip_source_runs_total{source="alpha",status="loaded"}`:                     3,
		`tip_source_runs_total{source="alpha",status="unchanged"}`:                  1,
		`tip_source_runs_total{source="gone",status="dead"}`:                        3,
		`tip_source_fetched_bytes_total{source="alpha"}`:                            4096,
		`tip_source_fetched_bytes_total{source="new"}`:                              0,
		`tip_source_last_run_duration_seconds{source="alpha"}`:                      1.5,
		`tip_source_last_run_duration_seconds{source="new"}`:                        absent,
		`tip_spam_mails_total{collector="archive:arch"}`:                            91,
		`tip_spam_mails_total{collector="imap:box"}`:                                absent, // disabled
		`tip_spam_mails_total{collector="agent:mx1"}`:                               5,
		`tip_spam_last_mail_timestamp_seconds{collector="archive:arch"}`:            ts(-2 * time.Hour),
		`tip_spam_last_mail_timestamp_seconds{collector="agent:mx1"}`:               ts(-time.Minute),
		`tip_spam_last_good_run_timestamp_seconds{collector="archive:arch"}`:        ts(-30 * time.Minute),
		`tip_spam_last_good_run_timestamp_seconds{collector="agent:mx1"}`:           0, // never ran well: 1970, so its age grows
		`tip_spam_collector_interval_seconds{collector="archive:arch"}`:             3600,
		`tip_spam_collector_interval_seconds{collector="agent:mx1"}`:                120,
		`tip_flux_monitors{state="watching"}`:                                       2,
		`tip_flux_monitors{state="stable"}`:                                         1,
		`tip_flux_monitors{state="paused"}`:                                         0,
		`tip_flux_monitors{state="stopped"}`:                                        4,
		`tip_flux_checks_total{}`:                                                   40,
		`tip_flux_networks{}`:                                                       2,
		`tip_flux_agents_listed{}`:                                                  7,
		`tip_flux_check_interval_seconds{}`:                                         60,
		`tip_flux_check_lateness_seconds_count{}`:                                   3,
		`tip_flux_check_lateness_seconds_sum{}`:                                     45.35,
		`tip_flux_check_lateness_seconds_bucket{le="0.1"}`:                          1,
		`tip_flux_check_lateness_seconds_bucket{le="0.5"}`:                          2,
		`tip_flux_check_lateness_seconds_bucket{le="30"}`:                           2,
		`tip_flux_check_lateness_seconds_bucket{le="60"}`:                           3,
		`tip_flux_check_lateness_seconds_bucket{le="600"}`:                          3,
		`tip_core_running{}`:                                                        1,
		`tip_core_module_last_run_timestamp_seconds{module="blacklist-refresh"}`:    ts(-20 * time.Second),
		`tip_core_module_last_run_timestamp_seconds{module="spam-collect"}`:         ts(-10 * time.Minute),
		`tip_core_module_last_run_timestamp_seconds{module="flux-triage"}`:          absent, // never ran
		`tip_core_module_next_run_timestamp_seconds{module="blacklist-refresh"}`:    ts(time.Hour),
		`tip_core_module_next_run_timestamp_seconds{module="spam-collect"}`:         absent, // running
		`tip_core_module_next_run_timestamp_seconds{module="flux-triage"}`:          absent, // paused
		`tip_core_module_last_outcome{module="blacklist-refresh",outcome="ok"}`:     1,
		`tip_core_module_last_outcome{module="blacklist-refresh",outcome="failed"}`: 0,
		`tip_core_module_last_outcome{module="spam-collect",outcome="failed"}`:      1,
		`tip_core_module_last_outcome{module="spam-collect",outcome="ok"}`:          0,
		`tip_workers_polling{}`:                                                     2,
		`tip_ops_scrape_errors_total{part="sources"}`:                               0,
		`tip_ops_scrape_errors_total{part="spam"}`:                                  0,
		`tip_ops_scrape_errors_total{part="flux"}`:                                  0,
		`tip_ops_scrape_errors_total{part="core"}`:                                  0,
	})
	if _, ok := got[`tip_ops_scrape_duration_seconds{}`]; !ok {
		t.Error("tip_ops_scrape_duration_seconds missing")
	}
	if want := []string{"archive:arch", "agent:mx1"}; !slices.Equal(db.collects[0], want) {
		t.Errorf("spam collectors asked for %q, want the catalog's enabled %q", db.collects[0], want)
	}
}

func TestOneReadingServesScrapesForMinInterval(t *testing.T) {
	db, tmp := world()
	now := t0
	cfg := testConfig()
	cfg.MinInterval = 10 * time.Second
	c := newTest(db, tmp, cfg, &now)
	for range 5 {
		scrape(t, c)
	}
	now = now.Add(9 * time.Second)
	scrape(t, c)
	if db.reads != 1 {
		t.Fatalf("%d readings within the interval, want 1", db.reads)
	}
	now = now.Add(time.Second)
	scrape(t, c)
	if db.reads != 2 {
		t.Fatalf("%d readings once the interval passed, want 2", db.reads)
	}

	// Scrapes at once share one reading.
	now = now.Add(time.Minute)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { c.Collect(make(chan prometheus.Metric, 1000)) })
	}
	wg.Wait()
	if db.reads != 3 {
		t.Fatalf("%d readings for 8 scrapes at once, want 3 in all", db.reads)
	}
}

// TestAPartThatFailsIsLeftOutAlone: the part that fails counts an error and
// loses its series; the others are served.
func TestAPartThatFailsIsLeftOutAlone(t *testing.T) {
	series := map[string]string{ // a series of each part
		PartSources: `tip_source_up{source="alpha"}`,
		PartSpam:    `tip_spam_mails_total{collector="archive:arch"}`,
		PartFlux:    `tip_flux_monitors{state="watching"}`,
		PartCore:    `tip_core_module_last_run_timestamp_seconds{module="blacklist-refresh"}`,
	}
	boom := errors.New("boom")
	cases := []struct {
		name, part string
		fail       func(*fakeStore, *fakeTemporal)
	}{
		{"sources", PartSources, func(db *fakeStore, _ *fakeTemporal) { db.fail = map[string]error{"OpsSources": boom} }},
		{"spam collectors", PartSpam, func(db *fakeStore, _ *fakeTemporal) { db.fail = map[string]error{"SpamCollectors": boom} }},
		{"flux counts", PartFlux, func(db *fakeStore, _ *fakeTemporal) { db.fail = map[string]error{"OpsFlux": boom} }},
		{"flux window", PartFlux, func(db *fakeStore, _ *fakeTemporal) { db.fail = map[string]error{"FluxCheckWindow": boom} }},
		{"flux count", PartFlux, func(db *fakeStore, _ *fakeTemporal) { db.fail = map[string]error{"CountFluxChecks": boom} }},
		{"core status", PartCore, func(_ *fakeStore, tmp *fakeTemporal) { tmp.coreErr = boom }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db, tmp := world()
			tc.fail(db, tmp)
			now := t0
			got := scrape(t, newTest(db, tmp, testConfig(), &now))
			for part, s := range series {
				_, ok := got[s]
				if ok == (part == tc.part) {
					t.Errorf("%s failing: %s present %v", tc.part, s, ok)
				}
				want := 0.0
				if part == tc.part {
					want = 1
				}
				if e := got[`tip_ops_scrape_errors_total{part="`+part+`"}`]; e != want {
					t.Errorf("%s failing: errors of %s = %v, want %v", tc.part, part, e, want)
				}
			}
			if _, ok := got[`tip_flux_check_lateness_seconds_count{}`]; !ok {
				t.Error("the lateness histogram, held by the process, is left out")
			}
		})
	}
}

func TestCoreNotRunningOrNotAnswering(t *testing.T) {
	db, _ := world()
	now := t0
	got := scrape(t, newTest(db, &fakeTemporal{pollers: 0}, testConfig(), &now))
	check(t, got, map[string]float64{
		`tip_core_running{}`:                       0,
		`tip_workers_polling{}`:                    0,
		`tip_ops_scrape_errors_total{part="core"}`: 0, // not running is an answer
		`tip_core_module_last_run_timestamp_seconds{module="blacklist-refresh"}`: absent,
	})

	// Running, but no worker answers its query: running, an error, no modules.
	got = scrape(t, newTest(db, &fakeTemporal{running: true, coreErr: errors.New("no poller"), pollers: 0}, testConfig(), &now))
	check(t, got, map[string]float64{
		`tip_core_running{}`:                       1,
		`tip_workers_polling{}`:                    0,
		`tip_ops_scrape_errors_total{part="core"}`: 1,
	})

	// Temporal unreachable: neither is known.
	down := errors.New("connection refused")
	got = scrape(t, newTest(db, &fakeTemporal{coreErr: down, pollsErr: down}, testConfig(), &now))
	check(t, got, map[string]float64{
		`tip_core_running{}`:                       absent,
		`tip_workers_polling{}`:                    absent,
		`tip_ops_scrape_errors_total{part="core"}`: 1,
	})

	// Without Temporal the part is not read, and never counted as failing.
	got = scrape(t, newTest(db, nil, testConfig(), &now))
	check(t, got, map[string]float64{
		`tip_core_running{}`:                       absent,
		`tip_ops_scrape_errors_total{part="core"}`: 0,
		`tip_source_up{source="alpha"}`:            1,
	})
}

// TestLatenessIsCumulativeFromTheLastReading: the first reading takes the
// last hour's checks and counts every check; each next one the checks after
// the last window, added to both.
func TestLatenessIsCumulativeFromTheLastReading(t *testing.T) {
	db, tmp := world()
	w1, w2 := window(t0.Add(-30*time.Second), 0.05, 0.3, 45), window(t0.Add(-20*time.Second), 2, 700)
	db.windows = []storage.FluxCheckWindow{w1, w2, window(t0.Add(-20 * time.Second))}
	now := t0
	c := newTest(db, tmp, testConfig(), &now)
	scrape(t, c)
	now = now.Add(10 * time.Second)
	got := scrape(t, c)
	if want := []time.Time{t0.Add(-firstLook), w1.Through}; !slices.EqualFunc(db.froms, want, time.Time.Equal) {
		t.Errorf("windows from %v, want %v", db.froms, want)
	}
	if db.counted != 1 {
		t.Errorf("every check counted %d times, want once", db.counted)
	}
	check(t, got, map[string]float64{
		`tip_flux_checks_total{}`:                          40 + 2,
		`tip_flux_check_lateness_seconds_count{}`:          5,
		`tip_flux_check_lateness_seconds_sum{}`:            45.35 + 702,
		`tip_flux_check_lateness_seconds_bucket{le="0.1"}`: 1,
		`tip_flux_check_lateness_seconds_bucket{le="2"}`:   3,
		`tip_flux_check_lateness_seconds_bucket{le="600"}`: 4, // 700 s: from le="900" up
	})

	// A failed window adds nothing and keeps the cursor.
	now = now.Add(10 * time.Second)
	db.fail = map[string]error{"FluxCheckWindow": errors.New("boom")}
	scrape(t, c)
	db.fail = nil
	now = now.Add(10 * time.Second)
	got = scrape(t, c)
	if last := db.froms[len(db.froms)-1]; !last.Equal(w2.Through) {
		t.Errorf("after a failed reading the window starts at %v, want %v", last, w2.Through)
	}
	check(t, got, map[string]float64{`tip_flux_checks_total{}`: 42, `tip_flux_check_lateness_seconds_count{}`: 5})
}

// TestCatalogsThatDoNotLoad: the database's series stay, every source's
// (which are enabled is not known), without the intervals, and the part
// counts an error; spam shows the origins recorded.
func TestCatalogsThatDoNotLoad(t *testing.T) {
	db, tmp := world()
	cfg := testConfig()
	cfg.Catalog, cfg.SpamCatalog = "testdata/missing.yaml", "testdata/missing.yaml"
	var log bytes.Buffer
	cfg.Log = slog.New(slog.NewTextHandler(&log, nil))
	now := t0
	c := newTest(db, tmp, cfg, &now)
	got := scrape(t, c)
	check(t, got, map[string]float64{
		`tip_source_up{source="alpha"}`:                                   1,
		`tip_source_interval_seconds{source="alpha"}`:                     absent,
		`tip_source_up{source="off"}`:                                     0,
		`tip_source_interval_seconds{source="tip-flux-agents"}`:           180, // the module's, from the configuration
		`tip_ops_scrape_errors_total{part="sources"}`:                     1,
		`tip_spam_mails_total{collector="archive:arch"}`:                  91,
		`tip_spam_mails_total{collector="imap:box"}`:                      absent,
		`tip_spam_collector_interval_seconds{collector="archive:arch"}`:   absent,
		`tip_ops_scrape_errors_total{part="spam"}`:                        1,
		`tip_spam_last_good_run_timestamp_seconds{collector="agent:mx1"}`: 0,
	})

	// Each reading counts the failure; the log says it once per part.
	for range 3 {
		now = now.Add(time.Minute)
		got = scrape(t, c)
	}
	check(t, got, map[string]float64{`tip_ops_scrape_errors_total{part="sources"}`: 4, `tip_ops_scrape_errors_total{part="spam"}`: 4})
	if n := strings.Count(log.String(), "read failed"); n != 2 {
		t.Errorf("%d failures logged, want one a part:\n%s", n, log.String())
	}
}
