package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/workflows/contract"
)

const fluxDomain = "fast.flux.example"

// monitorConfig is the configuration of the monitors under test: checks between
// a minute and an hour apart, no end unless a test sets one.
var monitorConfig = contract.MonitorConfig{MinCheck: time.Minute, MaxCheck: time.Hour}

func monitorInput(cfg contract.MonitorConfig) contract.MonitorInput {
	return contract.MonitorInput{Domain: fluxDomain, Config: cfg}
}

// answerFunc is a fake DNS: what a resolution of the domain answers at a time.
type answerFunc func(at time.Time) flux.Observation

// agent is the n-th address of a fake botnet: each in its own /16, AS and country.
func agent(n int, ttl uint32) flux.Record {
	ccs := []string{"RU", "UA", "BR", "IN", "VN", "TR", "CN", "US"}
	return flux.Record{Addr: netip.AddrFrom4([4]byte{byte(1 + n%223), byte(n / 223), byte(n / (223 * 256)), 9}), TTL: ttl,
		ASN: uint32(64512 + n%997), Country: ccs[n%len(ccs)]}
}

// rotating is a flux domain: every ttl from t0 on its five A records are five new bots.
func rotating(ttl uint32) answerFunc {
	return func(at time.Time) flux.Observation {
		slot := int(at.Sub(t0) / (time.Duration(ttl) * time.Second))
		o := flux.Observation{Status: flux.NoError}
		for i := range 5 {
			o.A = append(o.A, agent(slot*5+i, ttl))
		}
		return o
	}
}

// steady is a domain that answers the same three addresses every time.
func steady(ttl uint32) answerFunc {
	return func(time.Time) flux.Observation {
		n := 1 << 20 // far from rotating's addresses
		return flux.Observation{Status: flux.NoError, A: []flux.Record{agent(n, ttl), agent(n+1, ttl), agent(n+2, ttl)}}
	}
}

func nxdomain(time.Time) flux.Observation { return flux.Observation{Status: flux.NXDomain} }

// switchAt answers like before until from, and like after from then on.
func switchAt(from time.Time, before, after answerFunc) answerFunc {
	return func(at time.Time) flux.Observation {
		if at.Before(from) {
			return before(at)
		}
		return after(at)
	}
}

// fold is the metrics of the fake's answers at the given times, as a monitor
// checking then would keep them.
func fold(dns answerFunc, times []time.Time) *flux.Metrics {
	var m flux.Metrics
	for _, at := range times {
		o := dns(at)
		o.Domain, o.At = fluxDomain, at
		m.Add(o)
	}
	return &m
}

// stateCall is one SetMonitorState.
type stateCall struct {
	at      time.Time
	state   string
	summary *flux.Summary
}

// monitorRun is one run of FluxMonitor in a test environment, with CheckDomain
// (the local activity) answered by a fake DNS and what the run did recorded.
type monitorRun struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment

	mu     sync.Mutex
	checks []contract.CheckInput // the local activity's inputs
	times  []time.Time           // and when each ran
	states []stateCall
	fluxSA []string // the FluxState search attribute, as upserted
	ipsSA  []int64  // the FluxIPs search attribute, as upserted
	// duringCheck, when set, runs inside the n-th check of the run (from 1),
	// while the workflow waits for its local activity.
	duringCheck func(n int)
	// fail, when set, makes the checks fail while it returns an error.
	fail func(at time.Time) error
}

// quiet keeps the test environment's debug log of every timer and activity out
// of the way: monitors make thousands of checks.
var quiet = log.NewStructuredLogger(slog.New(slog.DiscardHandler))

func newMonitorRun(t *testing.T, start time.Time, dns answerFunc) *monitorRun {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(quiet)
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(start)
	env.RegisterWorkflow(FluxMonitor)
	registerActivities(env)
	// These runs check their domain themselves, as monitors started before the
	// probers do until they continue as new (flux_probed_test.go has the rest).
	env.OnGetVersion("flux-prober", workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	r := &monitorRun{t: t, env: env}
	env.OnActivity(a.CheckDomain, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in contract.CheckInput) (flux.Observation, error) {
			now := env.Now()
			if r.fail != nil {
				if err := r.fail(now); err != nil {
					return flux.Observation{}, err
				}
			}
			o := dns(now)
			o.Domain, o.At = in.Domain, now
			r.mu.Lock()
			r.checks = append(r.checks, in)
			r.times = append(r.times, now)
			n, during := len(r.checks), r.duringCheck
			r.mu.Unlock()
			if during != nil {
				during(n)
			}
			return o, nil
		})
	env.OnActivity(a.SetMonitorState, mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(
		func(_ context.Context, domain, state string, sum *flux.Summary) error {
			if domain != fluxDomain {
				t.Errorf("SetMonitorState for %q, want %q", domain, fluxDomain)
			}
			r.mu.Lock()
			r.states = append(r.states, stateCall{at: env.Now(), state: state, summary: sum})
			r.mu.Unlock()
			return nil
		})
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		r.mu.Lock()
		defer r.mu.Unlock()
		if v, ok := sa.GetKeyword(FluxState); ok {
			r.fluxSA = append(r.fluxSA, v)
		}
		if v, ok := sa.GetInt64(FluxIPs); ok {
			r.ipsSA = append(r.ipsSA, v)
		}
	}).Return()
	return r
}

// at runs fn at d after the start of the run.
func (r *monitorRun) at(d time.Duration, fn func()) { at(r.env, d, fn) }

// query is the answer to the state query.
func (r *monitorRun) query() contract.MonitorStatus {
	r.t.Helper()
	v, err := r.env.QueryWorkflow(contract.QueryFluxState)
	if err != nil {
		r.t.Fatalf("query %s: %v", contract.QueryFluxState, err)
	}
	var st contract.MonitorStatus
	if err := v.Get(&st); err != nil {
		r.t.Fatalf("decode %s: %v", contract.QueryFluxState, err)
	}
	return st
}

// queryAt keeps the state query's answer at d after the start.
func (r *monitorRun) queryAt(d time.Duration, into *contract.MonitorStatus) {
	r.at(d, func() { *into = r.query() })
}

func (r *monitorRun) checkTimes() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.times)
}

// checkInputs are the inputs of the checks the run made.
func (r *monitorRun) checkInputs() []contract.CheckInput {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.checks)
}

func (r *monitorRun) stateCalls() []stateCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.states)
}

// fluxStates is the FluxState search attribute's values, repeats left out.
func (r *monitorRun) fluxStates() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Compact(slices.Clone(r.fluxSA))
}

// run executes the monitor and returns how it ended: its result, or the input
// of the run it continued as.
func (r *monitorRun) run(in contract.MonitorInput) (*contract.MonitorResult, *contract.MonitorInput) {
	r.t.Helper()
	return runMonitor(r.t, r.env, in)
}

// runMonitor executes a monitor in env and returns how it ended: its result,
// or the input of the run it continued as.
func runMonitor(t *testing.T, env *testsuite.TestWorkflowEnvironment, in contract.MonitorInput) (*contract.MonitorResult, *contract.MonitorInput) {
	t.Helper()
	env.ExecuteWorkflow(FluxMonitor, in)
	if !env.IsWorkflowCompleted() {
		t.Fatal("monitor did not end")
	}
	err := env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	switch {
	case errors.As(err, &can):
		if can.WorkflowType.Name != contract.FluxMonitorWorkflow {
			t.Fatalf("continued as %s, want %s", can.WorkflowType.Name, contract.FluxMonitorWorkflow)
		}
		var next contract.MonitorInput
		if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
			t.Fatalf("decode continue-as-new input: %v", err)
		}
		return nil, &next
	case err != nil:
		t.Fatalf("monitor failed: %v", err)
	}
	var res contract.MonitorResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	return &res, nil
}

