package activities

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/internal/testenv"
	labfeeds "github.com/tip-project/tip/lab/feeds"
	"github.com/tip-project/tip/lab/world"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

func load(t *testing.T, a *stack, in contract.LoadInput) contract.LoadResult {
	t.Helper()
	res, err := runActivity[contract.LoadResult](t, a, a.LoadSource, in)
	if err != nil {
		t.Fatalf("load %s: %v", in.Source.Name, err)
	}
	return res
}

func fetchAndLoad(t *testing.T, a *stack, src catalog.Source, runKey string) (contract.FetchResult, contract.LoadResult) {
	t.Helper()
	f, err := fetch(t, a, src)
	if err != nil {
		t.Fatalf("fetch %s: %v", src.Name, err)
	}
	return f, load(t, a, contract.LoadInput{Source: src, Fetch: f, RunKey: runKey})
}

// active returns the values a source lists now.
func active(t *testing.T, a *stack, source string) map[string]bool {
	rows, err := testenv.SQL(t, a.DB).Query(context.Background(), `SELECT i.value FROM listings l JOIN indicators i ON i.id = l.indicator_id WHERE l.source = $1 AND l.active`, source)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var v string
		rows.Scan(&v)
		out[v] = true
	}
	return out
}

// truthValues is what the lab says a feed lists at a time.
func truthValues(lab *labfeeds.Server, feed string, at time.Time) map[string]bool {
	out := map[string]bool{}
	for _, ft := range lab.Truth(at) {
		if ft.Feed == feed {
			for _, e := range ft.Entries {
				out[e.Value] = true
			}
		}
	}
	return out
}

func TestLoadMatchesTheLabAcrossDaysAndRetries(t *testing.T) {
	ctx := context.Background()
	a := newActivities(t)
	w := world.NewWorld(1)
	clock := world.FixedClock(world.DefaultStart.Add(36 * time.Hour))
	lab := labfeeds.New(w, clock, labfeeds.Options{})
	srv := httptest.NewServer(lab.Handler())
	defer srv.Close()
	src := catalog.Source{Name: "feodo-ipblocklist", URL: srv.URL + "/feeds/feodotracker/ipblocklist.txt", Format: "feodo-txt",
		Type: "ipv4", Enabled: true, Prior: 0.9, Timeout: 10 * time.Second, SizeLimit: 64 << 20, AllowPrivate: true}

	f1, r1 := fetchAndLoad(t, a, src, "day1")
	want := truthValues(lab, "feodo-ipblocklist", clock.Now())
	got := active(t, a, src.Name)
	if r1.Status != contract.RunLoaded || len(got) != len(want) || r1.Added != len(want) || r1.Entries != len(want) {
		t.Fatalf("day 1: %+v; listed %d, truth %d", r1, len(got), len(want))
	}
	for v := range want {
		if !got[v] {
			t.Fatalf("truth entry %s not listed", v)
		}
	}
	// A retried load (same run key) returns the recorded result and changes nothing.
	if again := load(t, a, contract.LoadInput{Source: src, Fetch: f1, RunKey: "day1"}); again != r1 {
		t.Fatalf("retried load = %+v, first %+v", again, r1)
	}
	var runs, listings int
	testenv.SQL(t, a.DB).QueryRow(ctx, `SELECT count(*) FROM source_runs WHERE source = $1`, src.Name).Scan(&runs)
	testenv.SQL(t, a.DB).QueryRow(ctx, `SELECT count(*) FROM listings WHERE source = $1`, src.Name).Scan(&listings)
	if runs != 1 || listings != len(want) {
		t.Fatalf("after a retry: %d runs, %d listings", runs, listings)
	}

	// Unchanged content: a conditional GET, recorded as unchanged.
	if _, r := fetchAndLoad(t, a, src, "day1b"); r.Status != contract.RunUnchanged {
		t.Fatalf("unchanged refresh = %+v", r)
	}

	// Three lab days later entries came and went, as the truth says.
	clock.Advance(72 * time.Hour)
	_, r2 := fetchAndLoad(t, a, src, "day4")
	want2 := truthValues(lab, "feodo-ipblocklist", clock.Now())
	added, removed := 0, 0
	for v := range want2 {
		if !want[v] {
			added++
		}
	}
	for v := range want {
		if !want2[v] {
			removed++
		}
	}
	if r2.Status != contract.RunLoaded || r2.Added != added || r2.Removed != removed || len(active(t, a, src.Name)) != len(want2) {
		t.Fatalf("day 4: %+v, truth added %d removed %d listed %d", r2, added, removed, len(want2))
	}
	if added+removed == 0 {
		t.Fatal("the lab feed did not change over three days; the test proves nothing")
	}
}

