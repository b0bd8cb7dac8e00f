package reliability_test

import (
	"context"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/internal/devstack"
	"github.com/tip-project/tip/internal/testenv"
	labfeeds "github.com/tip-project/tip/lab/feeds"
)

// clusterSources are the feeds of the several-worker tests: the large one, whose
// load is the one interrupted, the slow one, and ordinary ones.
var clusterSources = []string{"lab-large", "blocklistde-bots", "spamhaus-drop", "feodo-ipblocklist", "blocklistde-all", "openphish"}

// TestOneOfTwoWorkersKilledMidRefresh runs two `tip worker` processes on one task
// queue, as a deployment that scaled out does, and SIGKILLs the one loading the
// large feed: the other finishes the refresh alone — the load retried by it, every
// source listing exactly what the lab serves, each recorded once.
func TestOneOfTwoWorkersKilledMidRefresh(t *testing.T) {
	t.Parallel()
	l := startLab(t, labfeeds.Options{LargeLines: largeLines})
	cfg := newConfig(t, l.writeCatalog(t, clusterSources...), testenv.NewDatabase(t))
	tip := testenv.BuildTip(t)
	c := dial(t, cfg)
	workers := []*testenv.WorkerProcess{testenv.StartWorker(t, tip, cfg), testenv.StartWorker(t, tip, cfg)}

	run := startRefresh(t, c, cfg)
	large := childOf(t, c, run, "lab-large")
	waitLoading(t, c, large)
	holder := loadHolder(t, c, large)
	var killed, survivor *testenv.WorkerProcess
	for _, w := range workers {
		if w.Identity == holder {
			killed = w
		} else {
			survivor = w
		}
	}
	if killed == nil || survivor == nil {
		t.Fatalf("the large feed loads on %q, none of the workers %q and %q", holder, workers[0].Identity, workers[1].Identity)
	}
	killed.Kill(t)
	expireAttempts(t, c, cfg, run, killed.Identity)

	res := finish(t, c, run, 2*time.Minute)
	checkAllSourcesLoaded(t, res, len(clusterSources))
	if n, identity := attempt(t, c, large, "LoadSource"); n < 2 || identity != survivor.Identity {
		t.Errorf("the large feed's load completed in attempt %d by %q; want a retry by the surviving worker %q", n, identity, survivor.Identity)
	}
	checkAllLoaded(t, l, cfg.Postgres.DSN, children(t, c, run))
}

// TestTemporalRestartedMidRefresh restarts the Temporal server (the dev server on
// its SQLite file, or with TIP_TEST_STACK=prod the server on PostgreSQL) while two
// workers load the feeds of a refresh: the workers reconnect, and the refresh
// completes with every source listing exactly what the lab serves, recorded once.
// It restarts the package's shared server, so it does not run in parallel: Go
// runs it before the parallel tests.
func TestTemporalRestartedMidRefresh(t *testing.T) {
	restartMidRefresh(t, devstack.Temporal)
}

// TestPostgresRestartedMidRefresh restarts the stack's PostgreSQL — TIP's
// database, and with TIP_TEST_STACK=prod the Temporal server's persistence and
// visibility too — while two workers load the feeds of a refresh: the loads in
// flight fail and retry, and the refresh completes with every source listing
// exactly what the lab serves, recorded once. Not in parallel, as above.
func TestPostgresRestartedMidRefresh(t *testing.T) {
	restartMidRefresh(t, devstack.Postgres)
}

// restartMidRefresh stops a service of the shared stack while the large feed
// loads, starts it again after a few seconds on the same address, and checks the
// refresh.
func restartMidRefresh(t *testing.T, svc devstack.Service) {
	l := startLab(t, labfeeds.Options{LargeLines: largeLines})
	cfg := newConfig(t, l.writeCatalog(t, clusterSources...), testenv.NewDatabase(t))
	tip := testenv.BuildTip(t)
	c := dial(t, cfg)
	testenv.StartWorker(t, tip, cfg)
	testenv.StartWorker(t, tip, cfg)

	run := startRefresh(t, c, cfg)
	waitLoading(t, c, childOf(t, c, run, "lab-large"))
	s := testenv.Stack(t)
	ctx := context.Background()
	before := servicePID(t, s, svc)
	addresses := func() string { return s.TemporalAddress() + " " + s.PostgresDSN() }
	was := addresses()
	if err := s.Stop(ctx, svc); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // polls, heartbeats and loads fail meanwhile
	if err := s.Start(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if now := addresses(); now != was {
		t.Fatalf("%s came back elsewhere: %s, not %s", svc, now, was)
	}
	if after := servicePID(t, s, svc); after == before {
		t.Fatalf("%s was not restarted (pid %d)", svc, after)
	}
	res := finish(t, c, run, 3*time.Minute)
	checkAllSourcesLoaded(t, res, len(clusterSources))
	checkAllLoaded(t, l, cfg.Postgres.DSN, children(t, c, run))
}

func servicePID(t *testing.T, s *devstack.Stack, svc devstack.Service) int {
	t.Helper()
	pid, ok := s.PID(context.Background(), svc)
	if !ok {
		t.Fatalf("%s is not running", svc)
	}
	return pid
}

// loadHolder is the identity of the worker running a child's LoadSource.
func loadHolder(t *testing.T, c client.Client, childID string) string {
	t.Helper()
	d, err := c.DescribeWorkflowExecution(context.Background(), childID, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range d.GetPendingActivities() {
		if a.GetActivityType().GetName() == "LoadSource" && a.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED {
			return a.GetLastWorkerIdentity()
		}
	}
	t.Fatalf("%s has no LoadSource running", childID)
	return ""
}

// checkAllLoaded: every cluster source lists what the lab serves, with one run
// recorded for it.
func checkAllLoaded(t *testing.T, l *lab, dsn string, kids map[string]string) {
	t.Helper()
	checkAllLoadedOf(t, l, dsn, clusterSources, kids)
}
