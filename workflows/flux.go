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

// triageBatch is how many domains one pair of resolutions covers.
const triageBatch = 100

// FluxTriage judges the domains other modules found (domains-discovered events):
// each due domain (never triaged, or benign and seen again after the cool-down)
// is resolved twice, the second time once the first answers' TTLs have run out
// in the resolver's cache (every batch of triageBatch domains first, then one
// durable timer, then every batch again), and scored; a benign one near flux
// (flux.LookAgain) is resolved a third time, once the second answers' TTLs have
// run out, and scored on all three. A fluxy one gets its monitor
// (Signal-With-Start on flux/<domain>).
func FluxTriage(ctx workflow.Context, in contract.ModuleInput) (contract.ModuleResult, error) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5},
	})
	// Resolving a batch heartbeats: a worker that died is noticed within a minute.
	rctx := workflow.WithActivityOptions(actx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5},
	})
	var domains []string
	origin := map[string]string{} // by normalised name, as the plan names them
	for _, ev := range in.Events {
		if ev.Kind != contract.EventDomainsDiscovered {
			continue
		}
		for _, d := range ev.Items {
			name, _ := flux.NormalizeDomain(d)
			if _, ok := origin[name]; !ok {
				origin[name] = ev.From
				domains = append(domains, d)
			}
		}
	}
	if len(domains) == 0 {
		return contract.ModuleResult{Summary: "no domains to triage"}, nil
	}
	var plan contract.TriagePlan
	if err := workflow.ExecuteActivity(actx, contract.PlanTriageActivity, domains).Get(ctx, &plan); err != nil {
		return contract.ModuleResult{}, err
	}
	verdicts := map[flux.Verdict]int{}
	watched := 0
	var problems []string
	assess := func(batch []string, ain contract.AssessInput) (contract.TriageOutcome, bool) {
		var out contract.TriageOutcome
		// One origin per batch: the first domain's (spam, almost always).
		ain.Origin = origin[batch[0]]
		if err := workflow.ExecuteActivity(actx, contract.AssessDomainsActivity, ain).Get(ctx, &out); err != nil {
			problems = append(problems, rootCause(err))
			return out, false
		}
		for _, v := range allVerdicts {
			verdicts[v] += out.Verdicts[v]
		}
		watched += len(out.Watched)
		return out, true
	}
	batches := slices.Collect(slices.Chunk(plan.Due, triageBatch))
	third := 0 // domains resolved a third time
	if workflow.GetVersion(ctx, "triage-one-wait", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		// Runs started before triage-one-wait waited once per batch: a run of
		// thousands of domains waited longer than the module's timeout.
		for _, batch := range batches {
			var first, second []flux.Observation
			if err := workflow.ExecuteActivity(rctx, contract.ResolveDomainsActivity, batch).Get(ctx, &first); err != nil {
				problems = append(problems, rootCause(err))
				continue
			}
			if err := workflow.Sleep(ctx, flux.ResolveAgainAfter(first, plan.MaxWait).For); err != nil {
				return contract.ModuleResult{}, err
			}
			if err := workflow.ExecuteActivity(rctx, contract.ResolveDomainsActivity, batch).Get(ctx, &second); err != nil {
				problems = append(problems, rootCause(err))
				continue
			}
			assess(batch, contract.AssessInput{First: first, Second: second})
		}
	} else {
		// Every batch resolved, one durable timer past the longest TTL seen (at
		// most MaxWait; no worker holds anything meanwhile), every batch resolved
		// again: a run takes two resolutions of its domains and one wait, however
		// many there are. Runs from triage-third-look on give the domains near
		// flux one more wait, together, and a third resolution.
		lookAgain := workflow.GetVersion(ctx, "triage-third-look", workflow.DefaultVersion, 1) != workflow.DefaultVersion
		firsts := make([][]flux.Observation, len(batches)) // nil: the batch did not resolve
		wait := time.Duration(0)                           // the longest batch's; 0 while none resolved
		for i, batch := range batches {
			if err := workflow.ExecuteActivity(rctx, contract.ResolveDomainsActivity, batch).Get(ctx, &firsts[i]); err != nil {
				problems = append(problems, rootCause(err))
				continue
			}
			wait = max(wait, flux.ResolveAgainAfter(firsts[i], plan.MaxWait).For)
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
			var second []flux.Observation
			if err := workflow.ExecuteActivity(rctx, contract.ResolveDomainsActivity, batch).Get(ctx, &second); err != nil {
				problems = append(problems, rootCause(err))
				continue
			}
			ain := contract.AssessInput{First: firsts[i], Second: second}
			if lookAgain {
				ain.LookAgainWithin = plan.MaxWait
			}
			if out, ok := assess(batch, ain); ok {
				again.add(batch, firsts[i], second, out.Again)
			}
		}
		if len(again.names) > 0 {
			if err := workflow.Sleep(ctx, flux.ResolveAgainAfter(again.second, plan.MaxWait).For); err != nil {
				return contract.ModuleResult{}, err
			}
			for lo := 0; lo < len(again.names); lo += triageBatch {
				hi := min(lo+triageBatch, len(again.names))
				batch := again.names[lo:hi]
				var thirds []flux.Observation
				if err := workflow.ExecuteActivity(rctx, contract.ResolveDomainsActivity, batch).Get(ctx, &thirds); err != nil {
					problems = append(problems, rootCause(err))
					continue
				}
				third += len(batch)
				assess(batch, contract.AssessInput{First: again.first[lo:hi], Second: again.second[lo:hi], Third: thirds})
			}
		}
	}
	summary := fmt.Sprintf("%d domains reported, %d due, %s; %d monitors started or signalled",
		len(domains), len(plan.Due), verdictCounts(verdicts), watched)
	if third > 0 {
		summary += fmt.Sprintf("; %d resolved a third time", third)
	}
	if len(problems) > 0 {
		summary += "; problems: " + strings.Join(problems, "; ")
	}
	return contract.ModuleResult{Summary: summary}, nil
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

