package status

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// fixedStatus is a report as the demo's stack gives one, with every kind of row.
func fixedStatus() Report {
	now := time.Date(2026, 9, 2, 12, 0, 0, 0, time.UTC)
	long := strings.Repeat("a very long error that goes on ", 10)
	running := int64(3)
	return Report{
		Now:      now,
		Temporal: Temporal{Address: "127.0.0.1:7233", Namespace: "tip", TaskQueue: "tip", Workers: 2},
		Postgres: Postgres{Address: "127.0.0.1:5433"},
		S3:       S3{Endpoint: "127.0.0.1:9000", Bucket: "tip"},
		Core: &contract.CoreStatus{Iteration: 41, Modules: []contract.ModuleStatus{
			{Name: "blacklist-refresh", Enabled: true, Next: now.Add(90 * time.Second),
				Last: &contract.RunResult{Status: contract.ModuleRunCompleted, Finished: now.Add(-30 * time.Second), Summary: "25 sources: 23 loaded,\n1 dead"}},
			{Name: "flux-triage", Enabled: true, Paused: true, PendingEvents: 2, DroppedEvents: 5},
			{Name: "spam-collect", Enabled: true, Running: "spam-collect/20260902T115950Z", RunningSince: now.Add(-10 * time.Second),
				Last: &contract.RunResult{ChildID: "spam-collect/20260902T115800Z", Status: contract.ModuleRunFailed, Finished: now.Add(-2 * time.Hour), Error: long}},
		}},
		Flux: &Flux{FluxCounts: storage.FluxCounts{Watching: 2, Stable: 1, Paused: 1, Stopped: 7, Networks: 2}, Top: []storage.FluxDomain{
			{Domain: "lone9.cn", Monitor: contract.MonitorWatching, Verdict: "flux", Score: 117.14, IPs: 20, ASNs: 16, Network: "dorro.ru"},
			{Domain: "katre.su", Monitor: contract.MonitorPaused, Verdict: "double-flux", Score: 77.4, IPs: 10, ASNs: 10},
		}},
		FluxWorkflows: &running,
		Sources: []storage.SourceHealth{
			{Name: "spamhaus-drop", Health: "ok", Weight: 0.81},
			{Name: "et-compromised", Health: "dead", LastStatus: "dead", LastRun: now.Add(-5 * time.Minute), ConsecutiveFailures: 3,
				LastError: "http://127.0.0.1:8480/feeds/emergingthreats/compromised-ips.txt answers 404 Not Found: the feed is gone"},
			{Name: "blocklistde-strongips", Health: "failing", LastStatus: "malformed", LastRun: now.Add(-5 * time.Minute), ConsecutiveFailures: 1,
				LastError: "malformed feed: an HTML page", Weight: 0.37},
			{Name: "sslbl-sslblacklist", Health: "ok", Weight: 0.95},
			{Name: "new-feed", Health: "never-run"},
		},
		Overrides: &Overrides{OverrideCounts: storage.OverrideCounts{Allowed: 1, FalsePositives: 1, Recorded: 3},
			Latest: []storage.Override{
				{Kind: "fp", Match: "exact", Value: "9.9.9.9", Source: "cins-army", Author: "alice", Reason: "public resolver", CreatedAt: now.Add(-time.Hour)},
				{Kind: "allow", Match: "suffix", Value: "example-cert.org", Author: "bob", Reason: "our own", CreatedAt: now.Add(-2 * time.Hour)},
				{Kind: "allow", Match: "exact", Value: "1.1.1.1", Author: "bob", Reason: "resolver", CreatedAt: now.Add(-3 * time.Hour),
					RemovedAt: ptr(now.Add(-time.Hour)), RemovedBy: "alice"},
			}},
		Spam: []storage.SpamCollector{
			{Name: "archive:lab-archive", Mails: 752, LastRun: ptr(now.Add(-time.Minute)), LastMail: ptr(now.Add(-50 * time.Hour))},
			{Name: "agent:lab-agent", Mails: 0},
		},
		Problems: []storage.Problem{
			{Where: "allowlist tranco-top", What: "fetch failed", Error: "connection reset"},
			{At: now.Add(-5 * time.Minute), Where: "source et-compromised", What: "dead", Error: "answers 404", Repeats: 3},
			{At: now.Add(-2 * time.Hour), Where: "module spam-collect", What: "failed", Error: long},
			{At: now.Add(-3 * time.Hour), Where: "source flaky", What: "failed", Error: "timeout", Recovered: true},
		},
	}
}

func ptr[T any](v T) *T { return &v }

func render(r Report, errorRows int) string {
	var b bytes.Buffer
	Print(&b, r, errorRows, Width)
	return b.String()
}

