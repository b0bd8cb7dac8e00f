package report_test

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/report"
	"github.com/tip-project/tip/storage"
)

const odd = `</script><script>alert(1)</script>`

// pageData is the JSON the page's script draws from.
func pageData(t *testing.T, html string) (charts []struct {
	ID       string   `json:"id"`
	Labels   []string `json:"labels"`
	Datasets []struct {
		Label  string     `json:"label"`
		Values []*float64 `json:"values"`
	} `json:"datasets"`
}) {
	t.Helper()
	m := regexp.MustCompile(`(?s)<script type="application/json" id="tip-data">(.*?)</script>`).FindStringSubmatch(html)
	if m == nil {
		t.Fatal("no #tip-data in the page")
	}
	var data struct {
		Charts *[]struct {
			ID       string   `json:"id"`
			Labels   []string `json:"labels"`
			Datasets []struct {
				Label  string     `json:"label"`
				Values []*float64 `json:"values"`
			} `json:"datasets"`
		} `json:"charts"`
	}
	data.Charts = &charts
	if err := json.Unmarshal([]byte(m[1]), &data); err != nil {
		t.Fatalf("#tip-data is not JSON: %v\n%.300s", err, m[1])
	}
	return charts
}

func write(t *testing.T, d *report.Data) string {
	t.Helper()
	var b bytes.Buffer
	if err := report.Write(&b, d); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestAnEmptyDatabaseMakesAPageSayingSo(t *testing.T) {
	html := write(t, &report.Data{Generated: time.Now(), Origin: "PostgreSQL 127.0.0.1:5433/tip", Version: "test"})
	for _, id := range []string{"weights", "health", "overlap", "spam", "flux"} {
		if !strings.Contains(html, `data-empty="`+id+`"`) {
			t.Errorf("section %s does not say it is empty", id)
		}
	}
	if charts := pageData(t, html); len(charts) != 0 {
		t.Errorf("charts without data: %+v", charts)
	}
	if strings.Contains(html, "<canvas") {
		t.Error("a canvas without data")
	}
	// the schema note of a database not migrated yet
	note := write(t, &report.Data{Generated: time.Now(), MetricsNote: "this database predates their history"})
	if !strings.Contains(note, "No weights over time: this database predates their history.") {
		t.Error("the weights section does not say why it has no history")
	}
}

func TestThePageNeedsNothingElseAndEscapesNames(t *testing.T) {
	at := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	d := &report.Data{Generated: at, Origin: "PostgreSQL " + odd, Version: "test",
		Metrics: []storage.MetricsPoint{{At: at, Source: odd, Weight: 0.5, Health: 1}, {At: at, Source: "b", Weight: 0.25, Health: 1}},
		Runs:    []storage.RunCount{{Start: at, Source: odd, Status: "loaded", Runs: 1}}, RunStep: time.Minute,
		Overlap: storage.Overlap{Sources: []string{odd, "b"}, Volume: []int64{2, 1}, Shared: [][]int64{{2, 1}, {1, 1}}, Share: [][]float64{{1, 0.5}, {1, 1}}},
		Spam: storage.SpamStats{Mails: 3, WithSender: 3, Senders: 2, ASNs: []storage.CountRow{{Key: "AS64500", Mails: 3}},
			Countries: []storage.CountRow{{Key: odd, Mails: 3}},
			Campaigns: []storage.CampaignRow{{Key: "c1", Mails: 3, Senders: 2, Subject: odd, First: at, Last: at}}},
	}
	html := write(t, d)
	// the only </script> are the four scripts' own
	if n := strings.Count(strings.ToLower(html), "</script"); n != 4 {
		t.Errorf("%d </script in the page, want the 4 scripts' own", n)
	}
	if strings.Contains(html, "<script>alert") {
		t.Error("a name became markup")
	}
	// nothing to fetch: no src or href off the page, Chart.js inlined
	if m := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?[a-z]+:`).FindString(html); m != "" {
		t.Errorf("the page refers to a resource: %s", m)
	}
	if !strings.Contains(html, "Chart.js v4.6.1") {
		t.Error("Chart.js is not inlined")
	}
	charts := pageData(t, html)
	var ids []string
	for _, c := range charts {
		ids = append(ids, c.ID)
	}
	if want := []string{"source-weights", "source-runs", "spam-asn", "spam-country", "spam-campaigns"}; !slices.Equal(ids, want) {
		t.Fatalf("charts %v, want %v", ids, want)
	}
	if w := charts[0]; w.Datasets[0].Label != odd || *w.Datasets[0].Values[0] != 0.5 {
		t.Errorf("weights: %+v", w.Datasets)
	}
	if c := charts[3]; c.Labels[0] != odd {
		t.Errorf("countries: %v", c.Labels)
	}
	if c := charts[4]; c.Labels[0] != odd {
		t.Errorf("campaigns: %v", c.Labels)
	}
	// the heat map is n×n cells, each coloured and titled
	cells := regexp.MustCompile(`(?s)<table id="overlap-heatmap".*?</table>`).FindString(html)
	if n := strings.Count(cells, `<td class="cell"`); n != 4 {
		t.Errorf("heat map of 2 sources has %d cells", n)
	}
	if !strings.Contains(cells, `title="1 of the 2 entries of &lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt; are on b (50.0 %)"`) {
		t.Errorf("heat map cell titles:\n%s", cells)
	}
}
