package report

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tip-project/tip/storage"
)

// Chart.js, vendored from the npm registry (assets/vendor.sh; the version in
// assets/VERSION), inlined into every page.
//
//go:embed assets/chart.umd.min.js
var chartJS string

//go:embed render.js
var renderJS string

//go:embed page.css
var pageCSS string

//go:embed page.html
var pageHTML string

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"time": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"num":  func(n int64) string { return thousands(n) },
}).Parse(pageHTML))

// WriteFile writes the report into dir (made if missing) as index.html and
// returns the file's path.
func WriteFile(dir string, d *Data) (string, error) {
	var buf bytes.Buffer
	if err := Write(&buf, d); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	path := filepath.Join(dir, "index.html")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	return path, nil
}

// Write renders the report as one HTML page that needs nothing else.
func Write(w io.Writer, d *Data) error {
	p := build(d)
	if err := pageTemplate.Execute(w, p); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// page is what the template renders.
type page struct {
	*Data
	Sections []section
	// Charts are every chart's specification, the page's JSON data.
	Charts   []chart
	ChartJS  template.JS
	RenderJS template.JS
	CSS      template.CSS
}

// section is one topic of the page: an explanation and its charts, tables
// and panels, or why it has nothing to show.
type section struct {
	ID, Title, Intro string
	Empty            string // why there is nothing to show ("" when there is)
	Notes            []string
	Charts           []chart
	Grid             *grid // a heat map or a strip drawn as a table
	Table            *table
	Panels           []panel
}

// panel is one flux domain: a heading, its figures and its charts.
type panel struct {
	ID, Title, Facts string
	Empty            string
	Charts           []chart
}

// chart is one Chart.js chart as the page's script draws it.
type chart struct {
	ID     string    `json:"id"`
	Type   string    `json:"type"` // line or bar
	Title  string    `json:"title"`
	X      []int64   `json:"x,omitempty"`      // a time chart: each point's time, Unix ms
	Labels []string  `json:"labels,omitempty"` // a bar chart: each bar's label
	Axes   []axis    `json:"axes"`
	Sets   []dataset `json:"datasets"`
	// Stacked bars; Horizontal bars grow to the right.
	Stacked    bool   `json:"stacked,omitempty"`
	Horizontal bool   `json:"horizontal,omitempty"`
	Size       string `json:"-"` // CSS class of its box: "", "tall", "small"
}

type axis struct {
	ID      string   `json:"id"`
	Title   string   `json:"title"`
	Right   bool     `json:"right,omitempty"`
	Min     *float64 `json:"min,omitempty"`
	Max     *float64 `json:"max,omitempty"`
	Integer bool     `json:"integer,omitempty"`
}

type dataset struct {
	Label  string   `json:"label"`
	Axis   string   `json:"axis"`
	Color  string   `json:"color"`
	Colors []string `json:"colors,omitempty"` // a bar chart's colour of each bar, when they differ
	Values values   `json:"values"`
	Dashed bool     `json:"dashed,omitempty"`
	Step   bool     `json:"step,omitempty"`
}

// values are a dataset's numbers; NaN is a gap (JSON null).
type values []float64

func (v values) MarshalJSON() ([]byte, error) {
	b := []byte{'['}
	for i, x := range v {
		if i > 0 {
			b = append(b, ',')
		}
		if math.IsNaN(x) || math.IsInf(x, 0) {
			b = append(b, "null"...)
		} else {
			b = strconv.AppendFloat(b, x, 'g', -1, 64)
		}
	}
	return append(b, ']'), nil
}

// grid is a table of coloured cells: the overlap heat map, the health strip.
type grid struct {
	ID      string
	Class   string // heatmap or strip
	Corner  string
	Columns []string
	Rows    []gridRow
	Legend  []swatch
}

type swatch struct{ Label, Color string }

type gridRow struct {
	Label string
	Cells []cell
}

type cell struct {
	Text, Title, Color, Ink string
	Value                   string // data-value: what the colour shows
}

type table struct {
	Head []string
	Rows [][]string
}

func ptr(f float64) *float64 { return &f }

func build(d *Data) page {
	p := page{Data: d, ChartJS: template.JS(chartJS), RenderJS: template.JS(renderJS), CSS: template.CSS(pageCSS)}
	p.Sections = []section{weightsSection(d), healthSection(d), overlapSection(d), spamSection(d), fluxSection(d), overridesSection(d)}
	for _, s := range p.Sections {
		p.Charts = append(p.Charts, s.Charts...)
		for _, pn := range s.Panels {
			p.Charts = append(p.Charts, pn.Charts...)
		}
	}
	return p
}

func weightsSection(d *Data) section {
	s := section{ID: "weights", Title: "Source weights over time",
		Intro: "After every refresh TIP weighs each blacklist source from 0 to 1 by its accuracy, exclusive share, " +
			"timeliness and health (README, Blacklists); a line per source, a point per refresh."}
	if d.MetricsNote != "" {
		s.Empty = "No weights over time: " + d.MetricsNote + "."
		return s
	}
	times := distinctTimes(d.Metrics)
	if len(times) == 0 {
		s.Empty = "No refresh has weighed the sources yet" + sinceText(d) + "."
		return s
	}
	sources := metricSources(d.Metrics)
	col := map[time.Time]int{}
	x := make([]int64, len(times))
	for i, t := range times {
		col[t], x[i] = i, t.UnixMilli()
	}
	c := chart{ID: "source-weights", Type: "line", Title: "Weight of each source", X: x, Size: "tall",
		Axes: []axis{{ID: "weight", Title: "weight", Min: ptr(0), Max: ptr(1)}}}
	for i, src := range sources {
		v := nanValues(len(times))
		for _, m := range d.Metrics {
			if m.Source == src {
				v[col[m.At]] = m.Weight
			}
		}
		c.Sets = append(c.Sets, dataset{Label: src, Axis: "weight", Color: palette(i, len(sources)), Values: v})
	}
	s.Charts = []chart{c}
	if len(times) == 1 {
		s.Notes = append(s.Notes, "One refresh so far: one point a source.")
	}
	return s
}

func metricSources(ms []storage.MetricsPoint) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Source)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// statuses of source runs, from good to bad, with their colours.
var statuses = []struct{ name, color string }{
	{"loaded", "#2e9e4f"}, {"unchanged", "#9fd5a8"}, {"malformed", "#f0a030"}, {"failed", "#d9402b"}, {"dead", "#3b3b3b"},
}

