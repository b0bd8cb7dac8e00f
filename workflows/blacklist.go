package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/workflows/contract"
)

// MaxConcurrentSources bounds the children of one refresh: far below Temporal's
// pending-children limit and gentle on the worker.
const MaxConcurrentSources = 8

// BlacklistRefresh fans out one SourceRefresh child per enabled source of the
// catalog (at most MaxConcurrentSources at a time), tolerates the failure of any of
// them, and fans in a summary for the core.
func BlacklistRefresh(ctx workflow.Context, in contract.ModuleInput) (contract.ModuleResult, error) {
	dbCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// metrics over millions of listings take tens of seconds on a busy machine
		StartToCloseTimeout: 10 * time.Minute,
		// A database restart or a 20-s outage must not fail the refresh at its fan-in.
		RetryPolicy: dbRetry,
	})
	var sources []catalog.Source
	if err := workflow.ExecuteActivity(dbCtx, contract.ReadCatalogActivity).Get(ctx, &sources); err != nil {
		return contract.ModuleResult{}, err
	}
	sources = onlyRequested(sources, in.Events)
	start := workflow.Now(ctx)
	results := fanOut(ctx, sources, start)
	summary := summarize(results)
	// A failure here only means accuracy is measured against older references.
	var lists []contract.AllowlistResult
	if err := workflow.ExecuteActivity(dbCtx, contract.RefreshAllowlistsActivity).Get(ctx, &lists); err != nil {
		workflow.GetLogger(ctx).Warn("allowlists not refreshed", "error", err)
		summary += "; allowlists not refreshed: " + rootCause(err)
	} else if s := summarizeAllowlists(lists); s != "" {
		summary += "; " + s
	}
	var weights string
	if err := workflow.ExecuteActivity(dbCtx, contract.ComputeMetricsActivity).Get(ctx, &weights); err != nil {
		return contract.ModuleResult{Summary: summary}, err
	}
	res := contract.ModuleResult{Summary: summary + "; " + weights}
	// Domains new to the blacklists go to flux triage. Triage is worth little
	// against a failed refresh, so a failure here is only mentioned.
	var domains []string
	if err := workflow.ExecuteActivity(dbCtx, contract.NewListedDomainsActivity, start).Get(ctx, &domains); err != nil {
		res.Summary += "; new domains not sent to triage: " + rootCause(err)
	} else if len(domains) > 0 {
		res.Summary += fmt.Sprintf("; %d new domains to flux triage", len(domains))
		res.Events = domainEvents(domains, contract.BlacklistModule)
	}
	return res, nil
}

// fanOut runs one SourceRefresh child per source, MaxConcurrentSources at a
// time, and returns their results in the sources' order; a child that failed is
// a failed run. The children's IDs (contract.SourceRunID) end with a piece of
// the refresh's own run ID: two refreshes started in the same second (a manual
// one beside the core's) name theirs apart.
func fanOut(ctx workflow.Context, sources []catalog.Source, start time.Time) []contract.LoadResult {
	run := workflow.GetInfo(ctx).WorkflowExecution.RunID
	unique := "." + run[max(0, len(run)-8):]
	results := make([]contract.LoadResult, len(sources))
	pending, next := 0, 0
	sel := workflow.NewSelector(ctx)
	launch := func(i int) {
		src := sources[i]
		childCtx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID: contract.SourceRunID(src.Name, start) + unique,
			TypedSearchAttributes: temporal.NewSearchAttributes(
				Module.ValueSet(contract.BlacklistModule), Source.ValueSet(src.Name)),
		})
		pending++
		sel.AddFuture(workflow.ExecuteChildWorkflow(childCtx, SourceRefresh, src), func(f workflow.Future) {
			pending--
			var r contract.LoadResult
			if err := f.Get(ctx, &r); err != nil {
				r = contract.LoadResult{Source: src.Name, Status: contract.RunFailed, Error: err.Error()}
			}
			results[i] = r
		})
	}
	for next < len(sources) || pending > 0 {
		for next < len(sources) && pending < MaxConcurrentSources {
			launch(next)
			next++
		}
		sel.Select(ctx)
	}
	return results
}

