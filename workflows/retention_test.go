package workflows

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/tip-project/tip/workflows/contract"
)

// DataRetention runs one prune (not dry) and sums it up for Core; a failed
// prune fails the run.
func TestDataRetentionSummary(t *testing.T) {
	cutoff := time.Date(2026, 11, 5, 7, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		res     contract.PruneResult
		err     error
		summary string
	}{
		{"pruned", contract.PruneResult{Cutoff: cutoff, Observations: 86400, Hours: 7200, PartitionsDropped: []string{"flux_observations_p20261026"},
			PartitionsMade: 1, SourceRuns: 12}, nil,
			"86400 flux observations before 2026-11-05T07:00:00Z summarised into 7200 hourly rows, 1 partitions dropped, 1 made; 12 source runs removed"},
		{"failure", contract.PruneResult{}, temporal.NewNonRetryableApplicationError("prune: database down", "DB", nil), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestWorkflowEnvironment()
			env.RegisterWorkflow(DataRetention)
			registerActivities(env)
			var got contract.PruneRequest
			env.OnActivity(a.Prune, mock.Anything, mock.Anything).Return(func(_ context.Context, req contract.PruneRequest) (contract.PruneResult, error) {
				got = req
				return c.res, c.err
			})
			env.ExecuteWorkflow(DataRetention, contract.ModuleInput{Module: contract.RetentionModule})
			if got.DryRun || !got.Now.IsZero() {
				t.Errorf("prune request %+v, want a real prune at the activity's clock", got)
			}
			var res contract.ModuleResult
			err := env.GetWorkflowResult(&res)
			if c.err != nil {
				if err == nil || !strings.Contains(err.Error(), "database down") {
					t.Fatalf("got %v, want the activity's error", err)
				}
				return
			}
			if err != nil || res.Summary != c.summary {
				t.Errorf("summary %q (%v),\nwant %q", res.Summary, err, c.summary)
			}
		})
	}
}
