package workflows

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/tip-project/tip/workflows/contract"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Core is TIP's scheduler: it starts each module as a child workflow when due,
// schedules the next run a fixed interval after the previous one finished (so runs
// of one module never overlap), routes events between modules, and continues as new
// once no child is running.
//
// Continue-as-new waits for running children instead of abandoning them: Core keeps
// the only handle on a run's result (summary, events, errors), and a child rarely
// runs longer than a few hours, while the history limit is far away when the
// suggestion comes. While draining, Core starts no new runs; due ones start right
// after continue-as-new.
func Core(ctx workflow.Context, in contract.CoreInput) error {
	c, err := newCore(ctx, in)
	if err != nil {
		return err
	}
	return c.run(ctx)
}

type running struct {
	id      string
	started time.Time
	input   contract.ModuleInput
	future  workflow.ChildWorkflowFuture
}

type core struct {
	in       contract.CoreInput
	specs    map[string]contract.ModuleSpec
	names    []string // sorted module names: the only iteration order
	state    map[string]*contract.ModuleState
	routes   map[string][]string // event kind -> consuming modules, sorted
	running  map[string]*running
	unrouted int
	iter     int
	draining bool
	log      log.Logger
}

func newCore(ctx workflow.Context, in contract.CoreInput) (*core, error) {
	if in.MaxIterations <= 0 {
		in.MaxIterations = contract.DefaultMaxIterations
	}
	if in.MaxPendingItems <= 0 {
		in.MaxPendingItems = contract.DefaultMaxPendingItems
	}
	c := &core{
		in:      in,
		specs:   map[string]contract.ModuleSpec{},
		state:   map[string]*contract.ModuleState{},
		routes:  map[string][]string{},
		running: map[string]*running{},
		log:     log.With(workflow.GetLogger(ctx), "workflow", "core"),
	}
	if err := validateModules(in.Modules); err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidInput", nil)
	}
	for _, s := range in.Modules {
		c.specs[s.Name] = s
		c.names = append(c.names, s.Name)
	}
	sort.Strings(c.names)
	for _, name := range c.names { // in name order, so each route lists its consumers sorted
		for _, kind := range c.specs[name].Consumes {
			if r := c.routes[kind]; len(r) == 0 || r[len(r)-1] != name {
				c.routes[kind] = append(r, name)
			}
		}
	}
	now := workflow.Now(ctx)
	if in.State != nil {
		c.unrouted = in.State.Unrouted
		for _, ms := range in.State.Modules {
			if _, ok := c.specs[ms.Name]; ok { // modules no longer listed are forgotten
				c.state[ms.Name] = &ms
			}
		}
	}
	for _, name := range c.names {
		if c.state[name] == nil { // a new module runs first at start
			c.state[name] = &contract.ModuleState{Name: name, Next: now, Interval: c.specs[name].Interval}
		}
	}
	return c, nil
}

// sameModules compares two module lists field by field (reflect is off limits
// in workflow code).
func sameModules(a, b []contract.ModuleSpec) bool {
	return slices.EqualFunc(a, b, func(x, y contract.ModuleSpec) bool {
		return x.Name == y.Name && x.Workflow == y.Workflow && x.TaskQueue == y.TaskQueue && x.Interval == y.Interval &&
			x.Enabled == y.Enabled && x.Timeout == y.Timeout && slices.Equal(x.Consumes, y.Consumes)
	})
}