// dbRetry retries activities that only touch the database through a few minutes
// of outage (5 s, 10 s, 20 s, 40 s, then every minute; 10 attempts ≈ 7 min).
var dbRetry = &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 10}

// onlyRequested keeps the sources named by refresh-sources events, if there are any.
func onlyRequested(sources []catalog.Source, events []contract.Event) []catalog.Source {
	var names []string
	for _, ev := range events {
		if ev.Kind == contract.EventRefreshSources {
			names = append(names, ev.Items...)
		}
	}
	if len(names) == 0 {
		return sources
	}
	var out []catalog.Source
	for _, s := range sources {
		for _, n := range names {
			if s.Name == n {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// summarize counts outcomes: "25 sources: 20 loaded, 2 unchanged, 1 dead, ...".
func summarize(results []contract.LoadResult) string {
	counts := map[string]int{}
	added, removed := 0, 0
	var failed []string
	for _, r := range results {
		counts[r.Status]++
		added += r.Added
		removed += r.Removed
		if r.Status == contract.RunDead || r.Status == contract.RunMalformed || r.Status == contract.RunFailed {
			failed = append(failed, r.Source+" "+r.Status)
		}
	}
	var parts []string
	for _, k := range []string{contract.RunLoaded, contract.RunUnchanged, contract.RunSkipped, contract.RunDead, contract.RunMalformed, contract.RunFailed} {
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
		}
	}
	s := fmt.Sprintf("%d sources: %s; +%d -%d listings", len(results), strings.Join(parts, ", "), added, removed)
	if len(failed) > 0 {
		s += "; problems: " + strings.Join(failed, ", ")
	}
	return s
}

// summarizeAllowlists mentions the allowlists that changed or failed.
func summarizeAllowlists(lists []contract.AllowlistResult) string {
	var parts []string
	for _, l := range lists {
		switch l.Status {
		case contract.RunLoaded:
			parts = append(parts, fmt.Sprintf("%s %d entries", l.Name, l.Entries))
		case "failed":
			parts = append(parts, l.Name+" failed: "+l.Error)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "allowlists: " + strings.Join(parts, ", ")
}

// SourceRefresh fetches one source and loads what changed. A fetch that still
// fails after its retries is recorded as a failed run, so one broken feed never
// fails the refresh.
func SourceRefresh(ctx workflow.Context, src catalog.Source) (contract.LoadResult, error) {
	runKey := workflow.GetInfo(ctx).WorkflowExecution.ID
	// The fetch may first wait for one of its host's download slots
	// (upstream.fetches_per_host), up to one other download's timeout.
	fetchTimeout := 2*src.Timeout + 30*time.Second
	fetchCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: fetchTimeout,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2,
			MaximumInterval: time.Minute, MaximumAttempts: 4},
	})
	var fetch contract.FetchResult
	if err := workflow.ExecuteActivity(fetchCtx, contract.FetchSourceActivity, src).Get(ctx, &fetch); err != nil {
		fetch = contract.FetchResult{Source: src.Name, Status: contract.FetchFailed, Error: rootCause(err), StartedAt: workflow.Now(ctx)}
	}
	loadCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Minute,
		// The load heartbeats every few seconds, merge included: a dead worker's
		// load is retried elsewhere within half a minute.
		HeartbeatTimeout: 30 * time.Second,
		RetryPolicy:      &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
	})
	var res contract.LoadResult
	err := workflow.ExecuteActivity(loadCtx, contract.LoadSourceActivity, contract.LoadInput{Source: src, Fetch: fetch, RunKey: runKey}).Get(ctx, &res)
	return res, err
}
