package workflows

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/workflows/contract"
)

// probedRun is one run of a monitor whose domain a prober checks: the reports
// are sent by the test, the registrations and search attributes recorded.
type probedRun struct {
	t    *testing.T
	env  *testsuite.TestWorkflowEnvironment
	mu   sync.Mutex
	regs []contract.MonitorRegistration
	sa   []published
}

func newProbedRun(t *testing.T) *probedRun {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(quiet)
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(t0)
	env.RegisterWorkflow(FluxMonitor)
	registerActivities(env)
	r := &probedRun{t: t, env: env}
	env.OnActivity(a.RegisterMonitor, mock.Anything, mock.Anything).Return(
		func(_ context.Context, reg contract.MonitorRegistration) error {
			r.mu.Lock()
			r.regs = append(r.regs, reg)
			r.mu.Unlock()
			return nil
		})
	env.OnActivity(a.CheckDomain, mock.Anything, mock.Anything).Return(
		func(context.Context, contract.CheckInput) (flux.Observation, error) {
			t.Error("a probed monitor checked its domain itself")
			return flux.Observation{}, errors.New("no")
		})
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		var p published
		p.state, _ = sa.GetKeyword(FluxState)
		p.score, _ = sa.GetFloat64(FluxScore)
		p.ips, _ = sa.GetInt64(FluxIPs)
		r.mu.Lock()
		r.sa = append(r.sa, p)
		r.mu.Unlock()
	}).Return()
	return r
}

func (r *probedRun) registrations() []contract.MonitorRegistration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.regs)
}

func (r *probedRun) upserts() []published {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sa)
}

// report sends a prober's report at d after the start.
func (r *probedRun) report(d time.Duration, rep contract.MonitorReport) {
	at(r.env, d, func() {
		rep.At = r.env.Now()
		r.env.SignalWorkflow(contract.SignalFluxReport, rep)
	})
}

func (r *probedRun) run(in contract.MonitorInput) (*contract.MonitorResult, *contract.MonitorInput) {
	r.t.Helper()
	return runMonitor(r.t, r.env, in)
}

func (r *probedRun) query() contract.MonitorStatus {
	r.t.Helper()
	v, err := r.env.QueryWorkflow(contract.QueryFluxState)
	if err != nil {
		r.t.Fatal(err)
	}
	var st contract.MonitorStatus
	if err := v.Get(&st); err != nil {
		r.t.Fatal(err)
	}
	return st
}

var probedConfig = contract.MonitorConfig{MinCheck: time.Minute, MaxCheck: time.Hour, NXDomainFor: 72 * time.Hour, Lifetime: 90 * 24 * time.Hour}

