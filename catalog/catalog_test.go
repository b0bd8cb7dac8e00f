package catalog

import (
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	labfeeds "github.com/tip-project/tip/lab/feeds"
	"github.com/tip-project/tip/lab/world"
)

func TestShippedCatalogsLoad(t *testing.T) {
	for _, name := range []string{"sources.yaml", "lab.yaml"} {
		c, err := Load(filepath.Join("..", "config", name), nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Enabled()) == 0 {
			t.Fatalf("%s enables no source", name)
		}
		if len(c.Allowlists) < 2 || c.Allowlists[0].Type != "domain" || c.Allowlists[0].Top != 10000 || c.Allowlists[1].Type != "cidr" {
			t.Fatalf("%s allowlists: %+v", name, c.Allowlists)
		}
	}
}

// config/lab.yaml must list exactly the lab's feeds, at their paths, in their formats.
func TestLabCatalogMatchesTheLab(t *testing.T) {
	c, err := Load(filepath.Join("..", "config", "lab.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	lab := labfeeds.New(world.NewWorld(1), world.FixedClock(world.DefaultStart), labfeeds.Options{}).Catalog()
	if len(lab) != len(c.Sources) {
		t.Fatalf("lab serves %d feeds, lab.yaml lists %d", len(lab), len(c.Sources))
	}
	for _, f := range lab {
		s, ok := c.Source(f.Name)
		if !ok {
			t.Errorf("lab feed %s missing from lab.yaml", f.Name)
			continue
		}
		u, _ := url.Parse(s.URL)
		if u.Path != f.Path || s.Format != f.Format || s.Type != string(f.Indicator) {
			t.Errorf("%s: lab.yaml has %s %s %s, lab serves %s %s %s", f.Name, u.Path, s.Format, s.Type, f.Path, f.Format, f.Indicator)
		}
	}
	real, err := Load(filepath.Join("..", "config", "sources.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range lab {
		if f.RealURL == "" {
			continue
		}
		if s, ok := real.Source(f.Name); !ok || s.URL != f.RealURL || s.Format != f.Format {
			t.Errorf("%s: sources.yaml has %+v, the real feed is %s (%s)", f.Name, s, f.RealURL, f.Format)
		}
	}
}

func TestDefaultsApply(t *testing.T) {
	c, err := Parse("x.yaml", []byte(`
defaults: {interval: 15m, prior: 0.7, size_limit: 2MiB, timeout: 10s}
sources:
  - {name: a, url: "https://example.net/a.txt", format: ip-list, type: ipv4}
  - name: b
    url: https://example.net/b.csv
    format: generic
    type: domain
    interval: 2h
    enabled: false
    parser: {comment: "#", separator: "\t", column: 3, header: true}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.Sources[0], c.Sources[1]
	if a.Interval != 15*time.Minute || a.Prior != 0.7 || a.SizeLimit != 2<<20 || a.Timeout != 10*time.Second || !a.Enabled {
		t.Errorf("a = %+v", a)
	}
	if b.Interval != 2*time.Hour || b.Enabled || b.Parser.Separator != "\t" || b.Parser.Column != 3 || !b.Parser.Header {
		t.Errorf("b = %+v", b)
	}
	if len(c.Enabled()) != 1 {
		t.Errorf("enabled: %v", c.Enabled())
	}
}

// TestSharingTerms: a source's category, licence and TLP are read (TLP:AMBER
// written either way), and a source that sets no TLP is clear.
func TestSharingTerms(t *testing.T) {
	c, err := Parse("x.yaml", []byte(`
defaults: {category: reputation}
sources:
  - {name: a, url: "https://example.net/a.txt", format: ip-list, type: ipv4}
  - {name: b, url: "https://example.net/b.txt", format: ip-list, type: ipv4, category: botnet-c2, licence: "CC0", tlp: "TLP:AMBER+STRICT"}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.Sources[0], c.Sources[1]
	if a.Category != "reputation" || a.TLP != "clear" || a.Licence != "" {
		t.Errorf("a = %+v", a)
	}
	if b.Category != "botnet-c2" || b.TLP != "amber+strict" || b.Licence != "CC0" {
		t.Errorf("b = %+v", b)
	}
}

func TestErrorsNameFileLineAndField(t *testing.T) {
	known := func(f string) bool { return f == "ip-list" || f == "generic" }
	head := "sources:\n  - name: a\n    url: https://example.net/a\n    format: ip-list\n    type: ipv4\n"
	cases := map[string]struct{ yaml, want string }{
		"bad interval":    {head + "    interval: soon\n", "x.yaml:6: sources[0].interval: \"soon\": want a duration"},
		"unknown key":     {head + "    intervall: 1h\n", "x.yaml:6: sources[0].intervall: unknown key"},
		"unknown format":  {strings.Replace(head, "ip-list", "csvish", 1), "x.yaml:4: sources[0].format: \"csvish\": no parser"},
		"bad type":        {strings.Replace(head, "ipv4", "ip", 1), "x.yaml:5: sources[0].type"},
		"prior range":     {head + "    prior: 1.5\n", "x.yaml:6: sources[0].prior"},
		"bad url":         {strings.Replace(head, "https://example.net/a", "ftp://x", 1), "x.yaml:3: sources[0].url"},
		"missing type":    {strings.Replace(head, "    type: ipv4\n", "", 1), "x.yaml:2: sources[0].type: missing"},
		"duplicate":       {head + strings.Replace(head, "sources:\n", "", 1), "x.yaml:6: sources[1].name: \"a\" is already used at line 2"},
		"bad size":        {head + "    size_limit: lots\n", "x.yaml:6: sources[0].size_limit"},
		"generic column":  {strings.Replace(head, "ip-list", "generic", 1), "sources[0].parser.column: the generic format needs a column"},
		"parser key":      {head + "    parser: {colum: 2}\n", "x.yaml:6: sources[0].parser.colum: unknown key"},
		"default name":    {"defaults: {name: x}\n" + head, "x.yaml:1: defaults.name: cannot have a default"},
		"no sources":      {"defaults: {}\n", "sources: missing"},
		"allowlist top":   {head + "allowlists:\n  - {name: t, url: \"https://x.org/t\", format: ip-list, top: -1}\n", "x.yaml:7: allowlists[0].top: \"-1\": want a count"},
		"allowlist type":  {head + "allowlists:\n  - {name: t, url: \"https://x.org/t\", format: ip-list, type: url}\n", "allowlists[0].type: an allowlist holds domains"},
		"allowlist dup":   {head + "allowlists:\n  - {name: a, url: \"https://x.org/t\", format: ip-list}\n", "x.yaml:7: allowlists[0].name: \"a\" is already used at line 2"},
		"allowlist prior": {head + "allowlists:\n  - {name: t, url: \"https://x.org/t\", format: ip-list, prior: 1}\n", "allowlists[0].prior: an allowlist has no prior"},
		"source top":      {head + "    top: 5\n", "x.yaml:6: sources[0].top: only allowlists"},
		"private default": {"defaults: {allow_private: true}\n" + head, "x.yaml:1: defaults.allow_private: cannot have a default: set allow_private at the top"},
		"private value":   {head + "    allow_private: sometimes\n", "x.yaml:6: sources[0].allow_private: want true or false"},
		"private top":     {"allow_private: [yes]\n" + head, "x.yaml:1: allow_private: want true or false"},
		"bad tlp":         {head + "    tlp: white\n", "x.yaml:6: sources[0].tlp: \"white\": want one of clear, green, amber, amber+strict, red"},
		"bad category":    {head + "    category: Botnet C2\n", "x.yaml:6: sources[0].category"},
	}
	for name, c := range cases {
		_, err := Parse("x.yaml", []byte(c.yaml), known)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", name, err, c.want)
		}
	}
}

// Private destinations are refused unless a source, or the catalog as a
// whole (the lab's), allows them.
func TestAllowPrivate(t *testing.T) {
	sources := `sources:
  - {name: public, url: "https://example.net/a.txt", format: ip-list, type: ipv4}
  - {name: mirror, url: "http://10.1.2.3/a.txt", format: ip-list, type: ipv4, allow_private: true}
allowlists:
  - {name: ranks, url: "https://example.net/top.csv.zip", format: tranco-csv-zip}
`
	c, err := Parse("x.yaml", []byte(sources), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Sources[0].AllowPrivate || !c.Sources[1].AllowPrivate || c.Allowlists[0].AllowPrivate {
		t.Errorf("per source: %+v, allowlists %+v", c.Sources, c.Allowlists)
	}
	c, err = Parse("x.yaml", []byte("allow_private: true\n"+sources), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range append(c.Sources, c.Allowlists...) {
		if !s.AllowPrivate {
			t.Errorf("%s: the catalog allows private destinations, the source does not", s.Name)
		}
	}
	lab, err := Load(filepath.Join("..", "config", "lab.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	real, err := Load(filepath.Join("..", "config", "sources.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range append(lab.Sources, lab.Allowlists...) {
		if !s.AllowPrivate {
			t.Errorf("lab.yaml: %s may not reach the lab on loopback", s.Name)
		}
	}
	for _, s := range append(real.Sources, real.Allowlists...) {
		if s.AllowPrivate {
			t.Errorf("sources.yaml: %s may reach private addresses", s.Name)
		}
	}
}

func TestAllowlistsFromLocalFilesAndWarninglists(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sources.yaml")
	doc := `sources:
  - {name: a, url: "https://x/a", format: ip-list, type: ipv4}
allowlists:
  - {name: ours, url: "lists/ours.json", format: misp-warninglist, type: domain}
  - {name: abs, url: "file:///srv/tip/resolvers.json", format: misp-warninglist, type: cidr}
  - {name: up, url: "../up.txt", format: netset}
`
	c, err := Parse(path, []byte(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ours": filepath.Join(dir, "lists", "ours.json"),
		"abs":  "/srv/tip/resolvers.json",
		"up":   filepath.Join(filepath.Dir(dir), "up.txt"),
	}
	for _, l := range c.Allowlists {
		got, ok := LocalPath(l.URL)
		if !ok || got != want[l.Name] {
			t.Errorf("%s: url %q is the file %q (%v), want %q", l.Name, l.URL, got, ok, want[l.Name])
		}
	}
	if _, ok := LocalPath("https://x/a"); ok {
		t.Error("an https URL read as a local file")
	}
	for _, bad := range []struct{ doc, want string }{
		{"sources:\n  - {name: a, url: lists/a.txt, format: ip-list, type: ipv4}\n", "want an http or https URL"},
		{"sources:\n  - {name: a, url: \"https://x/a\", format: ip-list, type: ipv4}\nallowlists:\n  - {name: w, url: w.json, format: misp-warninglist}\n", "say which"},
		{"sources:\n  - {name: a, url: \"https://x/a\", format: ip-list, type: ipv4}\nallowlists:\n  - {name: w, url: \"file://host/w.json\", format: netset}\n", "file:///absolute/path"},
	} {
		if _, err := Parse(path, []byte(bad.doc), nil); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: %v, want an error saying %q", bad.doc, err, bad.want)
		}
	}
}