func TestPrintReportShowsEverySectionInTheWidth(t *testing.T) {
	out := render(fixedStatus(), 8)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for _, l := range lines {
		if n := utf8.RuneCountInString(l); n > Width {
			t.Errorf("a line of %d characters, more than %d: %q", n, Width, l)
		}
		if strings.HasSuffix(l, " ") {
			t.Errorf("trailing spaces: %q", l)
		}
	}
	if len(lines) > 45 {
		t.Errorf("%d lines: more than a screen", len(lines))
	}
	wantLines(t, out,
		"TIP status at 2026-09-02 12:00:00 UTC",
		"temporal 127.0.0.1:7233 (namespace tip, queue tip): 2 workers polling",
		"postgres 127.0.0.1:5433 · s3 127.0.0.1:9000 (bucket tip)",
		"core: tip-core, 3 modules, iteration 41",
		"  MODULE             STATE      NEXT     LAST RUN          EVENTS               LAST RESULT",
		"  blacklist-refresh  scheduled  in 1m    ok 30s ago        0                    25 sources: 23 load…",
		"  flux-triage        paused     -        never             2 (5 items dropped)  -",
		"  spam-collect       running    for 10s  failed 2h00m ago  0                    a very long error t…",
		"flux: 4 running (2 watching, 1 stable, 1 paused) · Temporal runs 3: MISMATCH · 2 networks",
		"  DOMAIN    MONITOR   VERDICT      SCORE  IPS  ASNS  NETWORK",
		"  lone9.cn  watching  flux         117.1  20   16    dorro.ru",
		"  katre.su  paused    double-flux  77.4   10   10    -",
		"sources: 5 — 2 ok, 1 failing, 1 dead, 1 never run",
		"  et-compromised         dead     dead 5m ago, 3 in a row  http://127.0.0.1:8480/feeds/emergingthre…",
		"  blocklistde-strongips  failing  malformed 5m ago         malformed feed: an HTML page",
		"  top weights: sslbl-sslblacklist 0.95, spamhaus-drop 0.81, blocklistde-strongips 0.37",
		"spam: 2 collectors",
		"  COLLECTOR            MAILS  LAST GOOD RUN  LAST MAIL",
		"  archive:lab-archive  752    1m ago         2d ago",
		"  agent:lab-agent      0      -              -",
		"overrides: 1 allowed, 1 false positive standing, 3 recorded",
		"  fp 9.9.9.9 (cins-army)    by alice 1h00m ago                  public resolver",
		"  allow *.example-cert.org  by bob 2h00m ago                    our own",
		"  allow 1.1.1.1             by bob 3h00m ago, removed by alice  resolver",
		"errors: the 4 most recent",
		"  now?       allowlist tranco-top   fetch failed       connection reset",
		"  5m ago     source et-compromised  dead ×3            answers 404",
		"  2h00m ago  module spam-collect    failed             a very long error that goes on a very long e…",
		"  3h00m ago  source flaky           failed (ok since)  timeout",
	)
}

// wantLines checks that each of want is a whole line of out.
func wantLines(t *testing.T, out string, want ...string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	for _, w := range want {
		if !slices.Contains(lines, w) {
			t.Errorf("no line %q in:\n%s", w, out)
		}
	}
}

func TestPrintReportSaysWhatCouldNotBeRead(t *testing.T) {
	r := fixedStatus()
	r.Temporal.Error = "temporal at 127.0.0.1:7233 is not reachable (connection refused)"
	r.Core, r.FluxWorkflows, r.Problems = nil, nil, nil
	r.ProblemsErrors = []string{"temporal unreachable"}
	wantLines(t, render(r, 8),
		"temporal 127.0.0.1:7233 (namespace tip, queue tip): unreachable (temporal at 127.0.0.1:7233 is not …",
		"core: unreachable (temporal at 127.0.0.1:7233 is not reachable (connection refused))",
		"flux: 4 running (2 watching, 1 stable, 1 paused) · Temporal: unreachable (temporal at 127.0.0.1:723…",
		"sources: 5 — 2 ok, 1 failing, 1 dead, 1 never run",
		"errors: none recorded (not read: temporal unreachable)",
	)

	r = fixedStatus()
	r.Postgres = Postgres{Error: "postgres at 127.0.0.1:5433 is not reachable (connection refused)"}
	r.Flux, r.Sources, r.Spam = nil, nil, nil
	r.CoreError = ""
	out := render(r, 0)
	wantLines(t, out,
		"postgres: unreachable (postgres at 127.0.0.1:5433 is not reachable (connection refused))",
		"core: tip-core, 3 modules, iteration 41",
		"flux: Temporal runs 3 · the database: unreachable (postgres at 127.0.0.1:5433 is not reachable (con…",
		"sources: unreachable (postgres at 127.0.0.1:5433 is not reachable (connection refused))",
		"spam: unreachable (postgres at 127.0.0.1:5433 is not reachable (connection refused))",
	)
	if strings.Contains(out, "errors:") {
		t.Errorf("--errors 0 shows errors:\n%s", out)
	}
}

