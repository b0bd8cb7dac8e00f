package activities

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/ipasn"
	"github.com/tip-project/tip/lab"
	labfeeds "github.com/tip-project/tip/lab/feeds"
	"github.com/tip-project/tip/lab/world"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// stack is the activities of the blacklist and spam modules on a fresh
// database and bucket of the test stack, wired as a worker wires them, with the
// store and the blob store at hand.
type stack struct {
	*Blacklist
	*Spam
	*AgentSync
	DB    *storage.DB
	Blobs *storage.BlobStore
}

// newActivities connects to a fresh database and bucket of the test stack.
func newActivities(t *testing.T) *stack {
	t.Helper()
	cfg := testenv.NewBucket(t, testenv.Config(t))
	cfg.Postgres.DSN = testenv.NewDatabase(t)
	db, blobs, err := storage.Prepare(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	downloads := &Downloads{Blobs: blobs}
	// The tests' ASN tables are served on loopback.
	traps := Spamtraps{Store: db, Blobs: blobs, ASN: NewASNTables(true, ipasn.Limits{})}
	return &stack{Blacklist: &Blacklist{Store: db, Blobs: blobs, Downloads: downloads},
		Spam: &Spam{Spamtraps: traps, Downloads: downloads}, AgentSync: &AgentSync{Spamtraps: traps}, DB: db, Blobs: blobs}
}

// setSpamCatalog points the spam collectors at a spamtrap catalog.
func (s *stack) setSpamCatalog(path string) { s.Spam.Catalog, s.AgentSync.Catalog = path, path }

func fetch(t *testing.T, a *stack, src catalog.Source) (contract.FetchResult, error) {
	t.Helper()
	return runActivity[contract.FetchResult](t, a, a.FetchSource, src)
}

func labSource(srv *httptest.Server, name, path string) catalog.Source {
	return catalog.Source{Name: name, URL: srv.URL + path, Format: "spamhaus-drop", Type: "cidr", Enabled: true,
		Prior: 0.9, Timeout: 10 * time.Second, SizeLimit: 64 << 20, AllowPrivate: true}
}

func TestFetchStoresThenAsksConditionally(t *testing.T) {
	ctx := context.Background()
	a := newActivities(t)
	clock := world.FixedClock(world.DefaultStart.Add(30 * time.Hour))
	srv := httptest.NewServer(labfeeds.New(world.NewWorld(1), clock, labfeeds.Options{}).Handler())
	defer srv.Close()
	src := labSource(srv, "feodo-ipblocklist", "/feeds/feodotracker/ipblocklist.txt")

	first, err := fetch(t, a, src)
	if err != nil {
		t.Fatal(err)
	}
	if first.Status != contract.FetchChanged || first.HTTPStatus != 200 || first.ETag == "" || first.Bytes == 0 {
		t.Fatalf("first fetch = %+v", first)
	}
	resp, _ := http.Get(src.URL)
	want, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	got, err := a.Blobs.ReadAll(ctx, first.SHA256)
	if err != nil || string(got) != string(want) {
		t.Fatalf("stored blob differs from the feed (%d vs %d bytes): %v", len(got), len(want), err)
	}

	// Not yet loaded: no validators stored, so the same bytes come again — and are
	// recognised as changed, since nothing was loaded.
	again, _ := fetch(t, a, src)
	if again.Status != contract.FetchChanged || again.SHA256 != first.SHA256 {
		t.Fatalf("refetch before load = %+v", again)
	}
	// Once loaded, the next fetch is conditional and answered 304.
	feodo := src
	feodo.Format = "feodo-txt" // the feed's own format: the load succeeds and stores the validators
	if l := load(t, a, contract.LoadInput{Source: feodo, Fetch: first, RunKey: "first"}); l.Status != contract.RunLoaded {
		t.Fatalf("load of the first fetch = %+v", l)
	}
	cond, _ := fetch(t, a, src)
	if cond.Status != contract.FetchUnchanged || cond.HTTPStatus != http.StatusNotModified || cond.SHA256 != first.SHA256 {
		t.Fatalf("conditional fetch = %+v", cond)
	}
	// A source fetched successfully less than its interval ago is not due.
	hourly := src
	hourly.Interval = time.Hour
	if notDue, _ := fetch(t, a, hourly); notDue.Status != contract.FetchNotDue || notDue.HTTPStatus != 0 {
		t.Fatalf("fetch within the interval = %+v", notDue)
	}
	if l := load(t, a, contract.LoadInput{Source: hourly, Fetch: contract.FetchResult{Source: src.Name, Status: contract.FetchNotDue}, RunKey: "skip"}); l.Status != contract.RunSkipped {
		t.Fatalf("load of a skipped fetch = %+v", l)
	}
	// A lab day later the feed changed: a new blob.
	clock.Advance(24 * time.Hour)
	next, _ := fetch(t, a, src)
	if next.Status != contract.FetchChanged || next.SHA256 == first.SHA256 {
		t.Fatalf("fetch after the feed changed = %+v", next)
	}
}

func TestFetchOutcomesOfBrokenFeeds(t *testing.T) {
	a := newActivities(t)
	srv := httptest.NewServer(labfeeds.New(world.NewWorld(1), world.FixedClock(world.DefaultStart.Add(40*time.Hour)), labfeeds.Options{}).Handler())
	defer srv.Close()

	dead, err := fetch(t, a, labSource(srv, "et-compromised", "/feeds/emergingthreats/compromised-ips.txt"))
	if err != nil || dead.Status != contract.FetchDead || dead.HTTPStatus != 404 || !strings.Contains(dead.Error, "gone") {
		t.Fatalf("dead feed = %+v, %v", dead, err)
	}
	big := labSource(srv, "lab-large", "/feeds/lab/large.txt")
	big.SizeLimit = 1 << 20
	tooBig, err := fetch(t, a, big)
	if err != nil || tooBig.Status != contract.FetchFailed || !strings.Contains(tooBig.Error, "size limit") {
		t.Fatalf("oversized feed = %+v, %v", tooBig, err)
	}

	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream down", http.StatusBadGateway)
	}))
	defer broken.Close()
	if _, err := fetch(t, a, labSource(broken, "flaky", "/x")); err == nil || !strings.Contains(err.Error(), "502") {
		t.Fatalf("a 502 must be a retryable error, got %v", err)
	}
	forbidden := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no key", http.StatusForbidden)
	}))
	defer forbidden.Close()
	res, err := fetch(t, a, labSource(forbidden, "needs-key", "/x"))
	if err != nil || res.Status != contract.FetchFailed || !strings.Contains(res.Error, "403") {
		t.Fatalf("a 403 = %+v, %v", res, err)
	}
}

