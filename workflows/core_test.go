package workflows

import (
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/tip-project/tip/workflows/contract"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

var t0 = time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)

// run is one module run as the fake child saw it.
type run struct {
	id       string
	module   string
	start    time.Time
	end      time.Time
	input    contract.ModuleInput
	moduleSA string
}

// fakeModules is a child workflow standing in for every module: it sleeps for the
// module's duration, fails when told to, and returns the module's events.
type fakeModules struct {
	mu       sync.Mutex
	duration map[string]time.Duration
	fail     map[string]int // how many runs fail first
	emit     map[string][]contract.Event
	runs     []run
	active   map[string]int
	overlap  bool
}

func newFake() *fakeModules {
	return &fakeModules{duration: map[string]time.Duration{}, fail: map[string]int{}, emit: map[string][]contract.Event{}, active: map[string]int{}}
}

func (f *fakeModules) Run(ctx workflow.Context, in contract.ModuleInput) (contract.ModuleResult, error) {
	sa, _ := workflow.GetTypedSearchAttributes(ctx).GetKeyword(Module)
	f.mu.Lock()
	i := len(f.runs)
	f.runs = append(f.runs, run{id: workflow.GetInfo(ctx).WorkflowExecution.ID, module: in.Module, start: workflow.Now(ctx), input: in, moduleSA: sa})
	f.active[in.Module]++
	f.overlap = f.overlap || f.active[in.Module] > 1
	d, emit := f.duration[in.Module], f.emit[in.Module]
	failing := f.fail[in.Module] > 0
	if failing {
		f.fail[in.Module]--
	}
	f.mu.Unlock()
	if d > 0 {
		if err := workflow.Sleep(ctx, d); err != nil {
			return contract.ModuleResult{}, err
		}
	}
	f.mu.Lock()
	f.runs[i].end = workflow.Now(ctx)
	f.active[in.Module]--
	f.mu.Unlock()
	if failing {
		return contract.ModuleResult{}, temporal.NewNonRetryableApplicationError("feed unreachable", "Fetch", nil)
	}
	return contract.ModuleResult{Summary: "ok " + in.Module, Events: emit}, nil
}

// starts lists the offsets from t0 at which a module's runs started.
func (f *fakeModules) starts(module string) []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []time.Duration
	for _, r := range f.runs {
		if r.module == module {
			out = append(out, r.start.Sub(t0))
		}
	}
	return out
}

func (f *fakeModules) runsOf(module string) []run {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []run
	for _, r := range f.runs {
		if r.module == module {
			out = append(out, r)
		}
	}
	return out
}

func newCoreEnv(t *testing.T, f *fakeModules, start time.Time) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(start)
	env.RegisterWorkflow(Core)
	env.RegisterWorkflowWithOptions(f.Run, workflow.RegisterOptions{Name: "fake-module"})
	return env
}

func spec(name string, interval time.Duration, consumes ...string) contract.ModuleSpec {
	return contract.ModuleSpec{Name: name, Workflow: "fake-module", Interval: interval, Enabled: true, Consumes: consumes}
}

func at(env *testsuite.TestWorkflowEnvironment, d time.Duration, fn func()) {
	env.RegisterDelayedCallback(fn, d)
}

func send(env *testsuite.TestWorkflowEnvironment, name string, arg any) func() {
	return func() { env.SignalWorkflow(name, arg) }
}

func queryStatus(t *testing.T, env *testsuite.TestWorkflowEnvironment) contract.CoreStatus {
	t.Helper()
	v, err := env.QueryWorkflow(contract.QueryStatus)
	if err != nil {
		t.Fatalf("query status: %v", err)
	}
	var st contract.CoreStatus
	if err := v.Get(&st); err != nil {
		t.Fatalf("decode status: %v", err)
	}
	return st
}

func row(t *testing.T, st contract.CoreStatus, module string) contract.ModuleStatus {
	t.Helper()
	for _, m := range st.Modules {
		if m.Name == module {
			return m
		}
	}
	t.Fatalf("status has no module %s: %+v", module, st)
	return contract.ModuleStatus{}
}

