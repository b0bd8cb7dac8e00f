package workflows

import (
	"testing"

	"go.temporal.io/sdk/worker"
)

// Histories recorded from the demo stack (`temporal workflow show -o json`) and
// from TestFluxTriageAndMonitorsOnTheLab (TIP_RECORD_HISTORIES=DIR): the current
// code must replay every one without a non-determinism error. A workflow that may
// be running keeps each workflow.GetVersion gate's branches covered: a history
// from before the gate and one from after it (README: "Changing a workflow that
// may be running").
func TestReplayRecordedHistories(t *testing.T) {
	cases := []struct {
		file string
		fn   any
	}{
		// Core runs for ever (continuing as new): a run of every release stays.
		{"testdata/core.history.json", Core},
		{"testdata/core-2.history.json", Core},
		{"testdata/blacklist-refresh.history.json", BlacklistRefresh},
		{"testdata/source-refresh.history.json", SourceRefresh},
		{"testdata/source-refresh-2.history.json", SourceRefresh},
		// Archives, an IMAP mailbox and the lab's agent.
		{"testdata/spam-collect.history.json", SpamCollect},
		{"testdata/flux-triage.history.json", FluxTriage},
		{"testdata/flux-networks.history.json", FluxNetworks},
		// Monitors run for months. Before both gates: through a worker restart
		// to its stop signal.
		{"testdata/flux-monitor.history.json", FluxMonitor},
		// After flux-publish-changes, before flux-pause-kept.
		{"testdata/flux-monitor-publish-changes.history.json", FluxMonitor},
		// After both: paused (recorded and published), resumed, checked, stopped.
		{"testdata/flux-monitor-paused.history.json", FluxMonitor},
		// After flux-prober: registered, woken by its prober's reports, stopped.
		{"testdata/flux-monitor-probed.history.json", FluxMonitor},
		{"testdata/flux-prober.history.json", FluxProber},
	}
	for _, c := range cases {
		r := worker.NewWorkflowReplayer()
		r.RegisterWorkflow(c.fn)
		if err := r.ReplayWorkflowHistoryFromJSONFile(nil, c.file); err != nil {
			t.Errorf("%s: %v", c.file, err)
		}
	}
}