// runFor executes the monitor, stops it (stop signal) at d, and returns its result.
func (r *monitorRun) runFor(in contract.MonitorInput, d time.Duration) contract.MonitorResult {
	r.t.Helper()
	r.at(d, send(r.env, contract.SignalFluxStop, "test over"))
	res, next := r.run(in)
	if res == nil {
		r.t.Fatalf("continued as new after %d checks, want the stop signal to end the run", next.State.Checks)
	}
	return *res
}

// monitorLife is a monitor followed through its continue-as-new runs to its end.
type monitorLife struct {
	runs   []*monitorRun
	inputs []contract.MonitorInput // each run's input
	result contract.MonitorResult
	end    time.Time
}

// live runs a monitor from t0, continuing as new as it asks, until it ends by
// itself (at most maxRuns runs).
func live(t *testing.T, in contract.MonitorInput, dns answerFunc, maxRuns int) monitorLife {
	t.Helper()
	var l monitorLife
	start := t0
	for range maxRuns {
		r := newMonitorRun(t, start, dns)
		l.runs, l.inputs = append(l.runs, r), append(l.inputs, in)
		res, next := r.run(in)
		start = r.env.Now()
		if res != nil {
			l.result, l.end = *res, start
			return l
		}
		in = *next
	}
	t.Fatalf("monitor still running after %d runs", maxRuns)
	return l
}

func (l monitorLife) checkTimes() []time.Time {
	var out []time.Time
	for _, r := range l.runs {
		out = append(out, r.checkTimes()...)
	}
	return out
}

func (l monitorLife) checkInputs() []contract.CheckInput {
	var out []contract.CheckInput
	for _, r := range l.runs {
		out = append(out, r.checkInputs()...)
	}
	return out
}

func (l monitorLife) stateCalls() []stateCall {
	var out []stateCall
	for _, r := range l.runs {
		out = append(out, r.stateCalls()...)
	}
	return out
}

// gaps lists the time between consecutive check times.
func gaps(times []time.Time) []time.Duration {
	var out []time.Duration
	for i := 1; i < len(times); i++ {
		out = append(out, times[i].Sub(times[i-1]))
	}
	return out
}

// offsets lists times as offsets from t0.
func offsets(times []time.Time) []time.Duration {
	out := make([]time.Duration, len(times))
	for i, at := range times {
		out[i] = at.Sub(t0)
	}
	return out
}

// every lists from, from+step, ... up to and including to.
func every(from, to, step time.Duration) []time.Duration {
	var out []time.Duration
	for d := from; d <= to; d += step {
		out = append(out, d)
	}
	return out
}