func statusRank(s string) int {
	return slices.IndexFunc(statuses, func(x struct{ name, color string }) bool { return x.name == s })
}

func healthSection(d *Data) section {
	s := section{ID: "health", Title: "Source health over time",
		Intro: "Each source run ends loaded (new content), unchanged, malformed (not the feed's format), failed or dead (the feed is gone). " +
			"The bars count the runs of all sources; the strip below shows each source's worst run in each slice of time."}
	if len(d.Runs) == 0 {
		s.Empty = "No source has run yet" + sinceText(d) + "."
		return s
	}
	first, last := d.Runs[0].Start, d.Runs[len(d.Runs)-1].Start
	n := int(last.Sub(first)/d.RunStep) + 1
	labels := make([]string, n)
	layout := "15:04"
	switch {
	case d.RunStep < time.Minute:
		layout = "15:04:05"
	case d.RunStep >= 24*time.Hour:
		layout = "2006-01-02"
	case last.Sub(first) >= 24*time.Hour || first.UTC().Day() != last.UTC().Day():
		layout = "01-02 15:04"
	}
	for i := range n {
		labels[i] = first.Add(time.Duration(i) * d.RunStep).UTC().Format(layout)
	}
	slot := func(t time.Time) int { return int(t.Sub(first) / d.RunStep) }
	c := chart{ID: "source-runs", Type: "bar", Title: "Source runs by outcome, per " + duration(d.RunStep), Labels: labels, Stacked: true,
		Axes: []axis{{ID: "runs", Title: "runs", Integer: true, Min: ptr(0)}}}
	for _, st := range statuses {
		v := make(values, n)
		seen := false
		for _, r := range d.Runs {
			if r.Status == st.name {
				v[slot(r.Start)] += float64(r.Runs)
				seen = true
			}
		}
		if seen {
			c.Sets = append(c.Sets, dataset{Label: st.name, Axis: "runs", Color: st.color, Values: v})
		}
	}
	s.Charts = []chart{c}

	// the strip: per source and slice, the worst outcome
	var sources []string
	for _, r := range d.Runs {
		sources = append(sources, r.Source)
	}
	slices.Sort(sources)
	sources = slices.Compact(sources)
	g := &grid{ID: "health-strip", Class: "strip"}
	for _, st := range statuses {
		g.Legend = append(g.Legend, swatch{Label: st.name, Color: st.color})
	}
	for i := range n {
		if i%10 == 0 {
			g.Columns = append(g.Columns, labels[i])
		} else {
			g.Columns = append(g.Columns, "")
		}
	}
	for _, src := range sources {
		row := gridRow{Label: src, Cells: make([]cell, n)}
		counts := make([]map[string]int, n)
		for _, r := range d.Runs {
			if r.Source != src {
				continue
			}
			k := slot(r.Start)
			if counts[k] == nil {
				counts[k] = map[string]int{}
			}
			counts[k][r.Status] += r.Runs
		}
		for k, byStatus := range counts {
			if byStatus == nil {
				row.Cells[k] = cell{Title: src + ", " + labels[k] + ": no run"}
				continue
			}
			worst, parts := "", []string{}
			for _, st := range statuses {
				if byStatus[st.name] > 0 {
					worst = st.name
					parts = append(parts, fmt.Sprintf("%d %s", byStatus[st.name], st.name))
				}
			}
			row.Cells[k] = cell{Color: statuses[statusRank(worst)].color, Value: worst,
				Title: src + ", " + labels[k] + ": " + strings.Join(parts, ", ")}
		}
		g.Rows = append(g.Rows, row)
	}
	s.Grid = g
	return s
}