// runCore runs Core until it is cancelled at stop, and checks it ended by that.
func runCore(t *testing.T, env *testsuite.TestWorkflowEnvironment, in contract.CoreInput, stop time.Duration) {
	t.Helper()
	at(env, stop, env.CancelWorkflow)
	env.ExecuteWorkflow(Core, in)
	if !env.IsWorkflowCompleted() {
		t.Fatal("core did not stop")
	}
	var canceled *temporal.CanceledError
	if err := env.GetWorkflowError(); !errors.As(err, &canceled) {
		t.Fatalf("core ended with %v, want cancellation", err)
	}
}

func hours(hs ...float64) []time.Duration {
	out := make([]time.Duration, len(hs))
	for i, h := range hs {
		out[i] = time.Duration(h * float64(time.Hour))
	}
	return out
}

func TestCoreSchedulesTheNextRunAnIntervalAfterTheLastEnded(t *testing.T) {
	f := newFake()
	f.duration["blacklist-refresh"] = 2 * time.Hour
	env := newCoreEnv(t, f, t0)
	runCore(t, env, contract.CoreInput{Modules: []contract.ModuleSpec{spec("blacklist-refresh", 6*time.Hour)}, MaxIterations: 100000}, 21*24*time.Hour-time.Hour)

	starts := f.starts("blacklist-refresh")
	if len(starts) != 63 { // 21 days at one run every 8 h
		t.Fatalf("%d runs in three weeks, want 63", len(starts))
	}
	for i, s := range starts {
		if want := time.Duration(i) * 8 * time.Hour; s != want {
			t.Fatalf("run %d started at +%s, want +%s (2 h run + 6 h interval)", i, s, want)
		}
	}
	if f.overlap {
		t.Fatal("two runs of one module overlapped")
	}
	r := f.runsOf("blacklist-refresh")[1]
	if r.id != "blacklist-refresh/20260901T080000Z" || r.moduleSA != "blacklist-refresh" {
		t.Fatalf("child ID %q, Module search attribute %q", r.id, r.moduleSA)
	}
}

func TestCoreRunNowStartsAtOnceButNeverASecondConcurrentRun(t *testing.T) {
	f := newFake()
	f.duration["spam-ingest"] = time.Hour
	env := newCoreEnv(t, f, t0)
	at(env, 2*time.Hour, send(env, contract.SignalRunNow, contract.ModuleSignal{Module: "spam-ingest"}))
	at(env, 150*time.Minute, send(env, contract.SignalRunNow, contract.ModuleSignal{Module: "spam-ingest"}))
	runCore(t, env, contract.CoreInput{Modules: []contract.ModuleSpec{spec("spam-ingest", 24*time.Hour)}}, 30*time.Hour)

	if got, want := f.starts("spam-ingest"), hours(0, 2, 27); !reflect.DeepEqual(got, want) {
		t.Fatalf("runs started at %v, want %v", got, want)
	}
	if f.overlap {
		t.Fatal("run-now overlapped a running run")
	}
}

func TestCorePauseStopsRunsAndResumeRestartsThem(t *testing.T) {
	f := newFake()
	env := newCoreEnv(t, f, t0)
	at(env, time.Hour, send(env, contract.SignalPause, contract.ModuleSignal{Module: "agent-sync"}))
	at(env, 72*time.Hour, func() {
		if st := queryStatus(t, env); !row(t, st, "agent-sync").Paused {
			t.Errorf("status does not show agent-sync paused: %+v", st)
		}
		env.SignalWorkflow(contract.SignalResume, contract.ModuleSignal{Module: "agent-sync"})
	})
	runCore(t, env, contract.CoreInput{Modules: []contract.ModuleSpec{spec("agent-sync", 6*time.Hour)}}, 85*time.Hour)

	if got, want := f.starts("agent-sync"), hours(0, 72, 78, 84); !reflect.DeepEqual(got, want) {
		t.Fatalf("runs started at %v, want %v", got, want)
	}
}

