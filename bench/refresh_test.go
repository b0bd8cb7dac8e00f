//go:build bench

package bench

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/worker"
	"github.com/tip-project/tip/workflows"
	"github.com/tip-project/tip/workflows/contract"
)

// refreshTarget is how many times its slowest source alone a refresh of every
// source may take.
const refreshTarget = 1.5

// benchRefresh runs a blacklist refresh of every lab source through a real
// worker, then each source alone (a refresh naming only it, as `tip blacklists
// refresh --source` does), each on a fresh database and bucket so every fetch
// finds changed content.
func benchRefresh(t *testing.T, l *lab, r *report) {
	var all *refreshRun
	t.Run("all", func(t *testing.T) { run := runRefresh(t, l, nil); all = &run })
	var alone []refreshRun
	for _, name := range l.sources {
		t.Run(name, func(t *testing.T) { alone = append(alone, runRefresh(t, l, []string{name})) })
	}
	if all == nil || len(alone) != len(l.sources) || t.Failed() {
		return // a subset ran (go test -run), or a run failed
	}
	slices.SortFunc(alone, func(a, b refreshRun) int { return cmp.Compare(b.took, a.took) })
	slowest := alone[0]
	ratio := all.took.Seconds() / slowest.took.Seconds()
	r.add(t, "refresh: all %d lab sources in %s vs the slowest source alone (%s) in %s = %.2fx (target <= %.1fx: %s)",
		len(l.sources), secs(all.took), slowest.name, secs(slowest.took), ratio, refreshTarget, verdict(ratio <= refreshTarget))
	r.add(t, "refresh:   all: %s; %q", all.phases, all.summary)
	for _, a := range alone[:min(3, len(alone))] {
		r.add(t, "refresh:   %s alone: %s", a.name, a.phases)
	}
	var times []string
	for _, a := range alone {
		times = append(times, a.name+" "+secs(a.took))
	}
	r.add(t, "refresh:   each alone: %s", strings.Join(times, ", "))
}

// refreshRun is one measured BlacklistRefresh.
type refreshRun struct {
	name    string // the source refreshed alone; "all" for every source
	took    time.Duration
	summary string
	phases  string // where the time went, from the workflow histories
}

// runRefresh starts a worker on a fresh database and bucket, waits until it
// polls, and times one BlacklistRefresh of the named sources (every enabled one
// when none is named) from its start to its result.
func runRefresh(t *testing.T, l *lab, sources []string) refreshRun {
	t.Helper()
	ctx := context.Background()
	cfg := testenv.NewBucket(t, testenv.Config(t))
	cfg.Postgres.DSN = testenv.NewDatabase(t)
	cfg.Blacklists.Catalog = l.catalog
	wctx, stop := context.WithCancel(ctx)
	var werr error
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		werr = worker.Run(wctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	}()
	defer func() {
		stop()
		<-stopped
		if werr != nil {
			t.Errorf("worker: %v", werr)
		}
	}()
	c, err := starter.Dial(ctx, cfg.Temporal, nil, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitForWorker(t, c, cfg.Temporal.TaskQueue, stopped)

	run := refreshRun{name: "all"}
	in := contract.ModuleInput{Module: contract.BlacklistModule, Scheduled: time.Now()}
	if len(sources) > 0 {
		run.name = strings.Join(sources, ",")
		in.Events = []contract.Event{{Kind: contract.EventRefreshSources, Items: sources}}
	}
	execCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	start := time.Now()
	wf, err := c.ExecuteWorkflow(execCtx, client.StartWorkflowOptions{
		ID:        fmt.Sprintf("%s/bench-%s-%d", contract.BlacklistModule, run.name, start.UnixNano()),
		TaskQueue: cfg.Temporal.TaskQueue,
	}, workflows.BlacklistRefresh, in)
	if err != nil {
		t.Fatal(err)
	}
	var res contract.ModuleResult
	if err := wf.Get(execCtx, &res); err != nil {
		t.Fatalf("refresh %s: %v", run.name, err)
	}
	run.took = time.Since(start)
	run.summary = res.Summary
	run.phases = phases(t, c, wf.GetID(), wf.GetRunID())
	t.Logf("%s in %s: %s", run.name, secs(run.took), run.phases)
	return run
}

// waitForWorker returns once the worker polls both its workflow and its
// activity task queue, so its start-up (migrations, bucket) is not timed.
func waitForWorker(t *testing.T, c client.Client, queue string, stopped <-chan struct{}) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-stopped:
			t.Fatal("the worker stopped before it polled")
		default:
		}
		polling := true
		for _, typ := range []enumspb.TaskQueueType{enumspb.TASK_QUEUE_TYPE_WORKFLOW, enumspb.TASK_QUEUE_TYPE_ACTIVITY} {
			resp, err := c.DescribeTaskQueue(context.Background(), queue, typ)
			polling = polling && err == nil && len(resp.GetPollers()) > 0
		}
		if polling {
			return
		}
	}
	t.Fatalf("no worker polls task queue %s after a minute", queue)
}

