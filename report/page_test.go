package report

import (
	"encoding/json"
	"math"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/storage"
)

func TestVendoredChartJSIsTheRecordedVersionAndInlinable(t *testing.T) {
	version, err := os.ReadFile("assets/VERSION")
	if err != nil {
		t.Fatal(err)
	}
	v, _, _ := strings.Cut(string(version), " ")
	if !strings.Contains(chartJS[:200], "Chart.js v"+v) {
		t.Errorf("assets/chart.umd.min.js is not Chart.js %s: %.80q", v, chartJS)
	}
	for _, js := range []string{chartJS, renderJS} {
		if regexp.MustCompile(`(?i)</script|<!--`).MatchString(js) {
			t.Error("a script holds </script or <!--: it cannot be inlined")
		}
	}
}

func TestValuesAreJSONWithGaps(t *testing.T) {
	b, err := json.Marshal(values{1, math.NaN(), 0.25, math.Inf(1), 3e9})
	if err != nil || string(b) != `[1,null,0.25,null,3e+09]` {
		t.Errorf("%s, %v", b, err)
	}
}

func TestHeatRunsWhiteToRedWithLegibleInk(t *testing.T) {
	for _, c := range []struct {
		share      float64
		color, ink string
	}{{0, "#ffffff", "#111"}, {0.5, "#fb6a4a", "#111"}, {1, "#67000d", "#fff"}, {2, "#67000d", "#fff"}} {
		if color, ink := heat(c.share); color != c.color || ink != c.ink {
			t.Errorf("heat(%v) = %s on %s, want %s on %s", c.share, ink, color, c.ink, c.color)
		}
	}
}

func TestCountChartAddsOther(t *testing.T) {
	c := countChart("x", "x", []storage.CountRow{{Key: "AS1", Mails: 5}, {Key: "AS2", Mails: 3}}, 10, "#000")
	if strings.Join(c.Labels, ",") != "AS1,AS2,other" || len(c.Sets) != 1 || c.Sets[0].Values[2] != 2 || c.Sets[0].Colors[2] == "#000" {
		t.Errorf("%+v", c)
	}
	if c := countChart("x", "x", []storage.CountRow{{Key: "AS1", Mails: 5}}, 5, "#000"); len(c.Labels) != 1 {
		t.Errorf("nothing else, yet %v", c.Labels)
	}
}

func TestFluxPointsCountWhatEachCheckHadSeen(t *testing.T) {
	t0 := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	rec := func(ip string, asn uint32, ttl uint32) flux.Record {
		return flux.Record{Addr: netip.MustParseAddr(ip), ASN: asn, TTL: ttl}
	}
	obs := []flux.Observation{
		{At: t0, Status: flux.NoError, A: []flux.Record{rec("1.0.0.1", 1, 60), rec("1.0.0.2", 1, 90)}},
		{At: t0.Add(time.Minute), Status: flux.NXDomain},
		{At: t0.Add(2 * time.Minute), Status: flux.NoError, A: []flux.Record{rec("2.0.0.1", 2, 30), rec("3.0.0.1", 3, 30)},
			AAAA: []flux.Record{rec("2001:db8::1", 3, 120)}},
	}
	checks := []storage.FluxCheck{{Obs: obs[0]}, {Obs: obs[1]}, {Obs: obs[2], Prev: &obs[0]}}
	at := func(m time.Duration, asn uint32) storage.FluxSighting {
		return storage.FluxSighting{FirstSeen: t0.Add(m * time.Minute), ASN: asn}
	}
	seen := []storage.FluxSighting{at(0, 1), at(0, 1), at(2, 2), at(2, 3), at(2, 3)}
	ps := fluxPoints(checks, seen)
	want := []FluxPoint{
		{IPs: 2, ASNs: 1, SeenIPs: 2, SeenASNs: 1, TTL: 60, Score: math.NaN()},
		{IPs: 0, ASNs: 0, SeenIPs: 2, SeenASNs: 1, TTL: math.NaN(), Score: math.NaN()},
		// the score pools the A records of this answer and the one before: 4 addresses in 3 ASNs
		{IPs: 3, ASNs: 2, SeenIPs: 5, SeenASNs: 3, TTL: 30, Score: flux.HolzScore(4, 3)},
	}
	same := func(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }
	for i, p := range ps {
		w := want[i]
		if !p.At.Equal(obs[i].At) || p.IPs != w.IPs || p.ASNs != w.ASNs || p.SeenIPs != w.SeenIPs || p.SeenASNs != w.SeenASNs ||
			!same(p.TTL, w.TTL) || !same(p.Score, w.Score) {
			t.Errorf("point %d = %+v, want %+v", i, p, w)
		}
	}
}