func repeat(n int, d time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

// sameJSON fails the test when got and want do not encode alike.
func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(g) != string(w) {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// checkStopped checks how a monitor ended: the stopped state recorded once,
// last, with the final summary the result carries, and shown in FluxState.
func checkStopped(t *testing.T, last *monitorRun, calls []stateCall, res contract.MonitorResult, checks int) {
	t.Helper()
	if len(calls) == 0 || calls[len(calls)-1].state != contract.MonitorStopped {
		t.Fatalf("SetMonitorState calls %+v, want the last to record %s", calls, contract.MonitorStopped)
	}
	final := calls[len(calls)-1].summary
	if final == nil {
		t.Fatal("stopped without a final summary")
	}
	sameJSON(t, "result summary vs recorded final summary", res.Summary, *final)
	if res.Domain != fluxDomain || final.Observations != checks {
		t.Errorf("result for %q with %d observations, want %q and %d", res.Domain, final.Observations, fluxDomain, checks)
	}
	if sa := last.fluxStates(); len(sa) == 0 || sa[len(sa)-1] != contract.MonitorStopped {
		t.Errorf("FluxState search attribute went %v, want it to end %s", sa, contract.MonitorStopped)
	}
}

func TestFluxMonitorCadenceFollowsTheTTLWithinBounds(t *testing.T) {
	cases := []struct {
		name     string
		dns      answerFunc
		duration time.Duration
		want     [][]time.Duration // the gaps between checks, in stretches
	}{
		{"rotating, TTL 300 s: every TTL", rotating(300), 10 * time.Hour,
			[][]time.Duration{repeat(119, 5*time.Minute)}},
		{"rotating, TTL 10 s: MinCheck", rotating(10), 2 * time.Hour,
			[][]time.Duration{repeat(119, time.Minute)}},
		{"rotating, TTL a day: MaxCheck", rotating(86400), 5 * 24 * time.Hour,
			[][]time.Duration{repeat(119, time.Hour)}},
		// No new address from the second check on: twice as slow once 12 checks
		// brought nothing new, 4x after 24, 8x (40 min) after 48, and no slower.
		{"steady, TTL 300 s: slows down up to 8x", steady(300), 3 * 24 * time.Hour,
			[][]time.Duration{repeat(12, 5*time.Minute), repeat(12, 10*time.Minute), repeat(24, 20*time.Minute), repeat(91, 40*time.Minute)}},
		// 8x 15 minutes would be 2 h: MaxCheck holds it to an hour.
		{"steady, TTL 900 s: never above MaxCheck", steady(900), 3 * 24 * time.Hour,
			[][]time.Duration{repeat(12, 15*time.Minute), repeat(12, 30*time.Minute), repeat(48, time.Hour)}},
		// A stable domain that rotates again is watched at its TTL again at once.
		{"steady for a day, then rotating", switchAt(t0.Add(24*time.Hour), steady(300), rotating(300)), 2*24*time.Hour - time.Minute,
			[][]time.Duration{repeat(12, 5*time.Minute), repeat(12, 10*time.Minute), repeat(24, 20*time.Minute),
				repeat(20, 40*time.Minute), repeat(283, 5*time.Minute)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newMonitorRun(t, t0, c.dns)
			r.runFor(monitorInput(monitorConfig), c.duration)
			// The stretches, and the last one's gap until the stop.
			want := slices.Concat(c.want...)
			got := gaps(r.checkTimes())
			for len(want) < len(got) {
				want = append(want, want[len(want)-1])
			}
			if !slices.Equal(got, want) {
				t.Fatalf("gaps between checks %v,\nwant %v", got, want)
			}
			times := r.checkTimes()
			for i, in := range r.checkInputs() {
				if in.Domain != fluxDomain || !in.Due.Equal(times[i]) {
					t.Fatalf("check %d at +%s: %+v, want %s due then", i, times[i].Sub(t0), in, fluxDomain)
				}
			}
		})
	}
}

func TestFluxMonitorStartsFromTriagesInput(t *testing.T) {
	// Triage starts monitors with activities.MonitorStart (Signal-With-Start
	// with a watch signal): the same JSON as a MonitorInput without State.
	cfg := monitorConfig
	cfg.MinCheck = 2 * time.Minute
	r := newMonitorRun(t, t0, rotating(10))
	r.at(0, send(r.env, contract.SignalFluxWatch, contract.WatchRequest{Origin: contract.SpamModule}))
	var st contract.MonitorStatus
	r.queryAt(31*time.Minute, &st)
	r.at(61*time.Minute, send(r.env, contract.SignalFluxStop, "test over"))
	r.env.ExecuteWorkflow(contract.FluxMonitorWorkflow, contract.MonitorInput{Domain: fluxDomain, Config: cfg})
	var res contract.MonitorResult
	if err := r.env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if got, want := offsets(r.checkTimes()), every(0, time.Hour, 2*time.Minute); !slices.Equal(got, want) {
		t.Errorf("checks at %v, want every MinCheck: %v", got, want)
	}
	if st.Domain != fluxDomain || st.Origin != contract.SpamModule || st.Checks != 16 || st.Summary.IPs != 80 {
		t.Errorf("state %+v, want %s from %s, 16 checks and 80 IPs", st, fluxDomain, contract.SpamModule)
	}
	checkStopped(t, r, r.stateCalls(), res, 31)
}

func TestFluxMonitorStateFollowsStabilityPauseAndSetInterval(t *testing.T) {
	r := newMonitorRun(t, t0, steady(300))
	m := func(x float64) time.Duration { return time.Duration(x * float64(time.Minute)) }
	var watching, stable, paused, resumed, pinned, clamped, unpinned, capped contract.MonitorStatus
	r.at(m(1), send(r.env, contract.SignalFluxWatch, contract.WatchRequest{Origin: contract.SpamModule}))
	r.queryAt(m(32), &watching)
	r.queryAt(m(62), &stable)
	r.at(m(182), send(r.env, contract.SignalFluxPause, nil))
	r.queryAt(m(183), &paused)
	r.at(m(302), send(r.env, contract.SignalFluxResume, nil))
	r.queryAt(m(303), &resumed)
	r.at(m(365), send(r.env, contract.SignalFluxSetInterval, 7*time.Minute))
	r.queryAt(m(366), &pinned)
	r.at(m(485), send(r.env, contract.SignalFluxSetInterval, 5*time.Second)) // below MinCheck
	r.queryAt(m(485.5), &clamped)
	r.at(m(545.5), send(r.env, contract.SignalFluxSetInterval, time.Duration(0))) // back to the TTLs
	r.queryAt(m(546), &unpinned)
	r.at(m(650), send(r.env, contract.SignalFluxSetInterval, 7*24*time.Hour)) // above MaxCheck
	r.queryAt(m(651), &capped)
	res := r.runFor(monitorInput(monitorConfig), m(750))

	want := slices.Concat(
		every(0, m(55), m(5)),                           // watching: every TTL
		every(m(60), m(170), m(10)),                     // stable after 12 checks without a new address: 2x
		[]time.Duration{m(180)},                         // 4x from the 24th: the next would be at 200, but paused at 182
		[]time.Duration{m(302), m(322), m(342), m(362)}, // resumed: at once, then 4x as before
		every(m(372), m(484), m(7)),                     // pinned at 7 min from 365
		every(m(486), m(545), m(1)),                     // 5 s pinned at MinCheck
		[]time.Duration{m(585.5), m(625.5)},             // TTL-driven again: 8x, 40 min
		[]time.Duration{m(710)},                         // a week pinned at MaxCheck from 650
	)
	if got := offsets(r.checkTimes()); !slices.Equal(got, want) {
		t.Fatalf("checks at %v,\nwant %v", got, want)
	}

	at := func(x float64) time.Time { return t0.Add(m(x)) }
	for _, c := range []struct {
		name   string
		got    contract.MonitorStatus
		state  string
		checks int
		next   time.Time
		every  time.Duration
		pinned bool
	}{
		{"after 7 checks", watching, contract.MonitorWatching, 7, at(35), m(5), false},
		{"after 13 checks", stable, contract.MonitorStable, 13, at(70), m(10), false},
		{"paused", paused, contract.MonitorPaused, 25, time.Time{}, m(20), false},
		{"resumed", resumed, contract.MonitorStable, 26, at(322), m(20), false},
		{"set-interval 7m", pinned, contract.MonitorStable, 29, at(372), m(7), true},
		{"set-interval 5s", clamped, contract.MonitorStable, 46, at(486), m(1), true},
		{"set-interval 0", unpinned, contract.MonitorStable, 106, at(585.5), m(40), false},
		{"set-interval a week", capped, contract.MonitorStable, 108, at(710), m(60), true},
	} {
		st := c.got
		if st.Domain != fluxDomain || st.State != c.state || st.Checks != c.checks || !st.Next.Equal(c.next) ||
			st.Interval != c.every || st.Pinned != c.pinned {
			t.Errorf("%s: state %+v,\nwant %s, %d checks, next %s, every %s, pinned %v", c.name, st, c.state, c.checks, c.next, c.every, c.pinned)
		}
		if st.Origin != contract.SpamModule || !st.Started.Equal(t0) || st.Summary.IPs != 3 || st.Summary.Observations != st.Checks {
			t.Errorf("%s: origin %q, started %s, %d IPs in %d observations; want %s, %s, 3 IPs, one observation a check",
				c.name, st.Origin, st.Started, st.Summary.IPs, st.Summary.Observations, contract.SpamModule, t0)
		}
	}
	if res.Reason != "stopped by hand: test over" {
		t.Errorf("ended: %q", res.Reason)
	}
	checkStopped(t, r, r.stateCalls(), res, len(want))
}

func TestFluxMonitorOverThreeMonths(t *testing.T) {
	// A flux domain rotates for two days, then its answer freezes; the monitor
	// lives its 90 days, continuing as new every 500 checks.
	cfg := monitorConfig
	cfg.Lifetime, cfg.NXDomainFor = 90*24*time.Hour, 3*24*time.Hour
	dns := switchAt(t0.Add(48*time.Hour), rotating(300), steady(300))
	l := live(t, monitorInput(cfg), dns, 20)

	// Every TTL while it rotates and until 12 checks of the frozen answer
	// brought nothing new; then 2x, 4x, and 8x to the end of its lifetime.
	want := slices.Concat(repeat(576+12, 5*time.Minute), repeat(12, 10*time.Minute), repeat(24, 20*time.Minute))
	last := t0.Add(576*5*time.Minute + 12*5*time.Minute + 12*10*time.Minute + 24*20*time.Minute)
	for ; last.Before(t0.Add(cfg.Lifetime)); last = last.Add(40 * time.Minute) {
		want = append(want, 40*time.Minute)
	}
	times := l.checkTimes()
	if got := gaps(times); !slices.Equal(got, want) {
		t.Fatalf("%d gaps between checks, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
	}
	n := len(times)
	if !l.end.Equal(last) || !times[n-1].Equal(last) || l.result.Reason != "lifetime of 2160h0m0s over" {
		t.Errorf("ended at +%s (last check +%s): %q; want at the first check after 90 days, +%s",
			l.end.Sub(t0), times[n-1].Sub(t0), l.result.Reason, last.Sub(t0))
	}

	if want := (n + maxChecksPerRun - 1) / maxChecksPerRun; len(l.runs) != want {
		t.Errorf("%d runs for %d checks, want %d", len(l.runs), n, want)
	}
	for i, r := range l.runs {
		got, in := len(r.checkTimes()), l.inputs[i]
		if i < len(l.runs)-1 && got != maxChecksPerRun {
			t.Errorf("run %d made %d checks before continuing as new, want %d", i, got, maxChecksPerRun)
		}
		if i == 0 {
			if in.State != nil {
				t.Errorf("first run started with a state: %+v", in.State)
			}
			continue
		}
		st := in.State
		if st == nil || in.Domain != fluxDomain || in.Config != cfg || st.Checks != i*maxChecksPerRun ||
			st.Metrics.Observations != st.Checks || !st.Started.Equal(t0) || st.Recorded == "" {
			t.Fatalf("run %d started with %+v", i, in)
		}
	}

	// The row says watching before the first check, and stopped with the
	// final summary at the end; the state change between rides on a check.
	calls := l.stateCalls()
	if len(calls) != 2 || calls[0].state != contract.MonitorWatching || calls[0].summary != nil || !calls[0].at.Equal(t0) {
		t.Errorf("SetMonitorState calls %+v, want watching at t0, then stopped", calls)
	}
	checkStopped(t, l.runs[len(l.runs)-1], calls, l.result, n)
	inputs := l.checkInputs()
	for i, in := range inputs {
		wantState := ""
		if i == 577+12 { // the check after the 12th without a new address
			wantState = contract.MonitorStable
		}
		if in.State != wantState || (in.Summary != nil) != (i%summaryEvery == 0 || in.State != "") || !in.Due.Equal(times[i]) {
			t.Fatalf("check %d at +%s records state %q, summary %v, due +%s; want state %q, a summary every %d checks",
				i, times[i].Sub(t0), in.State, in.Summary != nil, in.Due.Sub(t0), wantState, summaryEvery)
		}
	}

	// The metrics carried through 8 runs are those of every answer.
	sameJSON(t, "final summary vs the fake's answers folded", l.result.Summary, fold(dns, times).Summary(l.end))
	if l.result.Summary.IPs < 2800 || l.result.Summary.Observations != n {
		t.Errorf("summary %+v: want about 577*5+3 IPs in %d observations", l.result.Summary, n)
	}
}

func TestFluxMonitorStopRules(t *testing.T) {
	day := 24 * time.Hour
	cases := []struct {
		name    string
		cfg     func(*contract.MonitorConfig)
		dns     answerFunc
		signals func(r *monitorRun)
		reason  string
		end     time.Duration
	}{
		{"NXDOMAIN for NXDomainFor: taken down",
			func(c *contract.MonitorConfig) { c.NXDomainFor = 3 * day; c.Lifetime = 90 * day },
			switchAt(t0.Add(day), rotating(300), nxdomain), nil,
			"NXDOMAIN for 72h0m0s: taken down", 4 * day},
		{"NXDOMAIN shorter than NXDomainFor: lives on to its lifetime",
			func(c *contract.MonitorConfig) { c.NXDomainFor = 3 * day; c.Lifetime = 5 * day },
			switchAt(t0.Add(3*day), switchAt(t0.Add(day), rotating(900), nxdomain), rotating(900)), nil,
			"lifetime of 120h0m0s over", 5 * day},
		{"lifetime",
			func(c *contract.MonitorConfig) { c.Lifetime = 10 * day },
			rotating(3600), nil,
			"lifetime of 240h0m0s over", 10 * day},
		{"stop signal",
			func(c *contract.MonitorConfig) { c.Lifetime = 10 * day },
			rotating(300), func(r *monitorRun) { r.at(182*time.Minute, send(r.env, contract.SignalFluxStop, "false positive")) },
			"stopped by hand: false positive", 182 * time.Minute},
		{"stop signal without a reason, while paused",
			func(c *contract.MonitorConfig) { c.Lifetime = 10 * day },
			rotating(300), func(r *monitorRun) {
				r.at(62*time.Minute, send(r.env, contract.SignalFluxPause, nil))
				r.at(5*time.Hour, send(r.env, contract.SignalFluxStop, nil))
			},
			"stopped by hand", 5 * time.Hour},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := monitorConfig
			c.cfg(&cfg)
			var l monitorLife
			if c.signals == nil {
				l = live(t, monitorInput(cfg), c.dns, 10)
			} else {
				r := newMonitorRun(t, t0, c.dns)
				c.signals(r)
				res, _ := r.run(monitorInput(cfg))
				if res == nil {
					t.Fatal("continued as new")
				}
				l = monitorLife{runs: []*monitorRun{r}, result: *res, end: r.env.Now()}
			}
			if l.result.Reason != c.reason || !l.end.Equal(t0.Add(c.end)) {
				t.Fatalf("ended at +%s: %q; want at +%s: %q", l.end.Sub(t0), l.result.Reason, c.end, c.reason)
			}
			times := l.checkTimes()
			checkStopped(t, l.runs[len(l.runs)-1], l.stateCalls(), l.result, len(times))
			if strings.Contains(c.reason, "NXDOMAIN") && !l.result.Summary.NXDomainSince.Equal(t0.Add(day)) {
				t.Errorf("NXDOMAIN since %s, want %s", l.result.Summary.NXDomainSince, t0.Add(day))
			}
		})
	}
}

// sig is a signal sent to a monitor.
type sig struct {
	name string
	arg  any
}

func TestFluxMonitorContinuesAsNewWithTheSignalsInFlight(t *testing.T) {
	// Two ways to the continue-as-new boundary: the 500th check, with signals
	// arriving while that check runs; the server's suggestion, with two signals
	// in one workflow task (the first wakes the monitor, the second waits in its
	// channel). Either way no signal is lost: it is drained into the carried state.
	pause := sig{contract.SignalFluxPause, nil}
	pin := sig{contract.SignalFluxSetInterval, 20 * time.Minute}
	watch := sig{contract.SignalFluxWatch, contract.WatchRequest{Origin: "agents"}}
	suggestAt := 182 * time.Minute
	cases := []struct {
		name     string
		suggest  bool
		signals  []sig
		checks   int
		at       time.Time
		paused   bool
		interval time.Duration
		origin   string
		next     time.Time
		// A pause the monitor woke for is recorded before the boundary; one
		// drained at the boundary is recorded by the next run.
		recorded string
	}{
		{"500 checks", false, nil,
			500, t0.Add(499 * 5 * time.Minute), false, 0, "", t0.Add(500 * 5 * time.Minute), contract.MonitorWatching},
		{"500 checks, pause, set-interval and watch during the last", false, []sig{pause, pin, watch},
			500, t0.Add(499 * 5 * time.Minute), true, 20 * time.Minute, "agents", t0.Add(499*5*time.Minute + 20*time.Minute), contract.MonitorWatching},
		{"suggested", true, []sig{{contract.SignalFluxResume, nil}},
			37, t0.Add(suggestAt), false, 0, "", t0.Add(185 * time.Minute), contract.MonitorWatching},
		{"suggested, with pause and set-interval", true, []sig{pause, pin},
			37, t0.Add(suggestAt), true, 20 * time.Minute, "", t0.Add(suggestAt + 20*time.Minute), contract.MonitorPaused},
		{"suggested, with set-interval and pause", true, []sig{pin, pause},
			37, t0.Add(suggestAt), true, 20 * time.Minute, "", t0.Add(suggestAt + 20*time.Minute), contract.MonitorWatching},
		{"suggested, with watch and pause", true, []sig{watch, pause},
			37, t0.Add(suggestAt), true, 0, "agents", t0.Add(185 * time.Minute), contract.MonitorWatching},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dns := rotating(300)
			r := newMonitorRun(t, t0, dns)
			// The buffered signals are delivered without a workflow task; the last
			// one, or the check's completion, makes the task that handles them all.
			deliver := func(ss []sig, last bool) {
				for i, s := range ss {
					if last && i == len(ss)-1 {
						r.env.SignalWorkflow(s.name, s.arg)
					} else {
						r.env.SignalWorkflowSkippingWorkflowTask(s.name, s.arg)
					}
				}
			}
			if c.suggest {
				r.at(suggestAt, func() {
					r.env.SetContinueAsNewSuggested(true)
					deliver(c.signals, true)
				})
			} else {
				r.duringCheck = func(n int) {
					if n == maxChecksPerRun {
						deliver(c.signals, false)
					}
				}
			}
			r.at(100*24*time.Hour, send(r.env, contract.SignalFluxStop, "test over")) // so that a failure ends
			res, next := r.run(monitorInput(monitorConfig))
			if res != nil {
				t.Fatalf("ended (%q) after %d checks, want it to continue as new", res.Reason, len(r.checkTimes()))
			}
			st := next.State
			if next.Domain != fluxDomain || next.Config != monitorConfig || st == nil {
				t.Fatalf("continued as %+v", next)
			}
			if !r.env.Now().Equal(c.at) || st.Checks != c.checks || len(r.checkTimes()) != c.checks {
				t.Errorf("continued as new at +%s after %d checks (%d carried), want at +%s after %d",
					r.env.Now().Sub(t0), len(r.checkTimes()), st.Checks, c.at.Sub(t0), c.checks)
			}
			if st.Paused != c.paused || st.Interval != c.interval || st.Origin != c.origin || !st.Next.Equal(c.next) {
				t.Errorf("carried paused %v, interval %s, origin %q, next +%s; want %v, %s, %q, +%s",
					st.Paused, st.Interval, st.Origin, st.Next.Sub(t0), c.paused, c.interval, c.origin, c.next.Sub(t0))
			}
			if !st.Started.Equal(t0) || st.State != contract.MonitorWatching || st.Recorded != c.recorded {
				t.Errorf("carried started %s, state %q, recorded %q", st.Started, st.State, st.Recorded)
			}
			sameJSON(t, "carried metrics vs the fake's answers folded", st.Metrics, fold(dns, r.checkTimes()))
		})
	}
}

