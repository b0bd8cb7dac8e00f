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
		{Name: contract.RetentionModule, Workflow: contract.RetentionWorkflow, Interval: cfg.Retention.Interval, Enabled: true, Timeout: 6 * time.Hour},
	}
}

// OriginCLI is the origin of what an operator asks for with the CLI: the events
// of a run started by hand, a domain to watch.
const OriginCLI = "cli"

// MonitorConfig bounds the flux monitors a deployment starts (flux.min_check,
// max_check, lifetime, nxdomain_for); they run on its task queue.
func MonitorConfig(cfg config.Config) contract.MonitorConfig {
	f := cfg.Flux
	return contract.MonitorConfig{MinCheck: f.MinCheck, MaxCheck: f.MaxCheck, Lifetime: f.Lifetime,
		NXDomainFor: f.NXDomainFor, TaskQueue: cfg.Temporal.TaskQueue}
}
