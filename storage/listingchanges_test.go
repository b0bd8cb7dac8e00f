package storage_test

import (
	"cmp"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tip-project/tip/storage"
)

// A load records its change with the rows it changed, notified at commit; a
// metrics run and an override record theirs; the snapshot holds the active
// listings and the changes already in them.
func TestListingChangesFollowWhatChanges(t *testing.T) {
	ctx := context.Background()
	db := migrated(t)
	if err := db.UpsertSource(ctx, storage.SourceRow{Name: "s", URL: "https://x/s", Format: "ip-list", Type: "ipv4", Prior: 0.5, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-time.Minute)
	notified := make(chan error, 1)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	go func() { notified <- db.WaitListingChange(wctx) }()
	// The waiter listens from some moment on: loads go on until one is notified.
	lists := [][]string{{"45.10.0.1", "45.10.0.2"}, {"45.10.0.2", "45.10.0.3"}}
	loads := 0
	for waiting := true; waiting; {
		mergeValues(t, db, "s", lists[loads%2]...)
		loads++
		select {
		case err := <-notified:
			if err != nil {
				t.Fatalf("no notification of %d loads: %v", loads, err)
			}
			waiting = false
		case <-time.After(500 * time.Millisecond):
		}
	}
	if loads%2 == 1 {
		mergeValues(t, db, "s", lists[1]...)
		loads++
	}
	start = time.Now()
	mergeValues(t, db, "s", "45.10.0.1", "45.10.0.2")
	mergeValues(t, db, "s", "45.10.0.2", "45.10.0.3")
	mergeValues(t, db, "s", "45.10.0.2", "45.10.0.3") // unchanged: no change recorded
	changes, err := db.ListingChanges(ctx, start)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 2 || changes[0].Kind != storage.ChangeListings || changes[1].Seq <= changes[0].Seq {
		t.Fatalf("changes %+v: want two listing changes", changes)
	}
	type state struct {
		value  string
		active bool
	}
	changed := func(seq int64) []state {
		var out []state
		if err := db.ChangedListings(ctx, seq, func(l storage.IndexedListing) error {
			out = append(out, state{l.Value, l.Active})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(out, func(a, b state) int { return cmp.Compare(a.value, b.value) })
		return out
	}
	// The second load's change: 45.10.0.1 removed, 45.10.0.3 added; 45.10.0.2 untouched.
	if got, want := changed(changes[1].Seq), []state{{"45.10.0.1", false}, {"45.10.0.3", true}}; !slices.Equal(got, want) {
		t.Errorf("second change: %v, want %v", got, want)
	}
	if got := changed(changes[0].Seq); len(got) != 0 {
		t.Errorf("first change, after the second: %v; the second stamped both its rows again", got)
	}

	if _, err := db.ComputeSourceMetrics(ctx); err != nil {
		t.Fatal(err)
	}
	add(t, db, storage.OverrideAllow, "45.10.0.3", "")
	changes, _ = db.ListingChanges(ctx, start)
	var kinds []string
	for _, c := range changes {
		kinds = append(kinds, c.Kind)
	}
	if want := []string{storage.ChangeListings, storage.ChangeListings, storage.ChangeWeights, storage.ChangeSuppressions}; !slices.Equal(kinds, want) {
		t.Errorf("kinds %v, want %v", kinds, want)
	}
	supp, err := db.SuppressedListings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(supp.Indicators) != 1 || len(supp.Listings) != 0 {
		t.Errorf("suppressed %+v: want 45.10.0.3 alone", supp)
	}
	var active []string
	seen, err := db.ListingSnapshot(ctx, time.Hour, func(l storage.IndexedListing) error {
		active = append(active, l.Value)
		return nil
	})
	slices.Sort(active)
	all, _ := db.ListingChanges(ctx, time.Now().Add(-time.Hour))
	if err != nil || len(seen) != len(all) || !slices.Equal(active, []string{"45.10.0.2", "45.10.0.3"}) {
		t.Errorf("snapshot: %v and %d changes, %v", active, len(seen), err)
	}
	ws, err := db.SourceWeights(ctx)
	if err != nil || len(ws) != 1 || ws[0].Name != "s" {
		t.Errorf("weights %+v, %v", ws, err)
	}
}
