package reliability_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tip-project/tip/internal/devstack"
	"github.com/tip-project/tip/internal/testenv"
	labfeeds "github.com/tip-project/tip/lab/feeds"
	"github.com/tip-project/tip/lab/world"
)

// inFlight wraps a handler, holds every request for delay, and records the most
// requests it had at once.
type inFlight struct {
	next  http.Handler
	delay time.Duration

	mu       sync.Mutex
	now, max int
	total    int
}

func (f *inFlight) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.now++
	f.total++
	f.max = max(f.max, f.now)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.now--
		f.mu.Unlock()
	}()
	time.Sleep(f.delay)
	f.next.ServeHTTP(w, r)
}

func (f *inFlight) peak() (most, total int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.max, f.total
}

// TestTwoWorkersKeepToTheFetchesPerHost refreshes ten feeds of one host with two
// `tip worker` processes (each would fetch up to eight sources at once): with
// upstream.fetches_per_host at 2 the host never has more than two downloads in
// flight, however many workers run. The same refresh with no bound, on a fresh
// database, shows the host would otherwise see more: the measurement can fail.
func TestTwoWorkersKeepToTheFetchesPerHost(t *testing.T) {
	t.Parallel()
	testenv.Stack(t)
	s := labfeeds.New(world.NewWorld(1), world.FixedClock(labAt), labfeeds.Options{})
	var names []string
	for _, f := range s.Catalog() {
		if f.Behaviour == labfeeds.OK && len(names) < 10 {
			names = append(names, f.Name)
		}
	}
	tip := testenv.BuildTip(t)
	for _, bound := range []int{2, 0} {
		t.Run(fmt.Sprintf("fetches_per_host=%d", bound), func(t *testing.T) {
			counter := &inFlight{next: s.Handler(), delay: 400 * time.Millisecond}
			srv := httptest.NewServer(counter)
			t.Cleanup(srv.Close)
			l := &lab{Server: s, url: srv.URL}
			cfg := newConfig(t, l.writeCatalog(t, names...), testenv.NewDatabase(t))
			cfg.Upstream.FetchesPerHost = bound
			c := dial(t, cfg)
			testenv.StartWorker(t, tip, cfg)
			testenv.StartWorker(t, tip, cfg)

			run := startRefresh(t, c, cfg)
			res := finish(t, c, run, 2*time.Minute)
			checkAllSourcesLoaded(t, res, len(names))
			most, total := counter.peak()
			t.Logf("%d requests, at most %d at once", total, most)
			switch {
			case total < len(names):
				t.Errorf("%d requests for %d feeds", total, len(names))
			case bound > 0 && most > bound:
				t.Errorf("%d downloads at once from one host, bound %d", most, bound)
			case bound > 0 && most < bound:
				t.Errorf("at most %d download at once: the bound of %d was never reached, the test proved nothing", most, bound)
			case bound == 0 && most <= 2:
				t.Errorf("with no bound, at most %d downloads at once: the measurement cannot tell a bound from none", most)
			}
			checkAllLoadedOf(t, l, cfg.Postgres.DSN, names, children(t, c, run))
		})
	}
}

// TestWorkersShareTheDNSRate starts three workers with flux.qps at 300: each
// takes a third as its per-server rate, and when one stops the other two take a
// half each (as their metrics say).
func TestWorkersShareTheDNSRate(t *testing.T) {
	t.Parallel()
	testenv.Stack(t)
	cfg := newConfig(t, "", testenv.NewDatabase(t))
	cfg.Flux.QPS = 300
	tip := testenv.BuildTip(t)
	ports, err := devstack.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	var workers []*testenv.WorkerProcess
	var metrics []string
	for _, p := range ports {
		wc := cfg
		wc.Worker.MetricsAddress = "127.0.0.1:" + strconv.Itoa(p)
		workers = append(workers, testenv.StartWorker(t, tip, wc))
		metrics = append(metrics, "http://"+wc.Worker.MetricsAddress+"/metrics")
	}
	waitShare := func(urls []string, want float64) {
		t.Helper()
		deadline := time.Now().Add(40 * time.Second)
		for {
			var got []float64
			for _, u := range urls {
				got = append(got, gauge(t, u, "tip_flux_dns_qps_share"))
			}
			ok := true
			for _, g := range got {
				ok = ok && g == want
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("DNS rate shares %v, want %v each", got, want)
			}
			time.Sleep(time.Second)
		}
	}
	waitShare(metrics, 100)
	workers[2].Stop(t)
	waitShare(metrics[:2], 150)
}

// gauge reads one metric's value from a Prometheus text page; -1 when absent.
func gauge(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return -1 // not serving yet
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %q", name, v)
			}
			return f
		}
	}
	return -1
}

// checkAllLoadedOf: each named source lists what the lab serves, recorded once.
func checkAllLoadedOf(t *testing.T, l *lab, dsn string, names []string, kids map[string]string) {
	t.Helper()
	st := readStored(t, dsn)
	for _, n := range names {
		checkLoaded(t, l, st, n, kids[n])
	}
	if len(st.runs) != len(names) {
		t.Errorf("runs recorded for %d sources, want %d", len(st.runs), len(names))
	}
}
