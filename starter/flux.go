package starter

import (
	"context"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/workflows/contract"
)

// WatchDomain sends the watch signal to the monitor of domain, starting the
// monitor first if it does not run (Signal-With-Start): what triage does for a
// fluxy domain and `tip flux watch` for any.
func WatchDomain(ctx context.Context, c client.Client, taskQueue string, cfg contract.MonitorConfig, domain string, req contract.WatchRequest) error {
	_, err := c.SignalWithStartWorkflow(ctx, contract.MonitorWorkflowID(domain), contract.SignalFluxWatch, req,
		client.StartWorkflowOptions{TaskQueue: taskQueue},
		contract.FluxMonitorWorkflow, contract.MonitorInput{Domain: domain, Config: cfg})
	if err != nil {
		return fmt.Errorf("start monitor %s: %w", domain, err)
	}
	return nil
}

// SignalMonitor sends a signal (contract.SignalFluxStop, ...) to the running
// monitor of domain.
func SignalMonitor(ctx context.Context, c client.Client, domain, name string, payload any) error {
	if err := c.SignalWorkflow(ctx, contract.MonitorWorkflowID(domain), "", name, payload); err != nil {
		return fmt.Errorf("%s %s: %w (is it watched? tip flux list)", name, domain, err)
	}
	return nil
}

// RunningMonitors counts the FluxMonitor workflows running on the task queue.
func RunningMonitors(ctx context.Context, c client.Client, cfg config.Temporal) (int64, error) {
	n, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: cfg.Namespace,
		Query: fmt.Sprintf("WorkflowType = '%s' AND ExecutionStatus = 'Running' AND TaskQueue = '%s'", contract.FluxMonitorWorkflow, queryQueue(cfg))})
	if err != nil {
		return 0, ExplainTemporal(cfg.Address, err)
	}
	return n.GetCount(), nil
}

// queryQueue is the task queue's name as a visibility query may quote it.
func queryQueue(cfg config.Temporal) string { return strings.ReplaceAll(cfg.TaskQueue, "'", "") }

// ProberRun is how long one RunProber activity runs before its workflow
// starts the next.
const ProberRun = time.Hour

// EnsureProbers starts the flux probers (flux.probers FluxProber workflows on
// the monitors' task queue) that do not run yet; those running are left as
// they are. Every worker does it when it starts.
func EnsureProbers(ctx context.Context, c client.Client, cfg config.Config) error {
	queue := MonitorConfig(cfg).TaskQueue
	for shard := range cfg.Flux.Probers {
		_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: contract.ProberWorkflowID(queue, shard), TaskQueue: queue,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
			WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		}, contract.FluxProberWorkflow, contract.ProberInput{Shard: shard, Shards: cfg.Flux.Probers,
			Summary: cfg.Flux.SummaryInterval, Run: ProberRun})
		if err != nil {
			return fmt.Errorf("start flux prober %d: %w", shard, ExplainTemporal(cfg.Temporal.Address, err))
		}
	}
	return nil
}