func TestLoadRecordsBrokenFeedsWithoutFailing(t *testing.T) {
	ctx := context.Background()
	a := newActivities(t)
	lab := labfeeds.New(world.NewWorld(1), world.FixedClock(world.DefaultStart.Add(60*time.Hour)), labfeeds.Options{})
	srv := httptest.NewServer(lab.Handler())
	defer srv.Close()
	mk := func(name, path, format string) catalog.Source {
		return catalog.Source{Name: name, URL: srv.URL + path, Format: format, Type: "ipv4", Enabled: true, Prior: 0.6, Timeout: 10 * time.Second, SizeLimit: 64 << 20,
			AllowPrivate: true}
	}
	cases := []struct {
		src    catalog.Source
		status string
		errHas string
	}{
		{mk("blocklistde-strongips", "/feeds/blocklist.de/strongips.txt", "ip-list"), contract.RunMalformed, "malformed"},
		{mk("et-compromised", "/feeds/emergingthreats/compromised-ips.txt", "ip-list"), contract.RunDead, "404"},
		{mk("blocklistde-ssh", "/feeds/blocklist.de/ssh.txt", "ip-list"), contract.RunLoaded, ""},
	}
	for _, c := range cases {
		_, r := fetchAndLoad(t, a, c.src, "run1")
		if r.Status != c.status || !strings.Contains(r.Error, c.errHas) {
			t.Errorf("%s: %+v, want %s with %q", c.src.Name, r, c.status, c.errHas)
		}
		var status, errText string
		var failures int
		testenv.SQL(t, a.DB).QueryRow(ctx, `SELECT r.status, r.error, s.consecutive_failures FROM source_runs r JOIN sources s ON s.name = r.source WHERE r.source = $1`, c.src.Name).Scan(&status, &errText, &failures)
		if status != c.status || (c.status != contract.RunLoaded) != (failures == 1) {
			t.Errorf("%s recorded as %s (%q), %d consecutive failures", c.src.Name, status, errText, failures)
		}
	}
	// `tip sources` flags them.
	hs, err := a.DB.SourcesHealth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	health := map[string]string{}
	for _, h := range hs {
		health[h.Name] = h.Health
	}
	if health["et-compromised"] != "dead" || health["blocklistde-strongips"] != "failing" || health["blocklistde-ssh"] != "ok" {
		t.Errorf("health: %v", health)
	}
	// The truncated feed still loads what it has. (Its cut last line may itself
	// parse, e.g. an IPv6 address cut short, so it is not always counted as bad.)
	var entries int
	testenv.SQL(t, a.DB).QueryRow(ctx, `SELECT entries FROM source_runs WHERE source = 'blocklistde-ssh'`).Scan(&entries)
	if entries == 0 {
		t.Error("truncated feed: nothing loaded")
	}
}