func TestFluxMonitorNextRunCarriesOn(t *testing.T) {
	// The run after a continue-as-new with a pause in flight: still paused (and
	// it records so, once), counting on from 500 at the pinned cadence once
	// resumed; its row is not recorded as watching anew.
	dns := rotating(300)
	first := newMonitorRun(t, t0, dns)
	first.duringCheck = func(n int) {
		if n == maxChecksPerRun {
			first.env.SignalWorkflowSkippingWorkflowTask(contract.SignalFluxPause, nil)
			first.env.SignalWorkflowSkippingWorkflowTask(contract.SignalFluxSetInterval, 20*time.Minute)
		}
	}
	res, next := first.run(monitorInput(monitorConfig))
	if res != nil {
		t.Fatalf("first run ended: %q", res.Reason)
	}
	start := first.env.Now()

	r := newMonitorRun(t, start, dns)
	var paused, resumed contract.MonitorStatus
	r.queryAt(time.Minute, &paused)
	r.at(time.Hour, send(r.env, contract.SignalFluxResume, nil))
	r.queryAt(61*time.Minute, &resumed)
	final := r.runFor(*next, 185*time.Minute)

	want := every(time.Hour, 3*time.Hour, 20*time.Minute)
	var got []time.Duration
	for _, at := range r.checkTimes() {
		got = append(got, at.Sub(start))
	}
	if !slices.Equal(got, want) {
		t.Errorf("checks at %v after the new run started, want %v", got, want)
	}
	if paused.State != contract.MonitorPaused || paused.Checks != 500 || !paused.Next.IsZero() {
		t.Errorf("new run before resume: %+v", paused)
	}
	if resumed.State != contract.MonitorWatching || resumed.Checks != 501 || !resumed.Pinned || resumed.Interval != 20*time.Minute ||
		!resumed.Started.Equal(t0) {
		t.Errorf("new run after resume: %+v", resumed)
	}
	calls := r.stateCalls()
	if len(calls) != 2 || calls[0].state != contract.MonitorPaused || !calls[0].at.Equal(start) {
		t.Errorf("SetMonitorState calls in the new run %+v, want the pause at its start and the final one", calls)
	}
	checkStopped(t, r, calls[min(1, len(calls)-1):], final, 500+len(want))
	sameJSON(t, "final summary vs the fake's answers folded", final.Summary,
		fold(dns, append(first.checkTimes(), r.checkTimes()...)).Summary(r.env.Now()))
}

