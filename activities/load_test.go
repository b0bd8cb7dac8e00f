package activities

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/catalog"
	labfeeds "github.com/tip-project/tip/lab/feeds"
	"github.com/tip-project/tip/lab/world"
)

func load(t *testing.T, a *Activities, in LoadInput) LoadResult {
	t.Helper()
	res, err := runActivity[LoadResult](t, a, a.LoadSource, in)
	if err != nil {
		t.Fatalf("load %s: %v", in.Source.Name, err)
	}
	return res
}

func fetchAndLoad(t *testing.T, a *Activities, src catalog.Source, runKey string) (FetchResult, LoadResult) {
	t.Helper()
	f, err := fetch(t, a, src)
	if err != nil {
		t.Fatalf("fetch %s: %v", src.Name, err)
	}
	return f, load(t, a, LoadInput{Source: src, Fetch: f, RunKey: runKey})
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
		Type: "ipv4", Enabled: true, Prior: 0.9, Timeout: 10 * time.Second, SizeLimit: 64 << 20}

	f1, r1 := fetchAndLoad(t, a, src, "day1")
	want := truthValues(lab, "feodo-ipblocklist", clock.Now())
	got := active(t, a, src.Name)
	if r1.Status != RunLoaded || len(got) != len(want) || r1.Added != len(want) || r1.Entries != len(want) {
		t.Fatalf("day 1: %+v; listed %d, truth %d", r1, len(got), len(want))
	}
	for v := range want {
		if !got[v] {
			t.Fatalf("truth entry %s not listed", v)
		}
	}
	// A retried load (same run key) returns the recorded result and changes nothing.
	if again := load(t, a, LoadInput{Source: src, Fetch: f1, RunKey: "day1"}); again != r1 {
		t.Fatalf("retried load = %+v, first %+v", again, r1)
	}
	var runs, listings int
	a.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM source_runs WHERE source = $1`, src.Name).Scan(&runs)
	a.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM listings WHERE source = $1`, src.Name).Scan(&listings)
	if runs != 1 || listings != len(want) {
		t.Fatalf("after a retry: %d runs, %d listings", runs, listings)
	}

	// Unchanged content: a conditional GET, recorded as unchanged.
	if _, r := fetchAndLoad(t, a, src, "day1b"); r.Status != RunUnchanged {
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
	if r2.Status != RunLoaded || r2.Added != added || r2.Removed != removed || len(active(t, a, src.Name)) != len(want2) {
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
		return catalog.Source{Name: name, URL: srv.URL + path, Format: format, Type: "ipv4", Enabled: true, Prior: 0.6, Timeout: 10 * time.Second, SizeLimit: 64 << 20}
	}
	cases := []struct {
		src    catalog.Source
		status string
		errHas string
	}{
		{mk("blocklistde-strongips", "/feeds/blocklist.de/strongips.txt", "ip-list"), RunMalformed, "malformed"},
		{mk("et-compromised", "/feeds/emergingthreats/compromised-ips.txt", "ip-list"), RunDead, "404"},
		{mk("blocklistde-ssh", "/feeds/blocklist.de/ssh.txt", "ip-list"), RunLoaded, ""},
	}
	for _, c := range cases {
		_, r := fetchAndLoad(t, a, c.src, "run1")
		if r.Status != c.status || !strings.Contains(r.Error, c.errHas) {
			t.Errorf("%s: %+v, want %s with %q", c.src.Name, r, c.status, c.errHas)
		}
		var status, errText string
		var failures int
		a.DB.Pool.QueryRow(ctx, `SELECT r.status, r.error, s.consecutive_failures FROM source_runs r JOIN sources s ON s.name = r.source WHERE r.source = $1`, c.src.Name).Scan(&status, &errText, &failures)
		if status != c.status || (c.status != RunLoaded) != (failures == 1) {
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
