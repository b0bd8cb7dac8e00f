package starter

import (
	"context"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/workflows"
	"github.com/tip-project/tip/workflows/contract"
)

// StartBlacklistRefresh starts a blacklist refresh now, outside the core's
// timetable (as "blacklist-refresh/manual/<time>"): of every enabled source, or
// of the named ones only. The run returns a contract.ModuleResult.
func StartBlacklistRefresh(ctx context.Context, c client.Client, cfg config.Temporal, sources []string) (client.WorkflowRun, error) {
	now := time.Now()
	in := contract.ModuleInput{Module: contract.BlacklistModule, Scheduled: now.UTC()}
	if len(sources) > 0 {
		in.Events = []contract.Event{{Kind: contract.EventRefreshSources, Items: sources, From: OriginCLI}}
	}
	return start(ctx, c, cfg, contract.ChildID(contract.BlacklistModule+"/manual", now),
		temporal.NewSearchAttributes(workflows.Module.ValueSet(contract.BlacklistModule)),
		contract.BlacklistRefreshWorkflow, in)
}