// validateModules checks a module list: names and workflows given, intervals
// positive, no name twice.
func validateModules(mods []contract.ModuleSpec) error {
	seen := map[string]bool{}
	for _, s := range mods {
		switch {
		case s.Name == "" || s.Workflow == "":
			return fmt.Errorf("module %q: name and workflow are required", s.Name)
		case s.Interval <= 0:
			return fmt.Errorf("module %s: interval must be positive", s.Name)
		case seen[s.Name]:
			return fmt.Errorf("module %s listed twice", s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

func (c *core) run(ctx workflow.Context) error {
	if err := workflow.UpsertTypedSearchAttributes(ctx, Module.ValueSet("core")); err != nil {
		return fmt.Errorf("upsert search attributes: %w", err)
	}
	if err := workflow.SetQueryHandler(ctx, contract.QueryStatus, func() (contract.CoreStatus, error) {
		return c.status(workflow.Now(ctx)), nil
	}); err != nil {
		return fmt.Errorf("set query handler: %w", err)
	}
	signals := c.signalChannels(ctx)
	for {
		if !c.draining {
			c.startDue(ctx)
		}
		if c.draining && len(c.running) == 0 {
			return c.continueAsNew(ctx, signals)
		}

		sel := workflow.NewSelector(ctx)
		for _, s := range signals {
			sel.AddReceive(s.ch, func(ch workflow.ReceiveChannel, _ bool) { s.receive(ch) })
		}
		sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
		for _, name := range c.names {
			if r := c.running[name]; r != nil {
				sel.AddFuture(r.future, func(f workflow.Future) { c.finish(ctx, name, f) })
			}
		}
		timerCtx, cancelTimer := workflow.WithCancel(ctx)
		if next, ok := c.nextDue(); ok && !c.draining {
			sel.AddFuture(workflow.NewTimer(timerCtx, next.Sub(workflow.Now(ctx))), func(workflow.Future) {})
		}
		sel.Select(ctx)
		cancelTimer()
		if err := ctx.Err(); err != nil { // cancelled: children are cancelled with Core
			return err
		}

		c.iter++
		if !c.draining && (c.iter >= c.in.MaxIterations || workflow.GetInfo(ctx).GetContinueAsNewSuggested()) {
			c.draining = true
			c.log.Info("continue-as-new due; waiting for running modules", "iteration", c.iter, "running", len(c.running))
		}
	}
}

// signal is a signal channel and its handler; receive handles one pending signal
// and reports false when none was pending.
type signal struct {
	ch      workflow.ReceiveChannel
	receive func(workflow.ReceiveChannel) bool
}

func (c *core) signalChannels(ctx workflow.Context) []signal {
	module := func(name string, apply func(ctx workflow.Context, ms *contract.ModuleState, sig contract.ModuleSignal)) signal {
		return signal{workflow.GetSignalChannel(ctx, name), func(ch workflow.ReceiveChannel) bool {
			var sig contract.ModuleSignal
			if !ch.ReceiveAsync(&sig) {
				return false
			}
			if ms := c.state[sig.Module]; ms != nil {
				apply(ctx, ms, sig)
			} else {
				c.log.Warn("signal for an unknown module ignored", "signal", name, "module", sig.Module)
			}
			return true
		}}
	}
	return []signal{
		module(contract.SignalRunNow, func(_ workflow.Context, ms *contract.ModuleState, _ contract.ModuleSignal) {
			if c.running[ms.Name] != nil {
				c.log.Info("run-now ignored: module is running", "module", ms.Name, "child", c.running[ms.Name].id)
				return
			}
			ms.RunNow = true
		}),
		module(contract.SignalPause, func(_ workflow.Context, ms *contract.ModuleState, _ contract.ModuleSignal) { ms.Paused = true }),
		module(contract.SignalResume, func(_ workflow.Context, ms *contract.ModuleState, _ contract.ModuleSignal) { ms.Paused = false }),
		module(contract.SignalSetInterval, func(ctx workflow.Context, ms *contract.ModuleState, sig contract.ModuleSignal) {
			if sig.Interval <= 0 {
				c.log.Warn("set-interval ignored: interval must be positive", "module", ms.Name, "interval", sig.Interval)
				return
			}
			ms.Interval = sig.Interval
			if c.running[ms.Name] == nil { // a running module picks it up when it finishes
				base := workflow.Now(ctx)
				if ms.Last != nil {
					base = ms.Last.Finished
				}
				ms.Next = base.Add(sig.Interval)
			}
		}),
		{workflow.GetSignalChannel(ctx, contract.SignalConfigure), func(ch workflow.ReceiveChannel) bool {
			var mods []contract.ModuleSpec
			if !ch.ReceiveAsync(&mods) {
				return false
			}
			switch err := validateModules(mods); {
			case err != nil:
				c.log.Warn("configure ignored", "error", err)
			case sameModules(mods, c.in.Modules):
			default:
				c.in.Modules = mods
				c.draining = true
				c.log.Info("new module list; continuing as new once running modules finish", "modules", len(mods))
			}
			return true
		}},
		{workflow.GetSignalChannel(ctx, contract.SignalEvent), func(ch workflow.ReceiveChannel) bool {
			var ev contract.Event
			if !ch.ReceiveAsync(&ev) {
				return false
			}
			c.route(ev)
			return true
		}},
	}
}

// route queues an event for every module that consumes its kind.
func (c *core) route(ev contract.Event) {
	consumers := c.routes[ev.Kind]
	if len(consumers) == 0 {
		c.unrouted++
		c.log.Warn("event of a kind no module consumes", "kind", ev.Kind, "from", ev.From, "items", len(ev.Items))
		return
	}
	for _, name := range consumers {
		ms := c.state[name]
		ms.Pending = append(ms.Pending, contract.Event{Kind: ev.Kind, From: ev.From, Items: slices.Clone(ev.Items)})
		ms.Dropped += trimEvents(&ms.Pending, c.in.MaxPendingItems)
	}
}

// trimEvents keeps the newest max items of a queue (an event without items counts
// as one) and returns how many it dropped.
func trimEvents(q *[]contract.Event, max int) (dropped int) {
	total := 0
	for _, ev := range *q {
		total += max1(len(ev.Items))
	}
	for total > max && len(*q) > 0 {
		ev := &(*q)[0]
		over := total - max
		if len(ev.Items) > over { // drop the oldest items of the oldest event
			ev.Items = ev.Items[over:]
			return dropped + over
		}
		n := max1(len(ev.Items))
		dropped += n
		total -= n
		*q = (*q)[1:]
	}
	return dropped
}

func max1(n int) int { return max(n, 1) }

// due says whether a module should start now.
func (c *core) due(name string, now time.Time) bool {
	ms, spec := c.state[name], c.specs[name]
	if c.running[name] != nil {
		return false
	}
	return ms.RunNow || (spec.Enabled && !ms.Paused && !now.Before(ms.Next))
}

// nextDue is the earliest time a scheduled module becomes due.
func (c *core) nextDue() (time.Time, bool) {
	var next time.Time
	found := false
	for _, name := range c.names {
		ms := c.state[name]
		if c.running[name] != nil || ms.Paused || !c.specs[name].Enabled {
			continue
		}
		if !found || ms.Next.Before(next) {
			next, found = ms.Next, true
		}
	}
	return next, found
}

func (c *core) startDue(ctx workflow.Context) {
	now := workflow.Now(ctx)
	for _, name := range c.names {
		if c.due(name, now) {
			c.start(ctx, name, now)
		}
	}
}

func (c *core) start(ctx workflow.Context, name string, now time.Time) {
	ms, spec := c.state[name], c.specs[name]
	id := contract.ChildID(name, now)
	if ms.Last != nil && ms.Last.ChildID == id { // two runs within one second
		id = contract.ChildID(name, now) + "-2"
	}
	in := contract.ModuleInput{Module: name, Scheduled: now, Events: ms.Pending, DroppedEvents: ms.Dropped}
	ms.Pending, ms.Dropped, ms.RunNow = nil, 0, false
	childCtx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:               id,
		TaskQueue:                spec.TaskQueue,
		WorkflowExecutionTimeout: spec.Timeout,
		TypedSearchAttributes:    temporal.NewSearchAttributes(Module.ValueSet(name)),
	})
	c.log.Info("starting module run", "module", name, "child", id, "events", len(in.Events))
	c.running[name] = &running{id: id, started: now, input: in, future: workflow.ExecuteChildWorkflow(childCtx, spec.Workflow, in)}
}

// finish records a finished run, routes its events and schedules the next run.
func (c *core) finish(ctx workflow.Context, name string, f workflow.Future) {
	r, ms := c.running[name], c.state[name]
	delete(c.running, name)
	now := workflow.Now(ctx)
	var res contract.ModuleResult
	err := f.Get(ctx, &res)
	last := &contract.RunResult{ChildID: r.id, Started: r.started, Finished: now, Summary: res.Summary, Status: contract.ModuleRunCompleted}
	if err != nil {
		last.Status, last.Error = contract.ModuleRunFailed, rootCause(err)
		// The failed run may not have used its events: queue them again, before newer ones.
		ms.Pending = append(slices.Clone(r.input.Events), ms.Pending...)
		ms.Dropped += r.input.DroppedEvents + trimEvents(&ms.Pending, c.in.MaxPendingItems)
		c.log.Warn("module run failed", "module", name, "child", r.id, "error", err)
	} else {
		c.log.Info("module run completed", "module", name, "child", r.id, "summary", res.Summary, "events", len(res.Events))
	}
	ms.Last = last
	ms.Next = now.Add(ms.Interval)
	for _, ev := range res.Events {
		if ev.From == "" {
			ev.From = name
		}
		c.route(ev)
	}
}

// rootCause strips the wrapping Temporal adds around a child's error.
func rootCause(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}

// continueAsNew drains signals that arrived but were not handled, so none is lost,
// and continues with the state.
func (c *core) continueAsNew(ctx workflow.Context, signals []signal) error {
	for _, s := range signals {
		for s.receive(s.ch) {
		}
	}
	in := c.in
	in.State = c.snapshot()
	c.log.Info("continuing as new", "iteration", c.iter)
	return workflow.NewContinueAsNewError(ctx, Core, in)
}

func (c *core) snapshot() *contract.CoreState {
	st := &contract.CoreState{Unrouted: c.unrouted}
	for _, name := range c.names {
		st.Modules = append(st.Modules, *c.state[name])
	}
	return st
}

func (c *core) status(now time.Time) contract.CoreStatus {
	st := contract.CoreStatus{Now: now, UnroutedEvents: c.unrouted, Iteration: c.iter, Draining: c.draining}
	for _, name := range c.names {
		ms, spec := c.state[name], c.specs[name]
		row := contract.ModuleStatus{
			Name: name, Workflow: spec.Workflow, Enabled: spec.Enabled, Paused: ms.Paused,
			Interval: ms.Interval, Next: ms.Next, Last: ms.Last, DroppedEvents: ms.Dropped,
			PendingEvents: len(ms.Pending),
			Consumes:      spec.Consumes,
		}
		for _, ev := range ms.Pending {
			row.PendingItems += len(ev.Items)
		}
		if r := c.running[name]; r != nil {
			row.Running, row.RunningSince, row.Next = r.id, r.started, time.Time{}
		} else if ms.RunNow {
			row.Next = now
		}
		st.Modules = append(st.Modules, row)
	}
	return st
}
