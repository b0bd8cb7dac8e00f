package workflows

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"

	"github.com/tip-project/tip/workflows/contract"
)

func TestProbeReturnsTheWorkersReport(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	registerActivities(env)
	want := contract.ProbeReport{Worker: "1@host", PostgresVersion: "15.18", SchemaVersion: 1, BlobKey: "sha256/aa/bb/x"}
	env.OnActivity(a.Probe.Probe, mock.Anything).Return(want, nil).Once()
	env.ExecuteWorkflow(Probe)
	if !env.IsWorkflowCompleted() || env.GetWorkflowError() != nil {
		t.Fatalf("workflow: completed=%v err=%v", env.IsWorkflowCompleted(), env.GetWorkflowError())
	}
	var got contract.ProbeReport
	if err := env.GetWorkflowResult(&got); err != nil || got != want {
		t.Fatalf("result = %+v, %v", got, err)
	}
}

func TestProbeRetriesThenReportsTheFailure(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	registerActivities(env)
	calls := 0
	env.OnActivity(a.Probe.Probe, mock.Anything).Return(func(context.Context) (contract.ProbeReport, error) {
		calls++
		return contract.ProbeReport{}, errors.New("s3 at http://127.0.0.1:9000 is not reachable")
	})
	env.ExecuteWorkflow(Probe)
	err := env.GetWorkflowError()
	if err == nil {
		t.Fatal("probe succeeded although storage is down")
	}
	if calls != 3 {
		t.Fatalf("activity ran %d times, want 3 (the retry policy's maximum)", calls)
	}
}
