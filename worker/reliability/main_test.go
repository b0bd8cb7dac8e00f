// Package reliability_test drives blacklist refreshes through failures on the real
// stack (Temporal dev server, PostgreSQL, MinIO from internal/testenv) and checks
// that every source ends up listing exactly what the lab serves: a worker killed
// in the middle of a load, PostgreSQL stopped during a refresh, broken feeds. It
// is a package of its own so that its slow tests run beside the worker
// package's rather than after them.
package reliability_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/feeds"
	"github.com/tip-project/tip/internal/testenv"
	labfeeds "github.com/tip-project/tip/lab/feeds"
	"github.com/tip-project/tip/lab/world"
	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/worker"
	"github.com/tip-project/tip/workflows"
	"github.com/tip-project/tip/workflows/contract"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// labAt is the lab time the tests serve their feeds at: two lab days in, when
// entries have come and gone and the false positives are listed.
var labAt = world.DefaultStart.Add(48 * time.Hour)

// largeLines sizes the lab's large feed. At the lab's default of 1,000,000 lines
// one load takes about 50 s here, mostly in the merge; 100,000 lines keep a load
// long enough to interrupt (a few seconds) while the package stays fast.
const largeLines = 100_000

// lab serves the lab's feeds on a loopback port at labAt.
type lab struct {
	*labfeeds.Server
	url string
}

func startLab(t *testing.T, opts labfeeds.Options) *lab {
	t.Helper()
	testenv.Stack(t) // skips with -short before the lab builds its world
	s := labfeeds.New(world.NewWorld(1), world.FixedClock(labAt), opts)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return &lab{Server: s, url: srv.URL}
}

