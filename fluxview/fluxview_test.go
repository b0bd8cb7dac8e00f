package fluxview

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/storage"
)

var t0 = time.Date(2026, 9, 2, 12, 0, 0, 0, time.UTC)

// answer is an observation of flux.example at t0+min minutes answering the
// addresses 10.0.<asn>.<host> for each host, in the AS asn.
func answer(min int, ttl uint32, asn uint32, hosts ...int) flux.Observation {
	o := flux.Observation{Domain: "flux.example", At: t0.Add(time.Duration(min) * time.Minute), Status: flux.NoError}
	for _, h := range hosts {
		o.A = append(o.A, flux.Record{Addr: netip.AddrFrom4([4]byte{10, 0, byte(asn), byte(h)}), TTL: ttl, ASN: asn})
	}
	return o
}

func TestTimelineReplaysTheMonitorsMetrics(t *testing.T) {
	obs := []flux.Observation{
		answer(0, 300, 1, 1, 2),
		answer(5, 120, 2, 3, 4, 5),
		{Domain: "flux.example", At: t0.Add(10 * time.Minute), Status: flux.NXDomain},
	}
	tl, sum := Timeline(obs)
	if len(tl) != 3 {
		t.Fatalf("%d points for 3 observations", len(tl))
	}
	var ips, asns, answers []int
	for _, p := range tl {
		ips, asns, answers = append(ips, p.IPs), append(asns, p.ASNs), append(answers, p.Answer)
	}
	if !slices.Equal(ips, []int{2, 5, 5}) || !slices.Equal(asns, []int{1, 2, 2}) || !slices.Equal(answers, []int{2, 3, 0}) {
		t.Errorf("IPs %v, ASNs %v, per answer %v", ips, asns, answers)
	}
	if tl[0].TTL != 300 || tl[1].TTL != 120 || tl[2].Status != flux.NXDomain || !tl[1].At.Equal(obs[1].At) {
		t.Errorf("points %+v", tl)
	}
	// The summary is the monitor's own after the last observation.
	var m flux.Metrics
	for _, o := range obs {
		m.Add(o)
	}
	if want := m.Summary(obs[2].At); sum.IPs != want.IPs || sum.Observations != want.Observations || sum.Score != want.Score {
		t.Errorf("summary %+v, want %+v", sum, want)
	}
	if tl, sum := Timeline(nil); len(tl) != 0 || sum.Observations != 0 {
		t.Errorf("no observations: %+v, %+v", tl, sum)
	}
}

func TestBucketMaxKeepsEachColumnsLargest(t *testing.T) {
	var tl []Point
	for i := range 10 {
		tl = append(tl, Point{IPs: i})
	}
	ips := func(p Point) float64 { return float64(p.IPs) }
	if got := bucketMax(tl, 5, ips); !slices.Equal(got, []float64{1, 3, 5, 7, 9}) {
		t.Errorf("10 points in 5 columns: %v", got)
	}
	if got := bucketMax(tl[:3], 5, ips); !slices.Equal(got, []float64{0, 1, 2}) {
		t.Errorf("3 points in 5 columns: %v", got)
	}
	if got := bucketMax(tl, 3, ips); !slices.Equal(got, []float64{2, 5, 9}) {
		t.Errorf("10 points in 3 columns: %v", got)
	}
}

func TestSparklineSpansTheBars(t *testing.T) {
	for _, c := range []struct {
		vals []float64
		want string
	}{
		{[]float64{0, 1, 2, 3, 4, 5, 6, 7}, "▁▂▃▄▅▆▇█"},
		{[]float64{10, 20, 10}, "▁█▁"},
		{[]float64{4, 4, 4}, "▁▁▁"}, // flat: the lowest bar
		{[]float64{7}, "▁"},
	} {
		if got := sparkline(c.vals); got != c.want {
			t.Errorf("sparkline(%v) = %q, want %q", c.vals, got, c.want)
		}
	}
}

