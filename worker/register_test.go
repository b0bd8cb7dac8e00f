package worker_test

import (
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/worker"
	"github.com/tip-project/tip/workflows"
	"github.com/tip-project/tip/workflows/contract"
)

// Every method the worker registers is an activity a workflow calls by its
// contract name, and every contract name is registered: no helper turns into an
// activity, and no workflow calls a name the worker lacks.
func TestRegisteredActivitiesAreTheContracts(t *testing.T) {
	acts := worker.NewActivities(config.Config{}, nil, nil, nil, nil, "test")
	var registered []string
	for _, s := range []any{acts.Blacklist, acts.Spam, acts.AgentSync, acts.Flux, acts.Probe, acts.Retention} {
		typ := reflect.TypeOf(s)
		for i := range typ.NumMethod() {
			registered = append(registered, typ.Method(i).Name)
		}
	}
	want := []string{
		contract.ReadCatalogActivity, contract.FetchSourceActivity, contract.LoadSourceActivity,
		contract.RefreshAllowlistsActivity, contract.ComputeMetricsActivity, contract.NewListedDomainsActivity,
		contract.ReadSpamCatalogActivity, contract.ListSpamArchivesActivity, contract.IngestSpamArchiveActivity,
		contract.PollMailboxActivity, contract.RefreshSpamSendersActivity, contract.SyncAgentActivity,
		contract.PlanTriageActivity, contract.ResolveDomainsActivity, contract.AssessDomainsActivity,
		contract.CheckDomainActivity, contract.SetMonitorStateActivity, contract.UpdateFluxNetworksActivity,
		contract.ProbeActivity, contract.PruneActivity, contract.RegisterMonitorActivity, contract.RunProberActivity,
	}
	slices.Sort(registered)
	slices.Sort(want)
	if !slices.Equal(registered, want) {
		t.Errorf("registered %v,\nthe contract names %v", registered, want)
	}
}

// The contract's workflow names are the registered ones: starter and Core
// start workflows by these names.
func TestContractWorkflowNamesAreRegistered(t *testing.T) {
	for name, fn := range map[string]any{
		contract.CoreWorkflow: workflows.Core, contract.BlacklistRefreshWorkflow: workflows.BlacklistRefresh,
		contract.SourceRefreshWorkflow: workflows.SourceRefresh, contract.SpamCollectWorkflow: workflows.SpamCollect,
		contract.SpamArchiveIngestWorkflow: workflows.SpamArchiveIngest, contract.SpamMailboxPollWorkflow: workflows.SpamMailboxPoll,
		contract.AgentSyncWorkflow: workflows.AgentSync, contract.FluxTriageWorkflow: workflows.FluxTriage,
		contract.FluxNetworksWorkflow: workflows.FluxNetworks, contract.FluxMonitorWorkflow: workflows.FluxMonitor,
		contract.ProbeWorkflow: workflows.Probe, contract.RetentionWorkflow: workflows.DataRetention,
	} {
		full := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
		if got := full[strings.LastIndex(full, ".")+1:]; got != name {
			t.Errorf("%s is registered as %s", name, got)
		}
	}
}
