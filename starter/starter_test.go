package starter

import (
	"cmp"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	failurepb "go.temporal.io/api/failure/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	taskqueuepb "go.temporal.io/api/taskqueue/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/spamarchive"
	"github.com/tip-project/tip/workflows"
	"github.com/tip-project/tip/workflows/contract"
)

// fakeClient records what starter sends to Temporal and answers as set. The
// methods starter does not call panic (the embedded interface is nil).
type fakeClient struct {
	client.Client
	err error // every call fails with it

	// the last start, signal, count or list sent
	opts     client.StartWorkflowOptions
	workflow any
	args     []any
	id       string
	signal   string
	payload  any
	query    string
	pageSize int32
	signals  int

	startErr   error // the start fails with it
	executions []*workflowpb.WorkflowExecutionInfo
	pollers    []*taskqueuepb.PollerInfo
	describe   *workflowservice.DescribeWorkflowExecutionResponse
	history    []*historypb.HistoryEvent
}

func (f *fakeClient) ExecuteWorkflow(_ context.Context, opts client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error) {
	f.opts, f.workflow, f.args = opts, workflow, args
	if err := cmp.Or(f.startErr, f.err); err != nil {
		return nil, err
	}
	return &fakeRun{id: opts.ID, runID: "run-1"}, nil
}

func (f *fakeClient) SignalWithStartWorkflow(_ context.Context, id, signal string, payload any, opts client.StartWorkflowOptions, workflow any, args ...any) (client.WorkflowRun, error) {
	f.id, f.signal, f.payload, f.opts, f.workflow, f.args = id, signal, payload, opts, workflow, args
	if f.err != nil {
		return nil, f.err
	}
	return &fakeRun{id: id}, nil
}

func (f *fakeClient) SignalWorkflow(_ context.Context, id, _ string, signal string, payload any) error {
	f.id, f.signal, f.payload = id, signal, payload
	f.signals++
	return f.err
}

func (f *fakeClient) CountWorkflow(_ context.Context, req *workflowservice.CountWorkflowExecutionsRequest) (*workflowservice.CountWorkflowExecutionsResponse, error) {
	f.query = req.GetNamespace() + ": " + req.GetQuery()
	if f.err != nil {
		return nil, f.err
	}
	return &workflowservice.CountWorkflowExecutionsResponse{Count: 7}, nil
}

func (f *fakeClient) ListWorkflow(_ context.Context, req *workflowservice.ListWorkflowExecutionsRequest) (*workflowservice.ListWorkflowExecutionsResponse, error) {
	f.query, f.pageSize = req.GetNamespace()+": "+req.GetQuery(), req.GetPageSize()
	if f.err != nil {
		return nil, f.err
	}
	return &workflowservice.ListWorkflowExecutionsResponse{Executions: f.executions}, nil
}

func (f *fakeClient) DescribeTaskQueue(_ context.Context, queue string, typ enumspb.TaskQueueType) (*workflowservice.DescribeTaskQueueResponse, error) {
	f.query = queue + " " + typ.String()
	if f.err != nil {
		return nil, f.err
	}
	return &workflowservice.DescribeTaskQueueResponse{Pollers: f.pollers}, nil
}

func (f *fakeClient) DescribeWorkflowExecution(_ context.Context, id, _ string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	f.id = id
	if f.err != nil {
		return nil, f.err
	}
	return f.describe, nil
}

func (f *fakeClient) GetWorkflowHistory(_ context.Context, id, runID string, _ bool, filter enumspb.HistoryEventFilterType) client.HistoryEventIterator {
	f.id, f.query = id+" "+runID, filter.String()
	return &fakeHistory{events: f.history, err: f.err}
}

// fakeHistory iterates over events, or fails with err.
type fakeHistory struct {
	events []*historypb.HistoryEvent
	err    error
}

func (h *fakeHistory) HasNext() bool { return len(h.events) > 0 || h.err != nil }
func (h *fakeHistory) Next() (*historypb.HistoryEvent, error) {
	if h.err != nil {
		return nil, h.err
	}
	ev := h.events[0]
	h.events = h.events[1:]
	return ev, nil
}