// phases says where a refresh's time went: the fan-out of its children (and the
// slowest of them, with its own activities) and each activity of the refresh
// itself, timed from scheduling to completion.
func phases(t *testing.T, c client.Client, id, runID string) string {
	t.Helper()
	h := readHistory(t, c, id, runID)
	var parts []string
	if len(h.children) > 0 {
		var first, last time.Time
		slowest, slowestTook := "", time.Duration(-1)
		for child, span := range h.children {
			if first.IsZero() || span[0].Before(first) {
				first = span[0]
			}
			if span[1].After(last) {
				last = span[1]
			}
			if d := span[1].Sub(span[0]); d > slowestTook {
				slowest, slowestTook = child, d
			}
		}
		ch := readHistory(t, c, slowest, "")
		// a child's ID is blacklist/<source>/<time>
		parts = append(parts, fmt.Sprintf("children %s (slowest %s %s: %s)", secs(last.Sub(first)),
			path.Base(path.Dir(slowest)), secs(slowestTook), ch.activities))
	}
	parts = append(parts, h.activities)
	return strings.Join(parts, ", ")
}

// history is what phases needs of one workflow's history.
type history struct {
	children   map[string][2]time.Time // child workflow ID: initiated, closed
	activities string                  // "Name 1.23s, ..." in completion order
}

func readHistory(t *testing.T, c client.Client, id, runID string) history {
	t.Helper()
	h := history{children: map[string][2]time.Time{}}
	type scheduled struct {
		name string
		at   time.Time
	}
	byEvent := map[int64]scheduled{}
	var acts []string
	iter := c.GetWorkflowHistory(context.Background(), id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", id, err)
		}
		at := ev.GetEventTime().AsTime()
		if a := ev.GetStartChildWorkflowExecutionInitiatedEventAttributes(); a != nil {
			h.children[a.GetWorkflowId()] = [2]time.Time{at}
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			byEvent[ev.GetEventId()] = scheduled{a.GetActivityType().GetName(), at}
		}
		if a := ev.GetActivityTaskCompletedEventAttributes(); a != nil {
			s := byEvent[a.GetScheduledEventId()]
			acts = append(acts, s.name+" "+secs(at.Sub(s.at)))
		}
		var closed string
		switch {
		case ev.GetChildWorkflowExecutionCompletedEventAttributes() != nil:
			closed = ev.GetChildWorkflowExecutionCompletedEventAttributes().GetWorkflowExecution().GetWorkflowId()
		case ev.GetChildWorkflowExecutionFailedEventAttributes() != nil:
			closed = ev.GetChildWorkflowExecutionFailedEventAttributes().GetWorkflowExecution().GetWorkflowId()
		}
		if span, ok := h.children[closed]; ok {
			span[1] = at
			h.children[closed] = span
		}
	}
	h.activities = strings.Join(acts, ", ")
	return h
}