// A monitor of this release registers its domain, never checks it, and shows
// what the prober's reports say: state, search attributes, the state query;
// pause, resume and set-interval reach the schedule; a stop ends it off the
// schedule.
func TestProbedMonitorFollowsReportsAndSignals(t *testing.T) {
	r := newProbedRun(t)
	sum := flux.Summary{Domain: fluxDomain, IPs: 40, ASNs: 12, Score: 311.5, Observations: 12}
	r.report(time.Hour, contract.MonitorReport{Reason: contract.ReportSummary, State: contract.MonitorWatching, Checks: 12,
		Next: t0.Add(time.Hour + 5*time.Minute), Interval: 5 * time.Minute, Summary: sum})
	var mid contract.MonitorStatus
	at(r.env, time.Hour+time.Minute, func() { mid = r.query() })
	sum2 := sum
	sum2.IPs = 41
	r.report(2*time.Hour, contract.MonitorReport{Reason: contract.ReportState, State: contract.MonitorStable, Checks: 24,
		Interval: 10 * time.Minute, Summary: sum2})
	at(r.env, 3*time.Hour, send(r.env, contract.SignalFluxPause, nil))
	at(r.env, 4*time.Hour, send(r.env, contract.SignalFluxResume, nil))
	at(r.env, 5*time.Hour, send(r.env, contract.SignalFluxSetInterval, 30*time.Minute))
	at(r.env, 6*time.Hour, send(r.env, contract.SignalFluxStop, "enough"))
	res, next := r.run(monitorInput(probedConfig))
	if res == nil {
		t.Fatalf("continued as new: %+v", next)
	}
	if res.Reason != "stopped by hand: enough" || res.Summary.IPs != 41 {
		t.Errorf("result %+v", res)
	}
	if mid.Checks != 12 || mid.Summary.IPs != 40 || mid.State != contract.MonitorWatching || mid.Interval != 5*time.Minute {
		t.Errorf("state query after the first report: %+v", mid)
	}
	regs := r.registrations()
	type reg struct {
		state    string
		paused   bool
		interval time.Duration
		active   bool
	}
	var got []reg
	for _, g := range regs {
		got = append(got, reg{g.State, g.Paused, g.Interval, g.Active})
		if g.Domain != fluxDomain || g.Config != probedConfig || g.Metrics != nil {
			t.Errorf("registration %+v", g)
		}
	}
	want := []reg{
		{contract.MonitorWatching, false, 0, true},
		{contract.MonitorPaused, true, 0, true},
		{contract.MonitorStable, false, 0, true},
		{contract.MonitorStable, false, 30 * time.Minute, true},
		{contract.MonitorStopped, false, 30 * time.Minute, false},
	}
	if !slices.Equal(got, want) {
		t.Errorf("registrations\n got %+v\nwant %+v", got, want)
	}
	wantSA := []published{
		{contract.MonitorWatching, 0, 0},
		{contract.MonitorWatching, 311.5, 40},
		{contract.MonitorStable, 311.5, 41},
		{contract.MonitorPaused, 311.5, 41},
		{contract.MonitorStable, 311.5, 41},
		{contract.MonitorStopped, 0, 0},
	}
	if sa := r.upserts(); !slices.Equal(sa, wantSA) {
		t.Errorf("search attributes\n got %+v\nwant %+v", sa, wantSA)
	}
}

// A takedown report ends the monitor; so does its lifetime, paused or not.
func TestProbedMonitorEndRules(t *testing.T) {
	t.Run("takedown", func(t *testing.T) {
		r := newProbedRun(t)
		r.report(80*time.Hour, contract.MonitorReport{Reason: contract.ReportTakedown, State: contract.MonitorWatching, Checks: 900,
			Summary: flux.Summary{Domain: fluxDomain, IPs: 300, NXDomainSince: t0.Add(8 * time.Hour)}})
		res, _ := r.run(monitorInput(probedConfig))
		if res == nil || res.Reason != "NXDOMAIN for 72h0m0s: taken down" || res.Summary.IPs != 300 {
			t.Fatalf("result %+v", res)
		}
		if regs := r.registrations(); regs[len(regs)-1].Active || regs[len(regs)-1].State != contract.MonitorStopped {
			t.Errorf("last registration %+v, want the domain off the schedule", regs[len(regs)-1])
		}
	})
	t.Run("lifetime, paused", func(t *testing.T) {
		r := newProbedRun(t)
		at(r.env, time.Hour, send(r.env, contract.SignalFluxPause, nil))
		cfg := probedConfig
		cfg.Lifetime = 10 * 24 * time.Hour
		var res *contract.MonitorResult
		var next *contract.MonitorInput
		for runs := 0; ; runs++ {
			in := monitorInput(cfg)
			if next != nil {
				in = *next
			}
			if res, next = r.run(in); res != nil || runs > 3 {
				break
			}
			r = newProbedRun(t)
		}
		if res == nil || res.Reason != "lifetime of 240h0m0s over" || r.env.Now().Sub(t0) != cfg.Lifetime {
			t.Fatalf("result %+v at %s", res, r.env.Now().Sub(t0))
		}
	})
}