func TestShowDrawsTheDomainAndItsTimeline(t *testing.T) {
	since := t0.Add(-time.Hour)
	row := storage.FluxDomain{Domain: "flux.example", Verdict: "flux", Score: 117.14, Reason: "many IPs in many ASNs", TriagedAt: t0.Add(-2 * time.Hour),
		Triages: 3, Monitor: "watching", MonitorSince: &since, Network: "flux.example",
		Summary: &flux.Summary{Observations: 2, IPs: 5, ASNs: 2, MinTTL: 120, MedianTTL: 210, MaxScore: 4.5}}
	var obs []flux.Observation
	for i := range 100 {
		obs = append(obs, answer(i, uint32(300-i), uint32(1+i/10), i, i+1))
	}
	tl, _ := Timeline(obs)
	var b bytes.Buffer
	Show(&b, row, tl)
	out := b.String()
	lines := strings.Split(out, "\n")
	for _, want := range []string{
		"flux.example: flux, score 117.14 (triaged 2026-09-02T10:00:00Z, 3 times, first reported by -)",
		"  many IPs in many ASNs",
		"monitor flux/flux.example: watching since 2026-09-02T11:00:00Z",
		"network: flux.example",
		"timeline: 100 observations, 2026-09-02 12:00 to 2026-09-02 13:39",
		"  IPs (cumulative)   ▁▁▁▁▁▁▁▁▁▂▂▂▂▂▂▂▂▃▃▃▃▃▃▃▃▃▄▄▄▄▄▄▄▄▅▅▅▅▅▅▅▅▅▆▆▆▆▆▆▆▆▇▇▇▇▇▇▇▇█  110",
		"  ASNs (cumulative)  ▁▁▁▁▁▁▁▁▁▁▁▁▂▂▂▂▂▂▃▃▃▃▃▃▄▄▄▄▄▄▄▄▄▄▄▄▅▅▅▅▅▅▆▆▆▆▆▆▇▇▇▇▇▇██████  10",
		"  IPs per answer     ▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁▁  2",
		"  TTL (s)            █▇▇▇▇▇▇▇▇▆▆▆▆▆▆▆▆▆▅▅▅▅▅▅▅▅▄▄▄▄▄▄▄▄▄▃▃▃▃▃▃▃▃▂▂▂▂▂▂▂▂▁▁▁▁▁▁▁▁▁  201",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("no line %q in:\n%s", want, out)
		}
	}
	if !strings.HasPrefix(lines[4], "summary: 2 observations, 5 IPs (0 IPv6) in 2 ASNs") {
		t.Errorf("summary line %q", lines[4])
	}
	for _, l := range lines[len(lines)-6 : len(lines)-1] { // the five series: 100 points in 60 columns
		spark, _, _ := strings.Cut(string([]rune(l)[2+18+1:]), " ")
		if n := len([]rune(spark)); n != sparkWidth {
			t.Errorf("a sparkline of %d columns, want %d: %q", n, sparkWidth, l)
		}
	}

	b.Reset()
	Show(&b, storage.FluxDomain{Domain: "new.example", Verdict: "benign", TriagedAt: t0, Triages: 1, Origin: "spam-collect"}, nil)
	if want := "new.example: benign, score 0.00 (triaged 2026-09-02T12:00:00Z, 1 times, first reported by spam-collect)\nno observations recorded yet\n"; b.String() != want {
		t.Errorf("a domain with no timeline:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestListAndNetworksTables(t *testing.T) {
	since := t0.Add(-time.Hour)
	var b bytes.Buffer
	List(&b, []storage.FluxDomain{
		{Domain: "flux.example", Monitor: "watching", MonitorSince: &since, Verdict: "flux", Score: 117.14, IPs: 20, ASNs: 16,
			Summary: &flux.Summary{Observations: 4, NSNames: 2}, Network: "flux.example", TriagedAt: t0.Add(-2 * time.Hour)},
		{Domain: "cdn.example", Verdict: "cdn-allowlisted", Score: 0.5, TriagedAt: t0},
	})
	want := "DOMAIN        MONITOR   VERDICT          SCORE  IPS  ASNS  NS  SINCE             NETWORK\n" +
		"flux.example  watching  flux             117.1  20   16    2   2026-09-02 11:00  flux.example\n" +
		"cdn.example   -         cdn-allowlisted  0.5    0    0     -   2026-09-02 12:00  -\n"
	if b.String() != want {
		t.Errorf("list:\n%s\nwant:\n%s", b.String(), want)
	}

	b.Reset()
	var many []string
	for i := range 20 {
		many = append(many, fmt.Sprintf("d%02d.example", i))
	}
	if err := Networks(&b, []storage.FluxNetwork{{Name: "d00.example", Domains: many, IPs: 300, ASNs: 40}}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "d00.example  20       300  40    d00.example d01.example ") ||
		!strings.HasSuffix(lines[1], "…") || len([]rune(lines[1][strings.Index(lines[1], "d00.example d01"):])) != membersWidth {
		t.Errorf("networks:\n%s", b.String())
	}
}

func TestProbesSayWhatWasAndWasNotCounted(t *testing.T) {
	first, second := answer(0, 300, 1, 1, 2), answer(5, 300, 2, 3)
	p := Probe{Assessment: flux.Assessment{Domain: "flux.example", Verdict: "flux", Score: 2.5, Reason: "fast rotation",
		Features: flux.Features{IPs: 3, ASNs: 2, Prefixes: 1, Countries: 1, Diversity: 0.5, Jaccard: 0.25}},
		Scored: true, Resolutions: []flux.Observation{first, second}}
	unscored := Probe{Assessment: flux.Assessment{Domain: "dark.example", Verdict: "benign", Reason: "few IPs",
		Features: flux.Features{IPs: 1, Prefixes: 1, NoASN: "ASN table unavailable: gone"}}}
	var b bytes.Buffer
	Probes(&b, []Probe{p, unscored})
	want := "flux.example: flux (score 2.50) — fast rotation\n" +
		"  resolution 1 at 12:00:00: NOERROR, 2 A, 0 AAAA, 0 NS, min TTL 300s \n" +
		"  resolution 2 at 12:05:00: NOERROR, 1 A, 0 AAAA, 0 NS, min TTL 300s \n" +
		"  features: 3 IPs in 2 ASNs, 1 /16s, 1 countries; D 0.50 (per answer 0.00); Jaccard 0.25; NS 0 names, 0 addresses, changed false\n" +
		"dark.example: benign (score not computed) — few IPs\n" +
		"  features: 1 IPs in 1 /16s (ASNs and countries not counted: the ASN table was unavailable); D 0.00 (per answer 0.00); Jaccard 0.00; NS 0 names, 0 addresses, changed false\n"
	if b.String() != want {
		t.Errorf("probes:\n%s\nwant:\n%s", b.String(), want)
	}
}

// Draw puts the hours before the observations, each hour a point with its
// checks, largest answer, lowest TTL and highest score, and counts what was
// seen (addresses, ASNs, NS names) from the first-seen times, not from the
// observations still kept.
func TestDrawJoinsHoursAndObservations(t *testing.T) {
	h := History{
		Hours: []storage.FluxHour{{Hour: t0.Add(-2 * time.Hour), Checks: 12, Answered: 12, MaxAnswer: 4, MinTTL: 90, MaxScore: 3.5,
			LastAt: t0.Add(-65 * time.Minute), LastStatus: flux.NoError}},
		Obs: []flux.Observation{answer(0, 300, 1, 1, 2)},
		IPs: []storage.FluxSighting{{FirstSeen: t0.Add(-2 * time.Hour), ASN: 7}, {FirstSeen: t0.Add(-70 * time.Minute), ASN: 8}, {FirstSeen: t0, ASN: 1}},
		NS:  []time.Time{t0.Add(-2 * time.Hour)},
	}
	tl, sum := Draw(h)
	want := []Point{
		{At: t0.Add(-2 * time.Hour), Hour: true, Checks: 12, Status: flux.NoError, Answer: 4, IPs: 2, ASNs: 2, NS: 1, TTL: 90, Score: 3.5},
		{At: t0, Checks: 1, Status: flux.NoError, Answer: 2, IPs: 3, ASNs: 3, NS: 1, TTL: 300},
	}
	if fmt.Sprint(tl) != fmt.Sprint(want) || sum.Observations != 1 {
		t.Errorf("timeline %+v,\nwant     %+v (summary of %d observations)", tl, want, sum.Observations)
	}
	var b bytes.Buffer
	Show(&b, storage.FluxDomain{Domain: "flux.example"}, tl)
	if !strings.Contains(b.String(), "timeline: 13 observations") || !strings.Contains(b.String(), "1 hourly summaries") {
		t.Errorf("show:\n%s", b.String())
	}
}
