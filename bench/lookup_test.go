//go:build bench

package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/tip-project/tip/activities"
	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/lookup"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// lookupTarget is the p99 the API's lookups must stay under, answered from
// the index with the lab's million listings.
const lookupTarget = 5 * time.Millisecond

// lookupQueries is how many lookups each way measures.
const lookupQueries = 20000

// benchLookup loads every lab source, and the next lab day's lists over them
// (so removed listings are there too), builds the lookup index, and times one
// run of lookups of a realistic mix through the index and through SQL
// (lookup.FromDB, what `tip lookup` does): listed addresses, addresses in
// listed blocks, listed domains and names under them, listed URLs, and
// values nothing lists. It reports their p50, p99 and max, the index's build
// time and heap per listing, and checks that both give the same documents.
func benchLookup(t *testing.T, l *lab, r *report) {
	ctx := context.Background()
	a := newActivities(t)
	db := a.Store.(*storage.DB)
	c, err := catalog.Load(l.catalog, activities.KnownFormat)
	if err != nil {
		t.Fatal(err)
	}
	loadAll := func(day int) {
		for _, s := range c.Enabled() {
			s.Interval = 0 // each source is fetched again the next lab day
			f, err := a.FetchSource(ctx, s)
			if err != nil || f.Status != contract.FetchChanged {
				continue // the lab's dead and broken feeds
			}
			if _, err := a.LoadSource(ctx, contract.LoadInput{Source: s, Fetch: f, RunKey: fmt.Sprintf("lookup-bench/%s/%d", s.Name, day)}); err != nil {
				t.Logf("load %s: %v", s.Name, err)
			}
		}
	}
	loadAll(0)
	l.clock.Set(labTime.Add(24 * time.Hour))
	defer l.clock.Set(labTime)
	loadAll(1)
	sql := testenv.SQL(t, db)
	if _, err := sql.Exec(ctx, `ANALYZE indicators; ANALYZE source_listings`); err != nil {
		t.Fatal(err)
	}

	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	idx := lookup.NewIndex(db, nil)
	start := time.Now()
	if err := idx.Load(ctx); err != nil {
		t.Fatal(err)
	}
	buildTook := time.Since(start)
	perListing := float64(heap()-before) / float64(idx.Stats().Listings)
	stats := idx.Stats()

	qs := lookupMix(t, ctx, db)
	// Both ways answer alike (FromDB's ties on its order put in the index's; the
	// scores, which decay with the time each is computed at, within a millionth).
	differ := 0
	for _, q := range qs[:1000] {
		want, err1 := lookup.FromDB(ctx, db, q, time.Now())
		got, err2 := idx.Lookup(ctx, q)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		slices.SortStableFunc(want.Listings, func(a, b storage.Listing) int {
			if a.Active != b.Active || !a.FirstSeen.Equal(b.FirstSeen) || a.Source != b.Source {
				return 0
			}
			return cmp.Or(cmp.Compare(a.Match, b.Match), cmp.Compare(a.Value, b.Value))
		})
		scoresDiffer := math.Abs(want.Score-got.Score) > 1e-6
		want.Score, got.Score = 0, 0
		wj, _ := json.Marshal(want)
		gj, _ := json.Marshal(got)
		if scoresDiffer || string(wj) != string(gj) {
			if differ == 0 {
				t.Errorf("%s: the index gives %s\nFromDB gives %s", q.Indicator.Value, gj, wj)
			}
			differ++
		}
	}

	time1 := func(f func(lookup.Query) error) []time.Duration {
		for _, q := range qs[:500] { // warm both ways up
			if err := f(q); err != nil {
				t.Fatal(err)
			}
		}
		ds := make([]time.Duration, 0, len(qs))
		for _, q := range qs {
			s := time.Now()
			if err := f(q); err != nil {
				t.Fatal(err)
			}
			ds = append(ds, time.Since(s))
		}
		slices.Sort(ds)
		return ds
	}
	fromIndex := time1(func(q lookup.Query) error { _, err := idx.Lookup(ctx, q); return err })
	fromSQL := time1(func(q lookup.Query) error { _, err := lookup.FromDB(ctx, db, q, time.Now()); return err })
	// The part of each that is the same SQL: the allowlist entries and overrides.
	suppressions := time1(func(q lookup.Query) error {
		ind := q.Indicator
		if _, err := db.AllowlistHits(ctx, string(ind.Type), ind.Value, q.Host, ind.Registrable); err != nil {
			return err
		}
		_, err := db.OverridesCovering(ctx, string(ind.Type), ind.Value)
		return err
	})
	p := func(ds []time.Duration, q float64) time.Duration { return ds[min(len(ds)-1, int(float64(len(ds))*q))] }
	ms := func(d time.Duration) string { return fmt.Sprintf("%.3fms", float64(d.Microseconds())/1000) }
	line := func(ds []time.Duration) string {
		return fmt.Sprintf("p50 %s, p99 %s, max %s", ms(p(ds, 0.5)), ms(p(ds, 0.99)), ms(ds[len(ds)-1]))
	}

	var cidrs int
	if err := sql.QueryRow(ctx, `SELECT count(*) FROM indicators WHERE type = 'cidr'`).Scan(&cidrs); err != nil {
		t.Fatal(err)
	}
	r.add(t, "lookup: index of %d listings (%d active, %d indicators of which %d CIDR blocks, %d sources) built in %s, %.0f bytes of heap per listing (its own estimate %.0f)",
		stats.Listings, stats.Active, stats.Indicators, cidrs, stats.Sources, buildTook.Round(time.Millisecond), perListing,
		float64(stats.Memory)/float64(stats.Listings))
	r.add(t, "lookup: %d lookups (%s): index %s; SQL (tip lookup) %s",
		len(qs), mixSummary(qs), line(fromIndex), line(fromSQL))
	r.add(t, "lookup:   SQL/index: p50 %.1fx, p99 %.1fx, max %.1fx; the allowlist and override SQL both run: %s",
		p(fromSQL, 0.5).Seconds()/p(fromIndex, 0.5).Seconds(), p(fromSQL, 0.99).Seconds()/p(fromIndex, 0.99).Seconds(),
		fromSQL[len(fromSQL)-1].Seconds()/fromIndex[len(fromIndex)-1].Seconds(), line(suppressions))
	r.add(t, "lookup:   index p99 under %s: %s; answers as FromDB's for %d of 1000 compared",
		lookupTarget, met(p(fromIndex, 0.99) < lookupTarget), 1000-differ)
}

