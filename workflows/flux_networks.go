package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tip-project/tip/workflows/contract"
)

// FluxNetworks groups the flux domains into networks by the addresses they
// share and lists every address of a flux network as TIP's own blacklist source
// tip-flux-agents.
func FluxNetworks(ctx workflow.Context, in contract.ModuleInput) (contract.ModuleResult, error) {
	dbCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5},
	})
	var res contract.NetworksResult
	if err := workflow.ExecuteActivity(dbCtx, contract.UpdateFluxNetworksActivity, workflow.GetInfo(ctx).WorkflowExecution.ID).Get(ctx, &res); err != nil {
		return contract.ModuleResult{}, err
	}
	summary := fmt.Sprintf("%d flux networks; %s: %d listed (+%d -%d)", res.Networks, contract.FluxAgentsSource,
		res.Listed.Entries, res.Listed.Added, res.Listed.Removed)
	if len(res.Largest) > 0 {
		summary += "; largest: " + strings.Join(res.Largest, ", ")
	}
	return contract.ModuleResult{Summary: summary}, nil
}