func overlapSection(d *Data) section {
	o := d.Overlap
	s := section{ID: "overlap", Title: "Source overlap",
		Intro: "Row A, column B: the share of A's active entries that B lists too, |A ∩ B| / |A|, as the last refresh measured it. " +
			"Drawn as a table (Chart.js has no heat map); hover a cell for the counts."}
	if len(o.Sources) == 0 {
		s.Empty = "No refresh has measured the sources yet."
		return s
	}
	g := &grid{ID: "overlap-heatmap", Class: "heatmap", Corner: "A \\ B", Columns: o.Sources}
	for i, a := range o.Sources {
		row := gridRow{Label: a}
		for j, b := range o.Sources {
			share := o.Share[i][j]
			c := cell{Value: strconv.FormatFloat(share, 'f', 4, 64)}
			switch {
			case i == j:
				c.Text, c.Color, c.Ink = "·", "#e8e8e8", "#555"
				c.Title = fmt.Sprintf("%s lists %s entries", a, thousands(o.Volume[i]))
			default:
				c.Color, c.Ink = heat(share)
				switch pct := math.Round(100 * share); {
				case o.Shared[i][j] == 0:
				case pct == 0:
					c.Text = "<1"
				default:
					c.Text = strconv.Itoa(int(pct))
				}
				c.Title = fmt.Sprintf("%s of the %s entries of %s are on %s (%.1f %%)", thousands(o.Shared[i][j]), thousands(o.Volume[i]), a, b, 100*share)
			}
			row.Cells = append(row.Cells, c)
		}
		g.Rows = append(g.Rows, row)
	}
	for _, pct := range []float64{0.01, 0.25, 0.5, 0.75, 1} {
		color, _ := heat(pct)
		g.Legend = append(g.Legend, swatch{Label: fmt.Sprintf("%.0f %%", 100*pct), Color: color})
	}
	s.Grid = g
	s.Notes = []string{"Cells show percentages; an empty cell shares nothing."}
	return s
}

