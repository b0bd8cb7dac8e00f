package devstack_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/internal/devstack"
	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/workflows/contract"
)

// TestProductionStackRunsTemporalOnPostgres: the production-like stack sets up
// the Temporal server's two databases with its schema tool, runs the server on
// them and the standalone Web UI beside it; TIP's set-up (namespace retention,
// search attributes) works on its SQL visibility store; a second up changes
// nothing; down stops every process.
func TestProductionStackRunsTemporalOnPostgres(t *testing.T) {
	s := newStack(t)
	if err := s.Production(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Up(ctx); err != nil {
		t.Fatal(err)
	}
	before := pids(s)
	for _, svc := range []devstack.Service{devstack.Postgres, devstack.MinIO, devstack.Temporal, devstack.TemporalUI} {
		if before[svc] == 0 {
			t.Fatalf("%s is not running: %+v", svc, s.Status(ctx))
		}
	}
	cfg := config.Default()
	cfg.Temporal.Address, cfg.Temporal.Namespace = s.TemporalAddress(), s.Namespace
	cfg.Postgres.DSN = s.PostgresDSN()
	cfg.S3.Endpoint, cfg.S3.AccessKey, cfg.S3.SecretKey = s.S3Endpoint(), s.S3AccessKey, s.S3SecretKey
	if err := starter.Setup(ctx, cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	c, err := starter.Dial(ctx, cfg.Temporal, slog.New(slog.DiscardHandler), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sys, err := c.WorkflowService().GetSystemInfo(ctx, &workflowservice.GetSystemInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("server %s", sys.GetServerVersion())
	resp, err := http.Get(s.TemporalUI() + "/namespaces/" + s.Namespace + "/workflows")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("Web UI: %v %v", resp, err)
	}
	resp.Body.Close()
	_ = contract.CoreWorkflowID

	if err := s.Up(ctx); err != nil {
		t.Fatalf("second up: %v", err)
	}
	if after := pids(s); after[devstack.Temporal] != before[devstack.Temporal] || after[devstack.TemporalUI] != before[devstack.TemporalUI] {
		t.Fatalf("the second up restarted a service: %v then %v", before, after)
	}
	for _, st := range s.Status(ctx) {
		if st.Service == devstack.Temporal && !strings.Contains(st.Detail, "PostgreSQL") {
			t.Errorf("status of Temporal: %+v", st)
		}
	}
	if err := s.Down(ctx); err != nil {
		t.Fatal(err)
	}
	if left := pids(s); len(left) > 0 {
		t.Fatalf("still running after down: %v", left)
	}
}