// FluxNetworks groups the flux domains into networks by the addresses they
// share and lists every address of a flux network as TIP's own blacklist source
// tip-flux-agents.
func FluxNetworks(ctx workflow.Context, in contract.ModuleInput) (contract.ModuleResult, error) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5},
	})
	var res contract.NetworksResult
	if err := workflow.ExecuteActivity(actx, contract.UpdateFluxNetworksActivity, workflow.GetInfo(ctx).WorkflowExecution.ID).Get(ctx, &res); err != nil {
		return contract.ModuleResult{}, err
	}
	summary := fmt.Sprintf("%d flux networks; %s: %d listed (+%d -%d)", res.Networks, contract.FluxAgentsSource,
		res.Listed.Entries, res.Listed.Added, res.Listed.Removed)
	if len(res.Largest) > 0 {
		summary += "; largest: " + strings.Join(res.Largest, ", ")
	}
	return contract.ModuleResult{Summary: summary}, nil
}

// Monitor tuning.
const (
	stableAfter       = 12  // checks without a new address before a monitor slows down
	maxChecksPerRun   = 500 // checks before continuing as new, whatever the server suggests
	summaryEvery      = 12  // checks between recorded summaries (state changes record at once)
	maxStableSlowdown = 8   // a stable monitor checks at most this many times less often
)

// monitor is one FluxMonitor run's working state.
type monitor struct {
	domain string
	cfg    contract.MonitorConfig
	st     contract.MonitorState
	stop   string       // why the monitor ends; "" while it runs
	sum    flux.Summary // of the metrics as they stand: set at start, after each check
	// pauseKept: this run records pauses and ends paused monitors with their
	// lifetime (workflow version flux-pause-kept).
	pauseKept bool
	// published is what the search attributes hold, and sincePublished the checks
	// since they were set (workflow version flux-publish-changes).
	published      published
	sincePublished int
	publishVersion workflow.Version // -2 until asked
	lactx          workflow.Context
	actx           workflow.Context
	signals        []signal
}