func TestNewestProblemsFirstThoseWithNoTime(t *testing.T) {
	t0 := time.Date(2026, 9, 2, 12, 0, 0, 0, time.UTC)
	pg := []storage.Problem{{Where: "allowlist a"}, {At: t0, Where: "source s"}, {At: t0.Add(-time.Hour), Where: "source old"}}
	temporal := []storage.Problem{{At: t0.Add(time.Minute), Where: "workflow agent/x"}, {At: t0.Add(-time.Minute), Where: "module m"}}
	var got []string
	for _, p := range newestProblems(4, pg, temporal) {
		got = append(got, p.Where)
	}
	if want := []string{"allowlist a", "workflow agent/x", "source s", "module m"}; !slices.Equal(got, want) {
		t.Errorf("newest problems %v, want %v", got, want)
	}
}

func TestStatusAgesAndClippedLines(t *testing.T) {
	for d, want := range map[time.Duration]string{-time.Second: "0s", 45 * time.Second: "45s", 12*time.Minute + 59*time.Second: "12m",
		3*time.Hour + 5*time.Minute: "3h05m", 47 * time.Hour: "47h00m", 100 * time.Hour: "4d"} {
		if got := age(d); got != want {
			t.Errorf("age(%s) = %q, want %q", d, got, want)
		}
	}
	if got := clipLines("ab  \nabcdef\nabcé\n", 4); got != "ab\nabc…\nabcé\n" {
		t.Errorf("clipLines = %q", got)
	}
}