// A monitor continues as new after maxReportsPerRun reports, still probed,
// and the next run registers again without checking.
func TestProbedMonitorContinuesAsNew(t *testing.T) {
	r := newProbedRun(t)
	for i := 1; i <= maxReportsPerRun; i++ {
		r.report(time.Duration(i)*time.Hour, contract.MonitorReport{Reason: contract.ReportSummary, State: contract.MonitorWatching,
			Checks: 12 * i, Summary: flux.Summary{Domain: fluxDomain, IPs: i}})
	}
	res, next := r.run(monitorInput(probedConfig))
	if res != nil || next == nil {
		t.Fatalf("ended: %+v", res)
	}
	if !next.State.Probed || next.State.Checks != 12*maxReportsPerRun || next.State.Summary == nil || next.State.Summary.IPs != maxReportsPerRun {
		t.Fatalf("next run's state %+v", next.State)
	}
	r2 := newProbedRun(t)
	at(r2.env, time.Hour, send(r2.env, contract.SignalFluxStop, ""))
	res, _ = r2.run(*next)
	if res == nil || res.Summary.IPs != maxReportsPerRun {
		t.Fatalf("second run %+v", res)
	}
	if st := r2.registrations(); len(st) != 2 || st[0].Metrics != nil {
		t.Errorf("second run's registrations %+v", st)
	}
}

// A monitor that checked its domain itself (its metrics in its state) hands
// them over with its schedule when it continues as new under this release; one
// still running is asked to (SignalFluxUpgrade) and does.
func TestMonitorUpgradesToTheProbers(t *testing.T) {
	// A run from before the probers: it checks its domain, then is asked.
	old := newMonitorRun(t, t0, rotating(300))
	old.at(time.Hour+time.Second, send(old.env, contract.SignalFluxUpgrade, nil))
	res, next := old.run(monitorInput(probedConfig))
	if res != nil || next == nil {
		t.Fatalf("the old run did not continue as new on the upgrade signal: %+v", res)
	}
	checks := len(old.checkTimes())
	if checks == 0 || next.State.Checks != checks || next.State.Metrics.Observations != checks || next.State.Probed {
		t.Fatalf("the old run's state %+v after %d checks", next.State, checks)
	}
	r := newProbedRun(t)
	at(r.env, time.Hour, send(r.env, contract.SignalFluxStop, ""))
	res, _ = r.run(*next)
	if res == nil {
		t.Fatal("the upgraded run did not end")
	}
	regs := r.registrations()
	h := regs[0]
	if h.Metrics == nil || h.Metrics.Observations != checks || h.Checks != checks || !h.Next.Equal(next.State.Next) {
		t.Fatalf("hand-over %+v", h)
	}
	if res.Summary.Observations != checks || res.Summary.IPs == 0 {
		t.Errorf("the upgraded run's summary %+v, want the handed-over metrics'", res.Summary)
	}
}

// An old run that got the upgrade signal from a worker of the release before
// (no flux-upgrade marker in its history) ignores it.
func TestMonitorUpgradeSignalIgnoredByOlderHistories(t *testing.T) {
	old := newMonitorRun(t, t0, rotating(300))
	old.env.OnGetVersion("flux-upgrade", workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	old.at(time.Hour+time.Second, send(old.env, contract.SignalFluxUpgrade, nil))
	old.at(2*time.Hour, send(old.env, contract.SignalFluxStop, ""))
	res, next := old.run(monitorInput(probedConfig))
	if res == nil {
		t.Fatalf("continued as new: %+v", next.State.Checks)
	}
}

// A prober's workflow runs RunProber run after run, a failed run followed by
// another after a pause, and continues as new after proberRunsPerChain runs
// with its input's run count carried on.
func TestFluxProberRunsAndContinuesAsNew(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(quiet)
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(FluxProber)
	registerActivities(env)
	in := contract.ProberInput{Shard: 3, Shards: 8, Summary: time.Hour, Run: time.Hour}
	var mu sync.Mutex
	calls := 0
	env.OnActivity(a.RunProber, mock.Anything, mock.Anything).Return(func(_ context.Context, got contract.ProberInput) error {
		mu.Lock()
		defer mu.Unlock()
		if got.Runs != calls || got.Shard != in.Shard || got.Shards != in.Shards {
			t.Errorf("run %d's input %+v", calls, got)
		}
		calls++
		if calls == 2 {
			return temporal.NewNonRetryableApplicationError("broken", "test", nil)
		}
		return nil
	})
	env.ExecuteWorkflow(FluxProber, in)
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("ended with %v, want continue-as-new", err)
	}
	var next contract.ProberInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	want := in
	want.Runs = proberRunsPerChain
	if calls != proberRunsPerChain || next != want {
		t.Errorf("%d runs, next input %+v; want %d and %+v", calls, next, proberRunsPerChain, want)
	}
}
