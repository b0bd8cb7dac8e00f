package storage_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/tip-project/tip/export"
	"github.com/tip-project/tip/internal/testenv"
)

func TestLookupFindsExactCoveringAndDomainListings(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := testenv.SQL(t, db).Exec(ctx, `
		INSERT INTO sources (name, url, format, type, prior, enabled) VALUES
		  ('drop', 'https://x/drop.txt', 'spamhaus-drop', 'cidr', 0.9, true),
		  ('feodo', 'https://x/feodo.txt', 'feodo-txt', 'ipv4', 0.9, true),
		  ('hosts', 'https://x/hosts', 'hosts', 'domain', 0.5, true);
		INSERT INTO indicators (type, value, registrable, first_seen) VALUES
		  ('cidr', '7.119.176.0/24', '', now()),
		  ('ipv4', '7.119.176.9', '', now()),
		  ('cidr', '2a0f:10::/32', '', now()),
		  ('domain', 'evil.example.com', 'example.com', now());
		INSERT INTO source_listings (source_id, indicator_id, first_seen, last_seen, active, removed_at)
		  SELECT (SELECT id FROM sources WHERE name = 'drop'), id, now(), NULL, true, NULL FROM indicators WHERE type = 'cidr';
		INSERT INTO source_listings (source_id, indicator_id, first_seen, last_seen, active, removed_at)
		  SELECT (SELECT id FROM sources WHERE name = 'feodo'), id, now() - interval '2 days', now() - interval '1 day', false, now() - interval '1 day' FROM indicators WHERE value = '7.119.176.9';
		INSERT INTO source_listings (source_id, indicator_id, first_seen, last_seen, active)
		  SELECT (SELECT id FROM sources WHERE name = 'hosts'), id, now(), NULL, true FROM indicators WHERE type = 'domain';`)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		typ, value, host, reg string
		want                  []string // source/match, in order
	}{
		{"ipv4", "7.119.176.9", "7.119.176.9", "", []string{"drop/cidr", "feodo/exact"}},
		{"ipv4", "7.119.177.1", "7.119.177.1", "", nil},
		{"ipv6", "2a0f:10::1", "2a0f:10::1", "", []string{"drop/cidr"}},
		{"url", "http://evil.example.com/x.exe", "evil.example.com", "example.com", []string{"hosts/domain"}},
		{"domain", "evil.example.com", "evil.example.com", "example.com", []string{"hosts/exact"}},
		{"domain", "good.example.org", "good.example.org", "example.org", nil},
	}
	for _, c := range cases {
		ls, err := db.Lookup(ctx, c.typ, c.value, c.host, c.reg)
		if err != nil {
			t.Fatalf("%s: %v", c.value, err)
		}
		var got []string
		for _, l := range ls {
			got = append(got, l.Source+"/"+l.Match)
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: %v, want %v", c.value, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: %v, want %v", c.value, got, c.want)
			}
		}
	}
}

func TestExportListedScoresAndFilters(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := testenv.SQL(t, db).Exec(ctx, `
		INSERT INTO sources (name, url, format, type, prior, enabled) VALUES
		  ('a', 'https://x/a', 'ip-list', 'ipv4', 0.5, true), ('b', 'https://x/b', 'ip-list', 'ipv4', 0.5, true);
		INSERT INTO indicators (type, value, first_seen) VALUES
		  ('ipv4', '9.0.0.1', now()), ('ipv4', '9.0.0.2', now()), ('domain', 'x.example.com', now());
		INSERT INTO source_listings (source_id, indicator_id, first_seen, last_seen, active)
		  SELECT (SELECT id FROM sources WHERE name = 'a'), id, now(), NULL, true FROM indicators;
		INSERT INTO source_listings (source_id, indicator_id, first_seen, last_seen, active)
		  SELECT (SELECT id FROM sources WHERE name = 'b'), id, now(), CASE WHEN value = '9.0.0.1' THEN NULL ELSE now() END, value = '9.0.0.1' FROM indicators WHERE type = 'ipv4';`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	err = db.ExportListed(ctx, []string{"ipv4"}, 0.6, false, func(r export.Row) error {
		got = append(got, fmt.Sprintf("%s %.2f %v", r.Value, r.Score, r.Sources))
		return nil
	})
	if err != nil || len(got) != 1 || got[0] != "9.0.0.1 0.75 [a b]" {
		t.Fatalf("export above 0.6: %v, %v", got, err)
	}
	got = nil
	if err := db.ExportListed(ctx, nil, 0, false, func(r export.Row) error { got = append(got, r.Value); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0] != "x.example.com" {
		t.Fatalf("export of everything: %v", got)
	}
}
