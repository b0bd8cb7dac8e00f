package reliability_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/internal/devstack"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/lab/world"
	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// cadence is how often the rolling-restart test's monitors check.
const cadence = 10 * time.Second

// TestRollingRestartKeepsEveryMonitor runs flux monitors on two `tip worker`
// processes, then restarts the workers one after the other (SIGTERM, a new
// process, the next), as a deployment does: every monitor still runs, one per
// domain, each keeps checking, and no check ran more than a cadence plus the
// takeover after it was due (a stopping worker hands its probers over at once,
// but a run whose completion does not reach the server before the worker is
// gone moves on at its heartbeat timeout).
func TestRollingRestartKeepsEveryMonitor(t *testing.T) {
	t.Parallel()
	ms := startMonitors(t, 0, 10)
	restarted := time.Now()
	for i := range ms.workers {
		ms.workers[i].Stop(t)
		ms.workers[i] = testenv.StartWorker(t, ms.tip, ms.cfg)
	}
	// Every monitor checks twice after the last restart began.
	waitChecked(t, ms.db, ms.domains, restarted, 2)
	ms.checkOnePerDomain(t)
	worst := ms.checkLateness(t, cadence+takeover)
	t.Logf("%d monitors on 2 workers restarted one after the other: latest check %s after due", len(ms.domains), worst)
}

// takeover bounds how long after it was due a check runs when the worker
// running its prober is lost: the prober activity's heartbeat timeout (30 s),
// then its retry on another worker, which reads the shard from PostgreSQL and
// makes the overdue checks at once.
const takeover = 40 * time.Second

// TestWorkerKilledWhileMonitorsRun runs flux monitors on two `tip worker`
// processes: the probers that check their domains spread over both, and when
// the one running more of them is SIGKILLed the other takes them all over.
// Every monitor still runs, one per domain, keeps checking, records each due
// check once, and none is later than a cadence plus the takeover.
func TestWorkerKilledWhileMonitorsRun(t *testing.T) {
	t.Parallel()
	ms := startMonitors(t, 10, 12)
	held := ms.proberHolders(t)
	byWorker := map[string]int{}
	for _, w := range held {
		byWorker[w]++
	}
	t.Logf("probers per worker before the kill: %v", byWorker)
	victim, survivor := ms.workers[0], ms.workers[1]
	if byWorker[survivor.Identity] > byWorker[victim.Identity] {
		victim, survivor = survivor, victim
	}
	if byWorker[victim.Identity] == 0 {
		t.Fatalf("no prober runs on either worker: %v", byWorker)
	}
	killed := time.Now()
	victim.Kill(t)
	waitChecked(t, ms.db, ms.domains, killed, 2)

	ms.checkOnePerDomain(t)
	for id, w := range ms.proberHolders(t) {
		if w != survivor.Identity {
			t.Errorf("%s runs on %q after the kill, not on the surviving worker %s", id, w, survivor.Identity)
		}
	}
	worst := ms.checkLateness(t, cadence+takeover)
	// A check re-run after the kill must not be recorded beside the one the
	// killed worker recorded: no two observations of a domain within half a
	// cadence.
	var twins int
	if err := testenv.SQL(t, ms.db).QueryRow(context.Background(), `
		SELECT count(*) FROM (SELECT at - lag(at) OVER (PARTITION BY domain ORDER BY at) AS gap FROM flux_observations) g
		 WHERE gap < $1::interval`, (cadence / 2).String()).Scan(&twins); err != nil {
		t.Fatal(err)
	}
	if twins > 0 {
		t.Errorf("%d checks recorded within half a cadence of the previous one: a re-run recorded twice", twins)
	}
	t.Logf("%d monitors, %d of %d probers on the killed worker: all on the survivor, latest check %s after due",
		len(ms.domains), byWorker[victim.Identity], len(held), worst)
}

// TestTemporalRestartedWhileMonitorsRun restarts the Temporal server while
// monitors run: the probers go on checking meanwhile (a check needs DNS and
// PostgreSQL, not Temporal), their heartbeats resume, and every monitor keeps
// checking, none later than a cadence plus the takeover. It restarts the
// package's shared server, so it does not run in parallel.
func TestTemporalRestartedWhileMonitorsRun(t *testing.T) {
	restartWhileMonitorsRun(t, devstack.Temporal)
}

