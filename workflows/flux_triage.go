package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/workflows/contract"
)

// triageBatch is how many domains one resolution activity covers.
const triageBatch = 100

// FluxTriage judges the domains other modules found (domains-discovered events).
// Each due domain (never triaged, or benign and seen again after the cool-down)
// is resolved twice: every batch of triageBatch domains once, then one durable
// timer until the longest TTL of those answers has run out in the resolver's
// cache (at most the plan's MaxWait; no worker holds anything meanwhile), then
// every batch again, so a run takes one wait however many domains it has. The
// domains a first assessment finds near flux (flux.LookAgain) wait once more,
// together, and are resolved a third time and scored on all three. A fluxy
// domain gets its monitor (Signal-With-Start on flux/<domain>).
func FluxTriage(ctx workflow.Context, in contract.ModuleInput) (contract.ModuleResult, error) {
	t := &triage{
		dbCtx: workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 5 * time.Minute,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5},
		}),
		// Resolving a batch heartbeats: a worker that died is noticed within a minute.
		resolveCtx: workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 5 * time.Minute,
			HeartbeatTimeout:    time.Minute,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5},
		}),
		origin:   map[string]string{},
		verdicts: map[flux.Verdict]int{},
	}
	var domains []string
	for _, ev := range in.Events {
		if ev.Kind != contract.EventDomainsDiscovered {
			continue
		}
		for _, d := range ev.Items {
			name, _ := flux.NormalizeDomain(d)
			if _, ok := t.origin[name]; !ok {
				t.origin[name] = ev.From
				domains = append(domains, d)
			}
		}
	}
	if len(domains) == 0 {
		return contract.ModuleResult{Summary: "no domains to triage"}, nil
	}
	var plan contract.TriagePlan
	if err := workflow.ExecuteActivity(t.dbCtx, contract.PlanTriageActivity, domains).Get(ctx, &plan); err != nil {
		return contract.ModuleResult{}, err
	}
	batches := slices.Collect(slices.Chunk(plan.Due, triageBatch))
	firsts := make([][]flux.Observation, len(batches)) // nil: the batch did not resolve
	wait := time.Duration(0)                           // the longest batch's; 0 while none resolved
	for i, batch := range batches {
		if firsts[i] = t.resolve(ctx, batch); firsts[i] != nil {
			wait = max(wait, flux.ResolveAgainAfter(firsts[i], plan.MaxWait).For)
		}
	}
	if wait > 0 {
		if err := workflow.Sleep(ctx, wait); err != nil {
			return contract.ModuleResult{}, err
		}
	}
	var again againSet
	for i, batch := range batches {
		if firsts[i] == nil {
			continue
		}
		second := t.resolve(ctx, batch)
		if second == nil {
			continue
		}
		ain := contract.AssessInput{First: firsts[i], Second: second, LookAgainWithin: plan.MaxWait}
		if out, ok := t.assess(ctx, batch, ain); ok {
			again.add(batch, firsts[i], second, out.Again)
		}
	}
	third := 0 // domains resolved a third time
	if len(again.names) > 0 {
		if err := workflow.Sleep(ctx, flux.ResolveAgainAfter(again.second, plan.MaxWait).For); err != nil {
			return contract.ModuleResult{}, err
		}
		for lo := 0; lo < len(again.names); lo += triageBatch {
			hi := min(lo+triageBatch, len(again.names))
			batch := again.names[lo:hi]
			thirds := t.resolve(ctx, batch)
			if thirds == nil {
				continue
			}
			third += len(batch)
			t.assess(ctx, batch, contract.AssessInput{First: again.first[lo:hi], Second: again.second[lo:hi], Third: thirds})
		}
	}
	summary := fmt.Sprintf("%d domains reported, %d due, %s; %d monitors started or signalled",
		len(domains), len(plan.Due), verdictCounts(t.verdicts), t.watched)
	if third > 0 {
		summary += fmt.Sprintf("; %d resolved a third time", third)
	}
	if len(t.problems) > 0 {
		summary += "; problems: " + strings.Join(t.problems, "; ")
	}
	return contract.ModuleResult{Summary: summary}, nil
}

// triage is one FluxTriage run's working state.
type triage struct {
	dbCtx      workflow.Context  // assessing and planning: the database, and monitor starts
	resolveCtx workflow.Context  // resolving a batch: DNS, heartbeating
	origin     map[string]string // the module that reported each domain, by normalised name
	verdicts   map[flux.Verdict]int
	watched    int      // monitors started or signalled
	problems   []string // what failed, for the summary
}

// resolve resolves a batch once; nil when the activity failed (noted as a problem).
func (t *triage) resolve(ctx workflow.Context, batch []string) []flux.Observation {
	var obs []flux.Observation
	if err := workflow.ExecuteActivity(t.resolveCtx, contract.ResolveDomainsActivity, batch).Get(ctx, &obs); err != nil {
		t.problems = append(t.problems, rootCause(err))
		return nil
	}
	return obs
}

// assess judges a batch from its resolutions and counts the verdicts; false
// when the activity failed (noted as a problem).
func (t *triage) assess(ctx workflow.Context, batch []string, in contract.AssessInput) (contract.TriageOutcome, bool) {
	var out contract.TriageOutcome
	// One origin per batch: the first domain's (spam, almost always).
	in.Origin = t.origin[batch[0]]
	if err := workflow.ExecuteActivity(t.dbCtx, contract.AssessDomainsActivity, in).Get(ctx, &out); err != nil {
		t.problems = append(t.problems, rootCause(err))
		return out, false
	}
	for _, v := range allVerdicts {
		t.verdicts[v] += out.Verdicts[v]
	}
	t.watched += len(out.Watched)
	return out, true
}

// againSet is what a triage run holds of the domains left for a third
// resolution: their names and first two resolutions, pairwise by index.
type againSet struct {
	names         []string
	first, second []flux.Observation
}

// add takes the domains of a batch its assessment named (by index; one out of
// range is ignored).
func (s *againSet) add(batch []string, first, second []flux.Observation, idx []int) {
	for _, i := range idx {
		if i < 0 || i >= len(batch) || i >= len(first) || i >= len(second) {
			continue
		}
		s.names = append(s.names, batch[i])
		s.first = append(s.first, first[i])
		s.second = append(s.second, second[i])
	}
}

var allVerdicts = []flux.Verdict{flux.VerdictFlux, flux.VerdictDoubleFlux, flux.VerdictBenign, flux.VerdictCDN, flux.VerdictNXDomain, flux.VerdictError}

func verdictCounts(vs map[flux.Verdict]int) string {
	if len(vs) == 0 {
		return "none judged"
	}
	var parts []string
	for _, v := range allVerdicts {
		if vs[v] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", vs[v], v))
		}
	}
	return strings.Join(parts, ", ")
}