// heat maps a share in [0, 1] to a white-to-red colour and a legible ink.
func heat(share float64) (color, ink string) {
	stops := [][3]float64{{255, 255, 255}, {252, 187, 161}, {251, 106, 74}, {203, 24, 29}, {103, 0, 13}}
	x := math.Max(0, math.Min(1, share)) * float64(len(stops)-1)
	i := min(int(x), len(stops)-2)
	f := x - float64(i)
	var rgb [3]int
	for k := range rgb {
		rgb[k] = int(math.Round(stops[i][k] + f*(stops[i+1][k]-stops[i][k])))
	}
	ink = "#111"
	if share > 0.55 {
		ink = "#fff"
	}
	return fmt.Sprintf("#%02x%02x%02x", rgb[0], rgb[1], rgb[2]), ink
}

func spamSection(d *Data) section {
	st := d.Spam
	s := section{ID: "spam", Title: "Spam by sender and campaign",
		Intro: "The mails TIP's spamtraps received, by the network (ASN) and country of their true sender — the last hop before the trap's " +
			"own mail servers — and the largest campaigns: mails made from one template, whatever their sender."}
	if st.Mails == 0 {
		s.Empty = "No spam recorded yet."
		return s
	}
	if st.WithSender == 0 {
		s.Notes = append(s.Notes, fmt.Sprintf("None of the %s mails has a known sender.", thousands(st.Mails)))
	} else {
		s.Notes = append(s.Notes, fmt.Sprintf("%s mails, %s with a known sender (%s addresses).", thousands(st.Mails), thousands(st.WithSender), thousands(st.Senders)))
		s.Charts = append(s.Charts,
			countChart("spam-asn", "Mails by sender ASN", st.ASNs, st.WithSender, "#3366cc"),
			countChart("spam-country", "Mails by sender country", st.Countries, st.WithSender, "#dc7633"))
	}
	if len(st.Campaigns) == 0 {
		s.Notes = append(s.Notes, "No campaign recognised yet.")
		return s
	}
	c := chart{ID: "spam-campaigns", Type: "bar", Title: "Largest campaigns", Horizontal: true, Size: "tall",
		Axes: []axis{{ID: "mails", Title: "mails / sender addresses", Integer: true, Min: ptr(0)}}}
	mails, senders := values{}, values{}
	t := &table{Head: []string{"campaign", "example subject", "mails", "senders", "first", "last"}}
	for _, cp := range st.Campaigns {
		c.Labels = append(c.Labels, shorten(cp.Subject, 48))
		mails, senders = append(mails, float64(cp.Mails)), append(senders, float64(cp.Senders))
		t.Rows = append(t.Rows, []string{cp.Key, cp.Subject, thousands(cp.Mails), thousands(cp.Senders),
			cp.First.UTC().Format("2006-01-02 15:04"), cp.Last.UTC().Format("2006-01-02 15:04")})
	}
	c.Sets = []dataset{{Label: "mails", Axis: "mails", Color: "#7d3c98", Values: mails},
		{Label: "sender addresses", Axis: "mails", Color: "#c39bd3", Values: senders}}
	s.Charts = append(s.Charts, c)
	s.Table = t
	return s
}

