// Package workflows holds TIP's Temporal workflows. They stay deterministic: no
// wall clock, randomness, goroutines, map-order iteration or I/O; activities do I/O.
package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tip-project/tip/workflows/contract"
)

// Probe runs the storage probe on a worker, so `tip doctor` can prove end to end
// that a worker polls the task queue and reaches PostgreSQL and S3.
func Probe(ctx workflow.Context) (contract.ProbeReport, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3, InitialInterval: time.Second},
	})
	var r contract.ProbeReport
	err := workflow.ExecuteActivity(ctx, contract.ProbeActivity).Get(ctx, &r)
	return r, err
}
