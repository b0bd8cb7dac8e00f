package starter

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/workflows/contract"
)

// StartCore starts the Core workflow (ID tip-core) unless it already runs: then it
// returns the running one's run ID and started=false, so starting twice is harmless.
func StartCore(ctx context.Context, c client.Client, taskQueue string, in contract.CoreInput) (runID string, started bool, err error) {
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        contract.CoreWorkflowID,
		TaskQueue: taskQueue,
		// A running Core is kept (the start fails with AlreadyStarted, handled
		// below); a closed one may be started again.
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
	}, contract.CoreWorkflow, in)
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case errors.As(err, &already):
		return already.RunId, false, nil
	case err != nil:
		return "", false, fmt.Errorf("start %s: %w", contract.CoreWorkflowID, err)
	}
	return run.GetRunID(), true, nil
}

// EnsureCore starts Core with the module list, or, when it already runs, sends
// it the list: an upgrade may have added modules, and Core adopts the list at
// its next continue-as-new (it ignores an unchanged one).
func EnsureCore(ctx context.Context, c client.Client, taskQueue string, mods []contract.ModuleSpec) (runID string, started bool, err error) {
	runID, started, err = StartCore(ctx, c, taskQueue, contract.CoreInput{Modules: mods})
	if err != nil || started {
		return runID, started, err
	}
	return runID, false, SignalCore(ctx, c, contract.SignalConfigure, mods)
}

// CoreStatus asks the running Core for its timetable.
func CoreStatus(ctx context.Context, c client.Client) (contract.CoreStatus, error) {
	var st contract.CoreStatus
	v, err := c.QueryWorkflow(ctx, contract.CoreWorkflowID, "", contract.QueryStatus)
	if err != nil {
		return st, fmt.Errorf("query %s: %w", contract.CoreWorkflowID, explainCoreMissing(err))
	}
	if err := v.Get(&st); err != nil {
		return st, fmt.Errorf("decode %s status: %w", contract.CoreWorkflowID, err)
	}
	return st, nil
}

// SignalCore sends a signal (contract.SignalRunNow, ...) to the running Core.
func SignalCore(ctx context.Context, c client.Client, name string, payload any) error {
	if err := c.SignalWorkflow(ctx, contract.CoreWorkflowID, "", name, payload); err != nil {
		return fmt.Errorf("signal %s to %s: %w", name, contract.CoreWorkflowID, explainCoreMissing(err))
	}
	return nil
}

func explainCoreMissing(err error) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fmt.Errorf("%w (is Core running? start it with `tip core start`)", err)
	}
	return err
}