// fakeRun is a started run whose result arrives on done.
type fakeRun struct {
	client.WorkflowRun
	id, runID string
	done      chan error
}

func (r *fakeRun) GetID() string    { return r.id }
func (r *fakeRun) GetRunID() string { return r.runID }
func (r *fakeRun) Get(ctx context.Context, _ any) error {
	if r.done == nil { // ended at once
		return nil
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

var temporalCfg = config.Temporal{Address: "127.0.0.1:7233", Namespace: "tip-ns", TaskQueue: "tip-queue"}

// keywords reads the keyword search attributes of a start.
func keywords(sa temporal.SearchAttributes, keys ...temporal.SearchAttributeKeyKeyword) map[string]string {
	out := map[string]string{}
	for _, k := range keys {
		if v, ok := sa.GetKeyword(k); ok {
			out[k.GetName()] = v
		}
	}
	return out
}

func TestWatchDomainSignalsWithStart(t *testing.T) {
	f := &fakeClient{}
	mcfg := contract.MonitorConfig{MinCheck: time.Minute, MaxCheck: time.Hour, TaskQueue: "monitors"}
	req := contract.WatchRequest{Origin: "spam-collect", Assessment: &flux.Assessment{Domain: "flux.example"}}
	if err := WatchDomain(context.Background(), f, "monitors", mcfg, "flux.example", req); err != nil {
		t.Fatal(err)
	}
	if f.id != "flux/flux.example" || f.signal != contract.SignalFluxWatch || f.payload != req || f.opts.TaskQueue != "monitors" ||
		f.opts.ID != "" || f.workflow != contract.FluxMonitorWorkflow || len(f.args) != 1 {
		t.Errorf("signal-with-start %q %q %+v, options %+v, workflow %v %+v", f.id, f.signal, f.payload, f.opts, f.workflow, f.args)
	}
	if in, ok := f.args[0].(contract.MonitorInput); !ok || in.Domain != "flux.example" || in.Config != mcfg || in.State != nil {
		t.Errorf("monitor input %+v", f.args[0])
	}
	f.err = errors.New("unavailable")
	if err := WatchDomain(context.Background(), f, "monitors", mcfg, "flux.example", req); err == nil || err.Error() != "start monitor flux.example: unavailable" {
		t.Errorf("a failed start: %v", err)
	}
}

func TestSignalMonitorNamesTheDomainWhenItFails(t *testing.T) {
	f := &fakeClient{}
	if err := SignalMonitor(context.Background(), f, "flux.example", contract.SignalFluxStop, "enough"); err != nil {
		t.Fatal(err)
	}
	if f.id != "flux/flux.example" || f.signal != contract.SignalFluxStop || f.payload != "enough" {
		t.Errorf("signal %q %q %v", f.id, f.signal, f.payload)
	}
	f.err = serviceerror.NewNotFound("workflow not found")
	err := SignalMonitor(context.Background(), f, "flux.example", contract.SignalFluxPause, nil)
	if err == nil || err.Error() != "pause flux.example: workflow not found (is it watched? tip flux list)" {
		t.Errorf("a signal to no monitor: %v", err)
	}
}

// The runs started by hand carry the IDs and search attributes the spam
// module's own children carry, and the agent's name as Agent too.
func TestSpamStartsUseTheContractsIDsAndAttributes(t *testing.T) {
	ctx := context.Background()
	keys := []temporal.SearchAttributeKeyKeyword{workflows.Module, workflows.Source, workflows.Mailbox, workflows.Agent}
	for _, c := range []struct {
		name     string
		start    func(*fakeClient) error
		id       string
		workflow string
		attrs    map[string]string
	}{
		{"archive", func(f *fakeClient) error {
			_, err := StartArchiveIngest(ctx, f, temporalCfg, catalog.SpamArchive{Name: "untroubled"}, spamarchive.Archive{Name: "2026-09.7z", Period: "2026-09"})
			return err
		}, "spam/archive/untroubled/2026-09", contract.SpamArchiveIngestWorkflow, map[string]string{"Module": contract.SpamModule, "Source": "untroubled"}},
		{"mailbox", func(f *fakeClient) error {
			_, err := PollMailbox(ctx, f, temporalCfg, catalog.Mailbox{Name: "trap"})
			return err
		}, "spam/imap/trap", contract.SpamMailboxPollWorkflow, map[string]string{"Module": contract.SpamModule, "Mailbox": "trap"}},
		{"agent", func(f *fakeClient) error {
			_, err := SyncAgent(ctx, f, temporalCfg, catalog.Agent{Name: "mx1"})
			return err
		}, "agent/mx1", contract.AgentSyncWorkflow, map[string]string{"Module": contract.SpamModule, "Source": "mx1", "Agent": "mx1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeClient{}
			if err := c.start(f); err != nil {
				t.Fatal(err)
			}
			if f.opts.ID != c.id || f.opts.TaskQueue != "tip-queue" || f.workflow != c.workflow || len(f.args) != 1 {
				t.Errorf("started %q on %q: %v %+v", f.opts.ID, f.opts.TaskQueue, f.workflow, f.args)
			}
			if f.opts.WorkflowIDReusePolicy != enumspb.WORKFLOW_ID_REUSE_POLICY_UNSPECIFIED || f.opts.WorkflowIDConflictPolicy != enumspb.WORKFLOW_ID_CONFLICT_POLICY_UNSPECIFIED {
				t.Errorf("policies %v %v, want the SDK's defaults", f.opts.WorkflowIDReusePolicy, f.opts.WorkflowIDConflictPolicy)
			}
			if got := keywords(f.opts.TypedSearchAttributes, keys...); len(got) != len(c.attrs) || f.opts.TypedSearchAttributes.Size() != len(c.attrs) {
				t.Errorf("search attributes %v, want %v", got, c.attrs)
			} else {
				for k, v := range c.attrs {
					if got[k] != v {
						t.Errorf("search attribute %s = %q, want %q", k, got[k], v)
					}
				}
			}
			f.startErr = errors.New("dial tcp 127.0.0.1:7233: connect: connection refused")
			if err := c.start(f); err == nil || !strings.HasPrefix(err.Error(), "temporal at 127.0.0.1:7233 is not reachable (connection refused)") {
				t.Errorf("a failed start is not explained: %v", err)
			}
		})
	}
}

func TestStartBlacklistRefreshOfTheNamedSources(t *testing.T) {
	f := &fakeClient{}
	before := time.Now().UTC().Truncate(time.Second)
	run, err := StartBlacklistRefresh(context.Background(), f, temporalCfg, []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	in, _ := f.args[0].(contract.ModuleInput)
	if !strings.HasPrefix(run.GetID(), "blacklist-refresh/manual/") || run.GetID() != contract.ChildID(contract.BlacklistModule+"/manual", in.Scheduled) ||
		f.workflow != contract.BlacklistRefreshWorkflow || f.opts.TaskQueue != "tip-queue" {
		t.Errorf("started %q: %v on %q", run.GetID(), f.workflow, f.opts.TaskQueue)
	}
	if in.Module != contract.BlacklistModule || in.Scheduled.Before(before) || in.Scheduled.Location() != time.UTC || len(in.Events) != 1 ||
		in.Events[0].Kind != contract.EventRefreshSources || strings.Join(in.Events[0].Items, ",") != "a,b" || in.Events[0].From != OriginCLI {
		t.Errorf("input %+v", in)
	}
	if got := keywords(f.opts.TypedSearchAttributes, workflows.Module); got["Module"] != contract.BlacklistModule || f.opts.TypedSearchAttributes.Size() != 1 {
		t.Errorf("search attributes %v", got)
	}
	if _, err := StartBlacklistRefresh(context.Background(), f, temporalCfg, nil); err != nil {
		t.Fatal(err)
	}
	if in := f.args[0].(contract.ModuleInput); in.Events != nil {
		t.Errorf("a refresh of every source has events %+v", in.Events)
	}
}

func TestStartProbeTimesOut(t *testing.T) {
	f := &fakeClient{}
	run, err := StartProbe(context.Background(), f, temporalCfg, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(run.GetID(), contract.ProbeWorkflowIDPrefix) || f.workflow != contract.ProbeWorkflow || len(f.args) != 0 ||
		f.opts.TaskQueue != "tip-queue" || f.opts.WorkflowExecutionTimeout != 20*time.Second {
		t.Errorf("probe %q: %v %v, options %+v", run.GetID(), f.workflow, f.args, f.opts)
	}
}

func TestEnsureCoreStartsOrSendsTheModuleList(t *testing.T) {
	mods := []contract.ModuleSpec{{Name: contract.BlacklistModule, Workflow: contract.BlacklistRefreshWorkflow}}
	f := &fakeClient{}
	runID, started, err := EnsureCore(context.Background(), f, "tip-queue", mods)
	if err != nil || !started || runID != "run-1" || f.signals != 0 {
		t.Fatalf("first start: %q %v %v, %d signals", runID, started, err, f.signals)
	}
	if f.opts.ID != contract.CoreWorkflowID || f.workflow != contract.CoreWorkflow || !f.opts.WorkflowExecutionErrorWhenAlreadyStarted ||
		f.opts.WorkflowIDConflictPolicy != enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL || f.opts.WorkflowIDReusePolicy != enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE {
		t.Errorf("core started with %+v", f.opts)
	}
	f = &fakeClient{startErr: serviceerror.NewWorkflowExecutionAlreadyStarted("running", "req", "run-0")}
	runID, started, err = EnsureCore(context.Background(), f, "tip-queue", mods)
	if err != nil || started || runID != "run-0" || f.signals != 1 || f.id != contract.CoreWorkflowID || f.signal != contract.SignalConfigure {
		t.Fatalf("second start: %q %v %v; signal %q to %q", runID, started, err, f.signal, f.id)
	}
	if got, ok := f.payload.([]contract.ModuleSpec); !ok || len(got) != 1 || got[0].Name != contract.BlacklistModule {
		t.Errorf("module list sent %+v", f.payload)
	}
}

func TestRunningMonitorsAndFailedRunsOfTheQueue(t *testing.T) {
	ctx := context.Background()
	cfg := temporalCfg
	cfg.TaskQueue = "it's"
	f := &fakeClient{}
	n, err := RunningMonitors(ctx, f, cfg)
	if err != nil || n != 7 || f.query != "tip-ns: WorkflowType = 'FluxMonitor' AND ExecutionStatus = 'Running' AND TaskQueue = 'its'" {
		t.Errorf("running monitors %d, %v: %q", n, err, f.query)
	}
	closed := time.Date(2026, 9, 2, 12, 0, 0, 0, time.UTC)
	f.executions = []*workflowpb.WorkflowExecutionInfo{
		{Execution: &commonpb.WorkflowExecution{WorkflowId: "agent/mx1", RunId: "r1"}, CloseTime: timestamppb.New(closed),
			Status: enumspb.WORKFLOW_EXECUTION_STATUS_FAILED},
		{Execution: &commonpb.WorkflowExecution{WorkflowId: "spam/imap/trap", RunId: "r2"}, CloseTime: timestamppb.New(closed.Add(-time.Hour)),
			Status: enumspb.WORKFLOW_EXECUTION_STATUS_TIMED_OUT},
	}
	runs, err := FailedRuns(ctx, f, cfg, 9)
	if err != nil || f.pageSize != 9 || f.query != "tip-ns: ExecutionStatus IN ('Failed', 'TimedOut') AND TaskQueue = 'its'" {
		t.Fatalf("failed runs: %v, page %d: %q", err, f.pageSize, f.query)
	}
	want := []FailedRun{{ID: "agent/mx1", RunID: "r1", Closed: closed}, {ID: "spam/imap/trap", RunID: "r2", Closed: closed.Add(-time.Hour), TimedOut: true}}
	if len(runs) != 2 || runs[0] != want[0] || runs[1] != want[1] {
		t.Errorf("failed runs %+v, want %+v", runs, want)
	}
	f.err = errors.New("dial tcp: connection refused")
	if _, err := RunningMonitors(ctx, f, cfg); err == nil || !strings.Contains(err.Error(), "temporal at 127.0.0.1:7233 is not reachable") {
		t.Errorf("count not explained: %v", err)
	}
	if _, err := FailedRuns(ctx, f, cfg, 9); err == nil || !strings.Contains(err.Error(), "temporal at 127.0.0.1:7233 is not reachable") {
		t.Errorf("list not explained: %v", err)
	}
}

func TestPollersCountsTheRecentOnes(t *testing.T) {
	now := time.Now()
	f := &fakeClient{pollers: []*taskqueuepb.PollerInfo{
		{LastAccessTime: timestamppb.New(now.Add(-10 * time.Second))},
		{LastAccessTime: timestamppb.New(now.Add(-time.Minute))},
		{LastAccessTime: timestamppb.New(now.Add(-10 * time.Minute))},
	}}
	n, err := Pollers(context.Background(), f, temporalCfg)
	if err != nil || n != 2 || f.query != "tip-queue Activity" {
		t.Errorf("pollers %d, %v (asked %q)", n, err, f.query)
	}
}

func TestProgressIsTheLastHeartbeat(t *testing.T) {
	hb, err := converter.GetDefaultDataConverter().ToPayloads(42)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeClient{describe: &workflowservice.DescribeWorkflowExecutionResponse{
		PendingActivities: []*workflowpb.PendingActivityInfo{{}, {HeartbeatDetails: hb}}}}
	if n, ok := Progress(context.Background(), f, "spam/archive/a/2026-09"); !ok || n != 42 || f.id != "spam/archive/a/2026-09" {
		t.Errorf("progress %d, %v", n, ok)
	}
	f.describe = &workflowservice.DescribeWorkflowExecutionResponse{}
	if _, ok := Progress(context.Background(), f, "x"); ok {
		t.Error("progress without a heartbeat")
	}
	f.err = errors.New("not found")
	if _, ok := Progress(context.Background(), f, "x"); ok {
		t.Error("progress of a run not described")
	}
}

func TestAwaitTicksUntilTheRunEnds(t *testing.T) {
	run := &fakeRun{done: make(chan error)}
	ticks := 0
	err := Await(context.Background(), run, nil, time.Millisecond, func() {
		if ticks++; ticks == 3 {
			go func() { run.done <- errors.New("failed") }()
		}
	})
	if err == nil || err.Error() != "failed" || ticks < 3 {
		t.Errorf("await = %v after %d ticks", err, ticks)
	}
}

func TestRunFailureIsTheInnermostCause(t *testing.T) {
	failed := &historypb.HistoryEvent{Attributes: &historypb.HistoryEvent_WorkflowExecutionFailedEventAttributes{
		WorkflowExecutionFailedEventAttributes: &historypb.WorkflowExecutionFailedEventAttributes{Failure: &failurepb.Failure{
			Message: "activity error", Cause: &failurepb.Failure{Message: "agent mx1: no token"}}}}}
	f := &fakeClient{history: []*historypb.HistoryEvent{failed}}
	if got := RunFailure(context.Background(), f, "agent/mx1", "r1"); got != "agent mx1: no token" ||
		f.id != "agent/mx1 r1" || f.query != enumspb.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT.String() {
		t.Errorf("failure %q (history of %q, %s)", got, f.id, f.query)
	}
	f.history = []*historypb.HistoryEvent{{}} // closed otherwise: timed out
	if got := RunFailure(context.Background(), f, "agent/mx1", "r1"); got != "" {
		t.Errorf("a run that did not fail: %q", got)
	}
	f.err = errors.New("not found")
	if got := RunFailure(context.Background(), f, "agent/mx1", "r1"); got != "" {
		t.Errorf("a history not read: %q", got)
	}
}

func TestResultIsTheRunsOrTheStartsError(t *testing.T) {
	ctx := context.Background()
	done := make(chan error, 1)
	done <- errors.New("activity error")
	if _, err := result[contract.IngestResult](ctx, &fakeRun{done: done}, nil); err == nil || err.Error() != "activity error" {
		t.Errorf("a failed run: %v", err)
	}
	if _, err := result[contract.IngestResult](ctx, nil, errors.New("start failed")); err == nil || err.Error() != "start failed" {
		t.Errorf("a failed start: %v", err)
	}
}
