package report_test

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/internal/browser"
	"github.com/tip-project/tip/internal/seed"
	"github.com/tip-project/tip/report"
	"github.com/tip-project/tip/report/reporttest"
	"github.com/tip-project/tip/storage"
)

// points bounds the timelines of the report under test: the big flux domain's
// 40 checks are sampled, the small one's 6 are not.
const points = 15

// expected is what the seeded database holds, computed from what seed wrote
// (and the metrics TIP computed from it), not from the report's own reads.
type expected struct {
	sources  []string
	weights  map[string]float64 // after the last refresh
	runs     map[string]int     // by status
	asns     []string           // the spam chart's labels and values: top 10, then other
	asnMails []float64
	ccs      []string
	ccMails  []float64
	// campaigns by example subject
	campaigns map[string]float64
	share     map[[2]string]float64
	checks    map[string][]flux.Observation
}

func expect(t *testing.T, db *storage.DB, w *seed.World) expected {
	t.Helper()
	e := expected{sources: w.Sources, weights: map[string]float64{}, runs: map[string]int{}, campaigns: map[string]float64{},
		share: map[[2]string]float64{}, checks: w.Checks}
	hs, err := db.SourcesHealth(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		e.weights[h.Name] = h.Weight
	}
	for _, byStatus := range w.Runs {
		for s, n := range byStatus {
			e.runs[s] += n
		}
	}
	byASN, byCC := map[int]float64{}, map[string]float64{}
	for _, m := range w.Mails {
		if m.SenderIP.IsValid() {
			byASN[m.SenderASN]++
			byCC[m.SenderCountry]++
		}
		if m.Campaign != "" {
			e.campaigns[m.Subject]++
		}
	}
	// seed gives AS6450i 13−i mails and the i-th country
	var otherASN, otherCC float64
	for i := range 13 {
		asn, cc := 64500+i, []string{"RU", "CN", "US", "BR", "IN", "VN", "UA", "DE", "NL", "FR", "KR", "TR", "ID"}[i]
		if i < 10 {
			e.asns, e.asnMails = append(e.asns, fmt.Sprintf("AS%d", asn)), append(e.asnMails, byASN[asn])
			e.ccs, e.ccMails = append(e.ccs, cc), append(e.ccMails, byCC[cc])
		} else {
			otherASN, otherCC = otherASN+byASN[asn], otherCC+byCC[cc]
		}
	}
	e.asns, e.asnMails = append(e.asns, "other"), append(e.asnMails, otherASN)
	e.ccs, e.ccMails = append(e.ccs, "other"), append(e.ccMails, otherCC)
	for _, a := range w.Sources {
		for _, b := range w.Sources {
			n := 0
			for _, v := range w.Lists[a] {
				if slices.Contains(w.Lists[b], v) {
					n++
				}
			}
			if n > 0 {
				e.share[[2]string{a, b}] = float64(n) / float64(len(w.Lists[a]))
			}
		}
	}
	return e
}