// triageRun is FluxTriage in a test environment, its activities mocked and
// their calls recorded.
type triageRun struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment
	// What the mocks do.
	plan       func(domains []string) contract.TriagePlan
	answer     func(domain string, at time.Time) flux.Observation
	resolveErr func(call int) error // the n-th ResolveDomains (from 1)
	judge      func(in contract.AssessInput) (contract.TriageOutcome, error)

	mu       sync.Mutex
	planned  [][]string
	resolved []resolveCall
	assessed []contract.AssessInput
}

type resolveCall struct {
	at      time.Time
	domains []string
}

func newTriageRun(t *testing.T) *triageRun {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(t0)
	env.RegisterWorkflow(FluxTriage)
	registerActivities(env)
	r := &triageRun{t: t, env: env,
		plan: func(ds []string) contract.TriagePlan {
			return contract.TriagePlan{Due: ds, MaxWait: 10 * time.Minute}
		},
		answer: func(d string, at time.Time) flux.Observation {
			return flux.Observation{Domain: d, At: at, Status: flux.NoError, A: []flux.Record{agent(1, 300)}}
		},
		judge: func(in contract.AssessInput) (contract.TriageOutcome, error) {
			return contract.TriageOutcome{Verdicts: map[flux.Verdict]int{flux.VerdictBenign: len(in.First)}}, nil
		},
	}
	env.OnActivity(a.PlanTriage, mock.Anything, mock.Anything).Return(func(_ context.Context, ds []string) (contract.TriagePlan, error) {
		r.mu.Lock()
		r.planned = append(r.planned, ds)
		r.mu.Unlock()
		return r.plan(ds), nil
	})
	env.OnActivity(a.ResolveDomains, mock.Anything, mock.Anything).Return(func(_ context.Context, ds []string) ([]flux.Observation, error) {
		now := env.Now()
		r.mu.Lock()
		r.resolved = append(r.resolved, resolveCall{now, ds})
		n := len(r.resolved)
		r.mu.Unlock()
		if r.resolveErr != nil {
			if err := r.resolveErr(n); err != nil {
				return nil, err
			}
		}
		out := make([]flux.Observation, len(ds))
		for i, d := range ds {
			out[i] = r.answer(d, now)
		}
		return out, nil
	})
	env.OnActivity(a.AssessDomains, mock.Anything, mock.Anything).Return(func(_ context.Context, in contract.AssessInput) (contract.TriageOutcome, error) {
		r.mu.Lock()
		r.assessed = append(r.assessed, in)
		r.mu.Unlock()
		return r.judge(in)
	})
	return r
}

