// Package opsmetrics is TIP's knowledge of itself as Prometheus metrics: the
// blacklist sources' health, listings and runs, the spam collectors, the flux
// monitors and their checks' lateness, the core's modules and the workers
// polling, read from PostgreSQL (through storage) and Temporal at scrape time.
// `tip serve api` and `tip serve metrics` serve them; the names are the ones the
// alert rules (deploy/prometheus/rules.yaml) and the dashboard are built on.
//
// A reading costs a few set-based statements and two Temporal calls, and serves
// every scrape for MinInterval, so scrapers cannot multiply its cost. Its four
// parts (sources, spam, flux, core) fail alone: a part that could not be read
// counts one tip_ops_scrape_errors_total{part} and its series are left out of
// the scrapes that reading serves.
//
// The checks' lateness (tip_flux_check_lateness_seconds) is a histogram
// cumulative in the process: each reading adds the checks made since the
// previous one (a cursor on the checks' time, kept checkSettle behind the
// database's clock so that checks being written are not skipped); the first
// reading of a process adds the last hour's (firstLook). tip_flux_checks_total
// counts every check recorded at the first reading, then adds the same windows,
// so it follows the table without counting it again.
package opsmetrics

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// Defaults and bounds of a reading.
const (
	// DefaultMinInterval is how long one reading serves scrapes by default:
	// Prometheus's usual 15 s scrape interval reads at most once a scrape.
	DefaultMinInterval = 10 * time.Second
	// readTimeout bounds one reading; a part still unread then fails.
	readTimeout = 30 * time.Second
	// coreTimeout bounds the core part: Temporal answers in milliseconds,
	// and one that does not must not hold the scrape past Prometheus's
	// default scrape timeout (10 s) with the other parts read.
	coreTimeout = 5 * time.Second
	// firstLook is how far back the first reading of a process takes the
	// checks' lateness from: the histogram starts with the last hour's checks,
	// not empty and not with every check ever made.
	firstLook = time.Hour
	// checkSettle leaves a check's write time to commit before a reading
	// counts it (a worker writes its checks in batches, within a second or
	// two): the window of checks read ends this long before the database's now.
	checkSettle = 30 * time.Second
)

// LatenessBuckets are the bounds (seconds) of tip_flux_check_lateness_seconds.
var LatenessBuckets = []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600}

// The parts of a reading: the values of tip_ops_scrape_errors_total's label.
const (
	PartSources = "sources"
	PartSpam    = "spam"
	PartFlux    = "flux"
	PartCore    = "core"
)

// Store is what a reading reads of PostgreSQL (a *storage.DB).
type Store interface {
	OpsSources(ctx context.Context) ([]storage.OpsSource, error)
	SpamCollectors(ctx context.Context, cs []storage.SpamCollector) ([]storage.SpamCollector, error)
	OpsFlux(ctx context.Context, agentsSource string) (storage.OpsFlux, error)
	FluxCheckWindow(ctx context.Context, from time.Time, settle time.Duration, bounds []float64) (storage.FluxCheckWindow, error)
	CountFluxChecks(ctx context.Context, through time.Time) (int64, error)
}

// Temporal is what a reading reads of Temporal (TemporalClient).
type Temporal interface {
	// Core is the core workflow's status. running says whether it runs; when
	// it does not, st is empty and err nil. A core that runs but could not be
	// queried is running with an error.
	Core(ctx context.Context) (st contract.CoreStatus, running bool, err error)
	// Pollers counts the workers polling the task queue, as `tip status` does.
	Pollers(ctx context.Context) (int, error)
}

// Config is what a Collector needs besides its services.
type Config struct {
	// MinInterval is how long one reading serves scrapes (0: DefaultMinInterval).
	MinInterval time.Duration
	// Catalog is the blacklist catalog (blacklists.catalog) and SpamCatalog the
	// spamtrap catalog (spam.catalog), read at each reading: the intervals of
	// their enabled sources and collectors, and the collectors' names.
	Catalog, SpamCatalog string
	// OwnIntervals are the intervals of TIP's own sources: their module's.
	OwnIntervals map[string]time.Duration
	// FluxInterval is tip_flux_check_interval_seconds (flux.interval).
	FluxInterval time.Duration
	Log          *slog.Logger // nil: none
}

// FromConfig is the Collector's Config of a TIP configuration.
func FromConfig(cfg config.Config) Config {
	return Config{
		MinInterval: cfg.Metrics.MinInterval,
		Catalog:     cfg.Blacklists.Catalog,
		SpamCatalog: cfg.Spam.Catalog,
		// tip-spamtrap-senders is listed by every spam collection,
		// tip-flux-agents by every grouping into flux networks.
		OwnIntervals: map[string]time.Duration{contract.SpamSendersSource: cfg.Spam.Interval, contract.FluxAgentsSource: cfg.Flux.NetworksInterval},
		FluxInterval: cfg.Flux.Interval,
	}
}

