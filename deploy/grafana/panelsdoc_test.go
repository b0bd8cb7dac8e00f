package grafana_test

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

const panelsDocFile = "PANELS.md"

var update = flag.Bool("update", false, "rewrite PANELS.md from tip.json")

// TestPanelsDoc: PANELS.md, the dashboard in Markdown for the README, is what
// tip.json gives. Rewrite it with `go test ./deploy/grafana -run TestPanelsDoc
// -update` (or TIP_UPDATE=1).
func TestPanelsDoc(t *testing.T) {
	got := panelsDoc(loadDashboard(t))
	if *update || os.Getenv("TIP_UPDATE") == "1" {
		if err := os.WriteFile(panelsDocFile, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(panelsDocFile)
	if err != nil {
		t.Fatalf("%v (write it with `go test ./deploy/grafana -run TestPanelsDoc -update`)", err)
	}
	if string(want) != got {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		i := 0
		for i < len(gl) && i < len(wl) && gl[i] == wl[i] {
			i++
		}
		t.Errorf("%s is not what %s gives (first difference at line %d): run `go test ./deploy/grafana -run TestPanelsDoc -update`",
			panelsDocFile, dashboardFile, i+1)
	}
}

const panelsDocHead = `<!-- Generated from deploy/grafana/tip.json by ` + "`go test ./deploy/grafana -run TestPanelsDoc -update`" + `: edit the dashboard, not this file. -->
The Grafana dashboard ` + "`deploy/grafana/tip.json`" + ` (%q, uid ` + "`%s`" + `) reads one Prometheus, chosen
with the ` + "`datasource`" + ` variable; the ` + "`source`" + ` variable (all sources by default) narrows the Sources
panels. The collector's series are the same on every API replica, so the queries take ` + "`max`" + ` across
replicas where the servers' own metrics are summed. Below, queries are shown without their
` + "`source=~\"$source\"`" + ` filter and ` + "`[$__rate_interval]`" + ` range.

| Row | Panel | Query | What it tells an operator |
|---|---|---|---|
`

// panelsDoc renders the dashboard's panels, in reading order, as a Markdown table.
func panelsDoc(d dashboard) string {
	var b strings.Builder
	fmt.Fprintf(&b, panelsDocHead, d.Title, d.UID)
	row := ""
	for _, p := range byPosition(d.Panels) {
		if p.Type == "row" {
			row = p.Title
			continue
		}
		var queries []string
		for _, t := range p.Targets {
			q := "`" + compactExpr(t.Expr) + "`"
			if label := targetLabel(p, t); label != "" {
				q = label + ": " + q
			}
			queries = append(queries, q)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", cell(row), cell(p.Title), cell(strings.Join(queries, "<br>")), cell(p.Description))
	}
	return b.String()
}

var (
	sourceFilter = regexp.MustCompile(`source=~"\$source"\s*,\s*|\s*,\s*source=~"\$source"|source=~"\$source"`)
	spaces       = regexp.MustCompile(`\s+`)
	legendLabels = regexp.MustCompile(`\s*\{\{[^}]*\}\}\s*`)
)

// compactExpr is a query as PANELS.md shows it: without the filters and ranges
// every query of its kind has.
func compactExpr(expr string) string {
	expr = sourceFilter.ReplaceAllString(expr, "")
	expr = strings.ReplaceAll(expr, "{}", "")
	expr = strings.ReplaceAll(expr, "[$__rate_interval]", "")
	return strings.TrimSpace(spaces.ReplaceAllString(expr, " "))
}

// targetLabel names a target among several: a table's column title, or its
// legend without the label placeholders.
func targetLabel(p panel, t target) string {
	if len(p.Targets) < 2 {
		return ""
	}
	for _, o := range p.FieldConfig.Overrides {
		if o.Matcher.ID != "byName" || o.Matcher.Options != "Value #"+t.RefID {
			continue
		}
		for _, prop := range o.Properties {
			if name, ok := prop.Value.(string); ok && prop.ID == "displayName" {
				return name
			}
		}
	}
	if p.Type == "table" {
		return ""
	}
	return strings.TrimSpace(legendLabels.ReplaceAllString(t.LegendFormat, " "))
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}
