package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/workflows/contract"
)

// Monitor tuning.
const (
	maxChecksPerRun = 500 // checks before continuing as new, whatever the server suggests
	summaryEvery    = 12  // checks between recorded summaries (state changes record at once)
)

// monitor is one FluxMonitor run's working state.
type monitor struct {
	domain string
	cfg    contract.MonitorConfig
	st     contract.MonitorState
	stop   string       // why the monitor ends; "" while it runs
	sum    flux.Summary // of the metrics as they stand: set at start, after each check
	// pauseKept: this run records pauses and ends paused monitors with their
	// lifetime (workflow version flux-pause-kept, asked when a pause is first seen).
	pauseKept bool
	// published is what the search attributes hold, and sincePublished the checks
	// since they were set.
	published      published
	sincePublished int
	// changesOnly: this run publishes changes, not every check (workflow version
	// flux-publish-changes); nil until the first publish asks.
	changesOnly *bool
	checkCtx    workflow.Context // the check: a local activity
	dbCtx       workflow.Context // recording the monitor's state
	regCtx      workflow.Context // registering with the probers: a local activity
	signals     []signal
	reports     int  // prober reports received
	upgrade     bool // asked to continue as new, to be checked by the probers
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
	m := &monitor{domain: in.Domain, cfg: in.Config}
	if in.State != nil {
		m.st = *in.State
	} else {
		m.st = contract.MonitorState{Started: workflow.Now(ctx), State: contract.MonitorWatching, Next: workflow.Now(ctx)}
	}
	m.dbCtx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumInterval: 5 * time.Minute},
	})
	m.checkCtx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
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
	// A run started by this release registers its domain with the probers and
	// sleeps between their reports; an older run goes on checking its domain
	// itself until it continues as new (or is asked to: SignalFluxUpgrade).
	if m.st.Probed || workflow.GetVersion(ctx, "flux-prober", workflow.DefaultVersion, 1) == 1 {
		return m.probed(ctx)
	}
	if m.st.Recorded == "" { // a new monitor: its row says so before its first check
		if err := workflow.ExecuteActivity(m.dbCtx, contract.SetMonitorStateActivity, m.domain, contract.MonitorWatching, (*flux.Summary)(nil)).Get(ctx, nil); err != nil {
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
		if checks >= maxChecksPerRun || m.upgrade || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
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
		on(contract.SignalFluxReport, func(ch workflow.ReceiveChannel) bool {
			var r contract.MonitorReport
			ok, _ := ch.ReceiveAsyncWithMoreFlag(&r)
			if ok {
				m.applyReport(r)
			}
			return ok
		}),
		on(contract.SignalFluxUpgrade, func(ch workflow.ReceiveChannel) bool {
			ok := ch.ReceiveAsync(nil)
			// Only a run of this release acts on it: one that received it before
			// (an older worker) ignored it, and its history says so.
			if ok && !m.st.Probed && workflow.GetVersion(ctx, "flux-upgrade", workflow.DefaultVersion, 1) == 1 {
				m.upgrade = true
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
// and the monitor ended when its lifetime is over (no check would notice). A
// monitor whose history predates workflow version flux-pause-kept does neither.
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
	if err := workflow.ExecuteActivity(m.dbCtx, contract.SetMonitorStateActivity, m.domain, contract.MonitorPaused, &m.sum).Get(ctx, nil); err != nil {
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
	if err := workflow.ExecuteLocalActivity(m.checkCtx, contract.CheckDomainActivity, in).Get(ctx, &o); err != nil {
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
	if m.st.Stable >= flux.StableAfter {
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

// interval is the delay to the next check (flux.CheckInterval).
func (m *monitor) interval(ttl uint32) time.Duration {
	return flux.CheckInterval(ttl, m.st.Stable, m.st.Interval, m.cfg.MinCheck, m.cfg.MaxCheck)
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
// cost the server more than their checks. A monitor whose history predates
// workflow version flux-publish-changes upserts at every check.
func (m *monitor) publish(ctx workflow.Context) {
	p := published{state: m.st.State, score: m.sum.Score, ips: int64(m.sum.IPs)}
	if m.st.Paused {
		p.state = contract.MonitorPaused
	}
	if m.changesOnly == nil {
		v := workflow.GetVersion(ctx, "flux-publish-changes", workflow.DefaultVersion, 1) != workflow.DefaultVersion
		m.changesOnly = &v
	}
	m.sincePublished++
	if *m.changesOnly && m.sincePublished > 1 &&
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
	st := contract.MonitorStatus{Domain: m.domain, State: state, Origin: m.st.Origin, Started: m.st.Started, Checks: m.st.Checks,
		Next: next, Interval: m.interval(m.st.Metrics.MedianTTL()), Pinned: m.st.Interval > 0, Summary: m.st.Metrics.Summary(now)}
	if m.st.Probed { // the figures of the prober's last report
		st.Interval = m.st.Cadence
		if m.st.Interval > 0 {
			st.Interval = m.st.Interval
		}
		if m.st.Summary != nil {
			st.Summary = *m.st.Summary
		}
	}
	return st
}

// finish records the final summary and ends the monitor.
func (m *monitor) finish(ctx workflow.Context) (contract.MonitorResult, error) {
	sum := m.st.Metrics.Summary(workflow.Now(ctx))
	if err := workflow.ExecuteActivity(m.dbCtx, contract.SetMonitorStateActivity, m.domain, contract.MonitorStopped, &sum).Get(ctx, nil); err != nil {
		return contract.MonitorResult{}, err
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, FluxState.ValueSet(contract.MonitorStopped))
	workflow.GetLogger(ctx).Info("flux monitor ended", "domain", m.domain, "reason", m.stop, "ips", sum.IPs, "checks", m.st.Checks)
	return contract.MonitorResult{Domain: m.domain, Reason: m.stop, Summary: sum}, nil
}
