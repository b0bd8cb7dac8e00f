//go:build bench

package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bodgit/sevenzip"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/agent"
	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/internal/devstack"
	"github.com/tip-project/tip/internal/testenv"
	tiplab "github.com/tip-project/tip/lab"
	"github.com/tip-project/tip/lab/spam"
	"github.com/tip-project/tip/lab/trap"
	"github.com/tip-project/tip/lab/world"
	"github.com/tip-project/tip/spamimap"
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

// ingestTarget is what issue 23 asks of each spam collector end to end: mails
// fetched, unpacked, extracted, every raw mail into S3 and facts into
// PostgreSQL, per second.
const ingestTarget = 5000

// benchIngest ingests the lab's spam archive at 10,000 and at 100,000 mails, each
// through a `tip worker` process of its own, and compares the workers' peak
// resident memory: an ingest that streams the mail grows only by the archive's
// member index. Then the same lab mail through the two other collectors, an
// IMAP mailbox (Dovecot) and a spamtrap agent (raw copies pulled), each through a
// worker of its own; every path is held to ingestTarget, and each run says how
// much CPU each process took.
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
	r.add(t, "spam ingest:   archive end to end (fetch into S3, unpack, extract, every raw mail into S3, facts into PostgreSQL): %d mails in %s = %.0f mails/s (target %d: %s); %d mails in %s = %.0f mails/s",
		large.mails, secs(large.took), large.rate(), ingestTarget, met(large.rate() >= ingestTarget), small.mails, secs(small.took), small.rate())
	r.add(t, "spam ingest:   archive, CPU per 1,000 mails: %s", large.cpuLine())
	mails := 50_000
	if v, err := strconv.Atoi(os.Getenv("TIP_BENCH_INGEST_MAILS")); err == nil && v > 0 {
		mails = v
	}
	imap := ingestIMAP(t, tip, mails)
	r.add(t, "spam ingest:   IMAP end to end (Dovecot over STARTTLS, extract, raw mails into S3, facts, cursor): %d mails in %s = %.0f mails/s (target %d: %s); peak RSS %s",
		imap.mails, secs(imap.took), imap.rate(), ingestTarget, met(imap.rate() >= ingestTarget), mib(imap.peak))
	r.add(t, "spam ingest:   IMAP, CPU per 1,000 mails: %s", imap.cpuLine())
	ag := ingestAgent(t, tip, mails)
	r.add(t, "spam ingest:   agent end to end (batches and their raw packs over HTTPS, checked, batch files and raw mails into S3, facts, cursor): %d mails in %s = %.0f mails/s (target %d: %s); peak RSS %s",
		ag.mails, secs(ag.took), ag.rate(), ingestTarget, met(ag.rate() >= ingestTarget), mib(ag.peak))
	r.add(t, "spam ingest:   agent, CPU per 1,000 mails: %s", ag.cpuLine())
}

type ingestRun struct {
	mails      int
	archive    int64  // bytes of the 7z
	content    int64  // bytes of the mails in it
	directory  uint64 // live heap of an open reader of the 7z
	idle, peak int64  // worker RSS before the run, and its peak
	took       time.Duration
	cpu        map[string]time.Duration // by process, over the run
	busy       time.Duration            // the whole machine's CPU over the run (other work too)
}

func (r ingestRun) rate() float64 { return float64(r.mails) / r.took.Seconds() }

