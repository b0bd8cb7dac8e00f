package storage_test

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/export"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
)

func TestParseOverrideTarget(t *testing.T) {
	cases := []struct {
		raw                    string
		match, typ, value, err string
	}{
		{raw: "7.119.176.9", match: "exact", typ: "ipv4", value: "7.119.176.9"},
		{raw: "2A0F:10::1", match: "exact", typ: "ipv6", value: "2a0f:10::1"},
		{raw: "7.119.176.9/24", match: "cidr", typ: "cidr", value: "7.119.176.0/24"},
		{raw: "7.119.176.9/32", match: "exact", typ: "ipv4", value: "7.119.176.9"},
		{raw: "Login.Example.COM.", match: "exact", typ: "domain", value: "login.example.com"},
		{raw: "*.Example.com", match: "suffix", typ: "domain", value: "example.com"},
		{raw: ".blogspot.com", match: "suffix", typ: "domain", value: "blogspot.com"},
		{raw: "HTTP://Evil.example.com:80/x#y", match: "exact", typ: "url", value: "http://evil.example.com/x"},
		{raw: strings.Repeat("A", 40), match: "exact", typ: "sha1", value: strings.Repeat("a", 40)},
		{raw: strings.Repeat("b", 64), match: "exact", typ: "sha256", value: strings.Repeat("b", 64)},
		{raw: "as6517", match: "exact", typ: "asn", value: "AS6517"},
		{raw: "*.com", err: "single-label"},
		{raw: "*.co.uk", err: "public suffix"},
		{raw: "10.1.2.3", err: "private space"},
		{raw: "", err: "empty"},
		{raw: "not a domain", err: "not a domain"},
	}
	for _, c := range cases {
		o, err := storage.ParseOverrideTarget(c.raw)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err %v, want one saying %q", c.raw, err, c.err)
			}
			continue
		}
		if err != nil || o.Match != c.match || o.Type != c.typ || o.Value != c.value {
			t.Errorf("%q = %s %s %s, %v; want %s %s %s", c.raw, o.Match, o.Type, o.Value, err, c.match, c.typ, c.value)
		}
	}
}

// seedOverrideWorld lists a few indicators: "a" and "b" are two sources, "b"
// listing a subset.
func seedOverrideWorld(t *testing.T, db *storage.DB) {
	t.Helper()
	_, err := testenv.SQL(t, db).Exec(context.Background(), `
		INSERT INTO sources (name, url, format, type, prior, enabled) VALUES
		  ('a', 'https://x/a', 'generic', 'domain', 0.6, true),
		  ('b', 'https://x/b', 'generic', 'domain', 0.6, true);
		INSERT INTO indicators (type, value, registrable, first_seen) VALUES
		  ('ipv4', '7.119.176.9', '', now()),
		  ('ipv4', '7.119.177.1', '', now()),
		  ('cidr', '8.8.0.0/16', '', now()),
		  ('ipv4', '9.9.9.9', '', now()),
		  ('domain', 'cdn.good.example', 'good.example', now()),
		  ('domain', 'good.example', 'good.example', now()),
		  ('domain', 'evil.example', 'evil.example', now()),
		  ('domain', 'mail.shared.example', 'shared.example', now()),
		  ('domain', 'shared.example', 'shared.example', now()),
		  ('url', 'http://www.good.example/login', 'good.example', now()),
		  ('url', 'http://evil.example/x', 'evil.example', now()),
		  ('sha1', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', '', now());
		INSERT INTO source_listings (source_id, indicator_id, first_seen, last_seen, active)
		  SELECT (SELECT id FROM sources WHERE name = 'a'), id, now(), NULL, true FROM indicators;
		INSERT INTO source_listings (source_id, indicator_id, first_seen, last_seen, active)
		  SELECT (SELECT id FROM sources WHERE name = 'b'), id, now(), NULL, true FROM indicators
		   WHERE value IN ('evil.example', '9.9.9.9');`)
	if err != nil {
		t.Fatal(err)
	}
}

