package lookup_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tip-project/tip/feeds"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/lookup"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// The lab's kinds of list, small: blocks with references, addresses v4 and v6,
// C2s with their port and malware, domains, and URLs with their context.
var (
	dropList = "; DROP\n45.8.0.0/16 ; SBL1\n45.8.4.0/22 ; SBL2\n2a0f:10::/32 ; SBL3\n"
	netsList = "45.0.0.0/8\n45.8.4.0/24\n45.8.4.7\n2a0f::/16\n2a0f:10:20::/48\n91.200.12.0/22\n"
	ipsList  = "45.8.4.7\n45.8.9.1\n2a0f:10:20::5\n91.200.12.9\n"
	feodo    = func(malware, port string) string {
		return `"first_seen_utc","dst_ip","dst_port","c2_status","last_online","malware"` + "\n" +
			`"2026-07-16 13:46:00","45.8.4.7","` + port + `","online","2026-08-08","` + malware + `"` + "\n" +
			`"2026-07-17 17:40:00","91.200.12.9","8080","offline","2026-08-05","Dridex"` + "\n"
	}
	hostsList = "0.0.0.0 evil.example.com\n0.0.0.0 example.net\n0.0.0.0 bad.co.uk\n0.0.0.0 sub.bad.co.uk\n"
	urlsList  = "# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n" +
		`"1","2026-08-31 23:16:00","http://evil.example.com/payload.exe","online","2026-09-01 00:00:00","malware_download","zip,QakBot","https://urlhaus.abuse.ch/url/1/","x"` + "\n" +
		`"2","2026-08-31 22:35:00","http://files.example.net/i","online","2026-09-01 00:00:00","malware_download","elf,Mozi","https://urlhaus.abuse.ch/url/2/","x"` + "\n"
	phishList = "https://login.bad.co.uk/verify\nhttp://45.8.4.7/admin\n"
)

// queries are looked up after every change: listed values, addresses in
// listed blocks, blocks in blocks, IPv6, names under a listed registrable
// domain, URLs on a listed host, and values nothing lists.
var queries = []string{
	"45.8.0.0/16", "45.8.4.0/22", "2a0f:10::/32", "45.0.0.0/8", "45.8.4.0/24", "2a0f::/16", "2a0f:10:20::/48", "91.200.12.0/22",
	"45.8.4.7", "45.8.9.1", "2a0f:10:20::5", "91.200.12.9",
	"evil.example.com", "example.net", "bad.co.uk", "sub.bad.co.uk",
	"http://evil.example.com/payload.exe", "http://files.example.net/i", "https://login.bad.co.uk/verify", "http://45.8.4.7/admin",
	"45.8.4.99", "45.8.200.1", "45.1.2.3", "91.200.13.1", "2a0f:10:20::99", "2a0f:10::1", "2a0f:ff::1",
	"45.8.4.0/26", "45.8.0.0/20", "45.8.4.7/32", "2a0f:10:20:1::/64", "2a0f:10::/48",
	"www.example.net", "a.b.example.net", "deep.sub.bad.co.uk", "www.evil.example.com",
	"http://evil.example.com/other", "https://www.example.net/login", "http://bad.co.uk/", "http://sub.bad.co.uk:8080/x",
	"93.184.216.34", "good.example.org", "http://good.example.org/", "2a10::1", "46.0.0.0/16", "46.1.2.3",
}