func (r *triageRun) run(events ...contract.Event) contract.ModuleResult {
	r.t.Helper()
	r.env.ExecuteWorkflow(FluxTriage, contract.ModuleInput{Module: contract.FluxTriageModule, Scheduled: t0, Events: events})
	var res contract.ModuleResult
	if err := r.env.GetWorkflowResult(&res); err != nil {
		r.t.Fatalf("triage failed: %v", err)
	}
	return res
}

// spamDomains names domains s<from>.spam.example to s<to-1>.spam.example.
func spamDomains(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("s%03d.spam.example", i))
	}
	return out
}

func domainIndex(d string) int {
	var i int
	if _, err := fmt.Sscanf(d, "s%03d.spam.example", &i); err != nil {
		panic(d)
	}
	return i
}

func TestFluxTriageResolvesEveryBatchThenAgainAfterTheLongestTTL(t *testing.T) {
	r := newTriageRun(t)
	reported := spamDomains(0, 260)
	due := reported[10:] // the first ten were judged benign lately
	r.plan = func([]string) contract.TriagePlan {
		return contract.TriagePlan{Due: due, MaxWait: 10 * time.Minute}
	}
	// The batches' longest TTLs: 300 s; an hour (longer than MaxWait); none, as
	// none of the third batch's domains resolves.
	r.answer = func(d string, at time.Time) flux.Observation {
		i := domainIndex(d)
		ttl := uint32(191 + i) // up to 300 s in the first batch
		switch {
		case i >= 210:
			return flux.Observation{Domain: d, At: at, Status: flux.Failed, Error: "timeout"}
		case i == 150:
			ttl = 3600
		case i > 110:
			ttl = 30
		}
		return flux.Observation{Domain: d, At: at, Status: flux.NoError, A: []flux.Record{agent(i, ttl), agent(i+1000, ttl+5)}}
	}
	r.judge = func(in contract.AssessInput) (contract.TriageOutcome, error) {
		out := contract.TriageOutcome{Verdicts: map[flux.Verdict]int{}}
		for _, o := range in.First {
			v := flux.VerdictBenign
			switch i := domainIndex(o.Domain); {
			case o.Status == flux.Failed:
				v = flux.VerdictError
			case i%50 == 0:
				v = flux.VerdictFlux
			case i%50 == 1:
				v = flux.VerdictDoubleFlux
			case i%10 == 5:
				v = flux.VerdictCDN
			}
			out.Verdicts[v]++
			if v.Fluxy() {
				out.Watched = append(out.Watched, o.Domain)
			}
		}
		return out, nil
	}
	res := r.run(
		contract.Event{Kind: contract.EventDomainsDiscovered, From: contract.SpamModule, Items: reported[:200]},
		contract.Event{Kind: contract.EventRefreshSources, From: "cli", Items: []string{"not.a.domain.event"}},
		contract.Event{Kind: contract.EventDomainsDiscovered, From: "agents", Items: reported[190:]},
	)

	want := "260 domains reported, 250 due, 4 flux, 4 double-flux, 172 benign, 20 cdn-allowlisted, 50 error; 8 monitors started or signalled"
	if res.Summary != want {
		t.Errorf("summary %q,\nwant %q", res.Summary, want)
	}
	if len(r.planned) != 1 || !slices.Equal(r.planned[0], reported) {
		t.Errorf("PlanTriage got %v, want the 260 domains reported, each once, in order", r.planned)
	}
	batches := [][]string{due[:100], due[100:200], due[200:]}
	if len(r.resolved) != 2*len(batches) || len(r.assessed) != len(batches) {
		t.Fatalf("%d resolutions and %d assessments, want %d and %d", len(r.resolved), len(r.assessed), 2*len(batches), len(batches))
	}
	origins := []string{contract.SpamModule, contract.SpamModule, "agents"} // each batch's first domain's
	for i, b := range batches {
		// Every batch first, then one wait past the longest TTL seen (an hour,
		// so MaxWait), then every batch again.
		first, second, in := r.resolved[i], r.resolved[len(batches)+i], r.assessed[i]
		if !slices.Equal(first.domains, b) || !slices.Equal(second.domains, b) {
			t.Errorf("batch %d resolved %d and %d domains, want %d: %v...", i, len(first.domains), len(second.domains), len(b), b[0])
		}
		if !first.at.Equal(t0) || !second.at.Equal(t0.Add(10*time.Minute)) {
			t.Errorf("batch %d resolved at +%s and +%s, want at once and after the one wait of 10m", i, first.at.Sub(t0), second.at.Sub(t0))
		}
		if in.Origin != origins[i] || len(in.First) != len(b) || len(in.Second) != len(b) {
			t.Fatalf("batch %d assessed from %q with %d and %d resolutions", i, in.Origin, len(in.First), len(in.Second))
		}
		for j, d := range b {
			if in.First[j].Domain != d || in.Second[j].Domain != d || !in.First[j].At.Equal(first.at) || !in.Second[j].At.Equal(second.at) {
				t.Fatalf("batch %d pair %d: %s at %s and %s at %s, want %s resolved at %s and %s", i, j,
					in.First[j].Domain, in.First[j].At, in.Second[j].Domain, in.Second[j].At, d, first.at, second.at)
			}
		}
	}
}

func TestFluxTriageWaitsOnceForAllBatches(t *testing.T) {
	// Once a cost: each batch of 100 waited for its own TTLs, so a run of
	// thousands of domains waited longer than the module's timeout.
	r := newTriageRun(t) // every answer has a TTL of 300 s
	r.run(contract.Event{Kind: contract.EventDomainsDiscovered, From: contract.SpamModule, Items: spamDomains(0, 1000)})
	if len(r.resolved) != 20 || len(r.assessed) != 10 {
		t.Fatalf("%d resolutions and %d assessments, want 20 and 10", len(r.resolved), len(r.assessed))
	}
	for i, c := range r.resolved {
		want := t0
		if i >= 10 {
			want = t0.Add(302 * time.Second)
		}
		if !c.at.Equal(want) {
			t.Errorf("resolution %d at +%s, want +%s", i, c.at.Sub(t0), want.Sub(t0))
		}
	}
	if took := r.env.Now().Sub(t0); took != 302*time.Second {
		t.Errorf("1,000 domains took %s, want one wait of 302s", took)
	}
}

