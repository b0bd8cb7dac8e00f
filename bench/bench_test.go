//go:build bench

package bench

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tip-project/tip/activities"
	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/internal/testenv"
	tiplab "github.com/tip-project/tip/lab"
	labfeeds "github.com/tip-project/tip/lab/feeds"
	"github.com/tip-project/tip/lab/world"
	"github.com/tip-project/tip/storage"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestBench runs the measurements in order, parse first while nothing else runs,
// and writes their lines to $TIP_BENCH_RESULTS when it is set (make bench).
func TestBench(t *testing.T) {
	l := newLab(t)
	r := newReport()
	t.Run("parse", func(t *testing.T) { benchParse(t, l, r) })
	t.Run("load", func(t *testing.T) { benchLoad(t, l, r) })
	t.Run("refresh", func(t *testing.T) { benchRefresh(t, l, r) })
	t.Run("mail", func(t *testing.T) { benchMail(t, r) })
	t.Run("ingest", func(t *testing.T) { benchIngest(t, r) })
	t.Run("agent", func(t *testing.T) { benchAgent(t, r) })
	t.Run("agent-pull", func(t *testing.T) { benchAgentPull(t, r) })
	t.Run("dns", func(t *testing.T) { benchDNS(t, l, r) })
	t.Run("lookup", func(t *testing.T) { benchLookup(t, l, r) })
	t.Run("storage", func(t *testing.T) { benchStorage(t, r) })
	r.write(t)
}

// lab is the lab's feeds and allowlists on a loopback HTTP server, and the lab
// catalog (config/lab.yaml) pointed at it.
type lab struct {
	clock   *world.Clock
	url     string
	catalog string         // path of the rewritten catalog
	sources []string       // its enabled sources, in catalog order
	large   catalog.Source // its source for the lab's large feed
	path    string         // the large feed's path on the server
}

// labTime is when every measurement looks at the lab: two lab days in, so every
// feed lists something.
var labTime = world.DefaultStart.Add(48 * time.Hour)

func newLab(t *testing.T) *lab {
	t.Helper()
	w := world.NewWorld(1)
	clock := world.FixedClock(labTime)
	// The slow feed drips its body with a pause per 64 bytes; the lab's default of
	// 2 s would measure the lab's pause rather than TIP (the end-to-end test does
	// the same).
	feeds := labfeeds.New(w, clock, labfeeds.Options{SlowChunkDelay: time.Millisecond})
	mux := http.NewServeMux()
	mux.Handle("/feeds/", feeds.Handler())
	mux.Handle("/allowlists/", tiplab.AllowlistHandler(w, slog.New(slog.DiscardHandler)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	data, err := os.ReadFile(filepath.Join("..", "config", "lab.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "lab.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(data), "http://127.0.0.1:8480", srv.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Load(path, activities.KnownFormat)
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{clock: clock, url: srv.URL, catalog: path}
	for _, s := range c.Enabled() {
		l.sources = append(l.sources, s.Name)
	}
	for _, f := range feeds.Catalog() {
		if f.Behaviour != labfeeds.Large {
			continue
		}
		for _, s := range c.Sources {
			if s.URL == srv.URL+f.Path {
				l.large, l.path = s, f.Path
			}
		}
	}
	if l.large.Name == "" {
		t.Fatal("config/lab.yaml has no source for the lab's large feed")
	}
	return l
}

// largeBody is the large feed as the lab serves it now, generated in memory.
func (l *lab) largeBody(t *testing.T) []byte {
	t.Helper()
	resp, err := http.Get(l.url + l.path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", l.path, resp.Status, err)
	}
	return b.Bytes()
}

// newActivities gives the blacklist activities on a fresh database and bucket; settings
// ("name = value") apply to every session of that database.
func newActivities(t *testing.T, settings ...string) *activities.Blacklist {
	t.Helper()
	ctx := context.Background()
	cfg := testenv.NewBucket(t, testenv.Config(t))
	cfg.Postgres.DSN = testenv.NewDatabase(t)
	if len(settings) > 0 {
		conn, err := pgx.Connect(ctx, cfg.Postgres.DSN)
		if err != nil {
			t.Fatal(err)
		}
		db := pgx.Identifier{conn.Config().Database}.Sanitize()
		for _, set := range settings {
			if _, err := conn.Exec(ctx, "ALTER DATABASE "+db+" SET "+set); err != nil {
				t.Fatalf("%s: %v", set, err)
			}
		}
		conn.Close(ctx)
	}
	db, blobs, err := storage.Prepare(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return &activities.Blacklist{Store: db, Blobs: blobs, Downloads: &activities.Downloads{Blobs: blobs}}
}

// report collects the result lines of a run.
type report struct {
	loadavg string // at the start
	lines   []string
}

func newReport() *report {
	r := &report{loadavg: "unknown"}
	if avg, err := os.ReadFile("/proc/loadavg"); err == nil {
		r.loadavg = strings.Join(strings.Fields(string(avg))[:3], " ")
	}
	return r
}

func (r *report) add(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	t.Log(line)
	r.lines = append(r.lines, line)
}

// write saves the lines, under a header naming the run, to $TIP_BENCH_RESULTS.
func (r *report) write(t *testing.T) {
	path := os.Getenv("TIP_BENCH_RESULTS")
	if path == "" {
		return
	}
	version := os.Getenv("TIP_BENCH_VERSION")
	if version == "" {
		version = "unknown"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# TIP benchmarks %s, version %s, %s %s/%s, %d CPUs (%s)\n", time.Now().UTC().Format(time.RFC3339),
		version, runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpuModel())
	// Other work on the machine skews every number; the load average says how much there was.
	if avg, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(&b, "# load average at the start %s, at the end %s\n", r.loadavg, strings.Join(strings.Fields(string(avg))[:3], " "))
	}
	if t.Failed() {
		b.WriteString("# FAILED: some measurements are missing; see the test output\n")
	}
	for _, l := range r.lines {
		b.WriteString(l + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Error(err)
	}
}

func cpuModel() string {
	data, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// secs formats a duration as seconds with two decimals.
func secs(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }
