package reliability_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	workflowpb "go.temporal.io/api/workflow/v1"

	"github.com/tip-project/tip/internal/devstack"
	"github.com/tip-project/tip/internal/testenv"
	labfeeds "github.com/tip-project/tip/lab/feeds"
)

// outage is how long the tests keep PostgreSQL down.
const outage = 20 * time.Second

// TestRefreshSurvivesPostgresDown stops PostgreSQL for 20 s at two points of a
// refresh. Each case has a PostgreSQL of its own, so they run at once: most of
// their time goes in waiting out the outage and the retries' backoff.
func TestRefreshSurvivesPostgresDown(t *testing.T) {
	t.Parallel()
	var wg sync.WaitGroup
	for name, f := range map[string]func(*testing.T){"DuringLoads": postgresDownDuringLoads, "DuringFanIn": postgresDownDuringFanIn} {
		wg.Go(func() { t.Run(name, f) })
	}
	wg.Wait()
}

// postgresDownDuringLoads stops PostgreSQL while the large feed streams into it
// and the slow feed is still downloading: the load in flight is rolled back, the
// loads retry until PostgreSQL is back, and the refresh completes with every
// source listing exactly what the lab serves.
func postgresDownDuringLoads(t *testing.T) {
	l := startLab(t, labfeeds.Options{LargeLines: largeLines})
	sources := []string{"lab-large", "blocklistde-bots", "spamhaus-drop", "feodo-ipblocklist", "openphish"}
	pg := privatePostgres(t)
	cfg := newConfig(t, l.writeCatalog(t, sources...), pg.PostgresDSN())
	runWorker(t, cfg)
	c := dial(t, cfg)

	run := startRefresh(t, c, cfg)
	large := childOf(t, c, run, "lab-large")
	waitLoading(t, c, large)
	postgresDown(t, pg, outage)

	res := finish(t, c, run, 2*time.Minute)
	checkAllSourcesLoaded(t, res, len(sources))
	if n, _ := attempt(t, c, large, "LoadSource"); n < 2 {
		t.Errorf("the large feed loaded in attempt %d: the outage did not interrupt it, the test proved nothing", n)
	}
	st := readStored(t, cfg.Postgres.DSN)
	kids := children(t, c, run)
	for _, s := range sources {
		checkLoaded(t, l, st, s, kids[s])
	}
}

// postgresDownDuringFanIn stops PostgreSQL once the sources are loaded and the
// refresh measures them: the fan-in's activities must outlast the outage as the
// loads do, and the refresh complete.
func postgresDownDuringFanIn(t *testing.T) {
	l := startLab(t, labfeeds.Options{LargeLines: largeLines})
	sources := []string{"lab-large", "spamhaus-drop", "feodo-ipblocklist"}
	pg := privatePostgres(t)
	cfg := newConfig(t, l.writeCatalog(t, sources...), pg.PostgresDSN())
	runWorker(t, cfg)
	c := dial(t, cfg)

	run := startRefresh(t, c, cfg)
	// The metrics over the large feed's listings take a second or two: time
	// enough to stop PostgreSQL under them.
	waitFor(t, c, run.GetID(), time.Minute, "the refresh measures its sources", func(_ *workflowpb.WorkflowExecutionInfo, acts []*workflowpb.PendingActivityInfo, _ []*workflowpb.PendingChildExecutionInfo) bool {
		for _, a := range acts {
			if a.GetActivityType().GetName() == "ComputeMetrics" {
				return true
			}
		}
		return false
	})
	postgresDown(t, pg, outage)

	res := finish(t, c, run, 2*time.Minute)
	for _, want := range []string{fmt.Sprintf("%d sources: %[1]d loaded", len(sources)), "weights of 3 sources computed"} {
		if !strings.Contains(res.Summary, want) {
			t.Errorf("summary %q lacks %q", res.Summary, want)
		}
	}
	if n, _ := attempt(t, c, run.GetID(), "ComputeMetrics"); n < 2 {
		t.Errorf("the metrics were computed in attempt %d: the outage missed them, the test proved nothing", n)
	}
	st := readStored(t, cfg.Postgres.DSN)
	kids := children(t, c, run)
	for _, s := range sources {
		checkLoaded(t, l, st, s, kids[s])
	}
}

// privatePostgres starts a PostgreSQL cluster of the test's own, through the
// code behind `make up`, so that stopping it disturbs no other test.
func privatePostgres(t *testing.T) *devstack.Stack {
	t.Helper()
	ctx := context.Background()
	testenv.Stack(t) // skips with -short, like every integration test
	s, err := devstack.Ephemeral(t.TempDir(), testenv.ToolsDir())
	if err != nil {
		t.Fatal(err)
	}
	s.Log = nil
	if err := s.Start(ctx, devstack.Postgres); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(ctx, devstack.Postgres); err != nil {
			t.Error(err)
		}
	})
	return s
}

// postgresDown stops PostgreSQL (pg_ctl stop -m fast: open transactions roll
// back, clients are cut off), keeps it down for d, and starts it again on the
// same port.
func postgresDown(t *testing.T, s *devstack.Stack, d time.Duration) {
	t.Helper()
	ctx := context.Background()
	port := s.PostgresPort
	if err := s.Stop(ctx, devstack.Postgres); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	time.Sleep(d)
	if err := s.Start(ctx, devstack.Postgres); err != nil {
		t.Fatal(err)
	}
	if s.PostgresPort != port {
		t.Fatalf("PostgreSQL came back on port %d, not %d: another program took its port while it was down", s.PostgresPort, port)
	}
	t.Logf("PostgreSQL was down for %s", time.Since(down).Round(100*time.Millisecond))
}
