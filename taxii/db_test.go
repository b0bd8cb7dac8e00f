package taxii

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tip-project/tip/feeds"
	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var runKeys atomic.Int64

// load lists values as source's whole list, as a feed's load does.
func load(t *testing.T, db *storage.DB, source string, values ...string) {
	t.Helper()
	ctx := context.Background()
	l, err := db.BeginListingLoad(ctx, source)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Rollback(ctx)
	if _, _, parseErr, copyErr := l.CopyParsed(ctx, "ip-list", feeds.Options{}, strings.NewReader(strings.Join(values, "\n")+"\n"), nil); parseErr != nil || copyErr != nil {
		t.Fatal(parseErr, copyErr)
	}
	m, err := l.Merge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	run := storage.SourceRun{RunKey: fmt.Sprint("load-", runKeys.Add(1)), Fetch: contract.FetchResult{StartedAt: time.Now()},
		Result: contract.LoadResult{Source: source, Status: contract.RunLoaded, Entries: m.Entries, Added: m.Added, Removed: m.Removed}}
	if err := l.Commit(ctx, run); err != nil {
		t.Fatal(err)
	}
}

// client is a TAXII 2.1 client of the test server.
type client struct {
	t    *testing.T
	http *http.Client
}

func (c client) get(u string, into any) http.Header {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Accept", MediaTAXII)
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != MediaTAXII {
		c.t.Fatalf("GET %s: %s, %s", u, res.Status, res.Header.Get("Content-Type"))
	}
	if err := json.NewDecoder(res.Body).Decode(into); err != nil {
		c.t.Fatalf("GET %s: %v", u, err)
	}
	return res.Header
}

// pages reads a collection resource (objects or manifest) page by page from
// query on, returning its items and the last page's X-TAXII-Date-Added-Last.
func (c client) pages(base string, query url.Values, limit int) (items []json.RawMessage, last string) {
	c.t.Helper()
	query.Set("limit", fmt.Sprint(limit))
	for {
		var env struct {
			More    bool
			Next    string
			Objects []json.RawMessage
		}
		h := c.get(base+"?"+query.Encode(), &env)
		if len(env.Objects) > limit || env.More != (env.Next != "") {
			c.t.Fatalf("%s: %d objects (limit %d), more %v, next %q", base, len(env.Objects), limit, env.More, env.Next)
		}
		items = append(items, env.Objects...)
		if l := h.Get("X-TAXII-Date-Added-Last"); l != "" {
			last = l
		}
		if !env.More {
			return items, last
		}
		query.Set("next", env.Next)
	}
}