// TestPostgresRestartedWhileMonitorsRun restarts PostgreSQL (and with
// TIP_TEST_STACK=prod the Temporal server's persistence) while monitors run:
// the checks that cannot be recorded are made again for the same due time, so
// each due check is recorded once, late by the outage at most a cadence plus
// the takeover. Not in parallel, as above.
func TestPostgresRestartedWhileMonitorsRun(t *testing.T) {
	restartWhileMonitorsRun(t, devstack.Postgres)
}

func restartWhileMonitorsRun(t *testing.T, svc devstack.Service) {
	// Before the parallel tests: the domains of TestRollingRestartKeepsEveryMonitor are free.
	ms := startMonitors(t, 0, 8)
	s := testenv.Stack(t)
	ctx := context.Background()
	before := servicePID(t, s, svc)
	if err := s.Stop(ctx, svc); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if err := s.Start(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if after := servicePID(t, s, svc); after == before {
		t.Fatalf("%s was not restarted (pid %d)", svc, after)
	}
	restarted := time.Now()
	waitChecked(t, ms.db, ms.domains, restarted, 2)
	ms.checkOnePerDomain(t)
	ms.checkDueOnce(t)
	worst := ms.checkLateness(t, cadence+takeover)
	t.Logf("%d monitors, %s restarted: latest check %s after due", len(ms.domains), svc, worst)
}

// monitorSetup is n flux monitors of lab domains on a cadence, run by two `tip
// worker` processes.
type monitorSetup struct {
	cfg     config.Config
	tip     string
	c       client.Client
	db      *storage.DB
	workers []*testenv.WorkerProcess
	domains []string
}

// startMonitors starts two workers and n monitors checking every cadence, of the
// lab's flux domains that stay up from the offset-th on, and waits for each
// one's first check. A monitor's workflow ID is its domain's in the whole
// namespace, so tests running at once take distinct domains.
func startMonitors(t *testing.T, offset, n int) *monitorSetup {
	t.Helper()
	testenv.Stack(t)
	ctx := context.Background()
	w := world.NewWorld(1)
	clock := world.NewClock(w.Start.Add(24*time.Hour), 1)
	ms := &monitorSetup{}
	for _, d := range w.DomainsOf(world.SingleFlux, world.DoubleFlux) {
		if d.TakedownAt.IsZero() || d.TakedownAt.After(clock.Now().Add(24*time.Hour)) {
			ms.domains = append(ms.domains, d.Name)
		}
	}
	if len(ms.domains) < offset+n {
		t.Fatalf("the lab has %d flux domains that stay up, want %d", len(ms.domains), offset+n)
	}
	ms.domains = ms.domains[offset : offset+n]
	ms.cfg = newConfig(t, "", testenv.NewDatabase(t))
	ms.cfg.Flux.Resolvers = testenv.LabDNS(t, w, clock)
	ms.cfg.Flux.ASNTable = testenv.LabASNTable(t, w)
	ms.cfg.Flux.MinCheck, ms.cfg.Flux.MaxCheck = cadence, cadence
	ms.cfg.Flux.Lifetime, ms.cfg.Flux.NXDomainFor = time.Hour, time.Hour
	ms.tip = testenv.BuildTip(t)
	ms.c = dial(t, ms.cfg)
	ms.workers = []*testenv.WorkerProcess{testenv.StartWorker(t, ms.tip, ms.cfg), testenv.StartWorker(t, ms.tip, ms.cfg)}
	t.Cleanup(func() { stopMonitors(ms.c, ms.cfg.Temporal.TaskQueue) })
	// Both must poll before the monitors start, or the first would take them all.
	waitPolling(t, ms.c, ms.cfg.Temporal.TaskQueue, ms.workers)

	monitors := starter.MonitorConfig(ms.cfg)
	for _, d := range ms.domains {
		if err := starter.WatchDomain(ctx, ms.c, monitors.TaskQueue, monitors, d, contract.WatchRequest{Origin: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	db, err := storage.OpenDB(ctx, ms.cfg.Postgres.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	ms.db = db
	waitChecked(t, db, ms.domains, time.Now(), 1)
	return ms
}

// waitPolling waits until every worker polls the task queue for workflow tasks.
func waitPolling(t *testing.T, c client.Client, queue string, workers []*testenv.WorkerProcess) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := c.DescribeTaskQueue(context.Background(), queue, enumspb.TASK_QUEUE_TYPE_WORKFLOW)
		polling := map[string]bool{}
		if err == nil {
			for _, p := range resp.GetPollers() {
				polling[p.GetIdentity()] = true
			}
		}
		missing := 0
		for _, w := range workers {
			if !polling[w.Identity] {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d workers do not poll %s after a minute (pollers %v, %v)", missing, len(workers), queue, polling, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkOnePerDomain: Temporal runs exactly one monitor for each domain.
func (ms *monitorSetup) checkOnePerDomain(t *testing.T) {
	t.Helper()
	running := runningMonitors(t, ms.c, ms.cfg.Temporal.TaskQueue)
	want := make([]string, len(ms.domains))
	for i, d := range ms.domains {
		want[i] = contract.MonitorWorkflowID(d)
	}
	slices.Sort(want)
	if !slices.Equal(running, want) {
		t.Errorf("running monitors %v, want one for each of %v", running, want)
	}
}

// checkLateness fails every check recorded later than bound after it was due,
// and returns the latest.
func (ms *monitorSetup) checkLateness(t *testing.T, bound time.Duration) time.Duration {
	t.Helper()
	var checks int
	var worst time.Duration
	rows, err := testenv.SQL(t, ms.db).Query(context.Background(), `SELECT domain, at, late_ms FROM flux_observations ORDER BY domain, at`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var d string
		var at time.Time
		var ms int
		if err := rows.Scan(&d, &at, &ms); err != nil {
			t.Fatal(err)
		}
		checks++
		late := time.Duration(ms) * time.Millisecond
		worst = max(worst, late)
		if late > bound {
			t.Errorf("%s checked at %s, %s after it was due (bound %s)", d, at.Format(time.TimeOnly), late, bound)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d checks", checks)
	return worst
}

// proberHolders maps each prober of the setup's task queue to the identity of
// the worker running its RunProber activity.
func (ms *monitorSetup) proberHolders(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	deadline := time.Now().Add(time.Minute)
	for shard := range ms.cfg.Flux.Probers {
		id := contract.ProberWorkflowID(ms.cfg.Temporal.TaskQueue, shard)
		for {
			d, err := ms.c.DescribeWorkflowExecution(context.Background(), id, "")
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range d.GetPendingActivities() {
				if a.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED {
					out[id] = a.GetLastWorkerIdentity()
				}
			}
			if out[id] != "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s runs no RunProber after a minute", id)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	return out
}

// checkDueOnce: no due time of a domain was recorded twice.
func (ms *monitorSetup) checkDueOnce(t *testing.T) {
	t.Helper()
	var twice int
	if err := testenv.SQL(t, ms.db).QueryRow(context.Background(), `
		SELECT count(*) FROM (SELECT domain, due FROM flux_observations WHERE due IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1) d`).Scan(&twice); err != nil {
		t.Fatal(err)
	}
	if twice > 0 {
		t.Errorf("%d due checks recorded twice", twice)
	}
}

// waitChecked waits until every domain has at least n checks recorded since.
func waitChecked(t *testing.T, db *storage.DB, domains []string, since time.Time, n int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var behind int
		err := testenv.SQL(t, db).QueryRow(context.Background(), `
			SELECT count(*) FROM unnest($1::text[]) AS d(domain)
			 WHERE (SELECT count(*) FROM flux_observations o WHERE o.domain = d.domain AND o.at >= $2) < $3`,
			domains, since, n).Scan(&behind)
		if err == nil && behind == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d monitors have not checked %d times since %s (%v)", behind, len(domains), n, since.Format(time.TimeOnly), err)
		}
		time.Sleep(time.Second)
	}
}

// runningMonitors lists the IDs of the FluxMonitor runs on a task queue.
func runningMonitors(t *testing.T, c client.Client, queue string) []string {
	t.Helper()
	resp, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{PageSize: 1000,
		Query: fmt.Sprintf(`WorkflowType = "FluxMonitor" AND ExecutionStatus = "Running" AND TaskQueue = %q`, queue)})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range resp.Executions {
		ids = append(ids, e.Execution.WorkflowId)
	}
	slices.Sort(ids)
	return ids
}

func stopMonitors(c client.Client, queue string) {
	resp, err := c.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{PageSize: 1000,
		Query: fmt.Sprintf(`WorkflowType = "FluxMonitor" AND ExecutionStatus = "Running" AND TaskQueue = %q`, queue)})
	if err != nil {
		return
	}
	for _, e := range resp.Executions {
		_ = c.TerminateWorkflow(context.Background(), e.Execution.WorkflowId, "", "test over")
	}
}
