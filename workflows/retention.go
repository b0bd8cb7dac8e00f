package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tip-project/tip/workflows/contract"
)

// DataRetention is the data-retention module: one activity summarises the
// flux observations past their full-resolution window into hourly rows,
// drops or empties their partitions, makes the partitions ahead, and removes
// old source runs. Core runs it every retention.interval.
func DataRetention(ctx workflow.Context, in contract.ModuleInput) (contract.ModuleResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// a week's partition of a large deployment takes minutes to summarise
		StartToCloseTimeout: time.Hour,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5},
	})
	var res contract.PruneResult
	if err := workflow.ExecuteActivity(ctx, contract.PruneActivity, contract.PruneRequest{}).Get(ctx, &res); err != nil {
		return contract.ModuleResult{}, err
	}
	summary := fmt.Sprintf("%d flux observations before %s summarised into %d hourly rows, %d partitions dropped, %d made; %d source runs removed",
		res.Observations, res.Cutoff.UTC().Format(time.RFC3339), res.Hours, len(res.PartitionsDropped), res.PartitionsMade, res.SourceRuns)
	return contract.ModuleResult{Summary: summary}, nil
}