// Collector is a prometheus.Collector of TIP's operations metrics. Its
// readings are serialised: scrapes that arrive during one wait for it.
type Collector struct {
	db  Store
	tmp Temporal // nil: no core part
	cfg Config
	now func() time.Time

	errors *prometheus.CounterVec

	mu     sync.Mutex
	last   *reading
	lastAt time.Time // when last ended
	// The flux checks read so far: the histogram and count are cumulative in
	// the process, fed by the window of checks after cursor at each reading.
	cursor   time.Time
	checks   int64
	lateness histogram
	outcomes map[string]bool   // the module outcomes seen (tip_core_module_last_outcome)
	failing  map[string]string // each part's error at the last reading
}

// New returns a Collector reading db and tmp (nil: the core's series are left
// out, and never counted as failing).
func New(db Store, tmp Temporal, cfg Config) *Collector {
	if cfg.MinInterval <= 0 {
		cfg.MinInterval = DefaultMinInterval
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	c := &Collector{db: db, tmp: tmp, cfg: cfg, now: time.Now,
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tip_ops_scrape_errors_total",
			Help: "Readings of TIP's operations metrics whose part (sources, spam, flux, core) could not be read; its series were left out."}, []string{"part"}),
		lateness: histogram{bounds: LatenessBuckets, le: make([]uint64, len(LatenessBuckets))},
		outcomes: map[string]bool{outcomeOK: true, contract.ModuleRunFailed: true},
		failing:  map[string]string{},
	}
	for _, p := range []string{PartSources, PartSpam, PartFlux, PartCore} {
		c.errors.WithLabelValues(p)
	}
	return c
}

// reading is what one reading found: a part not read is left nil or not OK.
type reading struct {
	took time.Duration

	sources   []storage.OpsSource
	sourcesOK bool
	intervals map[string]time.Duration // the sources'; only TIP's own when the catalog did not load

	spam   []spamCollector
	spamOK bool

	flux     *storage.OpsFlux
	checks   int64     // tip_flux_checks_total, with flux
	lateness histogram // a copy of the cumulative histogram

	running  *bool
	modules  []contract.ModuleStatus
	pollers  *int
	outcomes []string // every outcome seen, sorted
}

// Describe sends the descriptions of every metric the Collector makes.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range descs.all() {
		ch <- d
	}
	c.errors.Describe(ch)
}

// Collect sends the metrics of the current reading, reading anew when it is
// MinInterval old.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	r := c.current()
	r.emit(ch, c.cfg.FluxInterval)
	c.errors.Collect(ch)
}

// current returns the last reading, or a new one when it is MinInterval old.
func (c *Collector) current() *reading {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last != nil && c.now().Sub(c.lastAt) < c.cfg.MinInterval {
		return c.last
	}
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	c.last = c.read(ctx)
	c.lastAt = c.now()
	return c.last
}

