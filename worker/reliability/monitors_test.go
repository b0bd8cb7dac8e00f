package reliability_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/activities"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/lab/world"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/worker"
)

// cadence is how often the rolling-restart test's monitors check.
const cadence = 10 * time.Second

// TestRollingRestartKeepsEveryMonitor runs flux monitors on two `tip worker`
// processes, then restarts the workers one after the other (SIGTERM, a new
// process, the next), as a deployment does: every monitor still runs, one per
// domain, each keeps checking, and no check ran more than one cadence after it
// was due.
func TestRollingRestartKeepsEveryMonitor(t *testing.T) {
	t.Parallel()
	testenv.Stack(t)
	ctx := context.Background()
	w := world.NewWorld(1)
	clock := world.NewClock(w.Start.Add(24*time.Hour), 1)
	var domains []string
	for _, d := range w.DomainsOf(world.SingleFlux, world.DoubleFlux) {
		if d.TakedownAt.IsZero() || d.TakedownAt.After(clock.Now().Add(24*time.Hour)) {
			domains = append(domains, d.Name)
		}
	}
	domains = domains[:min(len(domains), 10)]
	cfg := newConfig(t, "", testenv.NewDatabase(t))
	cfg.Flux.Resolvers = testenv.LabDNS(t, w, clock)
	cfg.Flux.ASNTable = testenv.LabASNTable(t, w)
	cfg.Flux.MinCheck, cfg.Flux.MaxCheck = cadence, cadence
	cfg.Flux.Lifetime, cfg.Flux.NXDomainFor = time.Hour, time.Hour
	tip := testenv.BuildTip(t)
	c := dial(t, cfg)
	workers := []*testenv.WorkerProcess{testenv.StartWorker(t, tip, cfg), testenv.StartWorker(t, tip, cfg)}
	t.Cleanup(func() { stopMonitors(c, cfg.Temporal.TaskQueue) })

	acts := &activities.Activities{Temporal: c, Flux: worker.FluxConfig(cfg)}
	for _, d := range domains {
		if err := acts.StartMonitor(ctx, d, activities.WatchRequest{Origin: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	db, err := storage.OpenDB(ctx, cfg.Postgres.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	waitChecked(t, db, domains, time.Now(), 1)

	restarted := time.Now()
	for i := range workers {
		workers[i].Stop(t)
		workers[i] = testenv.StartWorker(t, tip, cfg)
	}
	// Every monitor checks twice after the last restart began.
	waitChecked(t, db, domains, restarted, 2)

	running := runningMonitors(t, c, cfg.Temporal.TaskQueue)
	want := make([]string, len(domains))
	for i, d := range domains {
		want[i] = activities.MonitorID(d)
	}
	slices.Sort(want)
	if !slices.Equal(running, want) {
		t.Errorf("running monitors %v, want one for each of %v", running, want)
	}
	var checks int
	var worst time.Duration
	rows, err := db.Pool.Query(ctx, `SELECT domain, at, late_ms FROM flux_observations ORDER BY domain, at`)
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
		if l := time.Duration(ms) * time.Millisecond; l > worst {
			worst = l
		}
		if time.Duration(ms)*time.Millisecond > cadence {
			t.Errorf("%s checked at %s, %d ms after it was due (cadence %s)", d, at.Format(time.TimeOnly), ms, cadence)
		}
	}
	t.Logf("%d monitors on 2 workers restarted one after the other: %d checks, latest %s after due", len(domains), checks, worst)
}

// waitChecked waits until every domain has at least n checks recorded since.
func waitChecked(t *testing.T, db *storage.DB, domains []string, since time.Time, n int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var behind int
		err := db.Pool.QueryRow(context.Background(), `
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
