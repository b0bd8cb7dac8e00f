package storage_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tip-project/tip/storage"
)

// The lookup index's reads: a snapshot of every listing, active and removed,
// with its context, the sources and the changes in it; the listings of one
// change; the sources, ranked by name.
func TestLookupSnapshotHoldsEveryListingWithItsContext(t *testing.T) {
	ctx := context.Background()
	db := migrated(t)
	for _, s := range []storage.SourceRow{
		{Name: "ips", Format: "ip-list", Type: "ipv4", Prior: 0.4, Category: "attacker"},
		{Name: "feodo", Format: "feodo-csv", Type: "ipv4", Prior: 0.9, Category: "c2", TLP: "green", Licence: "CC0"},
		{Name: "idle", Format: "ip-list", Type: "ipv4", Prior: 0.1},
	} {
		s.URL, s.Enabled = "https://x/"+s.Name, true
		if err := db.UpsertSource(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now().Add(-time.Minute)
	mergeValues(t, db, "ips", "45.10.0.1", "45.10.0.2")
	mergeValues(t, db, "ips", "45.10.0.2")
	loadFeodo(t, db, "feodo", `"first_seen_utc","dst_ip","dst_port","c2_status","last_online","malware"`+"\n"+
		`"2026-07-16 13:46:00","45.10.0.2","443","online","2026-08-08","Emotet"`+"\n")

	// describe is a listing as a line, sorted, to compare.
	describe := func(l storage.LookupListing) string {
		return fmt.Sprintf("%s %s %s active=%t last=%t removed=%t listed=%s category=%q/%t malware=%q port=%q ref=%q",
			l.Type, l.Value, map[int32]string{1: "ips", 2: "feodo"}[l.SourceID], l.Active, !l.LastSeen.IsZero(), !l.RemovedAt.IsZero(),
			l.ListedAt.UTC().Format(time.DateTime), l.Category, l.OwnCategory, l.Malware, l.Port, l.Ref)
	}
	var got []string
	seen, sources, err := db.LookupSnapshot(ctx, time.Hour, func(l storage.LookupListing) error {
		if l.FirstSeen.Before(start) {
			t.Errorf("%s first seen %s, before the test", l.Value, l.FirstSeen)
		}
		got = append(got, describe(l))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	want := []string{
		`ipv4 45.10.0.1 ips active=false last=true removed=true listed=0001-01-01 00:00:00 category=""/false malware="" port="" ref=""`,
		`ipv4 45.10.0.2 feodo active=true last=false removed=false listed=2026-07-16 13:46:00 category=""/false malware="Emotet" port="443" ref=""`,
		`ipv4 45.10.0.2 ips active=true last=false removed=false listed=0001-01-01 00:00:00 category=""/false malware="" port="" ref=""`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("snapshot:\n%s\nwant\n%s", got, want)
	}
	if len(seen) != 3 || !slices.IsSortedFunc(seen, func(a, b storage.ListingChange) int { return cmp.Compare(a.Seq, b.Seq) }) {
		t.Errorf("changes in the snapshot: %+v, want the three loads'", seen)
	}

	var names []string
	for _, s := range sources {
		names = append(names, fmt.Sprintf("%d %s %.1f loaded=%t %s/%s/%s", s.Rank, s.Name, s.Weight, !s.LastSuccess.IsZero(), s.Category, s.TLP, s.Licence))
	}
	if want := []string{"0 feodo 0.9 loaded=true c2/green/CC0", "1 idle 0.1 loaded=false /clear/", "2 ips 0.4 loaded=true attacker/clear/"}; !slices.Equal(names, want) {
		t.Errorf("sources: %q, want %q", names, want)
	}
	if again, err := db.LookupSources(ctx); err != nil || len(again) != len(sources) || again[2] != sources[2] {
		t.Errorf("LookupSources: %+v, %v; the snapshot's: %+v", again, err, sources)
	}

	// The second load's change: 45.10.0.1 removed (45.10.0.2 was not touched).
	got = nil
	if err := db.ChangedLookupListings(ctx, seen[1].Seq, func(l storage.LookupListing) error {
		got = append(got, describe(l))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want[:1]) {
		t.Errorf("listings of the second change: %q, want %q", got, want[:1])
	}
}