func TestFluxTriageLooksAgainAtDomainsNearFlux(t *testing.T) {
	r := newTriageRun(t)
	// A TTLs of 60 s, and one domain's name servers at 120 s: the second
	// resolution waits for those (a caching resolver keeps them as long). The
	// domains assessed near flux answer their second resolution with 30 s.
	near := func(i int) bool { return i%40 == 3 }
	r.answer = func(d string, at time.Time) flux.Observation {
		i := domainIndex(d)
		o := flux.Observation{Domain: d, At: at, Status: flux.NoError, A: []flux.Record{agent(i, 60)}}
		if i == 7 {
			o.NS = []flux.NameServer{{Name: "ns1.s007.spam.example", TTL: 120}}
		}
		if near(i) && at.After(t0) {
			o.A[0].TTL = 30
		}
		return o
	}
	r.judge = func(in contract.AssessInput) (contract.TriageOutcome, error) {
		out := contract.TriageOutcome{Verdicts: map[flux.Verdict]int{}}
		for k, o := range in.First {
			switch {
			case in.Third != nil:
				out.Verdicts[flux.VerdictFlux]++
				out.Watched = append(out.Watched, o.Domain)
			case in.LookAgainWithin > 0 && near(domainIndex(o.Domain)):
				out.Again = append(out.Again, k)
			default:
				out.Verdicts[flux.VerdictBenign]++
			}
		}
		return out, nil
	}
	res := r.run(contract.Event{Kind: contract.EventDomainsDiscovered, From: contract.SpamModule, Items: spamDomains(0, 150)})

	want := "150 domains reported, 150 due, 4 flux, 146 benign; 4 monitors started or signalled; 4 resolved a third time"
	if res.Summary != want {
		t.Errorf("summary %q,\nwant %q", res.Summary, want)
	}
	if len(r.resolved) != 5 || len(r.assessed) != 3 {
		t.Fatalf("%d resolutions and %d assessments, want 5 and 3", len(r.resolved), len(r.assessed))
	}
	second, third := t0.Add(122*time.Second), t0.Add((122+32)*time.Second)
	for i, wantAt := range []time.Time{t0, t0, second, second, third} {
		if got := r.resolved[i].at; !got.Equal(wantAt) {
			t.Errorf("resolution %d at +%s, want +%s", i, got.Sub(t0), wantAt.Sub(t0))
		}
	}
	names := []string{"s003.spam.example", "s043.spam.example", "s083.spam.example", "s123.spam.example"}
	if !slices.Equal(r.resolved[4].domains, names) {
		t.Errorf("third resolution of %v, want %v", r.resolved[4].domains, names)
	}
	for i, in := range r.assessed[:2] {
		if in.LookAgainWithin != 10*time.Minute || in.Third != nil {
			t.Errorf("assessment %d: look again within %s, %d third resolutions", i, in.LookAgainWithin, len(in.Third))
		}
	}
	last := r.assessed[2]
	if last.LookAgainWithin != 0 || last.Origin != contract.SpamModule || len(last.First) != 4 || len(last.Second) != 4 || len(last.Third) != 4 {
		t.Fatalf("third assessment: %+v", last)
	}
	for k, d := range names {
		if last.First[k].Domain != d || !last.First[k].At.Equal(t0) || last.Second[k].Domain != d || !last.Second[k].At.Equal(second) ||
			last.Third[k].Domain != d || !last.Third[k].At.Equal(third) {
			t.Errorf("third assessment, pair %d: %s at %s, %s at %s, %s at %s; want %s", k, last.First[k].Domain, last.First[k].At,
				last.Second[k].Domain, last.Second[k].At, last.Third[k].Domain, last.Third[k].At, d)
		}
	}
}

func TestFluxTriageReportsFailedBatchesAndGoesOn(t *testing.T) {
	r := newTriageRun(t)
	r.resolveErr = func(n int) error {
		if n == 2 { // the second batch's first resolution
			return temporal.NewNonRetryableApplicationError("resolver 10.0.0.53 unreachable", "Resolve", nil)
		}
		return nil
	}
	judge := r.judge
	r.judge = func(in contract.AssessInput) (contract.TriageOutcome, error) {
		if in.First[0].Domain == "s200.spam.example" {
			return contract.TriageOutcome{}, temporal.NewNonRetryableApplicationError("record triage: database down", "DB", nil)
		}
		return judge(in)
	}
	res := r.run(contract.Event{Kind: contract.EventDomainsDiscovered, From: contract.SpamModule, Items: spamDomains(0, 250)})
	want := "250 domains reported, 250 due, 100 benign; 0 monitors started or signalled; problems: resolver 10.0.0.53 unreachable; record triage: database down"
	if res.Summary != want {
		t.Errorf("summary %q,\nwant %q", res.Summary, want)
	}
	if len(r.resolved) != 5 || len(r.assessed) != 2 {
		t.Errorf("%d resolutions, %d assessments; want 5 and 2 (the second batch stops at its first)", len(r.resolved), len(r.assessed))
	}
}

func TestFluxTriageWithNothingDue(t *testing.T) {
	cases := []struct {
		name    string
		events  []contract.Event
		plan    []string
		due     []string
		summary string
	}{
		{"no events", nil, nil, nil, "no domains to triage"},
		{"other events only", []contract.Event{{Kind: contract.EventRefreshSources, Items: []string{"abuse.ch"}}}, nil, nil, "no domains to triage"},
		{"an empty event", []contract.Event{{Kind: contract.EventDomainsDiscovered, From: contract.SpamModule}}, nil, nil, "no domains to triage"},
		{"none due", []contract.Event{{Kind: contract.EventDomainsDiscovered, From: contract.SpamModule, Items: []string{"a.example", "b.example", "a.example"}}},
			[]string{"a.example", "b.example"}, nil, "2 domains reported, 0 due, none judged; 0 monitors started or signalled"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newTriageRun(t)
			r.plan = func([]string) contract.TriagePlan { return contract.TriagePlan{Due: c.due, MaxWait: time.Minute} }
			res := r.run(c.events...)
			if res.Summary != c.summary {
				t.Errorf("summary %q, want %q", res.Summary, c.summary)
			}
			if c.plan == nil && len(r.planned) != 0 || c.plan != nil && (len(r.planned) != 1 || !slices.Equal(r.planned[0], c.plan)) {
				t.Errorf("PlanTriage calls %v, want %v", r.planned, c.plan)
			}
			if len(r.resolved)+len(r.assessed) != 0 {
				t.Errorf("%d resolutions and %d assessments of nothing", len(r.resolved), len(r.assessed))
			}
			if !r.env.Now().Equal(t0) {
				t.Errorf("took %s", r.env.Now().Sub(t0))
			}
		})
	}
}

func TestFluxNetworksSummary(t *testing.T) {
	const id = "flux-networks/20260901T000000Z"
	cases := []struct {
		name    string
		res     contract.NetworksResult
		err     error
		summary string
	}{
		{"networks", contract.NetworksResult{Networks: 4, Largest: []string{"net-1 (12 domains, 540 IPs)", "net-2 (3 domains, 40 IPs)"},
			Listed: contract.LoadResult{Entries: 580, Added: 31, Removed: 7}}, nil,
			"4 flux networks; tip-flux-agents: 580 listed (+31 -7); largest: net-1 (12 domains, 540 IPs), net-2 (3 domains, 40 IPs)"},
		{"none", contract.NetworksResult{}, nil, "0 flux networks; tip-flux-agents: 0 listed (+0 -0)"},
		{"failure", contract.NetworksResult{}, temporal.NewNonRetryableApplicationError("flux networks: database down", "DB", nil), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestWorkflowEnvironment()
			env.RegisterWorkflow(FluxNetworks)
			registerActivities(env)
			env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: id})
			var runKey string
			env.OnActivity(a.UpdateFluxNetworks, mock.Anything, mock.Anything).Return(func(_ context.Context, key string) (contract.NetworksResult, error) {
				runKey = key
				return c.res, c.err
			})
			env.ExecuteWorkflow(FluxNetworks, contract.ModuleInput{Module: contract.FluxNetworksModule, Scheduled: t0})
			if runKey != id {
				t.Errorf("networks recorded under run key %q, want the workflow ID %q", runKey, id)
			}
			var res contract.ModuleResult
			err := env.GetWorkflowResult(&res)
			if c.err != nil {
				if err == nil || !strings.Contains(err.Error(), "database down") {
					t.Fatalf("got %v, want the activity's error", err)
				}
				return
			}
			if err != nil || res.Summary != c.summary {
				t.Errorf("summary %q (%v),\nwant %q", res.Summary, err, c.summary)
			}
		})
	}
}