// FluxMonitor watches one domain (workflow ID flux/<domain>) for weeks or months:
// it re-resolves A, AAAA and NS at a cadence its TTLs set (between MinCheck and
// MaxCheck, slower while nothing new appears), keeps compact metrics, records
// every observation, shows its state in search attributes (FluxState, FluxScore,
// FluxIPs) and the state query, obeys pause, resume, stop and set-interval, and
// ends itself with a final summary after NXDomainFor of NXDOMAIN or its
// Lifetime. It continues as new when the server suggests it (or every
// maxChecksPerRun checks), after draining the signals received.
func FluxMonitor(ctx workflow.Context, in contract.MonitorInput) (contract.MonitorResult, error) {
	m := &monitor{domain: in.Domain, cfg: in.Config, publishVersion: -2}
	if in.State != nil {
		m.st = *in.State
	} else {
		m.st = contract.MonitorState{Started: workflow.Now(ctx), State: contract.MonitorWatching, Next: workflow.Now(ctx)}
	}
	m.actx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumInterval: 5 * time.Minute},
	})
	m.lactx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: 2 * time.Minute,
		StartToCloseTimeout:    30 * time.Second,
		RetryPolicy:            &temporal.RetryPolicy{MaximumInterval: time.Minute},
	})
	if err := workflow.SetQueryHandler(ctx, contract.QueryFluxState, func() (contract.MonitorStatus, error) {
		return m.status(workflow.Now(ctx)), nil
	}); err != nil {
		return contract.MonitorResult{}, err
	}
	m.signals = m.signalChannels(ctx)
	if m.st.Recorded == "" { // a new monitor: its row says so before its first check
		if err := workflow.ExecuteActivity(m.actx, contract.SetMonitorStateActivity, m.domain, contract.MonitorWatching, (*flux.Summary)(nil)).Get(ctx, nil); err != nil {
			return contract.MonitorResult{}, err
		}
		m.st.Recorded = contract.MonitorWatching
	}
	m.sum = m.st.Metrics.Summary(workflow.Now(ctx))
	m.publish(ctx)
	checks := 0
	for {
		if m.stop != "" {
			return m.finish(ctx)
		}
		now := workflow.Now(ctx)
		if m.st.Paused {
			if err := m.paused(ctx, now); err != nil {
				return contract.MonitorResult{}, err
			}
			if m.stop != "" {
				continue
			}
		}
		if !m.st.Paused && !now.Before(m.st.Next) {
			if err := m.check(ctx); err != nil {
				return contract.MonitorResult{}, err
			}
			checks++
			m.publish(ctx)
			continue
		}
		if checks >= maxChecksPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			m.drain(ctx)
			if m.stop != "" {
				continue
			}
			return contract.MonitorResult{}, workflow.NewContinueAsNewError(ctx, FluxMonitor,
				contract.MonitorInput{Domain: m.domain, Config: m.cfg, State: &m.st})
		}
		m.wait(ctx, now)
	}
}

// signalChannels are the monitor's signals and how each applies.
func (m *monitor) signalChannels(ctx workflow.Context) []signal {
	// Each handler takes one pending signal without blocking (false when none is
	// pending): a payload that does not decode is dropped by the SDK and must not
	// leave a handler waiting for the next signal of its name.
	on := func(name string, apply func(ch workflow.ReceiveChannel) bool) signal {
		return signal{workflow.GetSignalChannel(ctx, name), apply}
	}
	return []signal{
		on(contract.SignalFluxWatch, func(ch workflow.ReceiveChannel) bool {
			var req contract.WatchRequest
			ok, _ := ch.ReceiveAsyncWithMoreFlag(&req)
			if ok && m.st.Origin == "" {
				m.st.Origin = req.Origin
			}
			return ok
		}),
		on(contract.SignalFluxPause, func(ch workflow.ReceiveChannel) bool {
			ok := ch.ReceiveAsync(nil)
			if ok {
				m.st.Paused = true
			}
			return ok
		}),
		on(contract.SignalFluxResume, func(ch workflow.ReceiveChannel) bool {
			ok := ch.ReceiveAsync(nil)
			if ok && m.st.Paused {
				m.st.Paused, m.st.Next = false, workflow.Now(ctx)
			}
			return ok
		}),
		on(contract.SignalFluxStop, func(ch workflow.ReceiveChannel) bool {
			var why string
			ok := ch.ReceiveAsync(&why)
			if ok {
				m.stop = "stopped by hand"
				if why != "" {
					m.stop += ": " + why
				}
			}
			return ok
		}),
		on(contract.SignalFluxSetInterval, func(ch workflow.ReceiveChannel) bool {
			var d time.Duration
			if !ch.ReceiveAsync(&d) {
				return false
			}
			if d > 0 {
				d = min(max(d, m.cfg.MinCheck), m.cfg.MaxCheck)
			}
			m.st.Interval = max(d, 0)
			m.st.Next = workflow.Now(ctx).Add(m.interval(m.st.Metrics.MedianTTL()))
			return true
		}),
	}
}