func TestCoreSetIntervalChangesTheCadence(t *testing.T) {
	f := newFake()
	f.duration["flux-triage"] = 30 * time.Minute
	env := newCoreEnv(t, f, t0)
	at(env, time.Hour, send(env, contract.SignalSetInterval, contract.ModuleSignal{Module: "flux-triage", Interval: 2 * time.Hour}))
	runCore(t, env, contract.CoreInput{Modules: []contract.ModuleSpec{spec("flux-triage", 12*time.Hour)}}, 8*time.Hour)

	// The first run ended at +0.5 h; the next starts 2 h after that, and so on.
	if got, want := f.starts("flux-triage"), hours(0, 2.5, 5, 7.5); !reflect.DeepEqual(got, want) {
		t.Fatalf("runs started at %v, want %v", got, want)
	}
}

func TestCoreRoutesEventsToTheConsumersNextRun(t *testing.T) {
	f := newFake()
	f.duration["spam-ingest"] = time.Hour
	f.emit["spam-ingest"] = []contract.Event{{Kind: "domains-discovered", Items: []string{"flux.example"}}}
	env := newCoreEnv(t, f, t0)
	signalled := contract.Event{Kind: "domains-discovered", Items: []string{"a.example", "b.example"}, From: "cli"}
	at(env, 3*time.Hour, send(env, contract.SignalEvent, signalled))
	at(env, 4*time.Hour, send(env, contract.SignalEvent, contract.Event{Kind: "nobody-wants-this", From: "cli"}))
	at(env, 5*time.Hour, func() {
		st := queryStatus(t, env)
		if r := row(t, st, "flux-triage"); r.PendingEvents != 2 || r.PendingItems != 3 {
			t.Errorf("flux-triage pending = %d events, %d items; want 2, 3", r.PendingEvents, r.PendingItems)
		}
		if st.UnroutedEvents != 1 {
			t.Errorf("unrouted events = %d, want 1", st.UnroutedEvents)
		}
	})
	runCore(t, env, contract.CoreInput{Modules: []contract.ModuleSpec{
		spec("spam-ingest", 48*time.Hour),
		spec("flux-triage", 24*time.Hour, "domains-discovered"),
	}}, 25*time.Hour)

	runs := f.runsOf("flux-triage")
	if len(runs) != 2 {
		t.Fatalf("flux-triage ran %d times, want 2", len(runs))
	}
	if len(runs[0].input.Events) != 0 {
		t.Fatalf("first run got events %+v before any was sent", runs[0].input.Events)
	}
	want := []contract.Event{
		{Kind: "domains-discovered", Items: []string{"flux.example"}, From: "spam-ingest"},
		signalled,
	}
	if !reflect.DeepEqual(runs[1].input.Events, want) {
		t.Fatalf("second run got events %+v, want %+v", runs[1].input.Events, want)
	}
	if len(f.runsOf("spam-ingest")[0].input.Events) != 0 {
		t.Fatal("spam-ingest got events it does not consume")
	}
}