func TestRateLimitSpacesEveryRequest(t *testing.T) {
	a := newActivities(t)
	var requests atomic.Int32
	status := atomic.Int32{}
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.WriteHeader(int(status.Load()))
		io.WriteString(w, "1.2.3.0/24 ; SBL1\n")
	}))
	defer srv.Close()
	src := labSource(srv, "limited", "/drop.txt")
	src.RateLimit = time.Hour

	first, err := fetch(t, a, src)
	if err != nil || first.Status != contract.FetchChanged {
		t.Fatalf("first fetch = %+v, %v", first, err)
	}
	// A manual refresh right after: no request, and the load skips it with the reason.
	again, err := fetch(t, a, src)
	if err != nil || again.Status != contract.FetchRateLimited || !strings.Contains(again.Error, "rate limit 1h0m0s") || requests.Load() != 1 {
		t.Fatalf("second fetch = %+v, %v after %d requests", again, err, requests.Load())
	}
	if l := load(t, a, contract.LoadInput{Source: src, Fetch: again, RunKey: "r2"}); l.Status != contract.RunSkipped || l.Error != again.Error {
		t.Fatalf("load of a rate-limited fetch = %+v", l)
	}

	// A failing upstream: Temporal's retry must not send a second request within
	// the limit; the retried attempt ends the fetch as failed, keeping the cause.
	src.Name = "limited-broken"
	status.Store(http.StatusBadGateway)
	requests.Store(0)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterActivity(a)
	env.ExecuteWorkflow(func(ctx workflow.Context) (contract.FetchResult, error) {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute,
			RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3}})
		var res contract.FetchResult
		err := workflow.ExecuteActivity(ctx, a.FetchSource, src).Get(ctx, &res)
		return res, err
	})
	var res contract.FetchResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.Status != contract.FetchFailed || !strings.Contains(res.Error, "502") || !strings.Contains(res.Error, "no request before") || requests.Load() != 1 {
		t.Fatalf("retried fetch = %+v after %d requests", res, requests.Load())
	}
}

