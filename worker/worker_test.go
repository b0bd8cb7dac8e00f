package worker_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/activities"
	"github.com/tip-project/tip/internal/devstack"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/worker"
	"github.com/tip-project/tip/workflows"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestSetupIsIdempotentAndRegistersEverything(t *testing.T) {
	ctx := context.Background()
	cfg := testenv.Config(t)
	cfg.Postgres.DSN = testenv.NewDatabase(t)
	log := slog.New(slog.DiscardHandler)
	for i := 0; i < 2; i++ {
		if err := starter.Setup(ctx, cfg, log); err != nil {
			t.Fatalf("setup %d: %v", i+1, err)
		}
	}
	c, err := starter.Dial(ctx, cfg.Temporal, nil, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ns, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: cfg.Temporal.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	if got := ns.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration(); got < 30*24*time.Hour {
		t.Fatalf("retention %s; finished runs must stay 30 days", got)
	}
	missing, err := starter.CheckSearchAttributes(ctx, c, cfg.Temporal)
	if err != nil || len(missing) != 0 {
		t.Fatalf("search attributes missing after setup: %v, %v", missing, err)
	}

	// A namespace set up elsewhere gets registered with TIP's retention.
	other := cfg
	other.Temporal.Namespace = fmt.Sprintf("tip-other-%d", time.Now().UnixNano())
	if err := starter.Setup(ctx, other, log); err != nil {
		t.Fatalf("setup of a new namespace: %v", err)
	}
}

func TestWorkerRunsProbeServesMetricsAndStopsGracefully(t *testing.T) {
	ctx := context.Background()
	cfg := testenv.Config(t)
	cfg.Postgres.DSN = testenv.NewDatabase(t) // the worker migrates it at start
	cfg = testenv.NewBucket(t, cfg)           // and creates the bucket
	ports, err := devstack.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Worker.MetricsAddress = fmt.Sprintf("127.0.0.1:%d", ports[0])
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- worker.Run(runCtx, cfg, log) }()
	defer stop()

	c, err := starter.Dial(ctx, cfg.Temporal, nil, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	execCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	run, err := c.ExecuteWorkflow(execCtx, client.StartWorkflowOptions{
		ID: workflows.ProbeWorkflowIDPrefix + t.Name(), TaskQueue: cfg.Temporal.TaskQueue,
	}, workflows.Probe)
	if err != nil {
		t.Fatal(err)
	}
	var r activities.ProbeReport
	if err := run.Get(execCtx, &r); err != nil {
		t.Fatalf("probe through the worker: %v", err)
	}
	if r.SchemaVersion < 1 || r.Bucket != cfg.S3.Bucket || !strings.HasPrefix(r.BlobKey, "sha256/") || !strings.HasPrefix(r.PostgresVersion, "15") {
		t.Fatalf("probe report = %+v", r)
	}

	resp, err := http.Get("http://" + cfg.Worker.MetricsAddress + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"tip_temporal_workflow_completed", "tip_temporal_activity_execution_latency", "go_goroutines"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("worker.Run returned %v after cancellation, want nil", err)
		}
	case <-time.After(45 * time.Second):
		t.Fatal("worker did not stop within 45 s of cancellation")
	}
	if _, err := http.Get("http://" + cfg.Worker.MetricsAddress + "/metrics"); err == nil {
		t.Error("metrics endpoint still serves after the worker stopped")
	}
}

func TestWorkerRefusesUnreachableServicesClearly(t *testing.T) {
	cfg := testenv.Config(t)
	ports, _ := devstack.FreePorts(1)
	cfg.Postgres.DSN = fmt.Sprintf("postgres://tip:tip@127.0.0.1:%d/tip?sslmode=disable", ports[0])
	err := worker.Run(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "not reachable") || !strings.Contains(err.Error(), "make up") {
		t.Fatalf("worker.Run = %v", err)
	}

	cfg = testenv.Config(t)
	cfg.Temporal.Namespace = "no-such-namespace"
	err = worker.Run(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), `no namespace "no-such-namespace"`) {
		t.Fatalf("worker.Run with a missing namespace = %v", err)
	}
}