// read reads the four parts side by side, each writing only its own fields.
func (c *Collector) read(ctx context.Context) *reading {
	start := time.Now()
	r := &reading{}
	parts := map[string]func() error{
		PartSources: func() error { return r.readSources(ctx, c.db, c.cfg) },
		PartSpam:    func() error { return r.readSpam(ctx, c.db, c.cfg.SpamCatalog) },
		PartFlux:    func() error { return c.readFlux(ctx, r) },
	}
	if c.tmp != nil {
		parts[PartCore] = func() error {
			ctx, cancel := context.WithTimeout(ctx, coreTimeout)
			defer cancel()
			return r.readCore(ctx, c.tmp)
		}
	}
	errs := make(map[string]error, len(parts))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for part, read := range parts {
		wg.Go(func() {
			err := read()
			mu.Lock()
			errs[part] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, part := range slices.Sorted(maps.Keys(errs)) {
		c.logPart(part, errs[part])
	}
	for _, m := range r.modules {
		if m.Last != nil {
			c.outcomes[outcome(m.Last)] = true
		}
	}
	r.outcomes = slices.Sorted(maps.Keys(c.outcomes))
	r.lateness = c.lateness.clone()
	r.took = time.Since(start)
	return r
}

// logPart counts a part that failed, and logs when a part starts failing,
// fails otherwise, or reads again: a part failing at every reading (a
// catalog missing) logs once.
func (c *Collector) logPart(part string, err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
		c.errors.WithLabelValues(part).Inc()
	}
	switch last := c.failing[part]; {
	case msg == last:
	case msg == "":
		c.cfg.Log.Info("ops metrics: read again", "part", part)
	default:
		c.cfg.Log.Warn("ops metrics: read failed; its series are left out", "part", part, "err", err)
	}
	c.failing[part] = msg
}

// readSources reads the sources that are fetched: the catalog's enabled ones
// and TIP's own (a source disabled or dropped from the catalog keeps its rows,
// which would age into alerts). A catalog that does not load fails the part
// but keeps what the database told: every source, without intervals but TIP's
// own.
func (r *reading) readSources(ctx context.Context, db Store, cfg Config) error {
	srcs, err := db.OpsSources(ctx)
	if err != nil {
		return err
	}
	r.sourcesOK = true
	r.intervals, err = sourceIntervals(cfg.Catalog, cfg.OwnIntervals)
	if err != nil {
		r.sources = srcs
		return err
	}
	for _, s := range srcs {
		if _, own := cfg.OwnIntervals[s.Name]; own || r.intervals[s.Name] > 0 {
			r.sources = append(r.sources, s)
		}
	}
	return nil
}

// readSpam reads the collectors the spam catalog enables, as `tip status`
// names them; a catalog that does not load fails the part, which then shows
// the origins recorded (without intervals or last runs), as `tip status` does.
func (r *reading) readSpam(ctx context.Context, db Store, catalogPath string) error {
	named, catalogErr := spamCollectors(catalogPath)
	cs := make([]storage.SpamCollector, len(named))
	for i, c := range named {
		cs[i] = c.SpamCollector
	}
	read, err := db.SpamCollectors(ctx, cs)
	if err != nil {
		return err
	}
	r.spam = make([]spamCollector, len(read))
	for i, c := range read {
		r.spam[i].SpamCollector = c
		if len(named) == len(read) { // none named: one per origin recorded
			r.spam[i].interval = named[i].interval
		}
	}
	r.spamOK = true
	return catalogErr
}

// readFlux reads the monitors and the window of checks made since the last
// reading, and adds the window to the cumulative histogram and count. The
// first reading of the process takes the window from firstLook ago and counts
// every check recorded.
func (c *Collector) readFlux(ctx context.Context, r *reading) error {
	f, err := c.db.OpsFlux(ctx, contract.FluxAgentsSource)
	if err != nil {
		return err
	}
	from := c.cursor
	if from.IsZero() {
		from = c.now().Add(-firstLook)
	}
	w, err := c.db.FluxCheckWindow(ctx, from, checkSettle, c.lateness.bounds)
	if err != nil {
		return err
	}
	checks := c.checks + w.Checks
	if c.cursor.IsZero() {
		if checks, err = c.db.CountFluxChecks(ctx, w.Through); err != nil {
			return err
		}
	}
	// Only a window read whole moves the cursor; an empty one keeps it
	// (through before from: the database's clock behind the process's).
	if w.Through.After(from) {
		c.cursor = w.Through
		c.lateness.add(w)
	}
	c.checks = checks
	r.flux, r.checks = &f, checks
	return nil
}

func (r *reading) readCore(ctx context.Context, tmp Temporal) error {
	var firstErr error
	if n, err := tmp.Pollers(ctx); err != nil {
		firstErr = err
	} else {
		r.pollers = &n
	}
	st, running, err := tmp.Core(ctx)
	if running || err == nil {
		r.running = &running
	}
	if err != nil {
		return errors.Join(firstErr, err)
	}
	r.modules = st.Modules
	return firstErr
}

// outcomeOK is the outcome of a module run that completed.
const outcomeOK = "ok"

// outcome is how a module's last run ended, as `tip status` says it: ok, or
// the status stored (failed).
func outcome(l *contract.RunResult) string {
	if l.Status == contract.ModuleRunCompleted {
		return outcomeOK
	}
	return l.Status
}

// histogram is a cumulative histogram of seconds, fed by windows of checks.
type histogram struct {
	bounds []float64
	le     []uint64 // cumulative, per bound
	count  uint64
	sum    float64
}

func (h *histogram) add(w storage.FluxCheckWindow) {
	for i := range h.le {
		if i < len(w.LateLE) {
			h.le[i] += uint64(w.LateLE[i])
		}
	}
	h.count += uint64(w.Checks)
	h.sum += w.LateSum
}

func (h histogram) clone() histogram {
	h.le = slices.Clone(h.le)
	return h
}

func (h histogram) buckets() map[float64]uint64 {
	m := make(map[float64]uint64, len(h.bounds))
	for i, b := range h.bounds {
		m[b] = h.le[i]
	}
	return m
}