// A source reaches only public addresses unless its catalog allows private
// ones: a feed on loopback, or one redirecting to the cloud metadata service,
// ends the fetch as failed, saying why, without a request to it.
func TestFetchRefusesPrivateDestinations(t *testing.T) {
	a := newActivities(t)
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/iam/security-credentials/", http.StatusFound)
			return
		}
		io.WriteString(w, "1.2.3.0/24 ; SBL1\n")
	}))
	defer srv.Close()

	src := labSource(srv, "on-loopback", "/drop.txt")
	src.AllowPrivate = false
	res, err := fetch(t, a, src)
	if err != nil || res.Status != contract.FetchFailed || !strings.Contains(res.Error, "127.0.0.1: loopback, not a public address") ||
		!strings.Contains(res.Error, "allow_private") || requests.Load() != 0 {
		t.Fatalf("a source on loopback = %+v, %v after %d requests", res, err, requests.Load())
	}
	mapped := src
	mapped.Name, mapped.URL = "mapped", strings.Replace(srv.URL, "127.0.0.1", "[::ffff:127.0.0.1]", 1)+"/drop.txt"
	if res, err := fetch(t, a, mapped); err != nil || res.Status != contract.FetchFailed || !strings.Contains(res.Error, "loopback") || requests.Load() != 0 {
		t.Fatalf("an IPv4-mapped loopback URL = %+v, %v after %d requests", res, err, requests.Load())
	}

	// The lab's catalog allows private destinations: the same feed loads.
	src.AllowPrivate = true
	if res, err := fetch(t, a, src); err != nil || res.Status != contract.FetchChanged {
		t.Fatalf("with allow_private = %+v, %v", res, err)
	}
	// Even so, a redirect to the cloud metadata service is refused.
	moved := labSource(srv, "moved", "/moved")
	res, err = fetch(t, a, moved)
	if err != nil || res.Status != contract.FetchFailed || !strings.Contains(res.Error, "169.254.169.254: the cloud metadata service") ||
		strings.Contains(res.Error, "allow_private") {
		t.Fatalf("a redirect to the metadata service = %+v, %v", res, err)
	}
}

// The shipped lab catalog allows its feeds on loopback: each kind of download
// it names (a feed, an allowlist) goes through.
func TestLabCatalogReachesTheLab(t *testing.T) {
	a := newActivities(t)
	w := world.NewWorld(1)
	clock := world.FixedClock(world.DefaultStart.Add(30 * time.Hour))
	mux := http.NewServeMux()
	mux.Handle("/feeds/", labfeeds.New(w, clock, labfeeds.Options{}).Handler())
	mux.Handle("/allowlists/", lab.AllowlistHandler(w, slog.New(slog.DiscardHandler)))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	data, err := os.ReadFile(filepath.Join("..", "config", "lab.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "lab.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(data), "http://127.0.0.1:8480", srv.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Load(path, KnownFormat)
	if err != nil {
		t.Fatal(err)
	}
	feed, _ := c.Source("spamhaus-drop")
	for _, src := range []catalog.Source{feed, c.Allowlists[0]} {
		if res, err := fetch(t, a, src); err != nil || res.Status != contract.FetchChanged {
			t.Errorf("%s: %+v, %v", src.Name, res, err)
		}
	}
}
