package storage_test

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

func TestFluxCountsAndTopMonitors(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	var verdicts []storage.FluxVerdict
	for d, score := range map[string]float64{"low.example": 5, "high.example": 90, "mid.example": 40, "paused.example": 60,
		"gone.example": 99, "benign.example": 0} {
		verdicts = append(verdicts, storage.FluxVerdict{Assessment: flux.Assessment{Domain: d, Verdict: flux.VerdictFlux, Score: score}, At: t0})
	}
	if err := db.RecordTriage(ctx, verdicts); err != nil {
		t.Fatal(err)
	}
	for d, state := range map[string]string{"low.example": contract.MonitorWatching, "high.example": contract.MonitorWatching,
		"mid.example": contract.MonitorStable, "paused.example": contract.MonitorPaused, "gone.example": contract.MonitorStopped} {
		if err := db.SetFluxMonitor(ctx, d, state, nil, t0); err != nil {
			t.Fatal(err)
		}
	}
	addr := func(ip string, asn uint32) flux.Record {
		return flux.Record{Addr: netip.MustParseAddr(ip), TTL: 300, ASN: asn}
	}
	if err := db.RecordFluxChecks(ctx, []storage.FluxWrite{
		{Obs: flux.Observation{Domain: "high.example", At: t0, Status: flux.NoError, A: []flux.Record{addr("198.51.100.1", 64500), addr("198.51.100.2", 64501)}}},
		{Obs: flux.Observation{Domain: "mid.example", At: t0, Status: flux.NoError, A: []flux.Record{addr("198.51.100.2", 64501)}}},
		{Obs: flux.Observation{Domain: "low.example", At: t0, Status: flux.NoError, A: []flux.Record{addr("203.0.113.7", 64502)}}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateFluxNetworks(ctx); err != nil {
		t.Fatal(err)
	}

	c, err := db.FluxCounts(ctx)
	// high and mid share an address: one network; low is one of its own; the
	// domains with no address seen are in none.
	want := storage.FluxCounts{Watching: 2, Stable: 1, Paused: 1, Stopped: 1, Networks: 2}
	if err != nil || c != want || c.Running() != 4 {
		t.Errorf("counts %+v (running %d), %v; want %+v", c, c.Running(), err, want)
	}
	top, err := db.TopFluxMonitors(ctx, 3)
	var names []string
	for _, d := range top {
		names = append(names, d.Domain)
	}
	if err != nil || !slices.Equal(names, []string{"high.example", "paused.example", "mid.example"}) {
		t.Fatalf("top monitors %v, %v; want the running ones by score", names, err)
	}
	if top[0].IPs != 2 || top[0].ASNs != 2 || top[0].Monitor != contract.MonitorWatching || top[1].Monitor != contract.MonitorPaused {
		t.Errorf("top monitor rows: %+v", top)
	}
}

func TestSpamCollectorsCountTheirMailAndLastRun(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	mail := func(sha, origin, name string) storage.SpamRecord {
		return storage.SpamRecord{SHA256: sha, Size: 100, Origin: origin, Name: name}
	}
	const index = "http://lab.example/spam-archive/"
	if _, err := db.RecordSpam(ctx, []storage.SpamRecord{
		mail("a1", "archive:"+index+"2026-09.7z", "2026/09/01/a1.txt"),
		mail("a2", "archive:"+index+"2026-10.7z", "2026/10/01/a2.txt"),
		mail("a1", "imap:trap", "1:1"), // the same mail in the mailbox too
		mail("m2", "imap:trap", "1:2"),
		mail("g1", "agent:mx1", "cur/g1"),
		mail("o1", "archive:http://other.example/archive/2026-09.7z", "x"),
	}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"archive:lab", "imap:trap"} {
		if ok, err := db.ClaimCollectorRun(ctx, name, time.Minute); err != nil || !ok {
			t.Fatalf("claim %s: %v, %v", name, ok, err)
		}
	}
	// The mailbox's run failed: it is released, so it has no good run now.
	if err := db.ReleaseCollectorRun(ctx, "imap:trap"); err != nil {
		t.Fatal(err)
	}
	got, err := db.SpamCollectors(ctx, []storage.SpamCollector{
		{Name: "archive:lab", Origin: "archive:" + index},
		{Name: "imap:trap", Origin: "imap:trap"},
		{Name: "agent:mx1", Origin: "agent:mx1"},
		{Name: "agent:never", Origin: "agent:never"},
	})
	if err != nil || len(got) != 4 {
		t.Fatalf("collectors: %+v, %v", got, err)
	}
	for i, want := range []struct {
		name    string
		mails   int64
		lastRun bool
	}{{"archive:lab", 2, true}, {"imap:trap", 2, false}, {"agent:mx1", 1, false}, {"agent:never", 0, false}} {
		c := got[i]
		if c.Name != want.name || c.Mails != want.mails || (c.LastRun != nil) != want.lastRun || (c.LastMail != nil) != (want.mails > 0) {
			t.Errorf("collector %d: %+v; want %s with %d mails, a last run %v", i, c, want.name, want.mails, want.lastRun)
		}
	}

	// Without the catalog: one per origin recorded, an archive by its index.
	got, err = db.SpamCollectors(ctx, nil)
	var origins []string
	for _, c := range got {
		origins = append(origins, c.Origin)
		if c.Mails == 0 {
			t.Errorf("%s: no mails", c.Origin)
		}
	}
	if err != nil || !slices.Equal(origins, []string{"agent:mx1", "archive:http://lab.example/spam-archive/", "archive:http://other.example/archive/", "imap:trap"}) {
		t.Errorf("collectors by origin: %v, %v", origins, err)
	}
}

func TestProblemsAreTheStoredFailuresNewestFirst(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if ps, err := db.Problems(ctx, 10); err != nil || len(ps) != 0 {
		t.Fatalf("problems of an empty database: %+v, %v", ps, err)
	}
	for _, name := range []string{"dead-feed", "flaky-feed", "fine-feed", "broken-feed"} {
		if err := db.UpsertSource(ctx, storage.SourceRow{Name: name, URL: "http://feeds.example/" + name, Format: "ip-list", Type: "ipv4", Prior: 0.5, Enabled: true}); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	// The loader (activities) writes source runs and failure counts; storage has
	// no write path of its own for them.
	if _, err := testenv.SQL(t, db).Exec(ctx, `
		INSERT INTO source_runs (source, run_key, started_at, finished_at, status, http_status, error) VALUES
		  ('dead-feed', 'r1', $1, $1, 'dead', 404, 'answered 404'),
		  ('dead-feed', 'r2', $1::timestamptz + interval '2 minutes', $1::timestamptz + interval '2 minutes', 'dead', 404, 'answered 404 again'),
		  ('flaky-feed', 'r1', $1, $1::timestamptz + interval '1 minute', 'failed', 0, 'connection refused'),
		  ('flaky-feed', 'r2', $1, $1::timestamptz + interval '3 minutes', 'loaded', 200, ''),
		  ('fine-feed', 'r1', $1, $1, 'loaded', 200, ''),
		  ('broken-feed', 'r1', $1, $1::timestamptz - interval '1 hour', 'malformed', 200, 'an HTML page')`, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.SQL(t, db).Exec(ctx, `
		UPDATE sources SET consecutive_failures = 2 WHERE name = 'dead-feed';
		UPDATE sources SET consecutive_failures = 1 WHERE name = 'broken-feed';`); err != nil {
		t.Fatal(err)
	}
	if err := db.SyncAllowlists(ctx, []storage.AllowlistRow{{Name: "top", URL: "http://x/top", Format: "tranco-csv", Type: "domain"},
		{Name: "cdn", URL: "http://x/cdn", Format: "netset", Type: "cidr"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.AllowlistChecked(ctx, "top", "fetch top: connection reset"); err != nil {
		t.Fatal(err)
	}
	if err := db.AllowlistChecked(ctx, "cdn", ""); err != nil {
		t.Fatal(err)
	}
	const archive = "http://lab.example/spam-archive/2026-09.7z"
	if err := db.SpamArchiveIngested(ctx, storage.SpamArchiveRow{URL: archive, Name: "2026-09.7z", Period: "2026-09", Error: "bad 7z header"}); err != nil {
		t.Fatal(err)
	}

	ps, err := db.Problems(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []storage.Problem{
		{Where: "allowlist top", What: "fetch failed", Error: "fetch top: connection reset"}, // no time kept: current, first
		{Where: "archive " + archive, What: "ingest failed", Error: "bad 7z header"},         // recorded now
		{At: t0.Add(2 * time.Minute), Where: "source dead-feed", What: "dead", Error: "answered 404 again", Repeats: 2},
		{At: t0.Add(time.Minute), Where: "source flaky-feed", What: "failed", Error: "connection refused", Recovered: true},
		{At: t0.Add(-time.Hour), Where: "source broken-feed", What: "malformed", Error: "an HTML page", Repeats: 1},
	}
	if len(ps) != len(want) {
		t.Fatalf("problems: %+v; want %+v", ps, want)
	}
	for i, w := range want {
		p := ps[i]
		if w.Where == "archive "+archive { // stamped by the database's clock
			if time.Since(p.At) > time.Minute {
				t.Errorf("archive problem at %s, want about now", p.At)
			}
			p.At = time.Time{}
		}
		if !p.At.Equal(w.At) {
			t.Errorf("problem %d at %s, want %s", i, p.At, w.At)
		}
		p.At, w.At = time.Time{}, time.Time{}
		if p != w {
			t.Errorf("problem %d: %+v\nwant %+v", i, p, w)
		}
	}
	if ps, err := db.Problems(ctx, 2); err != nil || len(ps) != 2 || ps[1].Where != "archive "+archive {
		t.Errorf("the 2 newest problems: %+v, %v", ps, err)
	}
}
