package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/activities"
	"github.com/tip-project/tip/internal/config"
	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows"
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
Exits with status 1 when a check fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			results := runDoctor(cmd.Context(), a.cfg, timeout)
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

func runDoctor(ctx context.Context, cfg config.Config, probeTimeout time.Duration) []checkResult {
	var out []checkResult
	add := func(service string, v verdict, format string, args ...any) {
		out = append(out, checkResult{service, v, fmt.Sprintf(format, args...)})
	}

	db, err := storage.OpenDB(ctx, cfg.Postgres.DSN)
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

	c, err := starter.Dial(ctx, cfg.Temporal, nil, client.Options{})
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
	recent, err := pollers(ctx, c, cfg)
	if err != nil {
		return checkResult{"worker", fail, err.Error()}
	}
	if recent == 0 {
		return checkResult{"worker", warn, fmt.Sprintf("no worker polls task queue %q; start one with `tip worker` (or `make demo`)", cfg.TaskQueue)}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       workflows.ProbeWorkflowIDPrefix + time.Now().UTC().Format("20060102T150405.000"),
		TaskQueue:                cfg.TaskQueue,
		WorkflowExecutionTimeout: timeout,
	}, workflows.Probe)
	if err != nil {
		return checkResult{"worker", fail, starter.ExplainTemporal(cfg.Address, err).Error()}
	}
	var r activities.ProbeReport
	if err := run.Get(ctx, &r); err != nil {
		return checkResult{"worker", fail, fmt.Sprintf("%d worker(s) poll %q but the probe workflow %s failed: %v", recent, cfg.TaskQueue, run.GetID(), err)}
	}
	return checkResult{"worker", ok, fmt.Sprintf("%d worker(s) poll %q; probe %s ran on %s: PostgreSQL %s schema %d, wrote and read %s in bucket %s",
		recent, cfg.TaskQueue, run.GetID(), r.Worker, r.PostgresVersion, r.SchemaVersion, r.BlobKey, r.Bucket)}
}

// pollers counts the workers that polled the task queue for activities in the
// last two minutes.
func pollers(ctx context.Context, c client.Client, cfg config.Temporal) (int, error) {
	tq, err := c.DescribeTaskQueue(ctx, cfg.TaskQueue, enumspb.TASK_QUEUE_TYPE_ACTIVITY)
	if err != nil {
		return 0, starter.ExplainTemporal(cfg.Address, err)
	}
	recent := 0
	for _, p := range tq.GetPollers() {
		if time.Since(p.GetLastAccessTime().AsTime()) < 2*time.Minute {
			recent++
		}
	}
	return recent, nil
}
