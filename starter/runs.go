package starter

import (
	"context"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/tip-project/tip/config"
)

// Pollers counts the workers that polled the task queue for activities in the
// last two minutes.
func Pollers(ctx context.Context, c client.Client, cfg config.Temporal) (int, error) {
	tq, err := c.DescribeTaskQueue(ctx, cfg.TaskQueue, enumspb.TASK_QUEUE_TYPE_ACTIVITY)
	if err != nil {
		return 0, ExplainTemporal(cfg.Address, err)
	}
	recent := 0
	for _, p := range tq.GetPollers() {
		if time.Since(p.GetLastAccessTime().AsTime()) < 2*time.Minute {
			recent++
		}
	}
	return recent, nil
}

// FailedRun is a workflow run on the task queue that failed or timed out.
type FailedRun struct {
	ID, RunID string
	Closed    time.Time
	TimedOut  bool
}

// FailedRuns lists at most n runs on the task queue that failed or timed out
// (for as long as the namespace keeps them): agent syncs, mailbox polls,
// archive ingests, module runs, monitors.
func FailedRuns(ctx context.Context, c client.Client, cfg config.Temporal, n int) ([]FailedRun, error) {
	list, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: cfg.Namespace,
		PageSize: int32(n),
		Query:    fmt.Sprintf("ExecutionStatus IN ('Failed', 'TimedOut') AND TaskQueue = '%s'", queryQueue(cfg))})
	if err != nil {
		return nil, ExplainTemporal(cfg.Address, err)
	}
	var out []FailedRun
	for _, ex := range list.GetExecutions() {
		out = append(out, FailedRun{ID: ex.GetExecution().GetWorkflowId(), RunID: ex.GetExecution().GetRunId(),
			Closed: ex.GetCloseTime().AsTime(), TimedOut: ex.GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT})
	}
	return out, nil
}

// RunFailure is why a closed workflow run failed: the innermost cause of its
// failure (the outer ones say where: "activity error", "child workflow error");
// "" when its history does not say.
func RunFailure(ctx context.Context, c client.Client, id, runID string) string {
	it := c.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return ""
		}
		var f *failurepb.Failure
		if a := ev.GetWorkflowExecutionFailedEventAttributes(); a != nil {
			f = a.GetFailure()
		}
		for f.GetCause() != nil {
			f = f.GetCause()
		}
		if f != nil {
			return f.GetMessage()
		}
	}
	return ""
}

// Progress is the count the running activity of a workflow last reported in
// its heartbeat (mails read, for an archive ingest); false when none did.
func Progress(ctx context.Context, c client.Client, id string) (int, bool) {
	d, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return 0, false
	}
	for _, pa := range d.GetPendingActivities() {
		if hb := pa.GetHeartbeatDetails(); hb != nil {
			var n int
			if err := converter.GetDefaultDataConverter().FromPayloads(hb, &n); err == nil {
				return n, true
			}
		}
	}
	return 0, false
}

// Await waits for run's result into res, calling tick every interval until it
// ends (to show progress).
func Await(ctx context.Context, run client.WorkflowRun, res any, every time.Duration, tick func()) error {
	done := make(chan error, 1)
	go func() { done <- run.Get(ctx, res) }()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-t.C:
			tick()
		}
	}
}