// TestLoadBoundsErrorText: a feed with a few bad lines of 65 KB, and a fetch
// error of a megabyte, give a result and a source_runs row of a few kilobytes at
// most that still say how many lines were bad and show one.
func TestLoadBoundsErrorText(t *testing.T) {
	ctx := context.Background()
	a := newActivities(t)
	bad := strings.Repeat("\xff", 65_000)
	body := "1.2.3.4\n" + strings.Repeat(bad+"\n", 5) + "5.6.7.8\n"
	blob, err := a.Blobs.PutBytes(ctx, []byte(body), storage.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	src := catalog.Source{Name: "bad-lines", URL: "http://feeds.invalid/x", Format: "ip-list", Type: "ipv4", Enabled: true, Prior: 0.5}
	for _, c := range []struct {
		name  string
		fetch contract.FetchResult
		want  []string
	}{
		{"malformed", contract.FetchResult{Source: src.Name, Status: contract.FetchChanged, SHA256: blob.SHA256, Bytes: blob.Size, HTTPStatus: 200},
			[]string{"5 of 7 data lines bad", "line 2: "}},
		{"failed fetch", contract.FetchResult{Source: src.Name, Status: contract.FetchFailed, HTTPStatus: 500, Error: "HTTP 500: " + strings.Repeat("<p>oops</p>", 100_000)},
			[]string{"HTTP 500: <p>oops</p>", "more bytes)"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			res, err := runActivity[contract.LoadResult](t, a, a.LoadSource, contract.LoadInput{Source: src, Fetch: c.fetch, RunKey: c.name})
			if err != nil {
				t.Fatal(err)
			}
			payload, _ := json.Marshal(res)
			var recorded string
			if err := testenv.SQL(t, a.DB).QueryRow(ctx, `SELECT error FROM source_runs WHERE source = $1 AND run_key = $2`, src.Name, c.name).Scan(&recorded); err != nil {
				t.Fatal(err)
			}
			// JSON escapes a byte in up to 6 ("<" is \u003c), so the payload
			// stays within a few times the capped text.
			if len(res.Error) > storage.MaxErrorText || len(recorded) > storage.MaxErrorText || len(payload) > 16<<10 {
				t.Errorf("error of %d bytes in a result of %d, recorded error of %d bytes", len(res.Error), len(payload), len(recorded))
			}
			for _, w := range c.want {
				if !strings.Contains(res.Error, w) || !strings.Contains(recorded, w) {
					t.Errorf("error %.300q… does not say %q", res.Error, w)
				}
			}
			if strings.Count(res.Error, "line 2: ") > 1 {
				t.Errorf("the samples are quoted twice: %.300q…", res.Error)
			}
			t.Logf("%s: error of %d bytes in a result of %d, recorded error %d bytes", c.name, len(res.Error), len(payload), len(recorded))
		})
	}
}

// TestLoadRecordsOutcomesOnOneConnection records runs that load nothing (a
// failed, a dead, an unchanged fetch) through a pool of a single connection:
// the source's row, its health and the run are one transaction, so the load
// never waits for a second connection.
func TestLoadRecordsOutcomesOnOneConnection(t *testing.T) {
	cfg := testenv.NewBucket(t, testenv.Config(t))
	cfg.Postgres.DSN = testenv.NewDatabase(t) + "&pool_max_conns=1"
	db, blobs, err := storage.Prepare(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	a := &Blacklist{Store: db, Blobs: blobs, Downloads: &Downloads{Blobs: blobs}}
	src := catalog.Source{Name: "s", URL: "https://feeds.invalid/s", Format: "ip-list", Type: "ipv4", Enabled: true, Prior: 0.5}
	for _, f := range []contract.FetchResult{
		{Source: src.Name, Status: contract.FetchFailed, HTTPStatus: 500, Error: "HTTP 500"},
		{Source: src.Name, Status: contract.FetchDead, HTTPStatus: 404, Error: "HTTP 404"},
		{Source: src.Name, Status: contract.FetchUnchanged, HTTPStatus: 304},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := a.LoadSource(ctx, contract.LoadInput{Source: src, Fetch: f, RunKey: f.Status})
		cancel()
		if err != nil {
			t.Fatalf("load of a %s fetch: %v", f.Status, err)
		}
		if r, ok, err := db.RecordedRun(context.Background(), src.Name, f.Status); err != nil || !ok || r != res {
			t.Fatalf("load of a %s fetch = %+v; recorded %+v, %v, %v", f.Status, res, r, ok, err)
		}
	}
}
