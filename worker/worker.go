// Package worker builds and runs TIP's Temporal worker: it prepares storage
// (migrations, bucket), registers every workflow and activity, serves Prometheus
// metrics and stops gracefully on SIGINT/SIGTERM.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"strings"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/tip-project/tip/activities"
	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/flux/resolver"
	"github.com/tip-project/tip/ipasn"
	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows"
	"github.com/tip-project/tip/workflows/contract"
)

// Register puts every TIP workflow and activity on a worker: each module's
// activity struct, whose exported methods are all activities.
func Register(w sdkworker.Registry, acts Activities) {
	w.RegisterWorkflow(workflows.Probe)
	w.RegisterWorkflow(workflows.Core)
	w.RegisterWorkflow(workflows.BlacklistRefresh)
	w.RegisterWorkflow(workflows.SourceRefresh)
	w.RegisterWorkflow(workflows.SpamCollect)
	w.RegisterWorkflow(workflows.SpamArchiveIngest)
	w.RegisterWorkflow(workflows.SpamMailboxPoll)
	w.RegisterWorkflow(workflows.AgentSync)
	w.RegisterWorkflow(workflows.FluxTriage)
	w.RegisterWorkflow(workflows.FluxNetworks)
	w.RegisterWorkflow(workflows.FluxMonitor)
	w.RegisterWorkflow(workflows.FluxProber)
	w.RegisterWorkflow(workflows.DataRetention)
	w.RegisterActivity(acts.Blacklist)
	w.RegisterActivity(acts.Spam)
	w.RegisterActivity(acts.AgentSync)
	w.RegisterActivity(acts.Flux)
	w.RegisterActivity(acts.Probe)
	w.RegisterActivity(acts.Retention)
}

// Activities are a worker's activity structs, one per module.
type Activities struct {
	Blacklist *activities.Blacklist
	Spam      *activities.Spam
	AgentSync *activities.AgentSync
	Flux      *activities.Flux
	Probe     *activities.Probe
	Retention *activities.Retention
}

// NewActivities wires each module's activities to what it needs of the
// worker's: storage, the Temporal client (flux monitors' starts), the DNS
// resolver, and the configuration. identity names the worker.
func NewActivities(cfg config.Config, db *storage.DB, blobs *storage.BlobStore, c client.Client, res activities.FluxResolver, identity string) Activities {
	downloads := &activities.Downloads{Blobs: blobs, Slots: db, PerHost: cfg.Upstream.FetchesPerHost, Holder: identity}
	asn := activities.NewASNTables(cfg.Flux.ASNTableAllowPrivate, ipasn.Limits{})
	traps := activities.Spamtraps{Store: db, Blobs: blobs, ASN: asn, Catalog: cfg.Spam.Catalog}
	monitors := starter.MonitorConfig(cfg)
	return Activities{
		Blacklist: &activities.Blacklist{Store: db, Blobs: blobs, Downloads: downloads, Catalog: cfg.Blacklists.Catalog},
		Spam:      &activities.Spam{Spamtraps: traps, Downloads: downloads},
		AgentSync: &activities.AgentSync{Spamtraps: traps},
		Flux: &activities.Flux{Store: db, Config: FluxConfig(cfg),
			DNS: &activities.Resolution{Resolver: res, ASN: asn, ASNTable: cfg.Flux.ASNTable},
			Watch: func(ctx context.Context, domain string, req contract.WatchRequest) error {
				return starter.WatchDomain(ctx, c, monitors.TaskQueue, monitors, domain, req)
			},
			Signal: func(ctx context.Context, domain, name string, arg any) error {
				err := c.SignalWorkflow(ctx, contract.MonitorWorkflowID(domain), "", name, arg)
				var gone *serviceerror.NotFound
				if errors.As(err, &gone) {
					return activities.ErrNoMonitor
				}
				return err
			}},
		Probe:     &activities.Probe{Store: db, Blobs: blobs, Identity: identity},
		Retention: &activities.Retention{Store: db, Windows: RetentionWindows(cfg)},
	}
}

// RetentionWindows are the data-retention module's windows (retention.*).
func RetentionWindows(cfg config.Config) storage.Retention {
	return storage.Retention{FluxFull: cfg.Retention.FluxFull(), SourceRuns: cfg.Retention.SourceRuns()}
}

