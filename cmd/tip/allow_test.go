package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
)

// An analyst's allow and false positive act on `tip blacklists export` and show
// in `tip lookup` at once, with who and why; `tip allow list` and `tip fp --list`
// show them, and removing an allow exports the value again.
func TestAllowAndFalsePositiveActOnExportsAndLookupsAtOnce(t *testing.T) {
	cfg := twoSources(t)
	setEnv(t, cfg)
	t.Setenv("USER", "carol")
	export := func() string {
		t.Helper()
		out, err := runTip(t, "blacklists", "export")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return out
	}
	if out := export(); out != "evil.example\nwww.example-cert.org\n7.119.176.9\n9.9.9.9\n" {
		t.Fatalf("before: %q", out)
	}
	for _, args := range [][]string{
		{"allow", "add", "*.example-cert.org", "--reason", "our own web site", "--author", "alice"},
		{"allow", "add", "7.119.176.0/24", "--reason", "our customer's range", "--expires", "720h"},
		{"fp", "9.9.9.9", "--source", "b", "--reason", "a public resolver"},
	} {
		if out, err := runTip(t, args...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	if out := export(); out != "evil.example\n" {
		t.Errorf("after the overrides, exported %q, want only evil.example", out)
	}
	out, err := runTip(t, "lookup", "https://www.example-cert.org/login")
	if err != nil || !strings.Contains(out, "allowed (*.example-cert.org) by alice on ") || !strings.Contains(out, "our own web site; never exported") {
		t.Errorf("lookup of an allowed URL: %v\n%s", err, out)
	}
	out, err = runTip(t, "lookup", "9.9.9.9")
	if err != nil || !strings.Contains(out, "false positive of b, marked by carol on ") || !strings.Contains(out, "a public resolver") {
		t.Errorf("lookup of a false positive: %v\n%s", err, out)
	}
	out, err = runTip(t, "allow", "list")
	if err != nil || !strings.Contains(out, "*.example-cert.org") || !strings.Contains(out, "7.119.176.0/24") ||
		!strings.Contains(out, "standing until "+time.Now().Add(720*time.Hour).UTC().Format("2006-01-02")) {
		t.Errorf("allow list: %v\n%s", err, out)
	}
	if out, err := runTip(t, "fp", "--list"); err != nil || !strings.Contains(out, "9.9.9.9") || !strings.Contains(out, "carol") {
		t.Errorf("fp --list: %v\n%s", err, out)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"allow", "add", "example.org"}, "--reason is required"},
		{[]string{"allow", "add", "10.0.0.1", "--reason", "r"}, "private space"},
		{[]string{"allow", "add", "x.example", "--reason", "r", "--expires", "2001-01-01"}, "in the past"},
		{[]string{"fp", "8.8.8.8", "--reason", "r"}, "not listed by any source"},
		{[]string{"fp", "evil.example", "--source", "b", "--reason", "r"}, "not listed by source b"},
		{[]string{"allow", "remove", "nothing.example"}, "no standing allow"},
	} {
		if out, err := runTip(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v\n%s; want an error saying %q", c.args, err, out, c.want)
		}
	}
	if out, err := runTip(t, "allow", "remove", "*.example-cert.org"); err != nil || !strings.Contains(out, "made by alice: our own web site") {
		t.Fatalf("remove: %v\n%s", err, out)
	}
	if out := export(); out != "evil.example\nwww.example-cert.org\n" {
		t.Errorf("after removing the allow, exported %q", out)
	}
	if out, err := runTip(t, "fp", "9.9.9.9", "--source", "b", "--undo"); err != nil {
		t.Fatalf("fp --undo: %v\n%s", err, out)
	}
	if out := export(); out != "evil.example\nwww.example-cert.org\n9.9.9.9\n" {
		t.Errorf("after undoing the false positive, exported %q", out)
	}
}

// twoSources is a fresh database where source a lists two domains and b two
// addresses, and the configuration that reaches it.
func twoSources(t *testing.T) config.Config {
	t.Helper()
	ctx := context.Background()
	cfg := testenv.Config(t)
	cfg.Postgres.DSN = testenv.NewDatabase(t)
	db, err := storage.OpenDB(ctx, cfg.Postgres.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.SQL(t, db).Exec(ctx, `
		INSERT INTO sources (name, url, format, type, prior, enabled) VALUES
		  ('a', 'https://x/a', 'hosts', 'domain', 0.6, true), ('b', 'https://x/b', 'ip-list', 'ipv4', 0.6, true);
		INSERT INTO indicators (type, value, registrable, first_seen) VALUES
		  ('domain', 'www.example-cert.org', 'example-cert.org', now()), ('domain', 'evil.example', 'evil.example', now()),
		  ('ipv4', '9.9.9.9', '', now()), ('ipv4', '7.119.176.9', '', now());
		INSERT INTO source_listings (source_id, indicator_id, first_seen, last_seen, active)
		  SELECT (SELECT s.id FROM sources s WHERE s.name = CASE WHEN i.type = 'domain' THEN 'a' ELSE 'b' END), i.id, now(), NULL, true FROM indicators i;`); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// The MISP feed and the Zeek and Suricata files come out of `tip blacklists
// export` as the export package writes them.
func TestExportSharingFormats(t *testing.T) {
	setEnv(t, twoSources(t))
	dir := t.TempDir()
	if out, err := runTip(t, "blacklists", "export", "--format", "misp-feed", "--out", dir); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var manifest map[string]any
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil || json.Unmarshal(b, &manifest) != nil || len(manifest) != 2 {
		t.Errorf("manifest: %d events (%v), want one for a and one for b", len(manifest), err)
	}
	if out, err := runTip(t, "blacklists", "export", "--format", "misp-feed"); err == nil || !strings.Contains(out+err.Error(), "--out DIR") {
		t.Errorf("misp-feed without a folder: %v\n%s", err, out)
	}
	zeek, err := runTip(t, "blacklists", "export", "--format", "zeek")
	if err != nil || !strings.Contains(zeek, "evil.example\tIntel::DOMAIN\ttip\tscore 0.60; listed by a\n") {
		t.Errorf("zeek: %v\n%s", err, zeek)
	}
	stix, err := runTip(t, "blacklists", "export", "--format", "stix")
	if err != nil || !strings.HasPrefix(stix, `{"type":"bundle","id":"bundle--`) || strings.Count(stix, `"type":"indicator"`) != 4 {
		t.Errorf("stix: %v\n%s", err, stix)
	}
	suricata, err := runTip(t, "blacklists", "export", "--format", "suricata")
	if err != nil || suricata != "7.119.176.9,1,76\n9.9.9.9,1,76\n" {
		t.Errorf("suricata: %v\n%q", err, suricata)
	}
}
