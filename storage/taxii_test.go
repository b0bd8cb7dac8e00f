package storage_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tip-project/tip/export"
	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// taxiiAll reads every version of a collection, page by page.
func taxiiAll(t *testing.T, db *storage.DB, q storage.TAXIIQuery) []storage.TAXIIEntry {
	t.Helper()
	var out []storage.TAXIIEntry
	for {
		page, err := db.TAXIIObjects(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page...)
		if len(page) < q.Limit {
			return out
		}
		last := page[len(page)-1]
		q.After = &storage.TAXIIPosition{DateAdded: last.DateAdded, ID: last.ID, Version: last.Version}
	}
}

func taxiiSync(t *testing.T, db *storage.DB, minScore float64) storage.TAXIISynced {
	t.Helper()
	res, err := db.SyncTAXII(context.Background(), storage.TAXIIOptions{MinScore: minScore, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// byValue indexes a collection's latest indicators by their name (the value).
func byValue(t *testing.T, es []storage.TAXIIEntry) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, e := range es {
		if e.Type != "indicator" {
			continue
		}
		var o map[string]any
		if err := json.Unmarshal(e.Object, &o); err != nil {
			t.Fatal(err)
		}
		out[o["name"].(string)] = o
	}
	return out
}

// A sync publishes what scores the minimum in the indicators collection and
// what own sources list in theirs, adds nothing when nothing changed, revokes
// what no source lists any more or an analyst allows, and publishes an
// indicator listed again as a new object.
func TestTaxiiSyncPublishesVersionsAndRevocations(t *testing.T) {
	ctx := context.Background()
	db := migrated(t)
	for _, s := range []storage.SourceRow{
		{Name: "feed", Prior: 0.9, Category: "botnet-c2"},
		{Name: "weak", Prior: 0.3},
		{Name: "tip-spamtrap-senders", Prior: 0.3, Category: "spam", TLP: "green"},
	} {
		s.URL, s.Format, s.Type, s.Enabled = "https://x/"+s.Name, "ip-list", "ipv4", true
		if err := db.UpsertSource(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	mergeValues(t, db, "feed", "45.10.0.1", "45.10.0.2")
	mergeValues(t, db, "weak", "45.10.0.2", "45.10.0.3")
	mergeValues(t, db, "tip-spamtrap-senders", "45.10.0.4")
	first := taxiiSync(t, db, 0.5)
	all := storage.TAXIIQuery{Collection: storage.TAXIIIndicators, Objects: true, Limit: 1000}
	latest := byValue(t, taxiiAll(t, db, all))
	if got := slices.Sorted(func(yield func(string) bool) {
		for v := range latest {
			yield(v)
		}
	}); !slices.Equal(got, []string{"45.10.0.1", "45.10.0.2"}) {
		t.Fatalf("indicators collection: %v, want what scores 0.5 or more", got)
	}
	if c := latest["45.10.0.2"]["confidence"]; c != float64(93) {
		t.Errorf("45.10.0.2's confidence %v, want 93 (0.9 and 0.3)", c)
	}
	own := byValue(t, taxiiAll(t, db, storage.TAXIIQuery{Collection: storage.TAXIIOwnSources, Objects: true, Limit: 1000}))
	if len(own) != 1 || own["45.10.0.4"] == nil || own["45.10.0.4"]["object_marking_refs"].([]any)[0] != export.TLPMarking("green") {
		t.Fatalf("own sources' collection: %v", own)
	}
	entries := taxiiAll(t, db, storage.TAXIIQuery{Collection: storage.TAXIIIndicators, Limit: 1000})
	if n := len(entries); n != 2+1+len(export.TLPs) {
		t.Errorf("%d objects in the indicators collection, want 2, TIP's identity and the %d markings", n, len(export.TLPs))
	}
	if again := taxiiSync(t, db, 0.5); again.Versions != 0 || again.Revoked != 0 {
		t.Errorf("a sync with nothing changed added %+v", again)
	}
	// 2 indicators and 1 own-listed one, and in each of the 3 collections the
	// identity and the markings.
	if want := 3 + 3*(1+len(export.TLPs)); first.Versions != want {
		t.Errorf("the first sync added %d versions, want %d", first.Versions, want)
	}
	before := taxiiAll(t, db, storage.TAXIIQuery{Collection: storage.TAXIIIndicators, All: true, Limit: 1000})
	lastAdded := before[len(before)-1].DateAdded

	// 45.10.0.1 leaves its only source: revoked, added after everything before;
	// 45.10.0.2 leaves one of its two: a new version.
	mergeValues(t, db, "feed", "45.10.0.2")
	mergeValues(t, db, "weak", "45.10.0.3")
	if res := taxiiSync(t, db, 0.5); res.Revoked != 1 {
		t.Errorf("revoked %d, want 1", res.Revoked)
	}
	changed := taxiiAll(t, db, storage.TAXIIQuery{Collection: storage.TAXIIIndicators, AddedAfter: lastAdded, Objects: true, Limit: 1000})
	gone := byValue(t, changed)
	if len(changed) != 2 || gone["45.10.0.1"]["revoked"] != true || gone["45.10.0.2"]["confidence"] != float64(90) {
		t.Fatalf("after the removal: %d versions, %v", len(changed), gone)
	}
	oldID := gone["45.10.0.1"]["id"]
	// Listed again: a new object; the revocation stays.
	mergeValues(t, db, "feed", "45.10.0.1", "45.10.0.2")
	taxiiSync(t, db, 0.5)
	latest = byValue(t, taxiiAll(t, db, all))
	if o := latest["45.10.0.1"]; o["id"] == oldID || o["id"] != export.STIXIndicatorID("ipv4", "45.10.0.1", 1) || o["revoked"] != nil {
		t.Errorf("listed again: %v (the revoked one was %v)", o, oldID)
	}
	var revokedStill bool
	for _, e := range taxiiAll(t, db, all) {
		revokedStill = revokedStill || e.ID == oldID && e.Revoked
	}
	if !revokedStill {
		t.Error("the revocation left the collection")
	}
	// An analyst allows 45.10.0.2: revoked in every collection holding it.
	if _, err := db.AddOverride(ctx, storage.Override{Kind: storage.OverrideAllow, Match: "exact", Type: "ipv4", Value: "45.10.0.2",
		Reason: "our resolver", Author: "ana"}); err != nil {
		t.Fatal(err)
	}
	if res, err := db.SyncTAXII(ctx, storage.TAXIIOptions{MinScore: 0.5}); err != nil || res.Revoked != 1 {
		t.Errorf("after an allow (the override's change noticed without Force): %+v, %v", res, err)
	}

	// Paging: every version exactly once, in order, whatever the page size.
	full := taxiiAll(t, db, storage.TAXIIQuery{Collection: storage.TAXIIIndicators, All: true, Limit: 1000})
	for _, size := range []int{1, 2, 3, 7} {
		paged := taxiiAll(t, db, storage.TAXIIQuery{Collection: storage.TAXIIIndicators, All: true, Limit: size})
		if !slices.EqualFunc(paged, full, func(a, b storage.TAXIIEntry) bool {
			return a.ID == b.ID && a.Version.Equal(b.Version) && a.DateAdded.Equal(b.DateAdded)
		}) {
			t.Errorf("pages of %d: %d versions, not the %d of one read", size, len(paged), len(full))
		}
	}
	for i := 1; i < len(full); i++ {
		a, b := full[i-1], full[i]
		if b.DateAdded.Before(a.DateAdded) || b.DateAdded.Equal(a.DateAdded) && b.ID < a.ID {
			t.Fatalf("out of order: %+v then %+v", a, b)
		}
	}
	// First versus last: 45.10.0.2 has several versions.
	id := export.STIXIndicatorID("ipv4", "45.10.0.2", 0)
	firstV, _ := db.TAXIIObjects(ctx, storage.TAXIIQuery{Collection: storage.TAXIIIndicators, IDs: []string{id}, First: true, Limit: 10})
	lastV, _ := db.TAXIIObjects(ctx, storage.TAXIIQuery{Collection: storage.TAXIIIndicators, IDs: []string{id}, Limit: 10})
	allV, _ := db.TAXIIObjects(ctx, storage.TAXIIQuery{Collection: storage.TAXIIIndicators, IDs: []string{id}, All: true, Limit: 10})
	if len(firstV) != 1 || len(lastV) != 1 || len(allV) < 3 || !firstV[0].Version.Equal(allV[0].Version) || !lastV[0].Revoked ||
		!lastV[0].Version.Equal(allV[len(allV)-1].Version) {
		t.Errorf("45.10.0.2's versions: first %+v, last %+v, all %d", firstV, lastV, len(allV))
	}
	at, _ := db.TAXIIObjects(ctx, storage.TAXIIQuery{Collection: storage.TAXIIIndicators, IDs: []string{id}, At: []time.Time{allV[1].Version}, Limit: 10})
	if len(at) != 1 || !at[0].Version.Equal(allV[1].Version) {
		t.Errorf("the version at %s: %+v", allV[1].Version, at)
	}
	types, _ := db.TAXIIObjects(ctx, storage.TAXIIQuery{Collection: storage.TAXIIIndicators, Types: []string{"marking-definition"}, Limit: 10})
	if len(types) != len(export.TLPs) {
		t.Errorf("%d marking definitions", len(types))
	}
}

// The flux networks collection: an infrastructure per network, the domains and
// agents it consists of; a network merged into another is revoked with its
// relationships.
func TestTaxiiSyncPublishesFluxNetworks(t *testing.T) {
	ctx := context.Background()
	db := migrated(t)
	t0 := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	rec := func(ips ...string) []flux.Record {
		var rs []flux.Record
		for _, ip := range ips {
			rs = append(rs, flux.Record{Addr: netip.MustParseAddr(ip), TTL: 300, ASN: 64500})
		}
		return rs
	}
	obs := func(d string, ips ...string) storage.FluxWrite {
		return storage.FluxWrite{Obs: flux.Observation{Domain: d, At: t0, Status: flux.NoError, A: rec(ips...),
			NS: []flux.NameServer{{Name: "ns1." + d, Addrs: rec("192.0.2.53")}}}}
	}
	verdict := func(d string, v flux.Verdict) storage.FluxVerdict {
		return storage.FluxVerdict{Assessment: flux.Assessment{Domain: d, Verdict: v}, At: t0}
	}
	for _, d := range []string{"a.example", "b.example", "lone.example"} {
		if err := db.RecordTriage(ctx, []storage.FluxVerdict{verdict(d, flux.VerdictFlux)}); err != nil {
			t.Fatal(err)
		}
		if err := db.SetFluxMonitor(ctx, d, contract.MonitorWatching, nil, t0); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.RecordFluxChecks(ctx, []storage.FluxWrite{obs("a.example", "198.51.100.1", "198.51.100.2"),
		obs("b.example", "198.51.100.2", "2001:db8::2"), obs("lone.example", "203.0.113.9")}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateFluxNetworks(ctx); err != nil {
		t.Fatal(err)
	}
	taxiiSync(t, db, 0.5)
	q := storage.TAXIIQuery{Collection: storage.TAXIIFluxNetworks, Objects: true, Limit: 1000}
	count := func(es []storage.TAXIIEntry) map[string]int {
		n := map[string]int{}
		for _, e := range es {
			if !e.Revoked {
				n[e.Type]++
			}
		}
		return n
	}
	es := taxiiAll(t, db, q)
	// a+b: 2 domains, 3 agents; lone: 1 and 1.
	if got, want := count(es), map[string]int{"identity": 1, "marking-definition": len(export.TLPs), "infrastructure": 2,
		"domain-name": 3, "ipv4-addr": 3, "ipv6-addr": 1, "relationship": 2 + 3 + 1 + 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("flux collection: %v, want %v", got, want)
	}
	lone := export.STIXInfrastructureID("lone.example", 0)
	// Double flux on lone.example's name servers joins it to a.example's network.
	t0 = t0.Add(time.Minute)
	if err := db.RecordTriage(ctx, []storage.FluxVerdict{verdict("lone.example", flux.VerdictDoubleFlux), verdict("a.example", flux.VerdictDoubleFlux)}); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordFluxChecks(ctx, []storage.FluxWrite{obs("a.example", "198.51.100.1")}); err != nil {
		t.Fatal(err)
	}
	if nets, err := db.UpdateFluxNetworks(ctx); err != nil || len(nets) != 1 {
		t.Fatalf("networks: %+v, %v", nets, err)
	}
	before := len(es)
	res := taxiiSync(t, db, 0.5)
	es = taxiiAll(t, db, storage.TAXIIQuery{Collection: storage.TAXIIFluxNetworks, Objects: true, All: true, Limit: 1000})
	var revoked []string
	for _, e := range es[before:] {
		if e.Revoked {
			revoked = append(revoked, e.Type)
		}
	}
	slices.Sort(revoked)
	if !slices.Equal(revoked, []string{"infrastructure", "relationship", "relationship"}) || res.Revoked != 3 {
		t.Errorf("revoked %v (%d), want lone.example's network and its two relationships", revoked, res.Revoked)
	}
	latest := taxiiAll(t, db, q)
	for _, e := range latest {
		if e.ID == lone && !e.Revoked {
			t.Error("lone.example's network is not revoked")
		}
		if e.Type == "infrastructure" && !e.Revoked {
			var o map[string]any
			json.Unmarshal(e.Object, &o)
			if o["name"] != "a.example" || o["description"] != "Fast-flux network watched by TIP: 3 domains behind 5 flux agents in 1 autonomous systems." {
				t.Errorf("the joined network: %v", o)
			}
		}
	}
}

// A client paging by date added while loads and syncs run never misses a
// version: each sync transaction's stamp is later than every one committed
// before it.
func TestTaxiiPagingByDateAddedMissesNothingWhileSyncing(t *testing.T) {
	ctx := context.Background()
	db := migrated(t)
	if err := db.UpsertSource(ctx, storage.SourceRow{Name: "feed", URL: "https://x/feed", Format: "ip-list", Type: "ipv4", Prior: 0.9, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 16)
	wg.Add(2)
	for w := range 2 { // two syncs at once, as two API replicas would
		go func() {
			defer wg.Done()
			for i := range 8 {
				if w == 0 {
					var vals []string
					for j := range 5 + i%3 {
						vals = append(vals, fmt.Sprintf("45.10.%d.%d", i%2, j))
					}
					if _, _, err := tryMerge(db, "feed", vals...); err != nil {
						errs <- err
						return
					}
				}
				if _, err := db.SyncTAXII(ctx, storage.TAXIIOptions{MinScore: 0.5, Force: true}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	// The poller pages on from the last version it read (the position a TAXII
	// next cursor holds), never from the start.
	seen := map[string]int{}
	var after *storage.TAXIIPosition
	poll := func() {
		for {
			page, err := db.TAXIIObjects(ctx, storage.TAXIIQuery{Collection: storage.TAXIIIndicators, All: true, After: after, Limit: 4})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page {
				seen[e.ID+"@"+e.Version.String()]++
			}
			if len(page) == 0 {
				return
			}
			last := page[len(page)-1]
			after = &storage.TAXIIPosition{DateAdded: last.DateAdded, ID: last.ID, Version: last.Version}
		}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		case err := <-errs:
			t.Fatal(err)
		default:
			poll()
			time.Sleep(5 * time.Millisecond)
		}
	}
	poll()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var missed, twice []string
	for _, e := range taxiiAll(t, db, storage.TAXIIQuery{Collection: storage.TAXIIIndicators, All: true, Limit: 1000}) {
		switch seen[e.ID+"@"+e.Version.String()] {
		case 0:
			missed = append(missed, e.ID)
		case 1:
		default:
			twice = append(twice, e.ID)
		}
	}
	if len(missed) > 0 || len(twice) > 0 {
		t.Errorf("the poller missed %d versions (%v) and read %d twice (%v)", len(missed), missed, len(twice), twice)
	}
	var stamps int
	testenv.SQL(t, db).QueryRow(ctx, `SELECT count(DISTINCT date_added) FROM taxii_objects WHERE collection = 'indicators'`).Scan(&stamps)
	if stamps < 8 {
		t.Errorf("%d stamps for 8 loads", stamps)
	}
}