// lookupMix draws the queries from what the lab lists: 35% listed addresses,
// 15% addresses in listed blocks (IPv4 and IPv6), 5% listed blocks, 10%
// listed domains, 5% names under listed domains, 15% listed URLs and 15%
// values nothing lists (addresses, domains and URLs), in random order.
func lookupMix(t *testing.T, ctx context.Context, db *storage.DB) []lookup.Query {
	t.Helper()
	sql := testenv.SQL(t, db)
	values := func(typ string, n int) []string {
		rows, err := sql.Query(ctx, `SELECT value FROM indicators WHERE type = $1 ORDER BY random() LIMIT $2`, typ, n)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			out = append(out, v)
		}
		if len(out) == 0 {
			t.Fatalf("the lab lists no %s", typ)
		}
		return out
	}
	r := rand.New(rand.NewPCG(21, 5))
	pick := func(vs []string) string { return vs[r.IntN(len(vs))] }
	addrs, blocks, domains, urls := values("ipv4", lookupQueries), values("cidr", lookupQueries), values("domain", lookupQueries), values("url", lookupQueries)
	inBlock := func() string {
		p := netip.MustParsePrefix(pick(blocks))
		b := p.Addr().AsSlice()
		for i := p.Bits(); i < len(b)*8; i++ { // random host bits
			if r.IntN(2) == 1 {
				b[i/8] |= 1 << (7 - i%8)
			}
		}
		a, _ := netip.AddrFromSlice(b)
		return a.String()
	}
	unlisted := func() string {
		switch r.IntN(3) {
		case 0:
			return netip.AddrFrom4([4]byte{byte(1 + r.IntN(222)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))}).String()
		case 1:
			return fmt.Sprintf("host%d.unlisted-%d.com", r.IntN(1000), r.IntN(100000))
		}
		return fmt.Sprintf("http://unlisted-%d.net/path/%d", r.IntN(100000), r.IntN(1000))
	}
	var out []lookup.Query
	for len(out) < lookupQueries {
		var arg string
		switch n := r.IntN(100); {
		case n < 35:
			arg = pick(addrs)
		case n < 50:
			arg = inBlock()
		case n < 55:
			arg = pick(blocks)
		case n < 65:
			arg = pick(domains)
		case n < 70:
			arg = "www." + pick(domains)
		case n < 85:
			arg = pick(urls)
		default:
			arg = unlisted()
		}
		if q, err := lookup.Parse(arg); err == nil { // private space and the like are refused
			out = append(out, q)
		}
	}
	return out
}

// mixSummary counts the queries by type.
func mixSummary(qs []lookup.Query) string {
	n := map[string]int{}
	for _, q := range qs {
		n[string(q.Indicator.Type)]++
	}
	var out []string
	for _, typ := range []string{"ipv4", "ipv6", "cidr", "domain", "url"} {
		if n[typ] > 0 {
			out = append(out, fmt.Sprintf("%d %s", n[typ], typ))
		}
	}
	return fmt.Sprint(out)
}