// check compares what the page drew with what the database holds and returns
// every difference.
func check(r reporttest.Rendered, e expected) []string {
	var p []string
	bad := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	if !r.Ready {
		bad("the page's script did not finish")
	}
	for _, err := range r.Errors {
		bad("error: %s", err)
	}
	for _, u := range r.Requests {
		if !strings.HasPrefix(u, "file://") {
			bad("the page requested %s", u)
		}
	}
	if !slices.Equal(r.Empty, []string{"flux-2"}) {
		bad("sections without data: %q, want only the quiet flux domain's (flux-2)", r.Empty)
	}
	var ids []string
	for _, c := range r.Charts {
		ids = append(ids, c.ID)
		// drawn: its pixels, and each dataset's elements placed on the canvas
		if c.Painted < c.Width*c.Height/50 {
			bad("chart %s painted %d of its %d×%d pixels", c.ID, c.Painted, c.Width, c.Height)
		}
		for _, ds := range c.Datasets {
			gaps := 0
			for _, v := range ds.Values {
				if v == nil {
					gaps++
				}
			}
			if ds.Points != len(ds.Values) || ds.Drawn != len(ds.Values)-gaps || !ds.Visible {
				bad("chart %s, %q: %d values (%d gaps), %d points, %d drawn, visible %v", c.ID, ds.Label, len(ds.Values), gaps, ds.Points, ds.Drawn, ds.Visible)
			}
		}
	}
	want := []string{"source-weights", "source-runs", "spam-asn", "spam-country", "spam-campaigns", "flux-0-counts", "flux-0-ttl", "flux-1-counts", "flux-1-ttl"}
	if !slices.Equal(ids, want) {
		bad("charts %q, want %q", ids, want)
	}
	num := func(v *float64) float64 {
		if v == nil {
			return math.NaN()
		}
		return *v
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	series := func(chart, label string) (*reporttest.Chart, []float64) {
		c := r.Chart(chart)
		if c == nil {
			return nil, nil
		}
		for _, ds := range c.Datasets {
			if ds.Label == label {
				out := make([]float64, len(ds.Values))
				for i, v := range ds.Values {
					out[i] = num(v)
				}
				return c, out
			}
		}
		bad("chart %s has no dataset %q", chart, label)
		return c, nil
	}

	// weights: a line per source, a point per refresh, ending at the current weights
	if c := r.Chart("source-weights"); c != nil {
		var labels []string
		for _, ds := range c.Datasets {
			labels = append(labels, ds.Label)
		}
		if !slices.Equal(labels, e.sources) || len(c.X) != seed.Refreshes {
			bad("weights: lines %q over %d refreshes, want %q over %d", labels, len(c.X), e.sources, seed.Refreshes)
		}
		for _, src := range e.sources {
			if _, v := series("source-weights", src); len(v) != seed.Refreshes || !near(v[len(v)-1], e.weights[src]) {
				bad("weights of %s: %v, now %v", src, v, e.weights[src])
			}
		}
	}
	// health: the runs by outcome
	if c := r.Chart("source-runs"); c != nil {
		got := map[string]int{}
		for _, ds := range c.Datasets {
			for _, v := range ds.Values {
				got[ds.Label] += int(num(v))
			}
		}
		for s, n := range e.runs {
			if got[s] != n {
				bad("runs %s: %d charted, %d recorded", s, got[s], n)
			}
		}
	}
	// spam
	for _, sc := range []struct {
		id     string
		labels []string
		mails  []float64
	}{{"spam-asn", e.asns, e.asnMails}, {"spam-country", e.ccs, e.ccMails}} {
		if c, v := series(sc.id, "mails"); c != nil && (!slices.Equal(c.Labels, sc.labels) || !slices.Equal(v, sc.mails)) {
			bad("%s: %q %v, want %q %v", sc.id, c.Labels, v, sc.labels, sc.mails)
		}
	}
	if c, v := series("spam-campaigns", "mails"); c != nil {
		if len(c.Labels) != len(e.campaigns) || len(v) != len(c.Labels) {
			bad("campaigns: %q %v, want %v", c.Labels, v, e.campaigns)
		}
		for i := range min(len(v), len(c.Labels)) {
			if e.campaigns[c.Labels[i]] != v[i] {
				bad("campaign %q: %v mails charted, %v recorded", c.Labels[i], v[i], e.campaigns[c.Labels[i]])
			}
		}
	}

	// the overlap heat map: n×n cells, each the share DB holds
	if g := r.Grid("overlap-heatmap"); g == nil {
		bad("no overlap heat map")
	} else {
		n := len(e.sources)
		if !slices.Equal(g.Rows, e.sources) || !slices.Equal(g.Columns, e.sources) || len(g.Cells) != n || g.Colored != n*n {
			bad("heat map: rows %q, columns %q, %d coloured cells; want %d×%d", g.Rows, g.Columns, g.Colored, n, n)
		}
		for i, a := range g.Rows {
			if len(g.Values[i]) != n {
				bad("heat map row %s: %d cells", a, len(g.Values[i]))
				continue
			}
			for j, b := range g.Columns {
				got, _ := strconv.ParseFloat(g.Values[i][j], 64)
				if want := e.share[[2]string{a, b}]; math.Abs(got-want) > 1e-4 {
					bad("heat map %s → %s: %v, want %.4f", a, b, g.Values[i][j], want)
				}
			}
		}
	}
	if g := r.Grid("health-strip"); g == nil {
		bad("no health strip")
	} else {
		cells := 0
		for _, row := range g.Cells {
			cells += len(row)
		}
		if !slices.Equal(g.Rows, e.sources) || cells != len(g.Rows)*len(g.Columns) {
			bad("health strip: rows %q, %d cells for %d columns", g.Rows, cells, len(g.Columns))
		}
	}

	// flux: the big domain sampled, the small one whole, each point the check's
	for i, dom := range []string{seed.FluxBig, seed.FluxSmall} {
		checks := e.checks[dom]
		id := fmt.Sprintf("flux-%d", i)
		c, seen := series(id+"-counts", "addresses seen")
		_, seenASNs := series(id+"-counts", "ASNs seen")
		_, answer := series(id+"-counts", "addresses in the answer")
		_, ttl := series(id+"-ttl", "lowest TTL (s)")
		_, score := series(id+"-ttl", "Holz score")
		if c == nil || len(seen) != len(c.X) || len(seenASNs) != len(c.X) || len(answer) != len(c.X) || len(ttl) != len(c.X) || len(score) != len(c.X) {
			bad("%s (%s): no timeline of equal series", id, dom)
			continue
		}
		if want := min(len(checks), points); len(c.X) != want {
			bad("%s: %d points, want %d", dom, len(c.X), want)
		}
		ips, asns := map[netip.Addr]bool{}, map[uint32]bool{}
		k := 0
		for j, x := range c.X {
			for ; k < len(checks) && float64(checks[k].At.UnixMilli()) <= x; k++ {
				for _, rec := range checks[k].A {
					ips[rec.Addr], asns[rec.ASN] = true, true
				}
			}
			o := checks[k-1]
			if float64(o.At.UnixMilli()) != x {
				bad("%s point %d at %v is no check", dom, j, x)
				break
			}
			wantScore, wantTTL, wantAnswer := math.NaN(), math.NaN(), math.NaN()
			if o.Status == flux.NoError {
				wantAnswer = float64(len(o.A))
				t, _ := o.MinTTL()
				wantTTL = float64(t)
				// pooled with the answer before it, across a check that failed
				prev := k - 2
				for prev >= 0 && checks[prev].Status != flux.NoError {
					prev--
				}
				if prev >= 0 {
					pair := map[netip.Addr]bool{}
					pairASNs := map[uint32]bool{}
					for _, rec := range append(checks[prev].A[:len(checks[prev].A):len(checks[prev].A)], o.A...) {
						pair[rec.Addr], pairASNs[rec.ASN] = true, true
					}
					wantScore = flux.HolzScore(len(pair), len(pairASNs))
				}
			}
			same := func(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }
			if seen[j] != float64(len(ips)) || seenASNs[j] != float64(len(asns)) || !same(answer[j], wantAnswer) ||
				!same(ttl[j], wantTTL) || !same(score[j], wantScore) {
				bad("%s check %d: seen %v/%v, answer %v, TTL %v, score %v; want %d/%d, %v, %v, %v", dom, k-1,
					seen[j], seenASNs[j], answer[j], ttl[j], score[j], len(ips), len(asns), wantAnswer, wantTTL, wantScore)
			}
		}
		if last := checks[len(checks)-1]; len(c.X) > 0 && c.X[len(c.X)-1] != float64(last.At.UnixMilli()) {
			bad("%s: the timeline ends before the last check", dom)
		}
	}
	return p
}

func TestReportDrawsTheDatabaseInChromium(t *testing.T) {
	ctx := context.Background()
	db, w := seed.New(t)
	allow, err := storage.ParseOverrideTarget("*.example-cert.org")
	if err != nil {
		t.Fatal(err)
	}
	allow.Kind, allow.Reason, allow.Author = storage.OverrideAllow, "the CERT's own web site", "alice"
	if _, err := db.AddOverride(ctx, allow); err != nil {
		t.Fatal(err)
	}
	b := browser.New(t)
	// every check at full resolution: the seed's are older than any window
	d, err := report.Collect(ctx, db, report.Options{Points: points, Version: "test", FluxFull: -1})
	if err != nil {
		t.Fatal(err)
	}
	path, err := report.WriteFile(t.TempDir(), d)
	if err != nil {
		t.Fatal(err)
	}
	e := expect(t, db, w)
	r, err := reporttest.ReadRendered(ctx, b, path)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range check(r, e) {
		t.Error(p)
	}
	b.Screenshot(t, "report")
	for _, id := range []string{"weights", "health", "overlap", "spam", "flux"} {
		b.ScreenshotElement(t, "section-"+id, "#"+id)
	}

	// The checks fail a page that draws wrongly: each breakage must be caught.
	page, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	html := string(page)
	lastScript := strings.LastIndex(html, "<script>")
	heatmap := strings.Index(html, `<table id="overlap-heatmap"`)
	for _, c := range []struct {
		name, broken, caught string
	}{
		{"chart without canvas", strings.Replace(html, `<canvas id="spam-asn"`, `<canvas id="spam-asn-moved"`, 1), "no canvas #spam-asn"},
		{"chart not drawn", html[:lastScript] + `<script>const draw = Chart.prototype.draw;
			Chart.prototype.draw = function () { if (this.canvas.id !== "spam-country") draw.apply(this, arguments); };</script>` + html[lastScript:],
			"chart spam-country painted 0"},
		{"wrong data", strings.Replace(html, `"values":[13,12,11`, `"values":[14,12,11`, 1), "spam-asn: "},
		{"script error", strings.Replace(html, "</body>", `<script>null.boom();</script></body>`, 1), "error: "},
		{"heat map cell missing", html[:heatmap] + strings.Replace(html[heatmap:], `<td class="cell"`, `<td class="gone"`, 1), "heat map: "},
		{"strip cell missing", strings.Replace(html, `<td class="cell"`, `<td class="gone"`, 1), "health strip: "},
	} {
		if c.broken == html {
			t.Errorf("%s: the page was not broken", c.name)
			continue
		}
		p := filepath.Join(t.TempDir(), "broken.html")
		if err := os.WriteFile(p, []byte(c.broken), 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := reporttest.ReadRendered(ctx, b, p)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		probs := check(r, e)
		if !slices.ContainsFunc(probs, func(s string) bool { return strings.Contains(s, c.caught) }) {
			t.Errorf("%s: not caught as %q; the checks said %q", c.name, c.caught, probs)
		}
	}
}
