package main

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/apiserve"
	"github.com/tip-project/tip/dnsserve"
	"github.com/tip-project/tip/lookup"
	"github.com/tip-project/tip/opsmetrics"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/taxii"
	"github.com/tip-project/tip/worker"
)

func serveCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "serve", Short: "Serve TIP's blacklists live to what defenders run: resolvers and mail servers (dns), their tools (api)"}
	cmd.AddCommand(serveDNSCmd(a), serveAPICmd(a), serveMetricsCmd(a))
	return cmd
}

// serveMetrics serves a registry on addr (none when empty) until the returned
// stop is called.
func serveMetrics(a *app, addr string, reg *prometheus.Registry) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	srv, err := worker.ServeMetrics(addr, reg, a.log)
	if err != nil {
		return nil, err
	}
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx) //nolint:errcheck
	}, nil
}

func serveDNSCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "dns",
		Short: "Serve the blacklists as RPZ zones (AXFR, IXFR, NOTIFY, TSIG) and DNSBL zones until SIGINT/SIGTERM",
		Long: `Serve the blacklists over DNS on dns.listen (UDP and TCP): Response Policy Zones
for resolvers (dns.rpz; transferred by AXFR and IXFR to dns.transfer_allow, signed
with dns.tsig when keys are set, NOTIFY to dns.notify at every new serial) and
DNSBL zones for mail servers (dns.dnsbl). Answers come from memory: the listings
are indexed at start and kept up to date from PostgreSQL's change notifications.
Prometheus metrics on dns.metrics_address.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg, err := dnsserve.FromConfig(a.cfg.DNS)
			if err != nil {
				return err
			}
			db, err := a.openDB(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			s, err := dnsserve.New(cfg, db, a.log)
			if err != nil {
				return err
			}
			if err := s.Load(ctx); err != nil {
				return err
			}
			stop, err := serveMetrics(a, a.cfg.DNS.MetricsAddress, s.Registry())
			if err != nil {
				return err
			}
			defer stop()
			return s.Serve(ctx, a.cfg.DNS.Listen)
		},
	}
}

func serveAPICmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "api",
		Short: "Serve lookups, exports, the MISP feed and the sources' health over HTTP to token holders until SIGINT/SIGTERM",
		Long: `Serve TIP's HTTP API on api.listen (HTTP/1.1 and HTTP/2; HTTPS with api.tls_cert
and api.tls_key): /v1/lookup, /v1/export/{format}, the MISP feed under /misp/,
/v1/sources, a read-only TAXII 2.1 server under /taxii2/ (STIX 2.1: indicators
scoring api.min_score, TIP's own sources, flux networks), and its OpenAPI 3.1
description at /v1/openapi.json. Lookups are answered from an index of every
listing kept in memory. Clients
present a token of ` + "`tip api token add`" + ` (Bearer, or HTTP Basic with the token as
the password); a revocation acts on the next request. Exports carry an ETag
and Last-Modified that follow PostgreSQL's change notifications. Prometheus
metrics on api.metrics_address: the API's requests, and TIP's operations
metrics (as ` + "`tip serve metrics`" + ` serves them).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg, err := apiserve.FromConfig(a.cfg.API)
			if err != nil {
				return err
			}
			cfg.Build = version
			db, err := a.openDB(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			if err := db.CheckSchema(ctx); err != nil { // the tokens live in the schema
				return err
			}
			idx := lookup.NewIndex(db, a.log)
			go idx.Run(ctx) //nolint:errcheck // it logs its failures and retries until ctx ends
			tx := taxii.FromDB(db, taxii.Config{MinScore: cfg.MinScore, Log: a.log})
			go syncTAXII(ctx, a, tx)
			s, err := apiserve.New(cfg, db, apiserve.Options{Lookuper: apiLookuper{idx: idx, sql: apiserve.SQLLookuper{DB: db}},
				TAXII: taxii.New(taxii.Config{MinScore: cfg.MinScore, Log: a.log}, tx), Log: a.log})
			if err != nil {
				return err
			}
			defer s.Close()
			ops, closeOps := opsCollector(a, db)
			defer closeOps()
			if err := s.Registry().Register(ops); err != nil {
				return err
			}
			stop, err := serveMetrics(a, a.cfg.API.MetricsAddress, s.Registry())
			if err != nil {
				return err
			}
			defer stop()
			return s.Serve(ctx, a.cfg.API.Listen)
		},
	}
}

func serveMetricsCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "metrics",
		Short: "Serve TIP's operations metrics (sources, spam collectors, flux, core, workers) to Prometheus until SIGINT/SIGTERM",
		Long: `Serve TIP's operations metrics on metrics.listen (/metrics), for a deployment
without ` + "`tip serve api`" + `, which serves them on api.metrics_address: each source's
health, listings, weight and runs, the spam collectors' mails and runs, the flux
monitors and their checks' lateness, the core's modules and the workers polling
(tip_source_*, tip_spam_*, tip_flux_*, tip_core_*, tip_workers_polling), with the
Go process's metrics. They are read from PostgreSQL and Temporal when scraped; one
reading serves every scrape for metrics.min_interval. A part that cannot be read
(Temporal down) counts in tip_ops_scrape_errors_total{part} and its series are
left out, while the others are served.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if a.cfg.Metrics.Listen == "" {
				return errors.New("metrics.listen is empty: set it (or TIP_METRICS_LISTEN) to the host:port Prometheus scrapes")
			}
			db, err := a.openDB(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			ops, closeOps := opsCollector(a, db)
			defer closeOps()
			stop, err := serveMetrics(a, a.cfg.Metrics.Listen, opsmetrics.Registry(ops))
			if err != nil {
				return err
			}
			defer stop()
			a.log.Info("serving operations metrics", "listen", a.cfg.Metrics.Listen, "min_interval", a.cfg.Metrics.MinInterval)
			<-ctx.Done()
			return nil
		},
	}
}

// opsCollector is the collector of TIP's operations metrics on db and the
// configured Temporal (dialled at the first scrape), and what closes it.
func opsCollector(a *app, db *storage.DB) (*opsmetrics.Collector, func()) {
	tmp := opsmetrics.NewTemporalClient(a.cfg.Temporal, func(ctx context.Context) (client.Client, error) { return a.dial(ctx, nil) })
	cfg := opsmetrics.FromConfig(a.cfg)
	cfg.Log = a.log
	return opsmetrics.New(db, tmp, cfg), tmp.Close
}

// apiLookuper answers the API's lookups from the in-memory index
// (lookup.Index) once it is built, and with SQL until then: a server that
// just started answers at once, a little slower.
type apiLookuper struct {
	idx *lookup.Index
	sql apiserve.SQLLookuper
}

func (l apiLookuper) Lookup(ctx context.Context, q lookup.Query) (lookup.Document, error) {
	if l.idx.Ready() {
		return l.idx.Lookup(ctx, q)
	}
	return l.sql.Lookup(ctx, q)
}

// syncTAXII brings the TAXII collections up to date at start and every
// minute after (besides the syncs requests start), so a collection's date
// added follows the refreshes even while no client polls.
func syncTAXII(ctx context.Context, a *app, src *taxii.DBSource) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		if res, err := src.Sync(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("taxii: sync failed", "err", err)
		} else if err == nil {
			a.log.Debug("taxii: synced", "result", res)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
