package workflows

import (
	"testing"

	"go.temporal.io/sdk/worker"
)

// Histories recorded from the demo stack (`temporal workflow show -o json`): the
// current code must replay them without a non-determinism error, so a change to a
// workflow that may be running needs workflow.GetVersion. Re-record them when a
// change is meant to break old runs (and say so in the change).
func TestReplayRecordedHistories(t *testing.T) {
	cases := []struct {
		file string
		fn   any
	}{
		{"testdata/core.history.json", Core},
		{"testdata/blacklist-refresh.history.json", BlacklistRefresh},
		{"testdata/source-refresh.history.json", SourceRefresh},
		{"testdata/spam-collect.history.json", SpamCollect},
		// From TestFluxTriageAndMonitorsOnTheLab (TIP_RECORD_HISTORIES=DIR): a
		// monitor through a worker restart to its stop signal, and a triage run.
		{"testdata/flux-monitor.history.json", FluxMonitor},
		// Recorded after workflow version flux-publish-changes (search attributes
		// upserted on changes, not at every check); the one above ran before it.
		{"testdata/flux-monitor-publish-changes.history.json", FluxMonitor},
		{"testdata/flux-triage.history.json", FluxTriage},
		// After workflow version triage-one-wait (every batch, one wait, every
		// batch again); the one above waited per batch.
		{"testdata/flux-triage-one-wait.history.json", FluxTriage},
	}
	for _, c := range cases {
		r := worker.NewWorkflowReplayer()
		r.RegisterWorkflow(c.fn)
		if err := r.ReplayWorkflowHistoryFromJSONFile(nil, c.file); err != nil {
			t.Errorf("%s: %v", c.file, err)
		}
	}
}
