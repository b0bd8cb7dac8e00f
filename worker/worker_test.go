package worker_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/export"
	"github.com/tip-project/tip/internal/devstack"
	"github.com/tip-project/tip/internal/testenv"
	labfeeds "github.com/tip-project/tip/lab/feeds"
	"github.com/tip-project/tip/lab/world"
	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/worker"
	"github.com/tip-project/tip/workflows"
	"github.com/tip-project/tip/workflows/contract"
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
		ID: contract.ProbeWorkflowIDPrefix + t.Name(), TaskQueue: cfg.Temporal.TaskQueue,
	}, workflows.Probe)
	if err != nil {
		t.Fatal(err)
	}
	var r contract.ProbeReport
	if err := run.Get(execCtx, &r); err != nil {
		t.Fatalf("probe through the worker: %v", err)
	}
	if r.SchemaVersion < 1 || r.Bucket != cfg.S3.Bucket || !strings.HasPrefix(r.BlobKey, "sha256/") || !strings.HasPrefix(r.PostgresVersion, "15") {
		t.Fatalf("probe report = %+v", r)
	}

	// The SDK's metrics reach the registry on the scope's next report (every second).
	wants := []string{"tip_temporal_workflow_completed", "tip_temporal_activity_execution_latency", "go_goroutines"}
	var missing []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get("http://" + cfg.Worker.MetricsAddress + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		missing = missing[:0]
		for _, want := range wants {
			if !strings.Contains(string(body), want) {
				missing = append(missing, want)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(missing) > 0 {
		t.Errorf("/metrics lacks %v", missing)
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

// TestBlacklistRefreshEndToEnd runs a refresh of lab feeds through a real worker,
// Temporal, PostgreSQL and MinIO, and exports the result.
func TestBlacklistRefreshEndToEnd(t *testing.T) {
	ctx := context.Background()
	lab := labfeeds.New(world.NewWorld(1), world.FixedClock(world.DefaultStart.Add(48*time.Hour)), labfeeds.Options{SlowChunkDelay: time.Millisecond})
	srv := httptest.NewServer(lab.Handler())
	defer srv.Close()
	catalogPath := filepath.Join(t.TempDir(), "catalog.yaml")
	os.WriteFile(catalogPath, []byte(fmt.Sprintf(`
allow_private: true
sources:
  - {name: feodo-ipblocklist, url: "%[1]s/feeds/feodotracker/ipblocklist.txt", format: feodo-txt, type: ipv4, prior: 0.9}
  - {name: spamhaus-drop, url: "%[1]s/feeds/spamhaus/drop.txt", format: spamhaus-drop, type: cidr, prior: 0.95}
  - {name: et-compromised, url: "%[1]s/feeds/emergingthreats/compromised-ips.txt", format: ip-list, type: ipv4}
  - {name: blocklistde-strongips, url: "%[1]s/feeds/blocklist.de/strongips.txt", format: ip-list, type: ipv4}
  - {name: not-requested, url: "%[1]s/feeds/openphish/feed.txt", format: url-list, type: url}
`, srv.URL)), 0o644)

	cfg := testenv.Config(t)
	cfg.Postgres.DSN = testenv.NewDatabase(t)
	cfg = testenv.NewBucket(t, cfg)
	cfg.Blacklists.Catalog = catalogPath
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		if err := worker.Run(runCtx, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))); err != nil {
			t.Errorf("worker: %v", err)
		}
	}()

	c, err := starter.Dial(ctx, cfg.Temporal, nil, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	execCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	in := contract.ModuleInput{Module: contract.BlacklistModule, Events: []contract.Event{{Kind: contract.EventRefreshSources,
		Items: []string{"feodo-ipblocklist", "spamhaus-drop", "et-compromised", "blocklistde-strongips"}}}}
	run, err := c.ExecuteWorkflow(execCtx, client.StartWorkflowOptions{ID: "blacklist-refresh/" + t.Name(), TaskQueue: cfg.Temporal.TaskQueue},
		workflows.BlacklistRefresh, in)
	if err != nil {
		t.Fatal(err)
	}
	var res contract.ModuleResult
	if err := run.Get(execCtx, &res); err != nil {
		iter := c.GetWorkflowHistory(ctx, run.GetID(), "", false, 0)
		for iter.HasNext() {
			ev, _ := iter.Next()
			t.Logf("%s %v", ev.GetEventType(), ev.GetAttributes())
		}
		t.Fatalf("refresh: %v", err)
	}
	for _, want := range []string{"4 sources: 2 loaded, 1 dead, 1 malformed", "weights of 4 sources computed"} {
		if !strings.Contains(res.Summary, want) {
			t.Errorf("summary %q lacks %q", res.Summary, want)
		}
	}

	db, err := storage.OpenDB(ctx, cfg.Postgres.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want := 0
	for _, ft := range lab.Truth(world.DefaultStart.Add(48 * time.Hour)) {
		if ft.Feed == "feodo-ipblocklist" || ft.Feed == "spamhaus-drop" {
			want += len(ft.Entries)
		}
	}
	got := 0
	if err := db.ExportListed(ctx, nil, 0, true, func(export.Row) error { got++; return nil }); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("exported %d indicators, the lab lists %d on the two loaded feeds", got, want)
	}
}