func TestCoreRecordsAFailedRunAndReschedulesIt(t *testing.T) {
	f := newFake()
	f.duration["blacklist-refresh"] = time.Hour
	f.fail["blacklist-refresh"] = 1
	env := newCoreEnv(t, f, t0)
	at(env, 30*time.Minute, send(env, contract.SignalEvent, contract.Event{Kind: "ips-seen", Items: []string{"192.0.2.1"}}))
	at(env, 2*time.Hour, func() {
		r := row(t, queryStatus(t, env), "blacklist-refresh")
		if r.Last == nil || r.Last.Status != contract.ModuleRunFailed || r.Last.Error != "feed unreachable" {
			t.Errorf("last result = %+v, want failed with the child's error", r.Last)
		}
		if r.Last != nil && (!r.Last.Started.Equal(t0) || !r.Last.Finished.Equal(t0.Add(time.Hour))) {
			t.Errorf("last run %s..%s, want %s..%s", r.Last.Started, r.Last.Finished, t0, t0.Add(time.Hour))
		}
		if !r.Next.Equal(t0.Add(5*time.Hour)) || r.Running != "" || r.Interval != 4*time.Hour || r.Workflow != "fake-module" {
			t.Errorf("timetable row = %+v, want next run at +5h", r)
		}
	})
	at(env, 5*time.Hour+30*time.Minute, func() {
		r := row(t, queryStatus(t, env), "blacklist-refresh")
		if r.Running != "blacklist-refresh/20260901T050000Z" || !r.RunningSince.Equal(t0.Add(5*time.Hour)) {
			t.Errorf("running = %q since %s", r.Running, r.RunningSince)
		}
	})
	at(env, 7*time.Hour, func() {
		r := row(t, queryStatus(t, env), "blacklist-refresh")
		if r.Last == nil || r.Last.Status != contract.ModuleRunCompleted || r.Last.Summary != "ok blacklist-refresh" || r.Last.Error != "" {
			t.Errorf("last result after the retry = %+v", r.Last)
		}
	})
	runCore(t, env, contract.CoreInput{Modules: []contract.ModuleSpec{spec("blacklist-refresh", 4*time.Hour, "ips-seen")}}, 8*time.Hour)

	if got, want := f.starts("blacklist-refresh"), hours(0, 5); !reflect.DeepEqual(got, want) {
		t.Fatalf("runs started at %v, want %v", got, want)
	}
	// The event reached the first run, which failed: the second run gets it again.
	if ev := f.runsOf("blacklist-refresh")[1].input.Events; len(ev) != 1 || ev[0].Items[0] != "192.0.2.1" {
		t.Fatalf("retry run got events %+v, want the one the failed run had", ev)
	}
}

// continuedInput runs env to its continue-as-new and returns the new run's input.
func continuedInput(t *testing.T, env *testsuite.TestWorkflowEnvironment) contract.CoreInput {
	t.Helper()
	if !env.IsWorkflowCompleted() {
		t.Fatal("core did not continue as new")
	}
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("core ended with %v, want continue-as-new", err)
	}
	var in contract.CoreInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &in); err != nil {
		t.Fatalf("decode continue-as-new input: %v", err)
	}
	return in
}