// paused keeps a pause: recorded in the monitor's row and its FluxState once,
// and the monitor ended when its lifetime is over (no check would notice). Runs
// started before this kept neither, and replay as they ran.
func (m *monitor) paused(ctx workflow.Context, now time.Time) error {
	if workflow.GetVersion(ctx, "flux-pause-kept", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	m.pauseKept = true
	if m.cfg.Lifetime > 0 && !now.Before(m.st.Started.Add(m.cfg.Lifetime)) {
		m.stop = fmt.Sprintf("lifetime of %s over", m.cfg.Lifetime)
		return nil
	}
	if m.st.Recorded == contract.MonitorPaused {
		return nil
	}
	if err := workflow.ExecuteActivity(m.actx, contract.SetMonitorStateActivity, m.domain, contract.MonitorPaused, &m.sum).Get(ctx, nil); err != nil {
		return err
	}
	m.st.Recorded = contract.MonitorPaused
	m.publish(ctx)
	return nil
}

// wait sleeps until the next check is due or a signal arrives.
func (m *monitor) wait(ctx workflow.Context, now time.Time) {
	sel := workflow.NewSelector(ctx)
	tctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	switch {
	case !m.st.Paused:
		sel.AddFuture(workflow.NewTimer(tctx, m.st.Next.Sub(now)), func(workflow.Future) {})
	case m.pauseKept && m.cfg.Lifetime > 0: // a paused monitor still ends with its lifetime
		sel.AddFuture(workflow.NewTimer(tctx, m.st.Started.Add(m.cfg.Lifetime).Sub(now)), func(workflow.Future) {})
	}
	for _, s := range m.signals {
		sel.AddReceive(s.ch, func(ch workflow.ReceiveChannel, _ bool) { s.receive(ch) })
	}
	sel.Select(ctx)
}

// drain applies every signal already received, so none is lost to continue-as-new.
func (m *monitor) drain(ctx workflow.Context) {
	for {
		got := false
		for _, s := range m.signals {
			for s.receive(s.ch) {
				got = true
			}
		}
		if !got {
			return
		}
	}
}

// check resolves the domain (a local activity that also records the observation),
// folds the answer into the metrics, and sets the next check.
func (m *monitor) check(ctx workflow.Context) error {
	in := contract.CheckInput{Domain: m.domain, Due: m.st.Next}
	state := m.st.State
	if state != m.st.Recorded {
		in.State = state
	}
	if in.State != "" || m.st.Checks%summaryEvery == 0 {
		sum := m.st.Metrics.Summary(workflow.Now(ctx))
		in.Summary = &sum
	}
	var o flux.Observation
	if err := workflow.ExecuteLocalActivity(m.lactx, contract.CheckDomainActivity, in).Get(ctx, &o); err != nil {
		// A check that could not run or be recorded (the database away for
		// minutes) is skipped, not the end of a monitor that runs for months.
		workflow.GetLogger(ctx).Warn("flux check failed; next at the usual cadence", "domain", m.domain, "err", err)
		m.st.Next = workflow.Now(ctx).Add(m.interval(m.st.Metrics.MedianTTL()))
		return nil
	}
	if in.State != "" {
		m.st.Recorded = in.State
	}
	before := m.sum.IPs
	m.st.Metrics.Add(o)
	m.st.Checks++
	now := workflow.Now(ctx)
	m.sum = m.st.Metrics.Summary(now)
	if o.Answered() && m.sum.IPs == before {
		m.st.Stable++
	} else if o.Answered() {
		m.st.Stable = 0
	}
	m.st.State = contract.MonitorWatching
	if m.st.Stable >= stableAfter {
		m.st.State = contract.MonitorStable
	}
	switch {
	case m.cfg.NXDomainFor > 0 && m.st.Metrics.NXDomainFor(now) >= m.cfg.NXDomainFor:
		m.stop = fmt.Sprintf("NXDOMAIN for %s: taken down", m.st.Metrics.NXDomainFor(now).Round(time.Minute))
	case m.cfg.Lifetime > 0 && now.Sub(m.st.Started) >= m.cfg.Lifetime:
		m.stop = fmt.Sprintf("lifetime of %s over", m.cfg.Lifetime)
	}
	ttl, ok := o.MinTTL()
	if !ok {
		ttl = m.st.Metrics.MedianTTL()
	}
	m.st.Next = now.Add(m.interval(ttl))
	return nil
}

// interval is the delay to the next check: the pinned one (set-interval), or the
// answer's TTL bounded by MinCheck and MaxCheck, slowed 2, 4 and 8 times
// (maxStableSlowdown) after 12, 24 and 48 checks without a new address (stableAfter
// doubling), and never past MaxCheck.
func (m *monitor) interval(ttl uint32) time.Duration {
	if m.st.Interval > 0 {
		return m.st.Interval
	}
	d := min(max(time.Duration(ttl)*time.Second, m.cfg.MinCheck), m.cfg.MaxCheck)
	for slow := 1; m.st.Stable >= stableAfter*slow && slow < maxStableSlowdown; slow *= 2 {
		d *= 2
	}
	return min(d, m.cfg.MaxCheck)
}

// published is what a monitor's search attributes say.
type published struct {
	state string
	score float64
	ips   int64
}

// publish sets the search attributes the Web UI and `temporal workflow list
// --query` find monitors by. A state change is published at once; the score and
// the address count, which a flux domain changes at almost every check, with
// every summaryEvery-th check: an upsert is a history event and a visibility
// write on the server, and thousands of monitors each upserting at every check
// cost the server more than their checks. Runs started before version
// flux-publish-changes upserted at every check, and replay as they ran.
func (m *monitor) publish(ctx workflow.Context) {
	p := published{state: m.st.State, score: m.sum.Score, ips: int64(m.sum.IPs)}
	if m.st.Paused {
		p.state = contract.MonitorPaused
	}
	if m.publishVersion == -2 {
		m.publishVersion = workflow.GetVersion(ctx, "flux-publish-changes", workflow.DefaultVersion, 1)
	}
	m.sincePublished++
	if m.publishVersion != workflow.DefaultVersion && m.sincePublished > 1 &&
		(p == m.published || p.state == m.published.state && m.sincePublished <= summaryEvery) {
		return
	}
	m.published, m.sincePublished = p, 1
	_ = workflow.UpsertTypedSearchAttributes(ctx, Module.ValueSet("flux"), Domain.ValueSet(m.domain),
		FluxState.ValueSet(p.state), FluxScore.ValueSet(p.score), FluxIPs.ValueSet(p.ips))
}

// status is the answer to the state query.
func (m *monitor) status(now time.Time) contract.MonitorStatus {
	state := m.st.State
	if m.st.Paused {
		state = contract.MonitorPaused
	}
	next := m.st.Next
	if m.st.Paused {
		next = time.Time{}
	}
	return contract.MonitorStatus{Domain: m.domain, State: state, Origin: m.st.Origin, Started: m.st.Started, Checks: m.st.Checks,
		Next: next, Interval: m.interval(m.st.Metrics.MedianTTL()), Pinned: m.st.Interval > 0, Summary: m.st.Metrics.Summary(now)}
}

// finish records the final summary and ends the monitor.
func (m *monitor) finish(ctx workflow.Context) (contract.MonitorResult, error) {
	sum := m.st.Metrics.Summary(workflow.Now(ctx))
	if err := workflow.ExecuteActivity(m.actx, contract.SetMonitorStateActivity, m.domain, contract.MonitorStopped, &sum).Get(ctx, nil); err != nil {
		return contract.MonitorResult{}, err
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, FluxState.ValueSet(contract.MonitorStopped))
	workflow.GetLogger(ctx).Info("flux monitor ended", "domain", m.domain, "reason", m.stop, "ips", sum.IPs, "checks", m.st.Checks)
	return contract.MonitorResult{Domain: m.domain, Reason: m.stop, Summary: sum}, nil
}