func exported(t *testing.T, db *storage.DB) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, withAllowlisted := range []bool{false, true} {
		got := map[string][]string{}
		if err := db.ExportListed(context.Background(), nil, 0, withAllowlisted, func(r export.Row) error {
			got[r.Value] = r.Sources
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if withAllowlisted {
			// overrides act whether or not the reference allowlists do
			for v := range got {
				if _, ok := out[v]; !ok {
					t.Errorf("--include-allowlisted exports %s, which an override holds back", v)
				}
			}
		} else {
			out = got
		}
	}
	return out
}

func add(t *testing.T, db *storage.DB, kind, target, source string) storage.Override {
	t.Helper()
	o, err := storage.ParseOverrideTarget(target)
	if err != nil {
		t.Fatal(err)
	}
	o.Kind, o.Source, o.Reason, o.Author = kind, source, "checked by hand: "+target, "alice"
	o, err = db.AddOverride(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestOverridesLeaveExportsAtOnce(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	seedOverrideWorld(t, db)
	if got := exported(t, db); len(got) != 12 {
		t.Fatalf("before any override: %d exported, want 12: %v", len(got), got)
	}

	add(t, db, storage.OverrideAllow, "7.119.176.9", "")         // an exact address
	add(t, db, storage.OverrideAllow, "8.8.8.0/24", "")          // a block inside a listed /16: nft would drop it
	add(t, db, storage.OverrideAllow, "*.good.example", "")      // a domain, its subdomains and URLs on them
	add(t, db, storage.OverrideAllow, "mail.shared.example", "") // exact: RPZ of the listed parent would block it
	add(t, db, storage.OverrideAllow, strings.Repeat("a", 40), "")
	add(t, db, storage.OverrideFP, "9.9.9.9", "b")     // one source wrong: still listed by a
	add(t, db, storage.OverrideFP, "evil.example", "") // every source wrong
	expired := add(t, db, storage.OverrideAllow, "7.119.177.1", "")
	if _, err := testenv.SQL(t, db).Exec(ctx, `UPDATE overrides SET expires_at = now() - interval '1 second' WHERE id = $1`, expired.ID); err != nil {
		t.Fatal(err)
	}

	got := exported(t, db)
	var values []string
	for v := range got {
		values = append(values, v)
	}
	slices.Sort(values)
	want := []string{"7.119.177.1", "9.9.9.9", "http://evil.example/x"}
	if !slices.Equal(values, want) {
		t.Fatalf("exported %q, want %q", values, want)
	}
	if s := got["9.9.9.9"]; !slices.Equal(s, []string{"a"}) {
		t.Errorf("9.9.9.9 exported with sources %q, want only a (b's listing is a false positive)", s)
	}

	// Removing an allow exports the value again at once; the record stays.
	target, _ := storage.ParseOverrideTarget("7.119.176.9")
	if _, err := db.RemoveOverride(ctx, storage.OverrideAllow, target, "", "bob"); err != nil {
		t.Fatal(err)
	}
	if _, ok := exported(t, db)["7.119.176.9"]; !ok {
		t.Error("7.119.176.9 not exported after its allow was removed")
	}
	if _, err := db.RemoveOverride(ctx, storage.OverrideAllow, target, "", "bob"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("removing it twice: %v, want ErrNotFound", err)
	}
	all, err := db.Overrides(ctx, "", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	var removed *storage.Override
	for i, o := range all {
		if o.Value == "7.119.176.9" {
			removed = &all[i]
		}
	}
	if removed == nil || removed.RemovedAt == nil || removed.RemovedBy != "bob" || removed.Author != "alice" || removed.Reason == "" {
		t.Errorf("the removed allow's record: %+v", removed)
	}
	c, err := db.CountOverrides(ctx)
	if err != nil || c != (storage.OverrideCounts{Allowed: 4, FalsePositives: 2, Recorded: 8}) {
		t.Errorf("counts %+v, %v", c, err)
	}
}

func TestFalsePositiveNeedsAListing(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	seedOverrideWorld(t, db)
	for _, c := range []struct{ value, source string }{{"1.1.1.1", ""}, {"good.example", "b"}, {"good.example", "nosuch"}} {
		o, _ := storage.ParseOverrideTarget(c.value)
		o.Kind, o.Source, o.Reason, o.Author = storage.OverrideFP, c.source, "r", "alice"
		if _, err := db.AddOverride(ctx, o); !errors.Is(err, storage.ErrNoListing) {
			t.Errorf("fp %s by %q: %v, want ErrNoListing", c.value, c.source, err)
		}
	}
	o, _ := storage.ParseOverrideTarget("good.example")
	o.Kind, o.Author = storage.OverrideAllow, "alice"
	if _, err := db.AddOverride(ctx, o); err == nil {
		t.Error("an override without a reason was recorded")
	}
}

func TestOverridesCoveringShowWhoAndWhy(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	seedOverrideWorld(t, db)
	add(t, db, storage.OverrideAllow, "*.good.example", "")
	add(t, db, storage.OverrideAllow, "8.8.8.0/24", "")
	add(t, db, storage.OverrideFP, "evil.example", "b")
	// adding again replaces the standing one
	again := add(t, db, storage.OverrideAllow, "*.good.example", "")
	cases := []struct {
		typ, value string
		want       []string // kind/target/source
	}{
		{"domain", "cdn.good.example", []string{"allow/*.good.example/"}},
		{"url", "http://www.good.example/login", []string{"allow/*.good.example/"}},
		{"domain", "notgood.example", nil},
		{"ipv4", "8.8.8.8", []string{"allow/8.8.8.0/24/"}},
		{"cidr", "8.8.0.0/16", []string{"allow/8.8.8.0/24/"}},
		{"ipv4", "8.8.9.1", nil},
		{"domain", "evil.example", []string{"fp/evil.example/b"}},
	}
	for _, c := range cases {
		os, err := db.OverridesCovering(ctx, c.typ, c.value)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range os {
			got = append(got, o.Kind+"/"+o.Target()+"/"+o.Source)
			if o.Author != "alice" || !strings.HasPrefix(o.Reason, "checked by hand") {
				t.Errorf("%s: override without its author and reason: %+v", c.value, o)
			}
			if o.Kind == storage.OverrideAllow && o.Match == "suffix" && o.ID != again.ID {
				t.Errorf("%s: the replaced allow still stands: %+v", c.value, o)
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s %s: %q, want %q", c.typ, c.value, got, c.want)
		}
	}
}

func TestFalsePositivesAndAllowsCountAgainstAccuracy(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	seedOverrideWorld(t, db)
	weights := func() map[string]storage.SourceMetrics {
		ms, err := db.ComputeSourceMetrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		by := map[string]storage.SourceMetrics{}
		for _, m := range ms {
			by[m.Source] = m
		}
		return by
	}
	before := weights()
	if before["a"].Accuracy != 1 || before["b"].Accuracy != 1 {
		t.Fatalf("before: %+v", before)
	}
	add(t, db, storage.OverrideFP, "9.9.9.9", "b")          // b only
	add(t, db, storage.OverrideFP, "evil.example", "")      // a and b
	add(t, db, storage.OverrideAllow, "*.good.example", "") // a: cdn.good.example, good.example, the URL
	add(t, db, storage.OverrideFP, "good.example", "")      // already allowed: counted once
	after := weights()
	near := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	if b := after["b"]; b.Allowlisted != 2 || !near(b.Accuracy, 0) || !(b.Weight < before["b"].Weight) {
		t.Errorf("b: %+v (before %+v)", b, before["b"])
	}
	if a := after["a"]; a.Allowlisted != 4 || !near(a.Accuracy, 1-4.0/12) || !(a.Weight < before["a"].Weight) {
		t.Errorf("a: %+v (before %+v)", a, before["a"])
	}
	// an expired false positive counts no more
	if _, err := testenv.SQL(t, db).Exec(ctx, `UPDATE overrides SET expires_at = $1 WHERE kind = 'fp' AND source = 'b'`, time.Now().Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if b := weights()["b"]; b.Allowlisted != 1 {
		t.Errorf("b after its fp expired: %+v", b)
	}
}