func TestCoreContinuesAsNewWithItsStateAndWithoutLosingSignals(t *testing.T) {
	f := newFake()
	env := newCoreEnv(t, f, t0)
	mods := []contract.ModuleSpec{
		spec("blacklist-refresh", 6*time.Hour),
		spec("flux-triage", 24*time.Hour, "domains-discovered"),
		spec("spam-ingest", 24*time.Hour),
	}
	// Iterations 1-3: the three first runs finish. At +1h five signals arrive in
	// one workflow task: the first two are iterations 4 and 5, which reach the
	// limit, so the other three are still buffered when Core continues as new.
	at(env, time.Hour, func() {
		env.SignalWorkflowSkippingWorkflowTask(contract.SignalPause, contract.ModuleSignal{Module: "spam-ingest"})
		env.SignalWorkflowSkippingWorkflowTask(contract.SignalEvent, contract.Event{Kind: "domains-discovered", Items: []string{"a.example"}, From: "cli"})
		env.SignalWorkflowSkippingWorkflowTask(contract.SignalSetInterval, contract.ModuleSignal{Module: "flux-triage", Interval: 12 * time.Hour})
		env.SignalWorkflowSkippingWorkflowTask(contract.SignalEvent, contract.Event{Kind: "domains-discovered", Items: []string{"b.example"}, From: "cli"})
		env.SignalWorkflow(contract.SignalRunNow, contract.ModuleSignal{Module: "spam-ingest"})
	})
	env.ExecuteWorkflow(Core, contract.CoreInput{Modules: mods, MaxIterations: 5})
	in := continuedInput(t, env)

	if !reflect.DeepEqual(in.Modules, mods) || in.MaxIterations != 5 || in.State == nil {
		t.Fatalf("continue-as-new input lost its configuration: %+v", in)
	}
	byName := map[string]contract.ModuleState{}
	for _, ms := range in.State.Modules {
		byName[ms.Name] = ms
	}
	bl, ft, si := byName["blacklist-refresh"], byName["flux-triage"], byName["spam-ingest"]
	if bl.Last == nil || bl.Last.Status != contract.ModuleRunCompleted || !bl.Next.Equal(t0.Add(6*time.Hour)) {
		t.Fatalf("blacklist-refresh state = %+v, want last completed and next at +6h", bl)
	}
	if ft.Interval != 12*time.Hour || !ft.Next.Equal(t0.Add(12*time.Hour)) || len(ft.Pending) != 2 || ft.Pending[1].Items[0] != "b.example" {
		t.Fatalf("flux-triage state = %+v, want interval 12h, next +12h, both events pending", ft)
	}
	if !si.Paused || !si.RunNow {
		t.Fatalf("spam-ingest state = %+v, want paused with a run-now waiting", si)
	}

	// The next run picks up where the last left off.
	env2 := newCoreEnv(t, f, t0.Add(time.Hour))
	at(env2, time.Minute, func() {
		st := queryStatus(t, env2)
		if r := row(t, st, "flux-triage"); r.PendingEvents != 2 || !r.Next.Equal(t0.Add(12*time.Hour)) || r.Interval != 12*time.Hour {
			t.Errorf("after continue-as-new flux-triage = %+v", r)
		}
		if r := row(t, st, "spam-ingest"); !r.Paused || r.Last == nil {
			t.Errorf("after continue-as-new spam-ingest = %+v", r)
		}
	})
	in.MaxIterations = 1000
	runCore(t, env2, in, 12*time.Hour)
	if got, want := f.starts("spam-ingest"), hours(0, 1); !reflect.DeepEqual(got, want) {
		t.Fatalf("spam-ingest started at %v, want %v (paused, but the drained run-now ran once)", got, want)
	}
	if got, want := f.starts("blacklist-refresh"), hours(0, 6, 12); !reflect.DeepEqual(got, want) {
		t.Fatalf("blacklist-refresh started at %v, want %v", got, want)
	}
	runs := f.runsOf("flux-triage")
	if len(runs) != 2 || runs[1].start.Sub(t0) != 12*time.Hour || len(runs[1].input.Events) != 2 {
		t.Fatalf("flux-triage runs = %+v, want a second one at +12h with both events", runs)
	}
}

func TestCoreContinuesAsNewOnlyOnceRunningChildrenFinished(t *testing.T) {
	f := newFake()
	f.duration["blacklist-refresh"] = 3 * time.Hour
	env := newCoreEnv(t, f, t0)
	mods := []contract.ModuleSpec{spec("blacklist-refresh", 6*time.Hour), spec("flux-triage", time.Hour)}
	at(env, 2*time.Hour, func() {
		st := queryStatus(t, env)
		if !st.Draining || row(t, st, "blacklist-refresh").Running == "" {
			t.Errorf("at +2h core should wait for blacklist-refresh: %+v", st)
		}
	})
	env.ExecuteWorkflow(Core, contract.CoreInput{Modules: mods, MaxIterations: 1})
	in := continuedInput(t, env)

	if got := f.starts("flux-triage"); !reflect.DeepEqual(got, hours(0)) {
		t.Fatalf("flux-triage started at %v while core was draining, want only at 0", got)
	}
	for _, ms := range in.State.Modules {
		switch ms.Name {
		case "blacklist-refresh":
			if ms.Last == nil || !ms.Last.Finished.Equal(t0.Add(3*time.Hour)) || !ms.Next.Equal(t0.Add(9*time.Hour)) {
				t.Fatalf("blacklist-refresh state = %+v, want finished at +3h, next +9h", ms)
			}
		case "flux-triage":
			if !ms.Next.Equal(t0.Add(time.Hour)) {
				t.Fatalf("flux-triage next = %s, want the overdue +1h", ms.Next)
			}
		}
	}

	env2 := newCoreEnv(t, f, t0.Add(3*time.Hour))
	in.MaxIterations = 1000
	runCore(t, env2, in, time.Minute)
	if got, want := f.starts("flux-triage"), hours(0, 3); !reflect.DeepEqual(got, want) {
		t.Fatalf("flux-triage started at %v, want %v (the overdue run right after continue-as-new)", got, want)
	}
}

