package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows"
	"github.com/tip-project/tip/workflows/contract"
)

type verdict int

const (
	ok verdict = iota
	warn
	fail
)

func (v verdict) String() string { return [...]string{"ok  ", "warn", "FAIL"}[v] }

type checkResult struct {
	service string
	verdict verdict
	detail  string
}

func doctorCmd(a *app) *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check every service TIP needs and say what is wrong and how to fix it",
		Long: `Check Temporal (address, namespace, retention, search attributes), PostgreSQL
(connection, schema version), S3 (credentials, bucket) and the workers: when a
worker polls the task queue, run the probe workflow through it end to end.
Warn of settings that do not fit where TIP runs: the lab's (config/lab.tip.yaml)
in a deployment, and worker metrics (with Go's profiles) open to other hosts.
Exits with status 1 when a check fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			results := a.doctor(cmd.Context(), timeout)
			failed := printDoctor(cmd.OutOrStdout(), results)
			if failed {
				return exitError(1)
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 20*time.Second, "how long the probe workflow may take")
	return cmd
}

func printDoctor(w io.Writer, results []checkResult) (failed bool) {
	for _, r := range results {
		fmt.Fprintf(w, "[%s] %-9s %s\n", r.verdict, r.service, r.detail)
		failed = failed || r.verdict == fail
	}
	return failed
}

// doctor checks every service and the workers, the probe workflow taking at
// most probeTimeout.
func (a *app) doctor(ctx context.Context, probeTimeout time.Duration) []checkResult {
	cfg := a.cfg
	var out []checkResult
	add := func(service string, v verdict, format string, args ...any) {
		out = append(out, checkResult{service, v, fmt.Sprintf(format, args...)})
	}
	out = append(out, checkSettings(cfg)...)

	db, err := a.openDB(ctx)
	if err != nil {
		add("postgres", fail, "%v", err)
	} else {
		v, verr := db.SchemaVersion(ctx)
		if err := db.CheckSchema(ctx); err != nil {
			add("postgres", fail, "%v", err)
		} else if verr != nil {
			add("postgres", fail, "postgres at %s: read schema version: %v", db.Addr(), verr)
		} else {
			add("postgres", ok, "%s reachable, schema at version %d (current)", db.Addr(), v)
		}
		db.Close()
	}

	blobs, err := storage.NewBlobStoreFromConfig(cfg.S3)
	if err == nil {
		err = blobs.Check(ctx)
	}
	if err != nil {
		add("s3", fail, "%v", err)
	} else {
		add("s3", ok, "%s reachable, bucket %q present", blobs.Endpoint(), blobs.Bucket())
	}

	c, err := a.dial(ctx, nil)
	if err != nil {
		add("temporal", fail, "%v", err)
		return out
	}
	defer c.Close()
	ns, err := starter.CheckNamespace(ctx, c, cfg.Temporal)
	if err != nil {
		add("temporal", fail, "%v", err)
		return out
	}
	retention := ns.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration()
	if retention < cfg.Temporal.Retention {
		add("temporal", fail, "namespace %s keeps finished runs %s, less than the configured %s; run `tip setup`", cfg.Temporal.Namespace, retention, cfg.Temporal.Retention)
	} else {
		add("temporal", ok, "%s reachable, namespace %s keeps finished runs %s", cfg.Temporal.Address, cfg.Temporal.Namespace, retention)
	}
	missing, err := starter.CheckSearchAttributes(ctx, c, cfg.Temporal)
	switch {
	case err != nil:
		add("temporal", fail, "%v", err)
	case len(missing) > 0:
		add("temporal", fail, "search attributes missing in namespace %s: %s; run `tip setup`", cfg.Temporal.Namespace, strings.Join(missing, ", "))
	default:
		add("temporal", ok, "all %d TIP search attributes registered", len(workflows.SearchAttributes))
	}

	out = append(out, checkWorker(ctx, c, cfg.Temporal, probeTimeout))
	return out
}

// checkWorker looks for pollers on the task queue and, if there are any, runs the
// probe workflow through them.
func checkWorker(ctx context.Context, c client.Client, cfg config.Temporal, timeout time.Duration) checkResult {
	recent, err := starter.Pollers(ctx, c, cfg)
	if err != nil {
		return checkResult{"worker", fail, err.Error()}
	}
	if recent == 0 {
		return checkResult{"worker", warn, fmt.Sprintf("no worker polls task queue %q; start one with `tip worker` (or `make demo`)", cfg.TaskQueue)}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	run, err := starter.StartProbe(ctx, c, cfg, timeout)
	if err != nil {
		return checkResult{"worker", fail, err.Error()}
	}
	var r contract.ProbeReport
	if err := run.Get(ctx, &r); err != nil {
		return checkResult{"worker", fail, fmt.Sprintf("%d worker(s) poll %q but the probe workflow %s failed: %v", recent, cfg.TaskQueue, run.GetID(), err)}
	}
	return checkResult{"worker", ok, fmt.Sprintf("%d worker(s) poll %q; probe %s ran on %s: PostgreSQL %s schema %d, wrote and read %s in bucket %s",
		recent, cfg.TaskQueue, run.GetID(), r.Worker, r.PostgresVersion, r.SchemaVersion, r.BlobKey, r.Bucket)}
}

// checkSettings warns of settings that do not fit where TIP runs. The lab's
// (config.LabSettings) belong to the lab alone: with Temporal, PostgreSQL and S3
// on loopback and both lab catalogs, TIP runs the lab (`make demo`); with a
// service elsewhere, or a catalog that is not the lab's, it is a deployment,
// which must not collect from the lab nor wait and download as the lab does.
// Worker metrics on an address other hosts reach serve Go's profiles to them.
func checkSettings(cfg config.Config) []checkResult {
	var out []checkResult
	warnf := func(format string, args ...any) {
		out = append(out, checkResult{"config", warn, fmt.Sprintf(format, args...)})
	}
	if lab := cfg.LabSettings(); len(lab) > 0 {
		var deployment string
		switch remote := remoteService(cfg); {
		case remote != "":
			deployment = remote + " is not on loopback"
		case !cfg.IsLabCatalog():
			deployment = fmt.Sprintf("blacklists.catalog %s is not the lab's", cfg.Blacklists.Catalog)
		case !cfg.IsLabSpamCatalog():
			deployment = fmt.Sprintf("spam.catalog %s is not the lab's", cfg.Spam.Catalog)
		}
		if deployment != "" {
			for _, l := range lab {
				warnf("%s %s is the lab's (%s) in a deployment (%s): leave it out, the defaults are the real Internet's", l.Key, l.Value, l.Why, deployment)
			}
		}
	}
	if addr := cfg.Worker.MetricsAddress; addr != "" && !loopbackHost(hostOf(addr)) {
		warnf("worker.metrics_address %s is reachable from other hosts: it serves Go's profiles (/debug/pprof/) beside /metrics, and a CPU profile costs CPU; keep it on loopback, or on a network only your Prometheus reaches", addr)
	}
	return out
}

// remoteService names the first of Temporal, PostgreSQL and S3 whose address is
// not on loopback, with its setting; "" when all are.
func remoteService(cfg config.Config) string {
	if h := hostOf(cfg.Temporal.Address); !loopbackHost(h) {
		return "temporal.address " + cfg.Temporal.Address
	}
	for _, h := range dsnHosts(cfg.Postgres.DSN) {
		if !loopbackHost(h) && !strings.HasPrefix(h, "/") { // a path: a Unix socket, on this host
			return "postgres.dsn host " + h
		}
	}
	if h := hostOf(cfg.S3.Endpoint); !loopbackHost(h) {
		return "s3.endpoint " + cfg.S3.Endpoint
	}
	return ""
}

// hostOf is the host of host:port (or the whole address without a port).
func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// dsnHosts are the hosts of a postgres:// URL or a key=value DSN (host= may
// list several, comma-separated); none: libpq's default, a local socket.
func dsnHosts(dsn string) []string {
	var list string
	if u, err := url.Parse(dsn); err == nil && strings.Contains(dsn, "://") {
		list = u.Host
		if h := u.Query().Get("host"); h != "" {
			list = h
		}
	} else {
		for _, f := range strings.Fields(dsn) {
			if v, ok := strings.CutPrefix(f, "host="); ok {
				list = v
			}
		}
	}
	var hosts []string
	for _, h := range strings.Split(list, ",") {
		if h = hostOf(strings.TrimSpace(h)); h != "" {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// loopbackHost says whether host is this machine alone: localhost or a
// loopback address. An empty host (":9464") is every address, not loopback.
func loopbackHost(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.Unmap().IsLoopback()
}