// cpuLine is the CPU each process took per 1,000 mails, the largest first.
func (r ingestRun) cpuLine() string {
	names := slices.Collect(maps.Keys(r.cpu))
	slices.SortFunc(names, func(a, b string) int { return cmp.Compare(r.cpu[b], r.cpu[a]) })
	var parts []string
	var all time.Duration
	for _, n := range names {
		all += r.cpu[n]
		parts = append(parts, fmt.Sprintf("%s %.0f ms", n, float64(r.cpu[n].Milliseconds())*1000/float64(r.mails)))
	}
	return fmt.Sprintf("%s; all %.0f ms = %.0f mails per CPU second (%.2f cores busy over the run; the machine %.2f, other work and uncounted processes such as Dovecot's included)", strings.Join(parts, ", "),
		float64(all.Milliseconds())*1000/float64(r.mails), float64(r.mails)/all.Seconds(), all.Seconds()/r.took.Seconds(), r.busy.Seconds()/r.took.Seconds())
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// ingestArchive serves a lab spam archive of about mails mails and has a fresh
// worker run one spam collection of it.
func ingestArchive(t *testing.T, tip string, mails int) ingestRun {
	t.Helper()
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

	collect(t, tip, cfg, name, &run)
	return run
}

// collect has a fresh worker run one spam collection of cfg's catalog and
// fills run's time, memory and CPU. The run must record run.mails new mails.
// With TIP_BENCH_INGEST_PROFILE=DIR the worker's CPU profile of the run's
// first TIP_BENCH_INGEST_PROFILE_SECONDS (default 10) is kept in DIR/<name>.pprof.
func collect(t *testing.T, tip string, cfg config.Config, name string, run *ingestRun) {
	t.Helper()
	ctx := context.Background()
	profDir := os.Getenv("TIP_BENCH_INGEST_PROFILE")
	if profDir != "" {
		cfg.Worker.MetricsAddress = testenv.FreeAddr(t)
	}
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
	procs := ingestProcesses(t, ctx, w)
	profiled := make(chan struct{})
	if profDir != "" {
		go func() {
			defer close(profiled)
			secs := cmp.Or(os.Getenv("TIP_BENCH_INGEST_PROFILE_SECONDS"), "10")
			resp, err := http.Get("http://" + cfg.Worker.MetricsAddress + "/debug/pprof/profile?seconds=" + secs)
			if err != nil {
				t.Logf("profile: %v", err)
				return
			}
			defer resp.Body.Close()
			f, err := os.Create(filepath.Join(profDir, name+".pprof"))
			if err != nil {
				t.Logf("profile: %v", err)
				return
			}
			defer f.Close()
			io.Copy(f, resp.Body)
		}()
	} else {
		close(profiled)
	}
	cpu0, busy0, start := cpuOf(procs), machineBusy(t), time.Now()
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
	cpu1 := cpuOf(procs)
	run.busy = machineBusy(t) - busy0
	run.cpu = map[string]time.Duration{}
	for n := range cpu1 {
		run.cpu[n] = cpu1[n] - cpu0[n]
	}
	if want := fmt.Sprintf("%d new mails", run.mails); !strings.HasPrefix(res.Summary, want) || strings.Contains(res.Summary, "problems") {
		t.Fatalf("the ingest of %d lab mails: %q", run.mails, res.Summary)
	}
	if run.peak, err = w.PeakRSS(); err != nil {
		t.Fatal(err)
	}
	<-profiled
	t.Logf("%s: %d mails in %s; %s", name, run.mails, secs(run.took), res.Summary)
}

// ingestProcesses are the processes whose CPU an ingest takes, by name: the
// worker, PostgreSQL (the postmaster and its backends), MinIO, the Temporal
// server, and this process (the lab's servers: the archive, the agent).
func ingestProcesses(t *testing.T, ctx context.Context, wp *testenv.WorkerProcess) map[string][]int {
	t.Helper()
	procs := map[string][]int{"worker": {wp.Pid()}, "lab": {os.Getpid()}}
	for _, st := range testenv.Stack(t).Status(ctx) {
		switch st.Service {
		case devstack.Temporal:
			procs["temporal"] = []int{st.PID}
		case devstack.MinIO:
			procs["minio"] = []int{st.PID}
		case devstack.Postgres:
			procs["postgres"] = append([]int{st.PID}, childrenOf(st.PID)...)
		}
	}
	return procs
}

// pathLab is the lab mail for the IMAP and agent runs: about mails spams of
// the lab's spam site, which also serves the ASN table, and a spam catalog
// holding its traps and no archive, for a collector to be added to.
func pathLab(t *testing.T, mails int) (*tiplab.SpamSite, []spam.Message, config.Config, string) {
	t.Helper()
	site, err := tiplab.NewSpamSite(mails/ingestDays, world.FixedClock(world.DefaultStart.Add(ingestDays*24*time.Hour)), filepath.Join(t.TempDir(), "archive"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(site.Handler())
	t.Cleanup(srv.Close)
	cat, _, _ := strings.Cut(site.Catalog(srv.URL, "unused"), "archives:")
	cfg := testenv.NewBucket(t, testenv.Config(t))
	cfg.Postgres.DSN = testenv.NewDatabase(t)
	cfg.Spam.Catalog = filepath.Join(t.TempDir(), "spam.yaml")
	return site, site.Sent(), cfg, cat
}

// ingestIMAP has a worker poll a Dovecot mailbox holding about mails lab spams.
func ingestIMAP(t *testing.T, tip string, mails int) ingestRun {
	t.Helper()
	_, sent, cfg, cat := pathLab(t, mails)
	// Dovecot reads the Maildir as another user: the folders on the way must
	// be searchable by it (not a 0700 temporary folder).
	dir, err := os.MkdirTemp("", "tip-bench-imap-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	maildir := filepath.Join(dir, "Maildir")
	run := ingestRun{mails: len(sent), content: writeMaildir(t, maildir, sent, true)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dc, err := trap.StartDovecot(ctx, trap.DovecotConfig{Dir: filepath.Join(dir, "dovecot"), Maildir: maildir, User: "trap", Password: "bench"})
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Stop()
	cat += fmt.Sprintf("mailboxes:\n  - {name: bench, address: %q, tls: starttls, ca_file: %q, username: trap, password: bench, trap: all}\n", dc.Addr(), dc.CertFile())
	if err := os.WriteFile(cfg.Spam.Catalog, []byte(cat), 0o644); err != nil {
		t.Fatal(err)
	}
	warmIMAP(t, dc.Addr(), dc.CertFile())
	collect(t, tip, cfg, fmt.Sprintf("imap-%d", mails), &run)
	return run
}

// warmIMAP has Dovecot index the new mailbox before the clock starts: a
// mailbox polled every few minutes has its index already.
func warmIMAP(t *testing.T, addr, caFile string) {
	t.Helper()
	box := catalog.Mailbox{Name: "warm", Address: addr, TLS: "starttls", CAFile: caFile, Username: "trap", Password: "bench", Trap: "all", Mailbox: "INBOX", After: "keep"}
	// The first batch is enough: its search made Dovecot index every message.
	errWarm := errors.New("warm")
	_, _, err := spamimap.Poll(context.Background(), box, spamimap.Cursor{}, spamimap.Options{},
		func([]spamimap.Mail, spamimap.Cursor) error { return errWarm })
	if !errors.Is(err, errWarm) {
		t.Fatalf("warm the mailbox: %v", err)
	}
}

// ingestAgent has a worker sync a spamtrap agent (raw copies on) that published
// about mails lab spams, served over loopback HTTPS by this process.
func ingestAgent(t *testing.T, tip string, mails int) ingestRun {
	t.Helper()
	site, sent, cfg, cat := pathLab(t, mails)
	dir := t.TempDir()
	maildir := filepath.Join(dir, "Maildir")
	run := ingestRun{mails: len(sent), content: writeMaildir(t, maildir, sent, false)}
	ac := agent.DefaultConfig(filepath.Join(dir, "agent"))
	ac.ID, ac.KeepRaw = "bench.agent", true
	ac.Maildirs = []agent.Maildir{{Path: maildir, Folder: "spam"}}
	mx, mxAddrs, trusted := site.Rules()
	ac.Trap.MX, ac.Trap.MXAddrs, ac.Trap.Trusted = mx, mxAddrs, trusted
	store, err := agent.OpenStore(ac.Dir, ac.ID)
	if err != nil {
		t.Fatal(err)
	}
	p, err := agent.NewPublisher(ac, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := p.ScanOnce(context.Background()); err != nil || n != len(sent) {
		t.Fatalf("the agent published %d of %d mails: %v", n, len(sent), err)
	}
	fp, _, err := agent.EnsureCert(ac, nil)
	if err != nil {
		t.Fatal(err)
	}
	conf, _, err := agent.ServerTLS(ac)
	if err != nil {
		t.Fatal(err)
	}
	tokens := agent.OpenTokens(ac.Dir)
	secret, _, err := tokens.Add("bench", agent.ScopeRaw, 0)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- agent.NewServer(store, tokens, 1000, slog.New(slog.DiscardHandler)).Serve(ctx, ln, conf)
	}()
	defer func() {
		cancel()
		<-done
	}()
	cat += fmt.Sprintf("agents:\n  - {name: bench, url: %q, fingerprint: %s, token: %s, raw: true}\n", "https://"+ln.Addr().String(), fp, secret)
	if err := os.WriteFile(cfg.Spam.Catalog, []byte(cat), 0o644); err != nil {
		t.Fatal(err)
	}
	collect(t, tip, cfg, fmt.Sprintf("agent-%d", mails), &run)
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

// writeMaildir delivers sent into a new Maildir at dir: seen mails in cur/ (as
// Dovecot keeps them), or new ones in new/ (as an MTA delivers them for the
// agent). It returns the bytes delivered.
func writeMaildir(t *testing.T, dir string, sent []spam.Message, seen bool) int64 {
	t.Helper()
	for _, sub := range []string{"new", "cur", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	var content int64
	for i, m := range sent {
		content += int64(len(m.Raw))
		sub, name := "new", fmt.Sprintf("%d.M%dP%d.mx1,S=%d", m.Time.Unix(), i, i, len(m.Raw))
		if seen {
			sub, name = "cur", name+":2,"
		}
		if err := os.WriteFile(filepath.Join(dir, sub, name), m.Raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return content
}