func overridesSection(d *Data) section {
	c := d.OverrideCount
	s := section{ID: "overrides", Title: "Analyst overrides",
		Intro: "What analysts corrected, with who, when and why: an allowed value (an indicator, a range or a domain with its " +
			"subdomains) is never exported; a listing marked a false positive is not exported and counts against its " +
			"source's accuracy while the source lists it."}
	if d.OverridesNote != "" {
		s.Empty = "Overrides could not be read: " + d.OverridesNote
		return s
	}
	if len(d.Overrides) == 0 {
		// not "no data": no override is a state worth stating, the usual one
		s.Notes = append(s.Notes, "No override recorded: exports and weights are what the sources and allowlists make them.")
		return s
	}
	s.Notes = append(s.Notes, fmt.Sprintf("%s allowed and %s false positives standing; %s overrides recorded in all%s.",
		thousands(c.Allowed), thousands(c.FalsePositives), thousands(c.Recorded), shownOf(len(d.Overrides), c.Recorded)))
	t := &table{Head: []string{"kind", "value", "source", "by", "when", "state", "reason"}}
	for _, o := range d.Overrides {
		src := o.Source
		if o.Kind == storage.OverrideFP && src == "" {
			src = "every source"
		}
		state := "standing"
		switch {
		case o.RemovedAt != nil:
			state = "removed by " + o.RemovedBy + " " + o.RemovedAt.UTC().Format("2006-01-02 15:04")
		case !o.Standing(d.Generated):
			state = "expired " + o.ExpiresAt.UTC().Format("2006-01-02 15:04")
		case o.ExpiresAt != nil:
			state = "until " + o.ExpiresAt.UTC().Format("2006-01-02 15:04")
		}
		t.Rows = append(t.Rows, []string{o.Kind, o.Target(), src, o.Author, o.CreatedAt.UTC().Format("2006-01-02 15:04"), state, o.Reason})
	}
	s.Table = t
	return s
}

// shownOf says how many of the recorded overrides the table shows, when not all.
func shownOf(shown int, recorded int64) string {
	if int64(shown) >= recorded {
		return ""
	}
	return fmt.Sprintf(" (the latest %d shown)", shown)
}

// countChart is a bar chart of the top rows and, when they do not add up to
// total, an "other" bar with the rest.
func countChart(id, title string, rows []storage.CountRow, total int64, color string) chart {
	c := chart{ID: id, Type: "bar", Title: title, Axes: []axis{{ID: "mails", Title: "mails", Integer: true, Min: ptr(0)}}}
	var v values
	var sum int64
	for _, r := range rows {
		c.Labels, v = append(c.Labels, r.Key), append(v, float64(r.Mails))
		sum += r.Mails
	}
	colors := make([]string, len(v))
	for i := range colors {
		colors[i] = color
	}
	if rest := total - sum; rest > 0 {
		c.Labels, v, colors = append(c.Labels, "other"), append(v, float64(rest)), append(colors, "#9aa3ad")
	}
	c.Sets = []dataset{{Label: "mails", Axis: "mails", Color: color, Colors: colors, Values: v}}
	return c
}

