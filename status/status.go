// Package status is what `tip status` and `tip core status` show: a report read
// from PostgreSQL (through storage) and Temporal (through starter), with what
// could not be read and why, drawn as text that fits a screen.
package status

import (
	"cmp"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/miekg/dns"
	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/dnsserve"
	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// How many rows the lists of the report show.
const (
	topFlux   = 5 // running monitors, highest score first
	unhealthy = 6 // failing and dead sources
	overrides = 5 // the latest overrides
)

// Report is everything `tip status` shows (and prints as JSON). Each part read
// from a service is there, or the reason it could not be read.
type Report struct {
	Now      time.Time `json:"now"`
	Temporal Temporal  `json:"temporal"`
	Postgres Postgres  `json:"postgres"`
	S3       S3        `json:"s3"`

	Core      *contract.CoreStatus `json:"core,omitempty"`
	CoreError string               `json:"core_error,omitempty"`

	Flux      *Flux  `json:"flux,omitempty"`
	FluxError string `json:"flux_error,omitempty"`
	// FluxWorkflows is how many FluxMonitor workflows Temporal lists as running
	// on the task queue, to compare with the monitors the database records.
	FluxWorkflows      *int64 `json:"flux_workflows_running,omitempty"`
	FluxWorkflowsError string `json:"flux_workflows_error,omitempty"`

	Sources      []storage.SourceHealth `json:"sources,omitempty"`
	SourcesError string                 `json:"sources_error,omitempty"`

	Spam      []storage.SpamCollector `json:"spam,omitempty"`
	SpamError string                  `json:"spam_error,omitempty"`

	DNS *DNS `json:"dns,omitempty"`
	API *API `json:"api,omitempty"`

	Overrides      *Overrides `json:"overrides,omitempty"`
	OverridesError string     `json:"overrides_error,omitempty"`

	// Problems are the most recent problems of both stores, the newest first.
	Problems       []storage.Problem `json:"problems"`
	ProblemsErrors []string          `json:"problems_errors,omitempty"`

	pgProblems, temporalProblems []storage.Problem
	pgProblemsError              string
	temporalProblemsError        string
}

// Temporal is the Temporal the report read, and the workers polling its task queue.
type Temporal struct {
	Address      string `json:"address"`
	Namespace    string `json:"namespace"`
	TaskQueue    string `json:"task_queue"`
	Workers      int    `json:"workers"` // polling the task queue in the last two minutes
	WorkersError string `json:"workers_error,omitempty"`
	Error        string `json:"error,omitempty"` // Temporal could not be reached
}

// Postgres is the PostgreSQL the report read.
type Postgres struct {
	Address string `json:"address,omitempty"`
	Error   string `json:"error,omitempty"` // PostgreSQL could not be reached
}

// S3 is the configured object store (the report does not read it).
type S3 struct {
	Endpoint string `json:"endpoint"`
	Bucket   string `json:"bucket"`
}

// Overrides counts the analysts' overrides and shows the latest made.
type Overrides struct {
	storage.OverrideCounts
	Latest []storage.Override `json:"latest"`
}

// Flux counts the flux monitors by state, with the top running ones.
type Flux struct {
	storage.FluxCounts
	Top []storage.FluxDomain `json:"top"` // running monitors, highest score first
}

// Services connect to what a report reads. Either may fail: the report then
// says why, and shows the rest.
type Services struct {
	Postgres func(context.Context) (*storage.DB, error)
	Temporal func(context.Context) (client.Client, error)
}

// Read reads PostgreSQL and Temporal side by side, so one that does not answer
// delays the report once, not twice. It keeps the errorRows most recent problems.
func Read(ctx context.Context, cfg config.Config, s Services, errorRows int) Report {
	r := Report{
		Now:      time.Now().UTC(),
		Temporal: Temporal{Address: cfg.Temporal.Address, Namespace: cfg.Temporal.Namespace, TaskQueue: cfg.Temporal.TaskQueue},
		S3:       S3{Endpoint: cfg.S3.Endpoint, Bucket: cfg.S3.Bucket},
	}
	var wg sync.WaitGroup
	wg.Go(func() { // each writes only its own fields
		db, err := s.Postgres(ctx)
		if err != nil {
			r.Postgres.Error = err.Error()
			return
		}
		defer db.Close()
		r.readPostgres(ctx, db, cfg.Spam.Catalog, errorRows)
	})
	wg.Go(func() {
		c, err := s.Temporal(ctx)
		if err != nil {
			r.Temporal.Error = err.Error()
			return
		}
		defer c.Close()
		r.readTemporal(ctx, c, cfg.Temporal, errorRows)
	})
	if cfg.DNS.Listen != "" {
		wg.Go(func() { r.DNS = readDNS(ctx, cfg.DNS) })
	}
	if cfg.API.Listen != "" {
		wg.Go(func() { r.API = readAPI(ctx, cfg.API) })
	}
	wg.Wait()
	r.mergeProblems(errorRows)
	return r
}

// DNS is what `tip serve dns` answers: its RPZ zones' serials, or why it
// did not answer.
type DNS struct {
	Address string            `json:"address"`
	Serials map[string]uint32 `json:"serials,omitempty"`
	DNSBL   []string          `json:"dnsbl,omitempty"`
	Error   string            `json:"error,omitempty"`
}

func readDNS(ctx context.Context, cfg config.DNS) *DNS {
	d := &DNS{Address: cfg.Listen, Serials: map[string]uint32{}}
	for _, z := range cfg.RPZ {
		serial, err := dnsserve.Serial(ctx, cfg.Listen, z.Name)
		if err != nil {
			d.Error = err.Error()
			return d
		}
		d.Serials[dns.Fqdn(z.Name)] = serial
	}
	for _, z := range cfg.DNSBL {
		d.DNSBL = append(d.DNSBL, dns.Fqdn(z.Name))
	}
	return d
}

// Unreadable says whether neither PostgreSQL nor Temporal could be read.
func (r Report) Unreadable() bool { return r.Postgres.Error != "" && r.Temporal.Error != "" }

// mergeProblems keeps the errorRows most recent problems of both stores, and
// names the stores whose problems could not be read.
func (r *Report) mergeProblems(errorRows int) {
	r.Problems = newestProblems(errorRows, r.pgProblems, r.temporalProblems)
	for _, e := range []string{unreachable("postgres", r.Postgres.Error), r.pgProblemsError,
		unreachable("temporal", r.Temporal.Error), r.temporalProblemsError} {
		if e != "" {
			r.ProblemsErrors = append(r.ProblemsErrors, e)
		}
	}
}

// unreachable names a service that could not be read, if err says so.
func unreachable(service, err string) string {
	if err == "" {
		return ""
	}
	return service + " unreachable"
}

// newestProblems merges lists of problems into the n most recent, ordered as
// storage.Problems orders them: those with no time first (they are current),
// then the newest.
func newestProblems(n int, lists ...[]storage.Problem) []storage.Problem {
	all := append([]storage.Problem{}, slices.Concat(lists...)...) // [] in JSON when there are none
	slices.SortStableFunc(all, func(a, b storage.Problem) int {
		if c := cmp.Compare(timed(a), timed(b)); c != 0 {
			return c
		}
		return b.At.Compare(a.At)
	})
	return all[:min(len(all), n)]
}

func timed(p storage.Problem) int {
	if p.At.IsZero() {
		return 0
	}
	return 1
}

func (r *Report) readPostgres(ctx context.Context, db *storage.DB, spamCatalog string, errorRows int) {
	r.Postgres.Address = db.Addr()

	if counts, err := db.FluxCounts(ctx); err != nil {
		r.FluxError = err.Error()
	} else if top, err := db.TopFluxMonitors(ctx, topFlux); err != nil {
		r.FluxError = err.Error()
	} else {
		r.Flux = &Flux{FluxCounts: counts, Top: top}
	}

	var err error
	if r.Sources, err = db.SourcesHealth(ctx); err != nil {
		r.SourcesError = err.Error()
	}

	// The catalog names the collectors (an archive's claim by its name, its mails
	// by its index); without it, the collectors are the origins recorded.
	var collectors []storage.SpamCollector
	if c, err := catalog.LoadSpam(spamCatalog); err != nil {
		r.SpamError = err.Error()
	} else {
		collectors = spamCollectors(c)
	}
	if spam, err := db.SpamCollectors(ctx, collectors); err != nil {
		r.SpamError = err.Error()
	} else {
		r.Spam = spam
	}

	if counts, err := db.CountOverrides(ctx); err != nil {
		r.OverridesError = err.Error()
	} else if latest, err := db.Overrides(ctx, "", true, overrides); err != nil {
		r.OverridesError = err.Error()
	} else {
		r.Overrides = &Overrides{OverrideCounts: counts, Latest: latest}
	}

	if r.pgProblems, err = db.Problems(ctx, errorRows); err != nil {
		r.pgProblemsError = err.Error()
	}
}

// spamCollectors lists a spam catalog's collectors by the names they claim their
// runs under and the origins their mails are recorded under.
func spamCollectors(c *catalog.Spam) []storage.SpamCollector {
	var out []storage.SpamCollector
	for _, col := range c.Collectors() {
		out = append(out, storage.SpamCollector{Name: col.Name, Origin: col.Origin})
	}
	return out
}

func (r *Report) readTemporal(ctx context.Context, c client.Client, cfg config.Temporal, errorRows int) {
	var err error
	if r.Temporal.Workers, err = starter.Pollers(ctx, c, cfg); err != nil {
		r.Temporal.WorkersError = err.Error()
	}

	var failedRuns map[string]bool // the core's failed module runs, by workflow ID
	if st, err := starter.CoreStatus(ctx, c); err != nil {
		r.CoreError = err.Error()
	} else {
		r.Core = &st
		failedRuns = map[string]bool{}
		for _, m := range st.Modules {
			if l := m.Last; l != nil && l.Status == contract.ModuleRunFailed {
				failedRuns[l.ChildID] = true
				r.temporalProblems = append(r.temporalProblems, storage.Problem{At: l.Finished, Where: "module " + m.Name, What: "failed", Error: l.Error})
			}
		}
	}

	if n, err := starter.RunningMonitors(ctx, c, cfg); err != nil {
		r.FluxWorkflowsError = err.Error()
	} else {
		r.FluxWorkflows = &n
	}

	if errorRows == 0 {
		return
	}
	runs, err := starter.FailedRuns(ctx, c, cfg, errorRows+len(failedRuns))
	if err != nil {
		r.temporalProblemsError = err.Error()
		return
	}
	for _, run := range runs {
		if failedRuns[run.ID] { // shown as the core's module run
			continue
		}
		what := "failed"
		if run.TimedOut {
			what = "timed out"
		}
		r.temporalProblems = append(r.temporalProblems, storage.Problem{At: run.Closed, Where: "workflow " + run.ID, What: what,
			Error: starter.RunFailure(ctx, c, run.ID, run.RunID)})
	}
}

// API is whether `tip serve api` answers: the version of the OpenAPI
// document it serves (which needs no token), or why it did not answer.
type API struct {
	URL     string `json:"url"`
	Version string `json:"version,omitempty"`
	Error   string `json:"error,omitempty"`
}

func readAPI(ctx context.Context, cfg config.API) *API {
	scheme := "http"
	if cfg.TLSCert != "" {
		scheme = "https"
	}
	a := &API{URL: scheme + "://" + cfg.Listen + "/"}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL+"v1/openapi.json", nil)
	if err != nil {
		a.Error = err.Error()
		return a
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.Error = err.Error()
		return a
	}
	defer resp.Body.Close()
	var doc struct {
		Info struct {
			Version string `json:"version"`
		} `json:"info"`
	}
	if resp.StatusCode != http.StatusOK {
		a.Error = resp.Status
	} else if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		a.Error = "not TIP's API: " + err.Error()
	}
	a.Version = doc.Info.Version
	return a
}
