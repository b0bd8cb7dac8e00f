package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
)

// TestListingsMigrationKeepsWhatWasListed applies the migrations up to the one that
// keys listings by source id over listings in the old shape, and reads them back
// unchanged through the listings view: an active listing's last_seen is now its
// source's last successful load, which the old loader kept equal to it.
func TestListingsMigrationKeepsWhatWasListed(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	ms, err := storage.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	split := -1
	for i, m := range ms {
		if m.Name == "listings_by_source_id" {
			split = i
		}
	}
	if split < 0 {
		t.Fatal("no listings_by_source_id migration")
	}
	for _, m := range ms[:split] {
		if _, err := testenv.SQL(t, db).Exec(ctx, m.SQL); err != nil {
			t.Fatalf("%04d_%s: %v", m.Version, m.Name, err)
		}
	}
	_, err = testenv.SQL(t, db).Exec(ctx, `
		INSERT INTO sources (name, url, format, type, prior, enabled, last_success) VALUES
		  ('a', 'https://x/a', 'ip-list', 'ipv4', 0.8, true, '2024-03-05 10:00+00'),
		  ('b', 'https://x/b', 'ip-list', 'ipv4', 0.5, true, '2024-03-04 10:00+00');
		INSERT INTO indicators (type, value, first_seen, last_seen)
		  SELECT 'ipv4', '9.0.0.' || g, '2024-03-01 10:00+00', '2024-03-05 10:00+00' FROM generate_series(1, 3) g;
		INSERT INTO listings (source, indicator_id, first_seen, last_seen, active, removed_at)
		  SELECT 'a', id, '2024-03-01 10:00+00', '2024-03-05 10:00+00', true, NULL FROM indicators WHERE value IN ('9.0.0.1', '9.0.0.2');
		INSERT INTO listings (source, indicator_id, first_seen, last_seen, active, removed_at)
		  SELECT 'a', id, '2024-03-01 10:00+00', '2024-03-02 10:00+00', false, '2024-03-03 10:00+00' FROM indicators WHERE value = '9.0.0.3';
		INSERT INTO listings (source, indicator_id, first_seen, last_seen, active, removed_at)
		  SELECT 'b', id, '2024-03-02 10:00+00', '2024-03-04 10:00+00', true, NULL FROM indicators WHERE value = '9.0.0.2';`)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		source, value       string
		firstSeen, lastSeen time.Time
		active              bool
		removedAt           *time.Time
	}
	read := func() []row {
		t.Helper()
		rows, err := testenv.SQL(t, db).Query(ctx, `SELECT l.source, i.value, l.first_seen, l.last_seen, l.active, l.removed_at
			FROM listings l JOIN indicators i ON i.id = l.indicator_id ORDER BY l.source, i.value`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.source, &r.value, &r.firstSeen, &r.lastSeen, &r.active, &r.removedAt); err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		return out
	}
	before := read()
	for _, m := range ms[split:] {
		if _, err := testenv.SQL(t, db).Exec(ctx, m.SQL); err != nil {
			t.Fatalf("%04d_%s: %v", m.Version, m.Name, err)
		}
	}
	after := read()
	if len(before) != 4 || len(after) != len(before) {
		t.Fatalf("%d listings before, %d after", len(before), len(after))
	}
	for i := range before {
		b, a := before[i], after[i]
		if b.source != a.source || b.value != a.value || !b.firstSeen.Equal(a.firstSeen) || !b.lastSeen.Equal(a.lastSeen) ||
			b.active != a.active || (b.removedAt == nil) != (a.removedAt == nil) || (b.removedAt != nil && !b.removedAt.Equal(*a.removedAt)) {
			t.Errorf("listing %d: %+v before, %+v after", i, b, a)
		}
	}
}