// A TAXII client of a real database finds the API root from the discovery
// resource, reads each collection whole page by page (every object valid,
// every reference held by the collection, the manifest naming the same
// versions), then polls with added_after and finds the revocation of what no
// source lists any more.
func TestServesTheDatabaseToATAXIIClient(t *testing.T) {
	ctx := context.Background()
	db := testenv.MigratedDB(t)
	for _, s := range []storage.SourceRow{
		{Name: "feed", Prior: 0.9, Category: "botnet-c2"},
		{Name: "amber", Prior: 0.6, Category: "phishing", TLP: "amber"},
		{Name: "tip-flux-agents", Prior: 0.3, Category: "fast-flux", TLP: "green"},
	} {
		s.URL, s.Format, s.Type, s.Enabled = "https://x/"+s.Name, "ip-list", "ipv4", true
		if err := db.UpsertSource(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	load(t, db, "feed", "45.10.0.1", "45.10.0.2")
	load(t, db, "amber", "45.10.0.2")
	load(t, db, "tip-flux-agents", "45.10.0.9")
	if _, err := testenv.SQL(t, db).Exec(ctx, `
		UPDATE source_listings SET malware = 'Emotet', port = '443', ref = 'https://feodotracker.abuse.ch/browse/host/45.10.0.1/'
		 WHERE indicator_id = (SELECT id FROM indicators WHERE value = '45.10.0.1')`); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Hour).UTC()
	if err := db.RecordTriage(ctx, []storage.FluxVerdict{{Assessment: flux.Assessment{Domain: "a.example", Verdict: flux.VerdictFlux}, At: at}}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetFluxMonitor(ctx, "a.example", contract.MonitorWatching, nil, at); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordFluxChecks(ctx, []storage.FluxWrite{{Obs: flux.Observation{Domain: "a.example", At: at, Status: flux.NoError,
		A:    []flux.Record{{Addr: netip.MustParseAddr("198.51.100.1"), TTL: 300, ASN: 64500}},
		AAAA: []flux.Record{{Addr: netip.MustParseAddr("2001:db8::1"), TTL: 300, ASN: 64501}}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateFluxNetworks(ctx); err != nil {
		t.Fatal(err)
	}

	cfg := Config{MinScore: 0.5, SyncEvery: -1}
	src := FromDB(db, cfg)
	if _, err := src.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(cfg, src))
	defer srv.Close()
	c := client{t: t, http: srv.Client()}
	var discovery struct {
		Default  string
		APIRoots []string `json:"api_roots"`
	}
	c.get(srv.URL+"/taxii2/", &discovery)
	if len(discovery.APIRoots) != 1 || discovery.Default != discovery.APIRoots[0] || discovery.Default != srv.URL+"/taxii2/tip/" {
		t.Fatalf("discovery: %+v", discovery)
	}
	var collections struct{ Collections []Collection }
	c.get(discovery.Default+"collections/", &collections)
	held := map[string]map[string]map[string]any{} // collection key → id → latest object
	for _, coll := range collections.Collections {
		base := discovery.Default + "collections/" + coll.ID + "/"
		objects, _ := c.pages(base+"objects/", url.Values{}, 2)
		for _, p := range stixProblems(t, objects) {
			t.Errorf("%s: %s", coll.Alias, p)
		}
		manifest, _ := c.pages(base+"manifest/", url.Values{}, 3)
		if len(manifest) != len(objects) {
			t.Errorf("%s: %d manifest records, %d objects", coll.Alias, len(manifest), len(objects))
		}
		held[coll.Alias] = map[string]map[string]any{}
		for i, raw := range objects {
			var o map[string]any
			json.Unmarshal(raw, &o)
			if held[coll.Alias][o["id"].(string)] != nil {
				t.Errorf("%s: %s twice", coll.Alias, o["id"])
			}
			held[coll.Alias][o["id"].(string)] = o
			var rec struct{ ID, Version string }
			if i < len(manifest) {
				json.Unmarshal(manifest[i], &rec)
			}
			version, _ := o["modified"].(string)
			if version == "" {
				version, _ = o["created"].(string)
			}
			if rec.ID != o["id"] || version != "" && rec.Version != version {
				t.Errorf("%s: manifest record %+v for %s version %s", coll.Alias, rec, o["id"], version)
			}
		}
	}
	names := func(key, typ string) []string {
		var out []string
		for _, o := range held[key] {
			if o["type"] == typ {
				n, _ := o["name"].(string)
				if v, ok := o["value"].(string); ok {
					n = v
				}
				out = append(out, n)
			}
		}
		slices.Sort(out)
		return out
	}
	if got := names(storage.TAXIIIndicators, "indicator"); !slices.Equal(got, []string{"45.10.0.1", "45.10.0.2"}) {
		t.Errorf("indicators: %v", got)
	}
	if got := names(storage.TAXIIOwnSources, "indicator"); !slices.Equal(got, []string{"45.10.0.9"}) {
		t.Errorf("own sources' indicators: %v", got)
	}
	if got := names(storage.TAXIIFluxNetworks, "infrastructure"); !slices.Equal(got, []string{"a.example"}) {
		t.Errorf("flux networks: %v", got)
	}
	if got := append(names(storage.TAXIIFluxNetworks, "ipv4-addr"), names(storage.TAXIIFluxNetworks, "ipv6-addr")...); !slices.Equal(got, []string{"198.51.100.1", "2001:db8::1"}) {
		t.Errorf("flux agents: %v", got)
	}
	for _, o := range held[storage.TAXIIIndicators] {
		switch o["name"] {
		case "45.10.0.1":
			if refs := o["external_references"].([]any); len(refs) != 1 || !strings.Contains(fmt.Sprint(o["labels"]), "Emotet") {
				t.Errorf("45.10.0.1 says nothing of its context: %v", o)
			}
		case "45.10.0.2":
			if o["object_marking_refs"].([]any)[0] != "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421" {
				t.Errorf("45.10.0.2, listed by an amber source: %v", o["object_marking_refs"])
			}
		}
	}

	// A client polling the indicators collection from where it stopped finds
	// the revocation, and nothing else.
	base := discovery.Default + "collections/" + CollectionID(storage.TAXIIIndicators) + "/objects/"
	_, last := c.pages(base, url.Values{}, 100)
	load(t, db, "feed", "45.10.0.2")
	if _, err := src.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	changed, _ := c.pages(base, url.Values{"added_after": {last}}, 100)
	if len(changed) != 1 || !strings.Contains(string(changed[0]), `"revoked":true`) || !strings.Contains(string(changed[0]), `"name":"45.10.0.1"`) {
		t.Errorf("after 45.10.0.1's removal: %s", changed)
	}
	all, _ := c.pages(base, url.Values{"match[version]": {"all"}}, 2)
	for _, p := range stixProblems(t, all) {
		t.Errorf("every version: %s", p)
	}
}
