//go:build bench

package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bodgit/sevenzip"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/internal/testenv"
	tiplab "github.com/tip-project/tip/lab"
	"github.com/tip-project/tip/lab/world"
	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/workflows"
	"github.com/tip-project/tip/workflows/contract"
)

// ingestDays is how far into its first month the lab's spam archive is when the
// ingest benchmark reads it: the archive holds that many days of spam.
const ingestDays = 20

// perMemberTarget bounds how much more peak memory each extra archive member may
// cost. The ingest streams the mail itself, but a 7z reader holds an index entry
// per member (about 200 bytes live, twice that with the garbage collector's
// headroom); holding any mail content would cost its size (lab mails average
// about 3 KB).
const perMemberTarget = 512

// benchIngest ingests the lab's spam archive at 10,000 and at 100,000 mails, each
// through a `tip worker` process of its own, and compares the workers' peak
// resident memory: an ingest that streams the mail grows only by the archive's
// member index.
func benchIngest(t *testing.T, r *report) {
	tip := testenv.BuildTip(t)
	small := ingestArchive(t, tip, 10_000)
	large := ingestArchive(t, tip, 100_000)
	ratio := float64(large.peak) / float64(small.peak)
	perMember := float64(large.peak-small.peak) / float64(large.mails-small.mails)
	r.add(t, "spam ingest: %d-mail archive (%.0f MB 7z, %.0f MB of mail) peak RSS %s vs %s for %d mails = %.2fx, %.0f bytes per extra member (target <= %d, no mail content held: %s); idle worker %s",
		large.mails, float64(large.archive)/1e6, float64(large.content)/1e6, mib(large.peak), mib(small.peak), small.mails, ratio,
		perMember, perMemberTarget, met(perMember <= perMemberTarget), mib(large.idle))
	r.add(t, "spam ingest:   what grows is the 7z reader's index of the members: %s live heap at %d members, %s at %d (%.0f bytes a member)",
		mib(int64(large.directory)), large.mails, mib(int64(small.directory)), small.mails, float64(large.directory)/float64(large.mails))
	r.add(t, "spam ingest:   end to end (fetch into S3, unpack, extract, every raw mail into S3, facts into PostgreSQL): %d mails in %s = %.0f mails/s; %d mails in %s = %.0f mails/s",
		large.mails, secs(large.took), float64(large.mails)/large.took.Seconds(), small.mails, secs(small.took), float64(small.mails)/small.took.Seconds())
}

type ingestRun struct {
	mails      int
	archive    int64  // bytes of the 7z
	content    int64  // bytes of the mails in it
	directory  uint64 // live heap of an open reader of the 7z
	idle, peak int64  // worker RSS before the run, and its peak
	took       time.Duration
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// ingestArchive serves a lab spam archive of about mails mails and has a fresh
// worker run one spam collection of it.
func ingestArchive(t *testing.T, tip string, mails int) ingestRun {
	t.Helper()
	ctx := context.Background()
	cache := filepath.Join(t.TempDir(), "archive")
	site, err := tiplab.NewSpamSite(mails/ingestDays, world.FixedClock(world.DefaultStart.Add(ingestDays*24*time.Hour)), cache)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(site.Handler())
	defer srv.Close()
	name := fmt.Sprintf("lab-%d", mails)
	cfg := testenv.NewBucket(t, testenv.Config(t))
	cfg.Postgres.DSN = testenv.NewDatabase(t)
	cfg.Spam.Catalog = filepath.Join(t.TempDir(), "spam.yaml")
	if err := os.WriteFile(cfg.Spam.Catalog, []byte(site.Catalog(srv.URL, name)), 0o644); err != nil {
		t.Fatal(err)
	}
	// The lab builds the archive on its first request: build it before the clock starts.
	resp, err := http.Get(srv.URL + "/spam-archive/2026-09.7z")
	if err != nil {
		t.Fatal(err)
	}
	size, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET the archive: %s, %v", resp.Status, err)
	}
	run := ingestRun{mails: len(site.Sent()), archive: size}
	for _, m := range site.Sent() {
		run.content += int64(len(m.Raw))
	}
	built, err := filepath.Glob(filepath.Join(cache, "2026-09.*.7z"))
	if err != nil || len(built) != 1 {
		t.Fatalf("the lab's archive in %s: %v %v", cache, built, err)
	}
	run.directory = sevenZipHeap(t, built[0])

	c, err := starter.Dial(ctx, cfg.Temporal, nil, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := testenv.StartWorker(t, tip, cfg)
	waitForWorker(t, c, cfg.Temporal.TaskQueue, nil)
	if run.idle, err = w.PeakRSS(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	wf, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "bench/spam-collect/" + name, TaskQueue: cfg.Temporal.TaskQueue},
		workflows.SpamCollect, contract.ModuleInput{Module: contract.SpamModule})
	if err != nil {
		t.Fatal(err)
	}
	var res contract.ModuleResult
	if err := wf.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	run.took = time.Since(start)
	if want := fmt.Sprintf("%d new mails", run.mails); !strings.HasPrefix(res.Summary, want) || strings.Contains(res.Summary, "problems") {
		t.Fatalf("the ingest of %d lab mails: %q", run.mails, res.Summary)
	}
	if run.peak, err = w.PeakRSS(); err != nil {
		t.Fatal(err)
	}
	return run
}

// sevenZipHeap is the live heap an open 7z reader of the archive at path holds
// once it has read its first member (its index of the members is built then).
func sevenZipHeap(t *testing.T, path string) uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r, err := sevenzip.NewReader(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range r.File {
		if file.FileInfo().IsDir() {
			continue
		}
		rc, err := file.Open()
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(r)
	return after.HeapAlloc - min(before.HeapAlloc, after.HeapAlloc)
}