func TestCoreRejectsInvalidModules(t *testing.T) {
	for name, mods := range map[string][]contract.ModuleSpec{
		"no workflow":   {{Name: "x", Interval: time.Hour}},
		"zero interval": {{Name: "x", Workflow: "w"}},
		"duplicate":     {spec("x", time.Hour), spec("x", time.Hour)},
	} {
		t.Run(name, func(t *testing.T) {
			env := newCoreEnv(t, newFake(), t0)
			env.ExecuteWorkflow(Core, contract.CoreInput{Modules: mods})
			if err := env.GetWorkflowError(); err == nil {
				t.Fatal("core accepted an invalid module list")
			}
		})
	}
}

func TestTrimEventsKeepsTheNewestItems(t *testing.T) {
	ev := func(kind string, items ...string) contract.Event { return contract.Event{Kind: kind, Items: items} }
	for _, tc := range []struct {
		name    string
		q       []contract.Event
		max     int
		want    []contract.Event
		dropped int
	}{
		{"under the bound", []contract.Event{ev("k", "a", "b")}, 3, []contract.Event{ev("k", "a", "b")}, 0},
		{"drops the oldest event", []contract.Event{ev("k", "a"), ev("k", "b", "c")}, 2, []contract.Event{ev("k", "b", "c")}, 1},
		{"cuts into the oldest event", []contract.Event{ev("k", "a", "b", "c"), ev("k", "d")}, 2, []contract.Event{ev("k", "c"), ev("k", "d")}, 2},
		{"empty events count as one", []contract.Event{ev("k"), ev("k"), ev("k", "a")}, 2, []contract.Event{ev("k"), ev("k", "a")}, 1},
		{"one huge event", []contract.Event{ev("k", "a", "b", "c", "d")}, 1, []contract.Event{ev("k", "d")}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			dropped := trimEvents(&q, tc.max)
			if !reflect.DeepEqual(q, tc.want) || dropped != tc.dropped {
				t.Fatalf("got %+v dropped %d, want %+v dropped %d", q, dropped, tc.want, tc.dropped)
			}
		})
	}
}

func TestCoreConfigureAddsAModuleAtTheNextContinueAsNew(t *testing.T) {
	f := newFake()
	f.duration["blacklist-refresh"] = 2 * time.Hour
	env := newCoreEnv(t, f, t0)
	old := []contract.ModuleSpec{spec("blacklist-refresh", 6*time.Hour)}
	added := append(append([]contract.ModuleSpec{}, old...), spec("spam-collect", time.Hour))
	at(env, time.Hour, func() {
		env.SignalWorkflow(contract.SignalConfigure, []contract.ModuleSpec{{Name: "broken"}}) // invalid: ignored
		env.SignalWorkflow(contract.SignalConfigure, old)                                     // unchanged: ignored
		env.SignalWorkflow(contract.SignalConfigure, added)                                   // while the refresh runs
	})
	env.ExecuteWorkflow(Core, contract.CoreInput{Modules: old})
	in := continuedInput(t, env)
	if !reflect.DeepEqual(in.Modules, added) || in.State == nil || len(in.State.Modules) != 1 {
		t.Fatalf("continued with %+v", in)
	}
	// The running refresh finished first: nothing was abandoned.
	if runs := f.runsOf("blacklist-refresh"); len(runs) != 1 || runs[0].end.Sub(t0) != 2*time.Hour {
		t.Fatalf("refresh runs %+v", runs)
	}
	env2 := newCoreEnv(t, f, t0.Add(2*time.Hour))
	runCore(t, env2, in, 3*time.Hour)
	if got := f.starts("spam-collect"); len(got) == 0 || got[0] != 2*time.Hour {
		t.Fatalf("spam-collect started at %v, want first at +2h", got)
	}
	if got := f.starts("blacklist-refresh"); !reflect.DeepEqual(got, hours(0)) {
		t.Fatalf("blacklist-refresh started at %v: its timetable (next +8h) must carry over", got)
	}
}
