package starter

import (
	"time"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/workflows/contract"
)

// DefaultModules lists the modules `tip core start` schedules. Modules join this
// list as their workflows are registered on the worker.
func DefaultModules(cfg config.Config) []contract.ModuleSpec {
	return []contract.ModuleSpec{
		{Name: contract.BlacklistModule, Workflow: contract.BlacklistRefreshWorkflow, Interval: cfg.Blacklists.Interval, Enabled: true, Timeout: 2 * time.Hour,
			Consumes: []string{contract.EventRefreshSources}},
		{Name: contract.SpamModule, Workflow: contract.SpamCollectWorkflow, Interval: cfg.Spam.Interval, Enabled: true, Timeout: 6 * time.Hour},
		{Name: contract.FluxTriageModule, Workflow: contract.FluxTriageWorkflow, Interval: cfg.Flux.Interval, Enabled: true, Timeout: 2 * time.Hour,
			Consumes: []string{contract.EventDomainsDiscovered}},
		// Grouping the flux domains reads every address seen: less often than triage.
		{Name: contract.FluxNetworksModule, Workflow: contract.FluxNetworksWorkflow, Interval: cfg.Flux.NetworksInterval, Enabled: true, Timeout: time.Hour},
	}
}
