package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/workflows/contract"
)

// maxReportsPerRun: a monitor the probers check continues as new after this
// many reports (a day of hourly summaries), whatever the server suggests: a
// monitor evicted from a worker's cache replays its run's history when next
// woken, and a short one is cheap to read and replay.
const maxReportsPerRun = 24

// probed runs a monitor whose domain a prober checks: it registers the domain
// (handing over its metrics when it checked the domain itself before), then
// sleeps until a report, a signal or the end of its lifetime wakes it. A report
// sets the state, the state query's figures and the search attributes; a
// takedown report, a stop or the lifetime ends it.
func (m *monitor) probed(ctx workflow.Context) (contract.MonitorResult, error) {
	m.regCtx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: 10 * time.Minute,
		StartToCloseTimeout:    30 * time.Second,
		RetryPolicy:            &temporal.RetryPolicy{MaximumInterval: time.Minute},
	})
	reg := m.registration(contract.MonitorWatching)
	if m.st.Paused {
		reg.State = contract.MonitorPaused
	}
	if !m.st.Probed && m.st.Metrics.Observations > 0 {
		// Handed over: the prober goes on from these metrics and this schedule.
		metrics := m.st.Metrics
		reg.Metrics, reg.Checks, reg.Stable, reg.Next = &metrics, m.st.Checks, m.st.Stable, m.st.Next
		sum := m.st.Metrics.Summary(workflow.Now(ctx))
		m.st.Summary = &sum
	}
	if err := m.register(ctx, reg); err != nil {
		return contract.MonitorResult{}, err
	}
	m.st.Probed, m.st.Metrics, m.st.Recorded = true, flux.Metrics{}, reg.State
	if m.st.Summary != nil {
		m.sum = *m.st.Summary
	}
	m.publishProbed(ctx)
	// One timer for the run's lifetime, not one a wait: a wake is then the
	// signal and its workflow task alone.
	var lifetime workflow.Future
	if m.cfg.Lifetime > 0 {
		lifetime = workflow.NewTimer(ctx, m.st.Started.Add(m.cfg.Lifetime).Sub(workflow.Now(ctx)))
	}
	reports := 0
	for {
		now := workflow.Now(ctx)
		if m.stop == "" && m.cfg.Lifetime > 0 && !now.Before(m.st.Started.Add(m.cfg.Lifetime)) {
			m.stop = fmt.Sprintf("lifetime of %s over", m.cfg.Lifetime)
		}
		if m.stop != "" {
			return m.finishProbed(ctx)
		}
		if reports >= maxReportsPerRun || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			m.drain(ctx)
			if m.stop != "" {
				continue
			}
			return contract.MonitorResult{}, workflow.NewContinueAsNewError(ctx, FluxMonitor,
				contract.MonitorInput{Domain: m.domain, Config: m.cfg, State: &m.st})
		}
		paused, pinned := m.st.Paused, m.st.Interval
		got := m.reports
		m.waitProbed(ctx, lifetime)
		reports += m.reports - got
		if m.st.Paused != paused || m.st.Interval != pinned {
			state := m.st.State
			if m.st.Paused {
				state = contract.MonitorPaused
			}
			if err := m.register(ctx, m.registration(state)); err != nil {
				return contract.MonitorResult{}, err
			}
			m.st.Recorded = state
		}
		m.publishProbed(ctx)
	}
}

// registration is the monitor's row of the probers' schedule as it stands.
func (m *monitor) registration(state string) contract.MonitorRegistration {
	return contract.MonitorRegistration{Domain: m.domain, Config: m.cfg, Paused: m.st.Paused, Interval: m.st.Interval,
		Active: true, State: state}
}

func (m *monitor) register(ctx workflow.Context, r contract.MonitorRegistration) error {
	return workflow.ExecuteLocalActivity(m.regCtx, contract.RegisterMonitorActivity, r).Get(ctx, nil)
}

// waitProbed sleeps until a report or a signal arrives, or the lifetime ends.
func (m *monitor) waitProbed(ctx workflow.Context, lifetime workflow.Future) {
	sel := workflow.NewSelector(ctx)
	if lifetime != nil {
		sel.AddFuture(lifetime, func(workflow.Future) {})
	}
	for _, s := range m.signals {
		sel.AddReceive(s.ch, func(ch workflow.ReceiveChannel, _ bool) { s.receive(ch) })
	}
	sel.Select(ctx)
}

// applyReport takes in a prober's report.
func (m *monitor) applyReport(r contract.MonitorReport) {
	m.reports++
	if !m.st.Probed {
		return // a report for a run that has not registered yet: the next one counts
	}
	sum := r.Summary
	m.st.Summary, m.sum = &sum, sum
	m.st.Checks, m.st.Next, m.st.Cadence = r.Checks, r.Next, r.Interval
	if r.State == contract.MonitorWatching || r.State == contract.MonitorStable {
		m.st.State = r.State
		m.st.Recorded = r.State
	}
	if r.Reason == contract.ReportTakedown && m.stop == "" && m.cfg.NXDomainFor > 0 {
		m.stop = fmt.Sprintf("NXDOMAIN for %s: taken down", r.At.Sub(sum.NXDomainSince).Round(time.Minute))
	}
}

// publishProbed sets the search attributes when what they say changed: a
// report (at most every summary interval, and at a change of state) or a pause.
func (m *monitor) publishProbed(ctx workflow.Context) {
	p := published{state: m.st.State, score: m.sum.Score, ips: int64(m.sum.IPs)}
	if m.st.Paused {
		p.state = contract.MonitorPaused
	}
	if p == m.published && m.sincePublished > 0 {
		return
	}
	m.published, m.sincePublished = p, 1
	_ = workflow.UpsertTypedSearchAttributes(ctx, Module.ValueSet("flux"), Domain.ValueSet(m.domain),
		FluxState.ValueSet(p.state), FluxScore.ValueSet(p.score), FluxIPs.ValueSet(p.ips))
}

// finishProbed takes the domain off the probers' schedule, records the end
// (the summary stays the prober's last) and ends the monitor.
func (m *monitor) finishProbed(ctx workflow.Context) (contract.MonitorResult, error) {
	r := m.registration(contract.MonitorStopped)
	r.Active = false
	if err := m.register(ctx, r); err != nil {
		return contract.MonitorResult{}, err
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, FluxState.ValueSet(contract.MonitorStopped))
	workflow.GetLogger(ctx).Info("flux monitor ended", "domain", m.domain, "reason", m.stop, "ips", m.sum.IPs, "checks", m.st.Checks)
	return contract.MonitorResult{Domain: m.domain, Reason: m.stop, Summary: m.sum}, nil
}

// FluxProber runs one shard's prober: the RunProber activity, run after run
// (each for in.Run, heartbeating; retried on another worker when its worker
// dies), continuing as new every proberRunsPerChain runs.
func FluxProber(ctx workflow.Context, in contract.ProberInput) error {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: in.Run + 5*time.Minute,
		HeartbeatTimeout:    30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second},
	})
	for range proberRunsPerChain {
		if err := workflow.ExecuteActivity(actx, contract.RunProberActivity, in).Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Warn("flux prober run failed; starting another", "shard", in.Shard, "err", err)
			if err := workflow.Sleep(ctx, 10*time.Second); err != nil {
				return err
			}
		}
		in.Runs++
	}
	return workflow.NewContinueAsNewError(ctx, FluxProber, in)
}

// proberRunsPerChain: a prober's workflow continues as new after this many runs.
const proberRunsPerChain = 24