// The tests below guard bugs fixed in the monitor and triage workflows.

func TestFluxMonitorPublishesAndRecordsPause(t *testing.T) {
	// Once a bug: a pause was neither published in FluxState nor recorded in the monitor's row.
	r := newMonitorRun(t, t0, steady(300))
	r.at(62*time.Minute, send(r.env, contract.SignalFluxPause, nil))
	r.at(3*time.Hour, send(r.env, contract.SignalFluxResume, nil))
	r.runFor(monitorInput(monitorConfig), 4*time.Hour)
	want := []string{contract.MonitorWatching, contract.MonitorStable, contract.MonitorPaused, contract.MonitorStable, contract.MonitorStopped}
	if got := r.fluxStates(); !slices.Equal(got, want) {
		t.Errorf("FluxState went %v, want %v", got, want)
	}
	var recorded []string
	for _, c := range r.stateCalls() {
		recorded = append(recorded, c.state)
	}
	for _, in := range r.checkInputs() {
		if in.State != "" {
			recorded = append(recorded, in.State)
		}
	}
	if !slices.Contains(recorded, contract.MonitorPaused) {
		t.Errorf("states recorded %v: never %s", recorded, contract.MonitorPaused)
	}
}

func TestFluxMonitorFromBeforePauseKeptKeepsItsOldPause(t *testing.T) {
	// A monitor whose history predates workflow version flux-pause-kept (its old
	// branch, which no recorded history takes) neither records nor publishes a pause.
	r := newMonitorRun(t, t0, steady(300))
	r.env.OnGetVersion("flux-pause-kept", workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	r.at(62*time.Minute, send(r.env, contract.SignalFluxPause, nil))
	r.at(3*time.Hour, send(r.env, contract.SignalFluxResume, nil))
	r.runFor(monitorInput(monitorConfig), 4*time.Hour)
	if got := r.fluxStates(); slices.Contains(got, contract.MonitorPaused) {
		t.Errorf("FluxState went %v: the old branch publishes no pause", got)
	}
	for _, c := range r.stateCalls() {
		if c.state == contract.MonitorPaused {
			t.Errorf("the old branch recorded %s", c.state)
		}
	}
}

func TestFluxMonitorFromBeforePublishChangesPublishesEveryCheck(t *testing.T) {
	// A monitor whose history predates workflow version flux-publish-changes
	// upserts its search attributes at every check.
	r := newMonitorRun(t, t0, rotating(300))
	r.env.OnGetVersion("flux-publish-changes", workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	r.runFor(monitorInput(monitorConfig), 2*time.Hour)
	checks := len(r.checkTimes())
	r.mu.Lock()
	n := len(r.ipsSA)
	r.mu.Unlock()
	if n < checks {
		t.Errorf("%d checks upserted FluxIPs %d times, want at every check", checks, n)
	}
}

func TestFluxMonitorPublishesChangesNotEveryCheck(t *testing.T) {
	// Once a cost: every check upserted the search attributes, a history event and
	// a visibility write per check for thousands of monitors.
	r := newMonitorRun(t, t0, rotating(300))
	r.runFor(monitorInput(monitorConfig), 10*time.Hour)
	checks := len(r.checkTimes())
	r.mu.Lock()
	ips := slices.Clone(r.ipsSA)
	r.mu.Unlock()
	// Once at the start, every summaryEvery checks after, and once at the end
	// (FluxState only); the state went watching and never stable.
	if max := 1 + checks/summaryEvery + 1; len(ips) > max || len(ips) < checks/summaryEvery {
		t.Errorf("%d checks upserted FluxIPs %d times, want about one per %d checks", checks, len(ips), summaryEvery)
	}
	// The addresses keep growing (five new ones per check): what was published
	// is never more than summaryEvery checks behind.
	if last := ips[len(ips)-1]; last < int64(5*(checks-summaryEvery)) {
		t.Errorf("FluxIPs last published %d after %d checks of 5 new addresses each", last, checks)
	}
	if !slices.IsSorted(ips) {
		t.Errorf("FluxIPs went %v", ips)
	}
}

func TestFluxMonitorLifetimeEndsAPausedMonitor(t *testing.T) {
	// Once a bug: the lifetime was only looked at after a check, so a paused monitor never ended.
	cfg := monitorConfig
	cfg.Lifetime = 24 * time.Hour
	r := newMonitorRun(t, t0, rotating(300))
	r.at(62*time.Minute, send(r.env, contract.SignalFluxPause, nil))
	res := r.runFor(monitorInput(cfg), 30*24*time.Hour)
	if res.Reason != "lifetime of 24h0m0s over" || r.env.Now().After(t0.Add(cfg.Lifetime+cfg.MaxCheck)) {
		t.Errorf("ended at +%s: %q; want its lifetime over after a day", r.env.Now().Sub(t0), res.Reason)
	}
}

func TestFluxMonitorSurvivesFailingChecks(t *testing.T) {
	// Once a bug: a check failing for two minutes (database or resolver down) fails the monitor for good.
	r := newMonitorRun(t, t0, rotating(300))
	r.fail = func(at time.Time) error {
		if at.Sub(t0) > time.Minute && at.Sub(t0) < 15*time.Minute {
			return errors.New("write flux observations: connection refused")
		}
		return nil
	}
	r.runFor(monitorInput(monitorConfig), 62*time.Minute)
	times := r.checkTimes()
	if len(times) < 2 || times[len(times)-1].Sub(t0) < time.Hour-5*time.Minute {
		t.Errorf("checks at %v: want them to go on after the outage", offsets(times))
	}
}

func TestFluxMonitorIgnoresAMalformedSignal(t *testing.T) {
	// Once a bug: a signal whose payload does not decode blocks the monitor in Receive until the next valid one.
	r := newMonitorRun(t, t0, rotating(300))
	var st contract.MonitorStatus
	r.at(32*time.Minute, send(r.env, contract.SignalFluxSetInterval, "10m")) // a string, not a time.Duration
	r.queryAt(122*time.Minute, &st)
	r.at(3*time.Hour, send(r.env, contract.SignalFluxSetInterval, time.Duration(0))) // unblocks it
	r.runFor(monitorInput(monitorConfig), 4*time.Hour)
	if st.Checks != 25 || st.Pinned {
		t.Errorf("2 h after a malformed set-interval: %d checks, pinned %v; want the malformed one ignored: 25 checks", st.Checks, st.Pinned)
	}
}

func TestFluxTriageKeepsTheOriginOfNormalisedNames(t *testing.T) {
	// Once a bug: FluxTriage looks origins up by the names PlanTriage normalised, so a name reported in upper case or with a trailing dot loses its origin.
	r := newTriageRun(t)
	normalise := func(d string) string { return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".") }
	r.plan = func(ds []string) contract.TriagePlan {
		var due []string
		for _, d := range ds {
			due = append(due, normalise(d))
		}
		return contract.TriagePlan{Due: due, MaxWait: time.Minute}
	}
	r.run(contract.Event{Kind: contract.EventDomainsDiscovered, From: "agents", Items: []string{"Evil.Example.", "bad.example"}})
	if len(r.assessed) != 1 || r.assessed[0].Origin != "agents" {
		var origins []string
		for _, in := range r.assessed {
			origins = append(origins, in.Origin)
		}
		t.Errorf("assessed batches from %q, want one from agents", origins)
	}
}