func fluxSection(d *Data) section {
	s := section{ID: "flux", Title: "Fast-flux domains",
		Intro: "Each monitored domain is resolved again and again at its TTL. Per check: the addresses in the answer and their networks (ASNs), " +
			"the distinct addresses and ASNs seen so far, the answer's lowest TTL, and the Holz flux-score of the answer with the one before it " +
			"(above 0 is fast-flux)."}
	if d.FluxMonitored == 0 {
		s.Empty = "No domain is monitored yet: flux triage starts a monitor for each domain it judges fluxy."
		return s
	}
	s.Notes = []string{fmt.Sprintf("The %d of %d monitored domains with the most addresses seen%s.", len(d.Flux), d.FluxMonitored, sinceText(d))}
	if hourly(d.Flux) {
		s.Notes = append(s.Notes, "Checks older than the full-resolution window (retention.flux_full_days) are kept as hourly summaries: "+
			"there a point is an hour (or a few), with its largest answer, lowest TTL and highest score.")
	}
	for i, tl := range d.Flux {
		dom := tl.Domain
		pn := panel{ID: fmt.Sprintf("flux-%d", i), Title: dom.Domain}
		facts := []string{dom.Verdict, "monitor " + dom.Monitor}
		if dom.MonitorSince != nil {
			facts = append(facts, "since "+dom.MonitorSince.UTC().Format("2006-01-02 15:04"))
		}
		facts = append(facts, fmt.Sprintf("%d addresses in %d ASNs", dom.IPs, dom.ASNs))
		if dom.Network != "" && dom.Network != dom.Domain {
			facts = append(facts, "network "+dom.Network)
		}
		switch {
		case tl.Checks == len(tl.Points):
			facts = append(facts, fmt.Sprintf("%s checks", thousands(int64(tl.Checks))))
		default:
			facts = append(facts, fmt.Sprintf("%s checks, %d charted", thousands(int64(tl.Checks)), len(tl.Points)))
		}
		pn.Facts = strings.Join(facts, " · ")
		if len(tl.Points) == 0 {
			pn.Empty = "No check recorded yet" + sinceText(d) + "."
			s.Panels = append(s.Panels, pn)
			continue
		}
		x := make([]int64, len(tl.Points))
		ips, asns, seenIPs, seenASNs, ttl, score := values{}, values{}, values{}, values{}, values{}, values{}
		for k, p := range tl.Points {
			x[k] = p.At.UnixMilli()
			answered := p.Status == "NOERROR"
			ips, asns = append(ips, gap(float64(p.IPs), answered)), append(asns, gap(float64(p.ASNs), answered))
			seenIPs, seenASNs = append(seenIPs, float64(p.SeenIPs)), append(seenASNs, float64(p.SeenASNs))
			ttl, score = append(ttl, p.TTL), append(score, p.Score)
		}
		pn.Charts = []chart{
			{ID: pn.ID + "-counts", Type: "line", Title: "Addresses and ASNs", X: x, Size: "small",
				Axes: []axis{{ID: "count", Title: "count", Integer: true, Min: ptr(0)}},
				Sets: []dataset{
					{Label: "addresses seen", Axis: "count", Color: "#1f77b4", Values: seenIPs},
					{Label: "ASNs seen", Axis: "count", Color: "#d62728", Values: seenASNs},
					{Label: "addresses in the answer", Axis: "count", Color: "#6baed6", Values: ips, Dashed: true},
					{Label: "ASNs in the answer", Axis: "count", Color: "#fc9272", Values: asns, Dashed: true},
				}},
			{ID: pn.ID + "-ttl", Type: "line", Title: "TTL and score", X: x, Size: "small",
				Axes: []axis{{ID: "ttl", Title: "lowest TTL (s)", Min: ptr(0)}, {ID: "score", Title: "Holz score", Right: true}},
				Sets: []dataset{
					{Label: "lowest TTL (s)", Axis: "ttl", Color: "#2ca02c", Values: ttl, Step: true},
					{Label: "Holz score", Axis: "score", Color: "#9467bd", Values: score},
				}},
		}
		s.Panels = append(s.Panels, pn)
	}
	return s
}

// gap is v, or NaN (a gap in the line) when there is no answer to count.
func gap(v float64, ok bool) float64 {
	if !ok {
		return math.NaN()
	}
	return v
}

func nanValues(n int) values {
	v := make(values, n)
	for i := range v {
		v[i] = math.NaN()
	}
	return v
}

func sinceText(d *Data) string {
	if d.Since.IsZero() {
		return ""
	}
	return " since " + d.Since.UTC().Format("2006-01-02 15:04 UTC")
}

// palette gives n distinguishable colours, i-th of them.
func palette(i, n int) string {
	hue := math.Mod(float64(i)*360/float64(max(n, 1))+float64(i%2)*180/float64(max(n, 1)), 360)
	light := []int{42, 55, 34}[i%3]
	return fmt.Sprintf("hsl(%.0f, 70%%, %d%%)", hue, light)
}

func duration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%d h", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%d min", d/time.Minute)
	}
	return d.Round(time.Second).String()
}

func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// thousands writes n with thin-space thousands separators: 1 000 000.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteString("\u202f")
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// hourly says whether a timeline draws hourly summaries.
func hourly(tls []FluxTimeline) bool {
	for _, tl := range tls {
		for _, p := range tl.Points {
			if p.Hour {
				return true
			}
		}
	}
	return false
}