// env is a database with the test's sources, an index of it, and FromDB to
// compare with.
type env struct {
	t   *testing.T
	db  *storage.DB
	idx *lookup.Index
	now time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	db := testenv.MigratedDB(t)
	for _, s := range []storage.SourceRow{
		{Name: "drop", Format: "spamhaus-drop", Type: "cidr", Prior: 0.9, TLP: "green", Licence: "CC-BY-4.0", Category: "hijacked"},
		{Name: "nets", Format: "netset", Type: "cidr", Prior: 0.5},
		{Name: "ips", Format: "ip-list", Type: "ipv4", Prior: 0.4, Category: "attacker"},
		{Name: "feodo", Format: "feodo-csv", Type: "ipv4", Prior: 0.8, Category: "c2"},
		{Name: "hosts", Format: "hosts", Type: "domain", Prior: 0.3},
		{Name: "urls", Format: "urlhaus-csv", Type: "url", Prior: 0.7, TLP: "amber"},
		{Name: "phish", Format: "url-list", Type: "url", Prior: 0.6, Category: "phishing"},
	} {
		s.URL, s.Enabled = "https://x/"+s.Name, true
		if err := db.UpsertSource(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{t: t, db: db, now: time.Now()}
	e.idx = lookup.NewIndex(db, nil)
	lookup.SetClock(e.idx, func() time.Time { return e.now })
	return e
}

var runKeys atomic.Int64

// load loads a list as a source's, as a run of the source does.
func (e *env) load(source, format, body string) {
	e.t.Helper()
	ctx := context.Background()
	l, err := e.db.BeginListingLoad(ctx, source)
	if err != nil {
		e.t.Fatal(err)
	}
	defer l.Rollback(ctx)
	if _, _, perr, cerr := l.CopyParsed(ctx, format, feeds.Options{}, strings.NewReader(body), nil); perr != nil || cerr != nil {
		e.t.Fatalf("load %s: %v, %v", source, perr, cerr)
	}
	m, err := l.Merge(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := l.Commit(ctx, storage.SourceRun{RunKey: fmt.Sprint("run-", runKeys.Add(1)), Fetch: contract.FetchResult{StartedAt: time.Now()},
		Result: contract.LoadResult{Source: source, Status: contract.RunLoaded, Entries: m.Entries, Added: m.Added, Removed: m.Removed}}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) loadAll() {
	e.load("drop", "spamhaus-drop", dropList)
	e.load("nets", "netset", netsList)
	e.load("ips", "ip-list", ipsList)
	e.load("feodo", "feodo-csv", feodo("Emotet", "443"))
	e.load("hosts", "hosts", hostsList)
	e.load("urls", "urlhaus-csv", urlsList)
	e.load("phish", "url-list", phishList)
}

func (e *env) update() {
	e.t.Helper()
	if err := e.idx.Update(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

// compare looks every query up both ways and fails on any difference, after
// putting FromDB's listings that tie on its order (active, first sighting,
// source) in the index's order for ties. It returns how many listings of each
// match and state the queries found.
func (e *env) compare(stage string) map[string]int {
	e.t.Helper()
	ctx := context.Background()
	seen := map[string]int{}
	for _, arg := range queries {
		q, err := lookup.Parse(arg)
		if err != nil {
			e.t.Fatalf("%s: %v", arg, err)
		}
		want, err := lookup.FromDB(ctx, e.db, q, e.now)
		if err != nil {
			e.t.Fatalf("%s: FromDB: %v", arg, err)
		}
		got, err := e.idx.Lookup(ctx, q)
		if err != nil {
			e.t.Fatalf("%s: Index.Lookup: %v", arg, err)
		}
		slices.SortStableFunc(want.Listings, func(a, b storage.Listing) int {
			if a.Active != b.Active || !a.FirstSeen.Equal(b.FirstSeen) || a.Source != b.Source {
				return 0 // FromDB's order stands
			}
			return cmp.Or(cmp.Compare(a.Match, b.Match), cmp.Compare(a.Value, b.Value))
		})
		wj, _ := json.MarshalIndent(want, "", " ")
		gj, _ := json.MarshalIndent(got, "", " ")
		if string(wj) != string(gj) {
			e.t.Errorf("%s: %s: the index gives\n%s\nFromDB gives\n%s", stage, arg, gj, wj)
		}
		for _, l := range want.Listings {
			seen[l.Match]++
			if !l.Active {
				seen["removed"]++
			}
			if l.Malware != "" || l.Ref != "" || l.Port != "" || l.Listed != nil {
				seen["context"]++
			}
		}
		if len(want.Overrides) > 0 {
			seen["overrides"]++
		}
	}
	return seen
}

// TestIndexAnswersAsFromDB compares the index's answers with SQL's after
// loads, a removal, a context change, a weights change, a source's new
// terms, and overrides.
func TestIndexAnswersAsFromDB(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	if e.idx.Ready() {
		t.Fatal("ready before its first load")
	}
	if _, err := e.idx.Lookup(ctx, lookup.Query{Indicator: feeds.Indicator{Type: feeds.IPv4, Value: "45.8.4.7"}}); !errors.Is(err, lookup.ErrNotReady) {
		t.Fatalf("a lookup before the load: %v, want ErrNotReady", err)
	}
	e.loadAll()
	if err := e.idx.Load(ctx); err != nil {
		t.Fatal(err)
	}
	seen := e.compare("after the loads")
	for _, m := range []string{"exact", "cidr", "domain", "context"} {
		if seen[m] == 0 {
			t.Errorf("no query found a listing by %s: %v", m, seen)
		}
	}
	if s := e.idx.Stats(); !s.Ready || s.Listings == 0 || s.Active != s.Listings || s.Sources != 7 || s.Memory <= 0 {
		t.Errorf("stats after the load: %+v", s)
	}

	// A removal: the listings the source no longer lists stay, removed.
	e.now = e.now.Add(time.Hour) // a removed listing's score decays from its removal
	e.load("ips", "ip-list", "45.8.9.1\n91.200.12.9\n")
	e.update()
	if seen := e.compare("after a removal"); seen["removed"] == 0 {
		t.Errorf("no removed listing found: %v", seen)
	}
	if s := e.idx.Stats(); s.Active >= s.Listings || s.LastChange == 0 {
		t.Errorf("stats after a removal: %+v", s)
	}

	// A context change of a listing still listed, a re-listing, and a new source.
	e.load("feodo", "feodo-csv", feodo("QakBot", "8443"))
	e.load("ips", "ip-list", "45.8.9.1\n91.200.12.9\n2a0f:10:20::5\n")
	if err := e.db.UpsertSource(ctx, storage.SourceRow{Name: "late", URL: "https://x/late", Format: "netset", Type: "cidr", Prior: 0.2, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	e.load("late", "netset", "45.8.4.0/23\n2a0f:10:20::/47\n")
	e.update()
	e.compare("after a context change, a re-listing and a new source")

	// New weights, and a source's new terms (no change is recorded for them:
	// the sources are read at every update).
	if _, err := e.db.ComputeSourceMetrics(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.db.UpsertSource(ctx, storage.SourceRow{Name: "nets", URL: "https://x/nets", Format: "netset", Type: "cidr", Prior: 0.55,
		Enabled: true, TLP: "red", Licence: "proprietary", Category: "bogon"}); err != nil {
		t.Fatal(err)
	}
	e.update()
	e.compare("after a weights change and new terms")

	// Overrides: an allowed block and a false positive.
	for _, o := range []struct{ kind, target, source string }{
		{storage.OverrideAllow, "45.8.4.0/24", ""}, {storage.OverrideFP, "evil.example.com", "hosts"},
	} {
		ov, err := storage.ParseOverrideTarget(o.target)
		if err != nil {
			t.Fatal(err)
		}
		ov.Kind, ov.Source, ov.Reason, ov.Author = o.kind, o.source, "test", "tester"
		if _, err := e.db.AddOverride(ctx, ov); err != nil {
			t.Fatal(err)
		}
	}
	e.update()
	if seen := e.compare("after overrides"); seen["overrides"] == 0 {
		t.Errorf("no query found an override: %v", seen)
	}

	// A build from scratch gives the same answers as the updates did.
	if err := e.idx.Load(ctx); err != nil {
		t.Fatal(err)
	}
	e.compare("after a new build")
}

// TestIndexRunCatchesUp runs an index and loads lists meanwhile: a change
// reaches its answers through PostgreSQL's notification, without a poll.
func TestIndexRunCatchesUp(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.loadAll()
	e.idx.Poll = time.Hour
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.idx.Run(rctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	for deadline := time.Now().Add(30 * time.Second); !e.idx.Ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not ready 30 s after Run started")
		}
	}
	e.compare("after Run loaded")
	// Run listens from some moment after its load: lists are loaded until the
	// index shows one.
	caught := false
	for i := 1; i <= 20 && !caught; i++ {
		value := fmt.Sprintf("46.1.2.%d", i)
		e.load("ips", "ip-list", ipsList+value+"\n")
		committed := time.Now()
		q, _ := lookup.Parse(value)
		for deadline := committed.Add(time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			d, err := e.idx.Lookup(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			// caught: the listing shows, and the update that brought it (the
			// sources are read after the listings) is over
			if len(d.Listings) == 1 && d.Listings[0].Active && e.idx.Stats().UpdatedAt.After(committed) {
				t.Logf("load %d shown %s after its commit", i, time.Since(committed).Round(time.Millisecond))
				caught = true
				break
			}
		}
	}
	if !caught {
		t.Fatal("the index never showed a load committed while it ran")
	}
	e.compare("after Run caught up")
}