// feed describes one of the lab's feeds.
func (l *lab) feed(t *testing.T, name string) labfeeds.Feed {
	t.Helper()
	for _, f := range l.Catalog() {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("the lab has no feed %q", name)
	return labfeeds.Feed{}
}

// writeCatalog writes a source catalog of the named lab feeds and returns its path.
func (l *lab) writeCatalog(t *testing.T, names ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("allow_private: true\nsources:\n") // the lab is on loopback
	for _, n := range names {
		f := l.feed(t, n)
		fmt.Fprintf(&b, "  - {name: %s, url: %q, format: %s, type: %s}\n", f.Name, l.url+f.Path, f.Format, f.Indicator)
	}
	path := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// want is what a source must list after loading the lab's feed: the values TIP
// keeps and the number of entries it must drop as private or reserved space. The
// lab's truth says it for every feed but the large one, which is generated: its
// served lines are normalised instead.
func (l *lab) want(t *testing.T, name string) (values map[string]bool, dropped int) {
	t.Helper()
	values = map[string]bool{}
	for _, ft := range l.Truth(labAt) {
		if ft.Feed != name {
			continue
		}
		if ft.Behaviour == labfeeds.Large {
			dropped = l.wantLarge(t, ft, values)
			return values, dropped
		}
		for _, e := range ft.Entries {
			if e.Set == "fp-reserved-addr" || e.Set == "fp-bogon" {
				dropped++
				continue
			}
			values[e.Value] = true
		}
		return values, dropped
	}
	t.Fatalf("the lab's truth has no feed %q", name)
	return nil, 0
}

func (l *lab) wantLarge(t *testing.T, ft labfeeds.FeedTruth, values map[string]bool) (dropped int) {
	t.Helper()
	resp, err := http.Get(l.url + ft.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		lines++
		ind, drop, err := feeds.Normalize(feeds.IPv4, sc.Text())
		switch {
		case err != nil:
			t.Fatalf("%s line %d: %v", ft.Feed, lines, err)
		case drop != "":
			dropped++
		default:
			values[ind.Value] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if lines != ft.Count {
		t.Fatalf("%s serves %d lines, its truth says %d", ft.Feed, lines, ft.Count)
	}
	return dropped
}

// newConfig points a worker at the test stack's Temporal and MinIO (a fresh
// bucket), the database at dsn, and catalog.
func newConfig(t *testing.T, catalog, dsn string) config.Config {
	cfg := testenv.Config(t)
	cfg.Postgres.DSN = dsn
	cfg = testenv.NewBucket(t, cfg)
	cfg.Blacklists.Catalog = catalog
	return cfg
}

// runWorker runs a worker in this process until the test ends.
func runWorker(t *testing.T, cfg config.Config) {
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- worker.Run(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	})
}

func dial(t *testing.T, cfg config.Config) client.Client {
	t.Helper()
	c, err := starter.Dial(context.Background(), cfg.Temporal, nil, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// startRefresh starts a refresh of every source of the catalog.
func startRefresh(t *testing.T, c client.Client, cfg config.Config) client.WorkflowRun {
	t.Helper()
	run, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: "blacklist-refresh/" + t.Name(), TaskQueue: cfg.Temporal.TaskQueue,
	}, workflows.BlacklistRefresh, contract.ModuleInput{Module: contract.BlacklistModule})
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// finish waits for a refresh and fails the test, with the refresh's history,
// if it fails or takes longer than timeout.
func finish(t *testing.T, c client.Client, run client.WorkflowRun, timeout time.Duration) contract.ModuleResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var res contract.ModuleResult
	if err := run.Get(ctx, &res); err != nil {
		iter := c.GetWorkflowHistory(context.Background(), run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for iter.HasNext() {
			ev, err := iter.Next()
			if err != nil {
				break
			}
			t.Logf("%s %s %v", ev.GetEventTime().AsTime().Format(time.StampMilli), ev.GetEventType(), ev.GetAttributes())
		}
		t.Fatalf("refresh %s: %v", run.GetID(), err)
	}
	return res
}

// children maps each source of a refresh to its child workflow's ID, which is
// also the key of the source's run in source_runs.
func children(t *testing.T, c client.Client, run client.WorkflowRun) map[string]string {
	t.Helper()
	out := map[string]string{}
	iter := c.GetWorkflowHistory(context.Background(), run.GetID(), run.GetRunID(), false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.GetStartChildWorkflowExecutionInitiatedEventAttributes(); a != nil {
			id := a.GetWorkflowId()
			out[id[len("blacklist/"):strings.LastIndex(id, "/")]] = id
		}
	}
	return out
}

// waitFor polls describe on a workflow every 50 ms until done says so, and
// fails the test after timeout.
func waitFor(t *testing.T, c client.Client, workflowID string, timeout time.Duration, what string,
	done func(*workflowpb.WorkflowExecutionInfo, []*workflowpb.PendingActivityInfo, []*workflowpb.PendingChildExecutionInfo) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d, err := c.DescribeWorkflowExecution(context.Background(), workflowID, "")
		if err == nil && done(d.GetWorkflowExecutionInfo(), d.GetPendingActivities(), d.GetPendingChildren()) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s (last error %v)", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// childOf waits until a refresh started the child of source and returns its ID.
func childOf(t *testing.T, c client.Client, run client.WorkflowRun, source string) string {
	t.Helper()
	var id string
	waitFor(t, c, run.GetID(), 30*time.Second, "the child of "+source+" starts", func(_ *workflowpb.WorkflowExecutionInfo, _ []*workflowpb.PendingActivityInfo, kids []*workflowpb.PendingChildExecutionInfo) bool {
		for _, k := range kids {
			if strings.HasPrefix(k.GetWorkflowId(), "blacklist/"+source+"/") {
				id = k.GetWorkflowId()
				return true
			}
		}
		return false
	})
	return id
}

// waitLoading waits until the LoadSource activity of a source's child has
// heartbeated: rows are streaming into PostgreSQL.
func waitLoading(t *testing.T, c client.Client, childID string) {
	t.Helper()
	waitFor(t, c, childID, 60*time.Second, childID+" loads", func(info *workflowpb.WorkflowExecutionInfo, acts []*workflowpb.PendingActivityInfo, _ []*workflowpb.PendingChildExecutionInfo) bool {
		if s := info.GetStatus(); s != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			t.Fatalf("%s ended (%s) before its load could be interrupted; make the large feed larger", childID, s)
		}
		for _, a := range acts {
			if a.GetActivityType().GetName() == "LoadSource" && a.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED && a.GetLastHeartbeatTime() != nil {
				return true
			}
		}
		return false
	})
}

// attempt returns the attempt number and worker identity of the last run of an
// activity type in a workflow, from its history.
func attempt(t *testing.T, c client.Client, workflowID, activityType string) (n int32, identity string) {
	t.Helper()
	scheduled := map[int64]string{}
	iter := c.GetWorkflowHistory(context.Background(), workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			scheduled[ev.GetEventId()] = a.GetActivityType().GetName()
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && scheduled[a.GetScheduledEventId()] == activityType {
			n, identity = a.GetAttempt(), a.GetIdentity()
		}
	}
	return n, identity
}

// stored is what PostgreSQL holds after refreshes: each source's active
// listings and recorded runs.
type stored struct {
	listed map[string]map[string]bool
	runs   map[string][]contract.LoadResult
	keys   map[string][]string // run keys, in the order of runs
}

func readStored(t *testing.T, dsn string) stored {
	t.Helper()
	ctx := context.Background()
	db, err := storage.OpenDB(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := stored{listed: map[string]map[string]bool{}, runs: map[string][]contract.LoadResult{}, keys: map[string][]string{}}
	rows, err := testenv.SQL(t, db).Query(ctx, `SELECT l.source, i.value FROM listings l JOIN indicators i ON i.id = l.indicator_id WHERE l.active`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var source, value string
		if err := rows.Scan(&source, &value); err != nil {
			t.Fatal(err)
		}
		if st.listed[source] == nil {
			st.listed[source] = map[string]bool{}
		}
		st.listed[source][value] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows, err = testenv.SQL(t, db).Query(ctx, `SELECT source, run_key, status, entries, added, removed, bad_lines, dropped, error
		FROM source_runs ORDER BY started_at`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var r contract.LoadResult
		var key string
		if err := rows.Scan(&r.Source, &key, &r.Status, &r.Entries, &r.Added, &r.Removed, &r.Bad, &r.Dropped, &r.Error); err != nil {
			t.Fatal(err)
		}
		st.runs[r.Source] = append(st.runs[r.Source], r)
		st.keys[r.Source] = append(st.keys[r.Source], key)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return st
}

// checkAllSourcesLoaded: the refresh's summary says all n sources loaded.
func checkAllSourcesLoaded(t *testing.T, res contract.ModuleResult, n int) {
	t.Helper()
	if want := fmt.Sprintf("%d sources: %[1]d loaded", n); !strings.Contains(res.Summary, want) {
		t.Errorf("summary %q lacks %q", res.Summary, want)
	}
}

// checkLoaded asserts that a source lists exactly what the lab serves, nothing
// lost and nothing extra, and that the refresh recorded one loaded run for it,
// under the child's run key, whose counts match (a first load adds everything).
func checkLoaded(t *testing.T, l *lab, st stored, source, runKey string) {
	t.Helper()
	want, dropped := l.want(t, source)
	got := st.listed[source]
	var missing, extra []string
	for v := range want {
		if !got[v] {
			missing = append(missing, v)
		}
	}
	for v := range got {
		if !want[v] {
			extra = append(extra, v)
		}
	}
	if len(missing)+len(extra) > 0 {
		slices.Sort(missing)
		slices.Sort(extra)
		t.Errorf("%s lists %d indicators, the lab %d: %d missing %v, %d extra %v",
			source, len(got), len(want), len(missing), head(missing), len(extra), head(extra))
	}
	runs := st.runs[source]
	if len(runs) != 1 || st.keys[source][0] != runKey {
		t.Errorf("%s: runs %+v under keys %v, want one under %s", source, runs, st.keys[source], runKey)
		return
	}
	w := contract.LoadResult{Source: source, Status: contract.RunLoaded, Entries: len(want), Added: len(want), Dropped: dropped}
	if runs[0] != w {
		t.Errorf("%s: run recorded as %+v, want %+v", source, runs[0], w)
	}
}

func head(s []string) []string { return s[:min(len(s), 5)] }