// An hour summarised is a point at the hour: its largest answer, lowest TTL,
// highest score, NOERROR when a check answered, and what had been seen by its
// last check; the section says so.
func TestHourPointsDrawTheHoursSummaries(t *testing.T) {
	t0 := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	hours := []storage.FluxHour{
		{Hour: t0, Checks: 12, Answered: 11, NXDomain: 1, MaxAnswer: 5, MaxAnswerASNs: 4, MinTTL: 60, MaxScore: 12.5,
			LastAt: t0.Add(55 * time.Minute), LastStatus: flux.NXDomain},
		{Hour: t0.Add(time.Hour), Checks: 3, NXDomain: 3, MinTTL: -1, MaxScore: math.NaN(), LastAt: t0.Add(70 * time.Minute), LastStatus: flux.NXDomain},
	}
	seen := []storage.FluxSighting{{FirstSeen: t0, ASN: 1}, {FirstSeen: t0.Add(50 * time.Minute), ASN: 2}, {FirstSeen: t0.Add(56 * time.Minute), ASN: 3}}
	ps := hourPoints(hours, seen)
	if len(ps) != 2 || !ps[0].Hour || ps[0].Checks != 12 || ps[0].Status != flux.NoError || ps[0].IPs != 5 || ps[0].ASNs != 4 ||
		ps[0].TTL != 60 || ps[0].Score != 12.5 || ps[0].SeenIPs != 2 || ps[0].SeenASNs != 2 {
		t.Errorf("an hour with answers: %+v", ps)
	}
	if p := ps[1]; p.Status != flux.NXDomain || !math.IsNaN(p.TTL) || !math.IsNaN(p.Score) || p.SeenIPs != 3 {
		t.Errorf("an hour of NXDOMAIN: %+v", p)
	}
	d := &Data{FluxMonitored: 1, Flux: []FluxTimeline{{Domain: storage.FluxDomain{Domain: "flux.example"}, Checks: 15, Points: ps}}}
	if s := fluxSection(d); !strings.Contains(strings.Join(s.Notes, " "), "hourly summaries") {
		t.Errorf("the section does not say its points are hours: %q", s.Notes)
	}
}

func TestOverridesTableShowsWhoWhenWhy(t *testing.T) {
	now := time.Date(2026, 9, 2, 12, 0, 0, 0, time.UTC)
	removed, expired := now.Add(-time.Hour), now.Add(-time.Minute)
	d := &Data{Generated: now, OverrideCount: storage.OverrideCounts{Allowed: 1, FalsePositives: 1, Recorded: 5},
		Overrides: []storage.Override{
			{Kind: "fp", Match: "exact", Value: "9.9.9.9", Author: "carol", Reason: "a public resolver", CreatedAt: now.Add(-time.Hour)},
			{Kind: "allow", Match: "suffix", Value: "example-cert.org", Author: "alice", Reason: "our own", CreatedAt: now.Add(-2 * time.Hour)},
			{Kind: "allow", Match: "exact", Value: "1.1.1.1", Author: "bob", Reason: "resolver", CreatedAt: now.Add(-3 * time.Hour), RemovedAt: &removed, RemovedBy: "alice"},
			{Kind: "allow", Match: "cidr", Value: "7.119.176.0/24", Author: "bob", Reason: "customer", CreatedAt: now.Add(-4 * time.Hour), ExpiresAt: &expired},
		}}
	s := overridesSection(d)
	if s.Empty != "" || s.Table == nil || len(s.Table.Rows) != 4 {
		t.Fatalf("section %+v", s)
	}
	want := [][]string{
		{"fp", "9.9.9.9", "every source", "carol", "2026-09-02 11:00", "standing", "a public resolver"},
		{"allow", "*.example-cert.org", "", "alice", "2026-09-02 10:00", "standing", "our own"},
		{"allow", "1.1.1.1", "", "bob", "2026-09-02 09:00", "removed by alice 2026-09-02 11:00", "resolver"},
		{"allow", "7.119.176.0/24", "", "bob", "2026-09-02 08:00", "expired 2026-09-02 11:59", "customer"},
	}
	for i, row := range want {
		if strings.Join(s.Table.Rows[i], "|") != strings.Join(row, "|") {
			t.Errorf("row %d = %q, want %q", i, s.Table.Rows[i], row)
		}
	}
	if !strings.Contains(strings.Join(s.Notes, " "), "the latest 4 shown") {
		t.Errorf("notes %q", s.Notes)
	}
	if s := overridesSection(&Data{}); s.Empty != "" || len(s.Notes) != 1 {
		t.Errorf("no override is not an empty section (the lab's report has none): %+v", s)
	}
	if s := overridesSection(&Data{OverridesNote: "relation \"overrides\" does not exist"}); !strings.Contains(s.Empty, "could not be read") {
		t.Errorf("an unreadable table: %+v", s)
	}
}
