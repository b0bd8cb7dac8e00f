package starter

import (
	"context"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/workflows/contract"
)

// StartProbe starts the probe workflow (`tip doctor`): a worker of the task
// queue reaches PostgreSQL and S3, and the run returns a contract.ProbeReport.
// The run times out after timeout.
func StartProbe(ctx context.Context, c client.Client, cfg config.Temporal, timeout time.Duration) (client.WorkflowRun, error) {
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       contract.ProbeWorkflowIDPrefix + time.Now().UTC().Format("20060102T150405.000"),
		TaskQueue:                cfg.TaskQueue,
		WorkflowExecutionTimeout: timeout,
	}, contract.ProbeWorkflow)
	if err != nil {
		return nil, ExplainTemporal(cfg.Address, err)
	}
	return run, nil
}
