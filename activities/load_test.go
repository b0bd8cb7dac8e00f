package activities

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tip-project/tip/catalog"
	labfeeds "github.com/tip-project/tip/lab/feeds"
	"github.com/tip-project/tip/lab/world"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

func load(t *testing.T, a *Activities, in contract.LoadInput) contract.LoadResult {
	t.Helper()
	res, err := runActivity[contract.LoadResult](t, a, a.LoadSource, in)
	if err != nil {
		t.Fatalf("load %s: %v", in.Source.Name, err)
	}
	return res
}

func fetchAndLoad(t *testing.T, a *Activities, src catalog.Source, runKey string) (contract.FetchResult, contract.LoadResult) {
	t.Helper()
	f, err := fetch(t, a, src)
	if err != nil {
		t.Fatalf("fetch %s: %v", src.Name, err)
	}
	return f, load(t, a, contract.LoadInput{Source: src, Fetch: f, RunKey: runKey})
}

// active returns the values a source lists now.
func active(t *testing.T, a *Activities, source string) map[string]bool {
	rows, err := a.DB.Pool.Query(context.Background(), `SELECT i.value FROM listings l JOIN indicators i ON i.id = l.indicator_id WHERE l.source = $1 AND l.active`, source)
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
	a.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM source_runs WHERE source = $1`, src.Name).Scan(&runs)
	a.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM listings WHERE source = $1`, src.Name).Scan(&listings)
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
		a.DB.Pool.QueryRow(ctx, `SELECT r.status, r.error, s.consecutive_failures FROM source_runs r JOIN sources s ON s.name = r.source WHERE r.source = $1`, c.src.Name).Scan(&status, &errText, &failures)
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
	a.DB.Pool.QueryRow(ctx, `SELECT entries FROM source_runs WHERE source = 'blocklistde-ssh'`).Scan(&entries)
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
			if err := a.DB.Pool.QueryRow(ctx, `SELECT error FROM source_runs WHERE source = $1 AND run_key = $2`, src.Name, c.name).Scan(&recorded); err != nil {
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

// TestMergeWritesOnlyWhatChanged merges three lists of one source in turn and
// checks every listing's dates: a listing still listed is not rewritten, yet
// reads as seen at the source's last load; a removed one keeps the load that
// last saw it; a re-listed one keeps its first sighting.
func TestMergeWritesOnlyWhatChanged(t *testing.T) {
	ctx := context.Background()
	a := newActivities(t)
	for _, name := range []string{"s", "other"} {
		if err := a.DB.UpsertSource(ctx, storage.SourceRow{Name: name, URL: "https://x/" + name, Format: "ip-list", Type: "ipv4", Prior: 0.5, Enabled: true}); err != nil {
			t.Fatal(err)
		}
	}
	mergeList := func(source string, values ...string) (contract.LoadResult, time.Time) {
		t.Helper()
		return mergeValues(t, a, source, values...)
	}
	type listing struct {
		firstSeen, lastSeen time.Time
		active              bool
		removedAt           *time.Time
	}
	listings := func(source string) map[string]listing {
		t.Helper()
		rows, err := a.DB.Pool.Query(ctx, `SELECT i.value, l.first_seen, l.last_seen, l.active, l.removed_at
			FROM listings l JOIN indicators i ON i.id = l.indicator_id WHERE l.source = $1`, source)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]listing{}
		for rows.Next() {
			var v string
			var l listing
			if err := rows.Scan(&v, &l.firstSeen, &l.lastSeen, &l.active, &l.removedAt); err != nil {
				t.Fatal(err)
			}
			out[v] = l
		}
		return out
	}
	versions := func() map[string]string { // each listing row's version, to see what a merge rewrote
		t.Helper()
		rows, err := a.DB.Pool.Query(ctx, `SELECT i.value, l.xmin::text FROM source_listings l
			JOIN indicators i ON i.id = l.indicator_id JOIN sources s ON s.id = l.source_id WHERE s.name = 's'`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]string{}
		for rows.Next() {
			var v, x string
			rows.Scan(&v, &x)
			out[v] = x
		}
		return out
	}

	mergeList("other", "9.0.0.2") // an indicator another source listed first
	r1, t1 := mergeList("s", "9.0.0.1", "9.0.0.2", "9.0.0.2", "9.0.0.3")
	if r1.Entries != 3 || r1.Added != 3 || r1.Removed != 0 {
		t.Fatalf("first load: %+v", r1)
	}
	v1 := versions()
	r2, t2 := mergeList("s", "9.0.0.1", "9.0.0.2", "9.0.0.4")
	if r2.Entries != 3 || r2.Added != 1 || r2.Removed != 1 {
		t.Fatalf("second load: %+v", r2)
	}
	if v2 := versions(); v2["9.0.0.1"] != v1["9.0.0.1"] || v2["9.0.0.2"] != v1["9.0.0.2"] {
		t.Errorf("listings still listed were rewritten: %v, then %v", v1, v2)
	}
	ls := listings("s")
	if l := ls["9.0.0.1"]; !l.active || !l.firstSeen.Equal(t1) || !l.lastSeen.Equal(t2) || l.removedAt != nil {
		t.Errorf("still listed: %+v, loads at %s and %s", l, t1, t2)
	}
	if l := ls["9.0.0.3"]; l.active || !l.lastSeen.Equal(t1) || l.removedAt == nil || !l.removedAt.Equal(t2) {
		t.Errorf("removed: %+v, loads at %s and %s", l, t1, t2)
	}
	if l := ls["9.0.0.4"]; !l.active || !l.firstSeen.Equal(t2) || !l.lastSeen.Equal(t2) {
		t.Errorf("new: %+v, load at %s", l, t2)
	}

	r3, t3 := mergeList("s", "9.0.0.3", "9.0.0.4")
	if r3.Entries != 2 || r3.Added != 1 || r3.Removed != 2 {
		t.Fatalf("third load: %+v", r3)
	}
	ls = listings("s")
	if l := ls["9.0.0.3"]; !l.active || !l.firstSeen.Equal(t1) || !l.lastSeen.Equal(t3) || l.removedAt != nil {
		t.Errorf("re-listed: %+v, loads at %s and %s", l, t1, t3)
	}
	if l := ls["9.0.0.1"]; l.active || !l.lastSeen.Equal(t2) || !l.removedAt.Equal(t3) {
		t.Errorf("removed after two loads: %+v, loads at %s and %s", l, t2, t3)
	}
	if l := listings("other")["9.0.0.2"]; !l.active {
		t.Errorf("another source's listing changed: %+v", l)
	}
	var indicators int
	a.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM indicators`).Scan(&indicators)
	if indicators != 4 {
		t.Errorf("%d indicators, want 4", indicators)
	}
}

// mergeValues merges values as source's list, the way LoadSource does, and
// returns the load's time.
func mergeValues(t *testing.T, a *Activities, source string, values ...string) (contract.LoadResult, time.Time) {
	t.Helper()
	res, at, err := tryMerge(a, source, values...)
	if err != nil {
		t.Fatal(err)
	}
	return res, at
}

func tryMerge(a *Activities, source string, values ...string) (contract.LoadResult, time.Time, error) {
	ctx := context.Background()
	var res contract.LoadResult
	var at time.Time
	err := pgx.BeginFunc(ctx, a.DB.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE staging (type text, value text, registrable text) ON COMMIT DROP`); err != nil {
			return err
		}
		for _, v := range values {
			if _, err := tx.Exec(ctx, `INSERT INTO staging VALUES ('ipv4', $1, '')`, v); err != nil {
				return err
			}
		}
		if err := merge(ctx, tx, source, &res); err != nil {
			return err
		}
		if err := storage.SetValidators(ctx, tx, source, "", "", ""); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT now()`).Scan(&at)
	})
	return res, at, err
}

// TestMergeListsWhatAnotherLoadInsertedMeanwhile has a load insert an indicator
// that another load inserted and committed while it ran: it is listed all the
// same, once.
func TestMergeListsWhatAnotherLoadInsertedMeanwhile(t *testing.T) {
	ctx := context.Background()
	a := newActivities(t)
	if err := a.DB.UpsertSource(ctx, storage.SourceRow{Name: "s", URL: "https://x/s", Format: "ip-list", Type: "ipv4", Prior: 0.5, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	other, err := a.DB.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(ctx) //nolint:errcheck
	if _, err := other.Exec(ctx, `INSERT INTO indicators (type, value, first_seen) VALUES ('ipv4', '9.0.0.9', now())`); err != nil {
		t.Fatal(err)
	}
	type result struct {
		res contract.LoadResult
		err error
	}
	done := make(chan result)
	go func() {
		res, _, err := tryMerge(a, "s", "9.0.0.8", "9.0.0.9")
		done <- result{res, err}
	}()
	// the merge waits for the other insert of 9.0.0.9 to end; then it commits
	for waiting := false; !waiting; {
		time.Sleep(20 * time.Millisecond)
		if err := a.DB.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%WITH feed%')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.err != nil || r.res.Entries != 2 || r.res.Added != 2 {
		t.Fatalf("merge: %+v, %v", r.res, r.err)
	}
	var indicators, listed int
	a.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM indicators`).Scan(&indicators)
	a.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM listings WHERE source = 's' AND active`).Scan(&listed)
	if indicators != 2 || listed != 2 {
		t.Fatalf("%d indicators, %d listed; want 2 and 2", indicators, listed)
	}
}
