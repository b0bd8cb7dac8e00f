// Package grafana_test checks TIP's Grafana dashboard, tip.json: a dashboard
// that loads, lays out and queries only metrics TIP exports, shows every metric
// of the operations collector, and is described in PANELS.md.
package grafana_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const dashboardFile = "tip.json"

// dashboard is the part of Grafana's dashboard model this test reads.
type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	Datasource json.RawMessage `json:"datasource"`
	Multi      bool            `json:"multi"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   string          `json:"allValue"`
}

type panel struct {
	ID          int             `json:"id"`
	Type        string          `json:"type"`
	Title       string          `json:"title"`
	Description string          `json:"description"`
	Datasource  json.RawMessage `json:"datasource"`
	GridPos     gridPos         `json:"gridPos"`
	Targets     []target        `json:"targets"`
	Collapsed   bool            `json:"collapsed"`
	Panels      []panel         `json:"panels"` // a row's, when collapsed
	FieldConfig struct {
		Overrides []struct {
			Matcher struct {
				ID      string `json:"id"`
				Options any    `json:"options"`
			} `json:"matcher"`
			Properties []struct {
				ID    string `json:"id"`
				Value any    `json:"value"`
			} `json:"properties"`
		} `json:"overrides"`
	} `json:"fieldConfig"`
}

type gridPos struct {
	X int `json:"x"`
	Y int `json:"y"`
	W int `json:"w"`
	H int `json:"h"`
}

type target struct {
	RefID        string          `json:"refId"`
	Expr         string          `json:"expr"`
	LegendFormat string          `json:"legendFormat"`
	Datasource   json.RawMessage `json:"datasource"`
}

// gridColumns is the width of Grafana's grid.
const gridColumns = 24

// panelTypes are the panel types the dashboard may use (all query Prometheus).
var panelTypes = wordSet(`timeseries stat table gauge bargauge state-timeline heatmap barchart`)

func loadDashboard(t testing.TB) dashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// TestDashboard: tip.json is a dashboard Grafana loads and lays out as meant,
// querying only what TIP exports and showing all of the collector's metrics.
func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	for _, err := range checkDashboard(d, tipCatalog(t)) {
		t.Error(err)
	}
}

// TestCheckDashboardBites: each fault put into the dashboard is reported by
// the same check TestDashboard runs.
func TestCheckDashboardBites(t *testing.T) {
	cat := tipCatalog(t)
	editExpr := func(title, old, new string) func(*dashboard) error {
		return func(d *dashboard) error {
			p := findPanel(d, title)
			if p == nil || !strings.Contains(p.Targets[0].Expr, old) {
				return fmt.Errorf("no panel %q with %q", title, old)
			}
			p.Targets[0].Expr = strings.Replace(p.Targets[0].Expr, old, new, 1)
			return nil
		}
	}
	edit := func(title string, f func(*panel)) func(*dashboard) error {
		return func(d *dashboard) error {
			p := findPanel(d, title)
			if p == nil {
				return fmt.Errorf("no panel %q", title)
			}
			f(p)
			return nil
		}
	}
	// pair changes panel a given panel b.
	pair := func(a, b string, f func(a, b *panel)) func(*dashboard) error {
		return func(d *dashboard) error {
			pa, pb := findPanel(d, a), findPanel(d, b)
			if pa == nil || pb == nil {
				return fmt.Errorf("no panels %q and %q", a, b)
			}
			f(pa, pb)
			return nil
		}
	}
	for _, c := range []struct {
		name   string
		mutate func(*dashboard) error
		want   string
	}{
		{"unknown metric", editExpr("Check lateness", "tip_flux_check_lateness_seconds_bucket", "tip_flux_check_latenes_seconds_bucket"),
			"tip_flux_check_latenes_seconds_bucket is no metric"},
		{"histogram base name", editExpr("Check lateness", "_bucket", ""), "tip_flux_check_lateness_seconds is no metric"},
		{"renamed DNS metric", editExpr("DNS index age", "tip_dns_index_age_seconds", "tip_dns_index_age"), "tip_dns_index_age is no metric"},
		{"SDK name without the worker's prefix", editExpr("Sticky cache size", "tip_temporal_", "temporal_"), "temporal_sticky_cache_size is no metric"},
		{"overlapping panels", pair("Networks", "Check cadence", func(a, b *panel) { a.GridPos.X = b.GridPos.X + 2 }),
			`overlaps "Check cadence"`},
		{"outside the grid", edit("Networks", func(p *panel) { p.GridPos.X = 20 }), "outside the 24-column grid"},
		{"duplicate id", pair("Networks", "Check cadence", func(a, b *panel) { a.ID = b.ID }), `already "Check cadence"`},
		{"no title", edit("Networks", func(p *panel) { p.Title = "" }), "no title"},
		{"fixed datasource", edit("Networks", func(p *panel) { p.Datasource = json.RawMessage(`{"type":"prometheus","uid":"prom-1"}`) }),
			`datasource {"type":"prometheus","uid":"prom-1"}`},
		{"target with a fixed datasource", edit("Networks", func(p *panel) { p.Targets[0].Datasource = json.RawMessage(`"Prometheus"`) }),
			`target A: datasource "Prometheus"`},
		{"no refId", edit("Networks", func(p *panel) { p.Targets[0].RefID = "" }), "refId"},
		{"no expr", edit("Networks", func(p *panel) { p.Targets[0].Expr = " " }), "no expr"},
		{"unknown variable", editExpr("Checks per second", "$__rate_interval", "$__interval"), "$__interval"},
		{"source variable matched exactly", editExpr("Weight per source", `=~"$source"`, `="$source"`), `=~"$source"`},
		{"source filter dropped", editExpr("Weight per source", `{source=~"$source"}`, ""), `source=~"$source"`},
		{"rate over a gauge", editExpr("Weight per source", "max by (source) (tip_source_weight{source=~\"$source\"})",
			"max by (source) (rate(tip_source_weight{source=~\"$source\"}[$__rate_interval]))"), "rate over the gauge tip_source_weight"},
		{"raw counter", editExpr("Checks per second", "rate(tip_flux_checks_total[$__rate_interval])", "tip_flux_checks_total"),
			"counter tip_flux_checks_total outside rate"},
		{"quantile without le", editExpr("Check lateness", "sum by (le)", "sum by (instance)"), "without keeping le"},
		{"misspelt function", editExpr("Check lateness", "histogram_quantile", "histogram_quantil"), "unknown function"},
		{"a collector metric left out", func(d *dashboard) error {
			i := slices.IndexFunc(d.Panels, func(p panel) bool { return p.Title == "Networks" })
			if i < 0 {
				return fmt.Errorf("no panel Networks")
			}
			d.Panels = slices.Delete(d.Panels, i, i+1)
			return nil
		}, "no panel shows tip_flux_networks"},
		{"collapsed row", edit("Flux", func(p *panel) { p.Collapsed = true }), "collapsed"},
		{"panel above the first row", edit("Sources", func(p *panel) { p.GridPos.Y = 2 }), "above the first row"},
		{"source variable single-valued", func(d *dashboard) error {
			i := slices.IndexFunc(d.Templating.List, func(v variable) bool { return v.Name == "source" })
			if i < 0 {
				return fmt.Errorf("no variable source")
			}
			d.Templating.List[i].Multi = false
			return nil
		}, "variable source"},
		{"no uid", func(d *dashboard) error { d.UID = ""; return nil }, `uid ""`},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := loadDashboard(t)
			if err := c.mutate(&d); err != nil {
				t.Fatalf("the dashboard changed: %v", err)
			}
			errs := checkDashboard(d, cat)
			for _, err := range errs {
				if strings.Contains(err.Error(), c.want) {
					return
				}
			}
			t.Errorf("no error mentions %q; got %v", c.want, errs)
		})
	}
}

func findPanel(d *dashboard, title string) *panel {
	for i := range d.Panels {
		if d.Panels[i].Title == title {
			return &d.Panels[i]
		}
	}
	return nil
}

// checkDashboard lists what is wrong with d, given what TIP exports.
func checkDashboard(d dashboard, cat catalog) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if d.UID != "tip-operations" || d.Title != "TIP operations" {
		fail("uid %q, title %q: want tip-operations, TIP operations (links and provisioning use them)", d.UID, d.Title)
	}
	if d.SchemaVersion < 36 {
		fail("schemaVersion %d: want 36 or later (panel and target datasources as references)", d.SchemaVersion)
	}
	errs = append(errs, checkVariables(d.Templating.List)...)

	ids := map[int]string{}
	shown := map[string]bool{}
	var placed []panel
	rowSeen := false
	for _, p := range byPosition(d.Panels) {
		name := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.Title == "" {
			fail("%s has no title", name)
		}
		if other, dup := ids[p.ID]; dup || p.ID <= 0 {
			fail("%s: id %d is not positive or already %q's", name, p.ID, other)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.X < 0 || g.Y < 0 || g.W < 1 || g.H < 1 || g.X+g.W > gridColumns {
			fail("%s: gridPos %+v is outside the %d-column grid", name, g, gridColumns)
		}
		for _, q := range placed {
			if overlap(p.GridPos, q.GridPos) {
				fail("%s overlaps %q", name, q.Title)
			}
		}
		placed = append(placed, p)

		if p.Type == "row" {
			rowSeen = true
			if p.Collapsed || len(p.Panels) > 0 {
				fail("row %q is collapsed: save the dashboard with every row open, so its panels are checked and documented", p.Title)
			}
			if g.X != 0 || g.W != gridColumns || g.H != 1 {
				fail("row %q: gridPos %+v, want the grid's width and height 1", p.Title, g)
			}
			continue
		}
		if !rowSeen {
			fail("%s sits above the first row: every panel belongs to a row", name)
		}
		if !panelTypes[p.Type] {
			fail("%s: type %q is none of %v", name, p.Type, slices.Sorted(maps.Keys(panelTypes)))
		}
		if strings.TrimSpace(p.Description) == "" {
			fail("%s has no description (PANELS.md tells operators what it shows from it)", name)
		}
		if !isDatasourceVariable(p.Datasource) {
			fail("%s: datasource %s, want the variable ${datasource}", name, p.Datasource)
		}
		if len(p.Targets) == 0 {
			fail("%s has no query", name)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				fail("%s: a target's refId %q is empty or repeated", name, tg.RefID)
			}
			refs[tg.RefID] = true
			if len(tg.Datasource) > 0 && !isDatasourceVariable(tg.Datasource) {
				fail("%s target %s: datasource %s, want the variable ${datasource}", name, tg.RefID, tg.Datasource)
			}
			if strings.TrimSpace(tg.Expr) == "" {
				fail("%s target %s has no expr", name, tg.RefID)
				continue
			}
			for _, err := range checkExpr(tg.Expr, cat, shown) {
				fail("%s target %s: %v", name, tg.RefID, err)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cat.required)) {
		covered := false
		for s := range series(name, cat.required[name]) {
			covered = covered || shown[s]
		}
		if !covered {
			fail("no panel shows %s", name)
		}
	}
	return errs
}

// checkVariables: a datasource variable for Prometheus, and the source
// variable every Sources panel filters by.
func checkVariables(vars []variable) []error {
	var errs []error
	byName := map[string]variable{}
	for _, v := range vars {
		byName[v.Name] = v
	}
	if ds, ok := byName["datasource"]; !ok || ds.Type != "datasource" || string(ds.Query) != `"prometheus"` {
		errs = append(errs, fmt.Errorf("variable datasource: want type datasource, query prometheus; got %+v", ds))
	}
	src, ok := byName["source"]
	if !ok || src.Type != "query" || !isDatasourceVariable(src.Datasource) ||
		!strings.Contains(string(src.Query)+src.Definition, "label_values(tip_source_up, source)") ||
		!src.Multi || !src.IncludeAll || src.AllValue != ".*" {
		errs = append(errs, fmt.Errorf("variable source: want a query label_values(tip_source_up, source) on ${datasource}, multi, "+
			"include all with all value .* (what the integration test puts in its place); got %+v", src))
	}
	if len(vars) != 2 {
		errs = append(errs, fmt.Errorf("%d variables: the queries may use only datasource and source (and $__rate_interval)", len(vars)))
	}
	return errs
}

var (
	// variableRef is a Grafana variable in any of its syntaxes ($1 is a regex group).
	variableRef = regexp.MustCompile(`\$\{[^}]*\}|\$[A-Za-z_]\w*|\[\[[^\]]*\]\]`)
	sourceRef   = regexp.MustCompile(`(\w+)\s*(=~|!~|!=|=)\s*"\$source"`)
	quantileLe  = regexp.MustCompile(`\b(by|without)\s*\([^)]*\ble\b`)
)

// checkExpr checks one query, and records in shown the series it reads.
func checkExpr(expr string, cat catalog, shown map[string]bool) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, ref := range variableRef.FindAllString(expr, -1) {
		if ref != "$__rate_interval" && ref != "$source" {
			fail("variable %s: queries use only $__rate_interval and $source (the integration test replaces those)", ref)
		}
	}
	good := 0
	for _, m := range sourceRef.FindAllStringSubmatch(expr, -1) {
		if m[1] == "source" && m[2] == "=~" {
			good++
		}
	}
	if n := strings.Count(expr, "$source"); good != n {
		fail(`$source is multi-valued: use it only as source=~"$source"`)
	}
	sels, err := selectors(expr)
	if err != nil {
		return append(errs, err)
	}
	if len(sels) == 0 {
		fail("reads no metric")
	}
	for _, s := range sels {
		isCounter, known := cat.series[s.name]
		if !known {
			fail("%s is no metric TIP exports (collector, servers, workers)", s.name)
			continue
		}
		shown[s.name] = true
		rated := s.fn == "rate" || s.fn == "irate" || s.fn == "increase"
		switch {
		case rated && !isCounter:
			fail("%s over the gauge %s", s.fn, s.name)
		case !rated && isCounter:
			fail("counter %s outside rate, irate or increase", s.name)
		}
		if strings.HasPrefix(s.name, "tip_source_") && !strings.Contains(s.matchers, `source=~"$source"`) {
			fail(`%s without source=~"$source": the Sources panels follow the source variable`, s.name)
		}
		if strings.HasSuffix(s.name, "_bucket") && !quantileLe.MatchString(expr) {
			fail("%s aggregated without keeping le: histogram_quantile needs it", s.name)
		}
	}
	return errs
}

// isDatasourceVariable: a datasource given as the dashboard's variable, as a
// string or as a reference {type, uid}.
func isDatasourceVariable(raw json.RawMessage) bool {
	want := func(s string) bool { return s == "${datasource}" || s == "$datasource" }
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return want(s)
	}
	var ref struct{ Type, UID string }
	return json.Unmarshal(raw, &ref) == nil && ref.Type == "prometheus" && want(ref.UID)
}

func overlap(a, b gridPos) bool {
	return a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H
}

// byPosition is the panels in reading order: top to bottom, left to right.
func byPosition(ps []panel) []panel {
	out := slices.Clone(ps)
	slices.SortStableFunc(out, func(a, b panel) int {
		if a.GridPos.Y != b.GridPos.Y {
			return a.GridPos.Y - b.GridPos.Y
		}
		return a.GridPos.X - b.GridPos.X
	})
	return out
}