// Run prepares what the worker needs (schema, bucket, search attributes), then serves until ctx is cancelled (the caller wires SIGINT/SIGTERM to it), then
// stops polling and gives running activities cfg.Worker.ShutdownTimeout to finish.
func Run(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	db, blobs, err := storage.Prepare(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()

	registry := prom.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	scope, closeScope := newMetricsScope(registry, log)
	defer closeScope.Close()

	identity := fmt.Sprintf("%d@%s", os.Getpid(), hostname())
	c, err := starter.Dial(ctx, cfg.Temporal, log, client.Options{
		Identity:       identity,
		MetricsHandler: sdktally.NewMetricsHandler(scope),
	})
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := starter.CheckNamespace(ctx, c, cfg.Temporal); err != nil {
		return err
	}
	// Workflows set TIP's search attributes; without them their tasks would fail.
	if added, err := starter.EnsureSearchAttributes(ctx, c, cfg.Temporal); err != nil {
		return err
	} else if len(added) > 0 {
		log.Info("registered search attributes", "added", added)
	}

	var metricsSrv *http.Server
	if cfg.Worker.MetricsAddress != "" {
		metricsSrv, err = ServeMetrics(cfg.Worker.MetricsAddress, registry, log)
		if err != nil {
			return fmt.Errorf("%w (worker.metrics_address, TIP_WORKER_METRICS_ADDRESS)", err)
		}
	}

	res, err := NewResolver(cfg.Flux, log)
	if err != nil {
		return err
	}
	// The worker counts itself among the workers sharing the DNS rate before it
	// takes work, and leaves when it stops.
	pres := newPresence(db, identity, cfg.Temporal.TaskQueue, cfg.Flux.QPS, res, registry, log)
	pres.beat(ctx)
	presCtx, stopPresence := context.WithCancel(context.WithoutCancel(ctx))
	presDone := make(chan struct{})
	go func() { defer close(presDone); pres.run(presCtx) }()
	defer func() { stopPresence(); <-presDone }()
	debug.SetGCPercent(cfg.Worker.GCPercent)
	// Set before the worker exists: the SDK reads it when the first worker starts.
	sdkworker.SetStickyWorkflowCacheSize(cfg.Worker.WorkflowCache)
	w := sdkworker.New(c, cfg.Temporal.TaskQueue, sdkworker.Options{WorkerStopTimeout: cfg.Worker.ShutdownTimeout})
	Register(w, NewActivities(cfg, db, blobs, c, res, identity))
	if err := w.Start(); err != nil {
		return starter.ExplainTemporal(cfg.Temporal.Address, err)
	}
	// The flux probers run as long as a worker does: the first worker starts them
	// (again until it succeeds, so a Temporal server briefly away delays them
	// and does not stop the worker).
	go func() {
		for {
			err := starter.EnsureProbers(ctx, c, cfg)
			if err == nil || ctx.Err() != nil {
				return
			}
			log.Warn("starting the flux probers failed; trying again", "err", err, "in", 10*time.Second)
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Second):
			}
		}
	}()
	log.Info("worker started", "task_queue", cfg.Temporal.TaskQueue, "namespace", cfg.Temporal.Namespace,
		"temporal", cfg.Temporal.Address, "identity", identity, "metrics", cfg.Worker.MetricsAddress)

	<-ctx.Done()
	log.Info("worker stopping: finishing running tasks", "timeout", cfg.Worker.ShutdownTimeout)
	w.Stop()
	if metricsSrv != nil {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = metricsSrv.Shutdown(shutdownCtx)
	}
	log.Info("worker stopped")
	return nil
}

// NewResolver is the DNS resolver of the flux module: the configured recursive
// resolvers, or iterative resolution from the roots. One per worker, so its
// per-server rate limits hold for every monitor and triage on it.
func NewResolver(cfg config.Flux, log *slog.Logger) (*resolver.Resolver, error) {
	split := func(s string) []string {
		var out []string
		for f := range strings.SplitSeq(s, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
		return out
	}
	rc := resolver.Config{Recursive: split(cfg.Resolvers), Rate: cfg.QPS, Log: log}
	if len(rc.Recursive) == 0 {
		rc.Roots = split(cfg.Roots)
		if len(rc.Roots) == 0 {
			rc.Roots = resolver.RootServers
		}
	}
	r, err := resolver.New(rc)
	if err != nil {
		return nil, fmt.Errorf("flux resolver: %w", err)
	}
	return r, nil
}

// FluxConfig is what the flux activities need of TIP's configuration.
func FluxConfig(cfg config.Config) activities.FluxConfig {
	f := cfg.Flux
	return activities.FluxConfig{Allowlist: f.Allowlist, CoolDown: f.CoolDown, TriageWait: f.TriageWait}
}

// newMetricsScope reports the SDK's metrics into a Prometheus registry, with the
// names and sanitising Temporal's other SDKs use.
func newMetricsScope(registry *prom.Registry, log *slog.Logger) (tally.Scope, interface{ Close() error }) {
	reporter := tallyprom.NewReporter(tallyprom.Options{
		Registerer:       registry,
		DefaultTimerType: tallyprom.HistogramTimerType,
		OnRegisterError:  func(err error) { log.Warn("metrics registration", "err", err) },
	})
	scope, closer := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: &sdktally.PrometheusSanitizeOptions,
		Prefix:          "tip",
	}, time.Second)
	return sdktally.NewPrometheusNamingScope(scope), closer
}

// ServeMetrics serves a registry's metrics at /metrics, and Go's profiles, on
// addr until the returned server is shut down.
func ServeMetrics(addr string, registry *prom.Registry, log *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: cannot listen on %s (%v): set the metrics address to a free one, or empty to disable", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{Registry: registry}))
	// Go's profiles (heap, goroutines, CPU) of a running worker, beside its metrics.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	// Bounded like every server of TIP: a scraper that connects and stalls is dropped.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	return srv, nil
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
}