func TestSpamCollectorsOfTheCatalog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spam.yaml")
	fp := strings.Repeat("ab", 32)
	if err := os.WriteFile(path, []byte(`traps:
  - {name: one, mx: [mx.one.example]}
archives:
  - {name: lab, index: "http://lab.example/spam-archive/", trap: all}
  - {name: flat, index: "http://lab.example/spam/index.html", trap: all}
mailboxes:
  - {name: trap, address: "127.0.0.1:1143", tls: none, username: u, password_env: P, trap: all}
agents:
  - {name: mx1, url: "https://mx1.example:8443", token_env: T, fingerprint: "`+fp+`"}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := catalog.LoadSpam(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []storage.SpamCollector{
		{Name: "archive:lab", Origin: "archive:http://lab.example/spam-archive/"},
		{Name: "archive:flat", Origin: "archive:http://lab.example/spam/"},
		{Name: "imap:trap", Origin: "imap:trap"},
		{Name: "agent:mx1", Origin: "agent:mx1"},
	}
	if got := spamCollectors(c); !slices.Equal(got, want) {
		t.Errorf("collectors %+v\nwant %+v", got, want)
	}
}

func TestPackLineKeepsWhatFits(t *testing.T) {
	items := []string{"alpha 0.95", "beta 0.81", "gamma 0.37"}
	for width, want := range map[int]string{
		100: "  top: alpha 0.95, beta 0.81, gamma 0.37\n",
		30:  "  top: alpha 0.95, beta 0.81\n",
		10:  "  top: \n",
	} {
		if got := packLine("  top: ", items, ", ", width); got != want {
			t.Errorf("packLine(width %d) = %q, want %q", width, got, want)
		}
	}
}

func TestOneLineFoldsAndCuts(t *testing.T) {
	for _, c := range []struct {
		s    string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"two\n  lines\tand tabs ", 40, "two lines and tabs"},
		{"exactly ten", 11, "exactly ten"},
		{"é is one character", 5, "é is…"},
	} {
		if got := oneLine(c.s, c.max); got != c.want {
			t.Errorf("oneLine(%q, %d) = %q, want %q", c.s, c.max, got, c.want)
		}
	}
}

func TestModuleStateRunningBeforePausedBeforeDisabled(t *testing.T) {
	for want, m := range map[string]contract.ModuleStatus{
		"running":   {Running: "m/1", Paused: true},
		"paused":    {Paused: true},
		"disabled":  {},
		"scheduled": {Enabled: true},
	} {
		if got := ModuleState(m); got != want {
			t.Errorf("ModuleState(%+v) = %q, want %q", m, got, want)
		}
	}
}

func TestPrintCoreShowsTheTimetable(t *testing.T) {
	now := time.Date(2026, 9, 2, 12, 0, 0, 0, time.UTC)
	st := contract.CoreStatus{UnroutedEvents: 2, Draining: true, Modules: []contract.ModuleStatus{
		{Name: "blacklist-refresh", Enabled: true, Interval: 6 * time.Hour, Next: now.Add(90 * time.Second),
			Last: &contract.RunResult{Status: contract.ModuleRunCompleted, Started: now.Add(-time.Minute), Finished: now.Add(-30 * time.Second),
				Summary: "25 sources:\n23 loaded"}},
		{Name: "spam-collect", Enabled: true, Interval: time.Hour, Running: "spam-collect/20260902T115950Z", PendingEvents: 1, DroppedEvents: 4},
		{Name: "flux-triage", Paused: true, Enabled: true, Next: now.Add(time.Hour)},
	}}
	var b bytes.Buffer
	PrintCore(&b, st, now)
	wantLines(t, b.String(),
		"MODULE             STATE      INTERVAL  NEXT RUN                         RUNNING                        LAST                                                         PENDING",
		"blacklist-refresh  scheduled  6h0m0s    2026-09-02T12:01:30Z (in 1m30s)  -                              completed 2026-09-02T11:59:30Z (30s): 25 sources: 23 loaded  0",
		"spam-collect       running    1h0m0s    -                                spam-collect/20260902T115950Z  -                                                            1 (4 dropped)",
		"flux-triage        paused     0s        -                                -                              -                                                            0",
		"core is waiting for running modules to finish before it continues as new",
		"2 event(s) had a kind no module consumes",
	)
	b.Reset()
	PrintCore(&b, contract.CoreStatus{}, now)
	wantLines(t, b.String(), "no modules scheduled")
}

// With neither service answering, the report names both, says why, and is
// unreadable; the screen shows every section with the reason.
func TestReadWithNothingToRead(t *testing.T) {
	cfg := config.Config{Temporal: config.Temporal{Address: "127.0.0.1:7233", Namespace: "tip", TaskQueue: "tip"},
		S3: config.S3{Endpoint: "127.0.0.1:9000", Bucket: "tip"}}
	r := Read(context.Background(), cfg, Services{
		Postgres: func(context.Context) (*storage.DB, error) { return nil, errors.New("postgres is not reachable") },
		Temporal: func(context.Context) (client.Client, error) { return nil, errors.New("temporal is not reachable") },
	}, 8)
	if !r.Unreadable() || r.Postgres.Error != "postgres is not reachable" || r.Temporal.Error != "temporal is not reachable" {
		t.Errorf("report %+v", r)
	}
	if r.Problems == nil || len(r.Problems) != 0 || !slices.Equal(r.ProblemsErrors, []string{"postgres unreachable", "temporal unreachable"}) {
		t.Errorf("problems %v, not read %v", r.Problems, r.ProblemsErrors)
	}
	var b bytes.Buffer
	Print(&b, r, 8, Width)
	wantLines(t, b.String(),
		"temporal 127.0.0.1:7233 (namespace tip, queue tip): unreachable (temporal is not reachable)",
		"postgres: unreachable (postgres is not reachable)",
		"core: unreachable (temporal is not reachable)",
		"flux: Temporal: unreachable (temporal is not reachable) · the database: unreachable (postgres is no…",
		"sources: unreachable (postgres is not reachable)",
		"spam: unreachable (postgres is not reachable)",
		"overrides: unreachable (postgres is not reachable)",
		"errors: none recorded (not read: postgres unreachable; temporal unreachable)",
	)
	if r.Temporal.Error = ""; r.Unreadable() {
		t.Error("a report with Temporal read is unreadable")
	}
}

func TestPrintShowsTheDNSServer(t *testing.T) {
	var b strings.Builder
	r := Report{Now: time.Now(), DNS: &DNS{Address: "127.0.0.1:5300", Serials: map[string]uint32{"rpz.tip.": 42}, DNSBL: []string{"bl.tip."}}}
	Print(&b, r, 0, 200)
	if !strings.Contains(b.String(), "dns 127.0.0.1:5300: rpz.tip. serial 42 · bl.tip.") {
		t.Errorf("no DNS line:\n%s", b.String())
	}
	b.Reset()
	r.DNS = &DNS{Address: "127.0.0.1:5300", Error: "connection refused"}
	Print(&b, r, 0, 200)
	if !strings.Contains(b.String(), "dns 127.0.0.1:5300: not answering (tip serve dns: connection refused)") {
		t.Errorf("no DNS problem:\n%s", b.String())
	}
}
