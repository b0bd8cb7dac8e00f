package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/tip-project/tip/export"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
)

// loadFeodo loads a Feodo CSV body as source's list and returns what the
// merge did.
func loadFeodo(t *testing.T, db *storage.DB, source, body string) storage.Merged {
	t.Helper()
	m, _, err := tryLoad(db, source, "feodo-csv", body)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestListingContext: what a feed says of each entry (malware, port, its own
// listing time) is kept with the listing, shown by lookups and exports with
// the source's category and terms, and follows the feed when it changes; a
// listing whose context did not change is not rewritten.
func TestListingContext(t *testing.T) {
	ctx := context.Background()
	db := migrated(t)
	if err := db.UpsertSource(ctx, storage.SourceRow{Name: "feodo", URL: "https://x/f", Format: "feodo-csv", Type: "ipv4", Prior: 0.9,
		Enabled: true, Category: "botnet-c2", Licence: "CC0", TLP: "green"}); err != nil {
		t.Fatal(err)
	}
	head := "first_seen_utc,dst_ip,dst_port,c2_status,last_online,malware\n"
	m := loadFeodo(t, db, "feodo", head+
		"2026-11-02 10:00:00,45.10.0.7,443,online,,Emotet\n"+
		"2026-11-03 11:00:00,45.10.0.8,8080,online,,QakBot\n")
	if m.Added != 2 {
		t.Fatalf("merge %+v, want 2 added", m)
	}
	ls, err := db.Lookup(ctx, "ipv4", "45.10.0.7", "45.10.0.7", "")
	if err != nil || len(ls) != 1 {
		t.Fatalf("lookup: %+v, %v", ls, err)
	}
	l := ls[0]
	if l.Malware != "Emotet" || l.Port != "443" || l.Category != "botnet-c2" || l.TLP != "green" || l.Licence != "CC0" ||
		l.Listed == nil || !l.Listed.Equal(time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("listing %+v: want Emotet, port 443, botnet-c2, green, CC0, listed 2026-11-02 10:00", l)
	}

	var rows []export.Row
	if err := db.ExportListed(ctx, nil, 0, true, func(r export.Row) error { rows = append(rows, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || len(rows[1].Context) != 1 {
		t.Fatalf("export: %+v", rows)
	}
	if c := rows[1].Context[0]; c.Source != "feodo" || c.Malware != "QakBot" || c.Port != "8080" || c.Category != "botnet-c2" ||
		c.TLP != "green" || !c.Listed.Equal(time.Date(2026, 11, 3, 11, 0, 0, 0, time.UTC)) {
		t.Errorf("export context %+v", c)
	}

	versions := func() map[string]string {
		out := map[string]string{}
		rows, err := testenv.SQL(t, db).Query(ctx, `SELECT i.value, l.xmin::text FROM source_listings l JOIN indicators i ON i.id = l.indicator_id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var v, x string
			rows.Scan(&v, &x) //nolint:errcheck
			out[v] = x
		}
		return out
	}
	before := versions()
	// The family of .8 changes; .7 is as it was.
	m = loadFeodo(t, db, "feodo", head+
		"2026-11-02 10:00:00,45.10.0.7,443,online,,Emotet\n"+
		"2026-11-03 11:00:00,45.10.0.8,8080,online,,Pikabot\n")
	after := versions()
	if m.Added != 0 || m.Removed != 0 || m.Updated != 1 {
		t.Errorf("merge %+v, want 1 updated only", m)
	}
	if before["45.10.0.7"] != after["45.10.0.7"] || before["45.10.0.8"] == after["45.10.0.8"] {
		t.Errorf("row versions %v then %v: want only .8 rewritten", before, after)
	}
	ls, _ = db.Lookup(ctx, "ipv4", "45.10.0.8", "45.10.0.8", "")
	if len(ls) != 1 || ls[0].Malware != "Pikabot" {
		t.Errorf("after the change: %+v, want Pikabot", ls)
	}
	// A change of context is a listing change: the live zones and the API see it.
	var changed int
	if err := testenv.SQL(t, db).QueryRow(ctx, `SELECT count(*) FROM source_listings l JOIN listing_changes c ON c.seq = l.changed_seq
		JOIN indicators i ON i.id = l.indicator_id WHERE i.value = '45.10.0.8'`).Scan(&changed); err != nil || changed != 1 {
		t.Errorf("the updated listing's change recorded: %d, %v", changed, err)
	}
}
