// Package fluxview draws the flux domains as `tip flux` shows them in a
// terminal: the list of triaged and watched domains, the networks, a probe's
// verdicts, and a domain's timeline, replayed through the monitor's own
// metrics and drawn as sparklines.
package fluxview

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// Point is a monitor's running figures after one observation, or one hour of
// observations before the full-resolution window (Hour): then Answer and TTL
// are the hour's largest answer and lowest TTL, Score its highest, Status
// NOERROR when one answered, and the cumulative counts are at its last check.
type Point struct {
	At     time.Time   `json:"at"`
	Hour   bool        `json:"hour,omitempty"`
	Checks int         `json:"checks"` // observations the point stands for
	Status flux.Status `json:"status"`
	Answer int         `json:"answer"` // addresses in this answer
	IPs    int         `json:"ips"`    // cumulative
	ASNs   int         `json:"asns"`   // cumulative
	NS     int         `json:"ns"`     // cumulative NS names
	TTL    uint32      `json:"ttl"`    // this answer's lowest
	Score  float64     `json:"score"`  // Holz score of this answer and the one before
}

// Timeline replays the observations, oldest first, through the monitor's own
// metrics and returns a point per observation and the summary after the last.
func Timeline(obs []flux.Observation) ([]Point, flux.Summary) {
	var m flux.Metrics
	var s flux.Summary
	out := make([]Point, 0, len(obs))
	for _, o := range obs {
		m.Add(o)
		s = m.Summary(o.At)
		ttl, _ := o.MinTTL()
		out = append(out, Point{At: o.At, Checks: 1, Status: o.Status, Answer: len(o.A) + len(o.AAAA), IPs: s.IPs, ASNs: s.ASNs, NS: s.NSNames, TTL: ttl, Score: s.Score})
	}
	return out, s
}

// History is what a domain's timeline is drawn from: the hourly summaries
// before the full-resolution window, the observations in it, and when each
// address and NS name was first seen (the passive DNS, which retention never
// removes).
type History struct {
	Hours []storage.FluxHour     // oldest first
	Obs   []flux.Observation     // oldest first, after the hours
	IPs   []storage.FluxSighting // A and AAAA addresses, first seen first
	NS    []time.Time            // NS names' first seen, in order
}

// Load reads what a domain's timeline is drawn from: the hourly summaries
// before floor (the full-resolution boundary, storage.FullResolutionFrom; zero:
// none), at most the last observations from it on (0: all), and the
// first-seen times of its addresses and NS names.
func Load(ctx context.Context, db *storage.DB, domain string, floor time.Time, last int) (History, error) {
	var h History
	obs, err := db.FluxObservations(ctx, domain, last)
	if err != nil {
		return h, err
	}
	for _, o := range obs {
		if !o.At.Before(floor) {
			h.Obs = append(h.Obs, o)
		}
	}
	if h.Hours, err = db.FluxHours(ctx, domain, time.Time{}, floor); err != nil {
		return h, err
	}
	if h.IPs, err = db.FluxSightings(ctx, domain); err != nil {
		return h, err
	}
	h.NS, err = db.FluxNSSightings(ctx, domain)
	return h, err
}

// Draw makes a domain's timeline: a point per hour summarised, then a point
// per observation (Timeline), the cumulative counts read from the first-seen
// times, so that they do not depend on which observations are still kept. The
// summary is the replay's of the observations.
func Draw(h History) ([]Point, flux.Summary) {
	var asnFirst []time.Time
	known := map[uint32]bool{}
	for _, s := range h.IPs {
		if s.ASN != 0 && !known[s.ASN] {
			known[s.ASN] = true
			asnFirst = append(asnFirst, s.FirstSeen)
		}
	}
	upTo := func(ts []time.Time, t time.Time) int {
		return sort.Search(len(ts), func(i int) bool { return ts[i].After(t) })
	}
	ipFirst := make([]time.Time, len(h.IPs))
	for i, s := range h.IPs {
		ipFirst[i] = s.FirstSeen
	}
	cumulative := func(p *Point, t time.Time) {
		p.IPs, p.ASNs, p.NS = upTo(ipFirst, t), upTo(asnFirst, t), upTo(h.NS, t)
	}
	out := make([]Point, 0, len(h.Hours)+len(h.Obs))
	for _, hr := range h.Hours {
		p := Point{At: hr.Hour, Hour: true, Checks: hr.Checks, Status: hr.LastStatus, Answer: hr.MaxAnswer, TTL: uint32(max(hr.MinTTL, 0))}
		if hr.Answered > 0 {
			p.Status = flux.NoError
		}
		if !math.IsNaN(hr.MaxScore) {
			p.Score = hr.MaxScore
		}
		cumulative(&p, hr.LastAt)
		out = append(out, p)
	}
	tl, sum := Timeline(h.Obs)
	for i := range tl {
		cumulative(&tl[i], tl[i].At)
	}
	return append(out, tl...), sum
}

// sparkWidth is how many columns a timeline's sparklines take at most.
const sparkWidth = 60

// Show draws a domain's verdict, monitor, summary and timeline (`tip flux show`).
func Show(w io.Writer, r storage.FluxDomain, tl []Point) {
	fmt.Fprintf(w, "%s: %s, score %.2f (triaged %s, %d times, first reported by %s)\n", r.Domain, r.Verdict, r.Score,
		r.TriagedAt.UTC().Format(time.RFC3339), r.Triages, cmp.Or(r.Origin, "-"))
	if r.Reason != "" {
		fmt.Fprintf(w, "  %s\n", r.Reason)
	}
	if r.Monitor != "" {
		fmt.Fprintf(w, "monitor %s: %s", contract.MonitorWorkflowID(r.Domain), r.Monitor)
		if r.MonitorSince != nil {
			fmt.Fprintf(w, " since %s", r.MonitorSince.UTC().Format(time.RFC3339))
		}
		if r.MonitorEnded != nil {
			fmt.Fprintf(w, ", ended %s", r.MonitorEnded.UTC().Format(time.RFC3339))
		}
		fmt.Fprintln(w)
	}
	if r.Network != "" {
		fmt.Fprintf(w, "network: %s\n", r.Network)
	}
	if s := r.Summary; s != nil {
		fmt.Fprintf(w, "summary: %d observations, %d IPs (%d IPv6) in %d ASNs, %d /16s, %d countries; %d NS names, %d NS addresses (churn %.2f, double flux %v); TTL min %ds median %ds; %.1f new IPs/h; max score %.1f\n",
			s.Observations, s.IPs, s.IPv6, s.ASNs, s.Prefixes, s.Countries, s.NSNames, s.NSAddrs, s.NSChurn, s.DoubleFlux, s.MinTTL, s.MedianTTL, s.NewIPsPerHour, s.MaxScore)
	}
	if len(tl) == 0 {
		fmt.Fprintln(w, "no observations recorded yet")
		return
	}
	checks, hours := 0, 0
	for _, p := range tl {
		checks += p.Checks
		if p.Hour {
			hours++
		}
	}
	fmt.Fprintf(w, "\ntimeline: %d observations, %s to %s", checks, tl[0].At.UTC().Format("2006-01-02 15:04"), tl[len(tl)-1].At.UTC().Format("2006-01-02 15:04"))
	if hours > 0 {
		fmt.Fprintf(w, " (%d hourly summaries before every check)", hours)
	}
	fmt.Fprintln(w)
	series := []struct {
		name string
		v    func(Point) float64
		last func(Point) string
	}{
		{"IPs (cumulative)", func(p Point) float64 { return float64(p.IPs) }, func(p Point) string { return fmt.Sprint(p.IPs) }},
		{"ASNs (cumulative)", func(p Point) float64 { return float64(p.ASNs) }, func(p Point) string { return fmt.Sprint(p.ASNs) }},
		{"IPs per answer", func(p Point) float64 { return float64(p.Answer) }, func(p Point) string { return fmt.Sprint(p.Answer) }},
		{"TTL (s)", func(p Point) float64 { return float64(p.TTL) }, func(p Point) string { return fmt.Sprint(p.TTL) }},
		{"score", func(p Point) float64 { return p.Score }, func(p Point) string { return fmt.Sprintf("%.1f", p.Score) }},
	}
	for _, s := range series {
		vals := bucketMax(tl, sparkWidth, s.v)
		fmt.Fprintf(w, "  %-18s %s  %s\n", s.name, sparkline(vals), s.last(tl[len(tl)-1]))
	}
}

// bucketMax spreads the points over at most width columns and keeps each
// column's largest value.
func bucketMax(tl []Point, width int, v func(Point) float64) []float64 {
	n := min(len(tl), width)
	out := make([]float64, n)
	for i := range out {
		lo, hi := i*len(tl)/n, (i+1)*len(tl)/n
		out[i] = v(tl[lo])
		for _, p := range tl[lo:hi] {
			out[i] = max(out[i], v(p))
		}
	}
	return out
}

// sparkline draws values as block characters between their minimum and maximum.
func sparkline(vals []float64) string {
	const bars = "▁▂▃▄▅▆▇█"
	runes := []rune(bars)
	lo, hi := slices.Min(vals), slices.Max(vals)
	var b strings.Builder
	for _, v := range vals {
		i := 0
		if hi > lo {
			i = int((v - lo) / (hi - lo) * float64(len(runes)-1))
		}
		b.WriteRune(runes[i])
	}
	return b.String()
}

// List draws the flux domains as a table (`tip flux list`).
func List(w io.Writer, rows []storage.FluxDomain) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DOMAIN\tMONITOR\tVERDICT\tSCORE\tIPS\tASNS\tNS\tSINCE\tNETWORK")
	for _, r := range rows {
		ns := "-"
		if r.Summary != nil && r.Summary.Observations > 0 {
			ns = fmt.Sprint(r.Summary.NSNames)
		}
		since := r.TriagedAt
		if r.MonitorSince != nil {
			since = *r.MonitorSince
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%d\t%d\t%s\t%s\t%s\n", r.Domain, cmp.Or(r.Monitor, "-"), r.Verdict, r.Score, r.IPs, r.ASNs, ns,
			since.UTC().Format("2006-01-02 15:04"), cmp.Or(r.Network, "-"))
	}
	tw.Flush()
}

// membersWidth is how many characters of a network's members the table shows.
const membersWidth = 80

// Networks draws the flux networks as a table (`tip flux networks`).
func Networks(w io.Writer, nets []storage.FluxNetwork) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NETWORK\tDOMAINS\tIPS\tASNS\tMEMBERS")
	for _, n := range nets {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", n.Name, len(n.Domains), n.IPs, n.ASNs, members(n.Domains, membersWidth))
	}
	return tw.Flush()
}

// members lists domains on one line of at most max characters, ending in … when cut.
func members(domains []string, max int) string {
	s := strings.Join(strings.Fields(strings.Join(domains, " ")), " ")
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}

// Probe is a domain judged on the spot (`tip flux probe`): the assessment and
// the resolutions it was made of.
type Probe struct {
	flux.Assessment
	Scored      bool               `json:"scored"` // the score was computed (Assessment.Scored)
	Resolutions []flux.Observation `json:"resolutions"`
}

// Probes draws each probe's verdict, resolutions and features.
func Probes(w io.Writer, probes []Probe) {
	for _, p := range probes {
		f := p.Features
		score, asns := "score not computed", fmt.Sprintf("in %d ASNs, %d /16s, %d countries", f.ASNs, f.Prefixes, f.Countries)
		if p.Scored {
			score = fmt.Sprintf("score %.2f", p.Score)
		}
		if f.NoASN != "" {
			asns = fmt.Sprintf("in %d /16s (ASNs and countries not counted: the ASN table was unavailable)", f.Prefixes)
		}
		fmt.Fprintf(w, "%s: %s (%s) — %s\n", p.Domain, p.Verdict, score, p.Reason)
		for i, o := range p.Resolutions {
			ttl, _ := o.MinTTL()
			fmt.Fprintf(w, "  resolution %d at %s: %s, %d A, %d AAAA, %d NS, min TTL %ds %s\n", i+1, o.At.Format(time.TimeOnly), o.Status,
				len(o.A), len(o.AAAA), len(o.NS), ttl, o.Error)
		}
		fmt.Fprintf(w, "  features: %d IPs %s; D %.2f (per answer %.2f); Jaccard %.2f; NS %d names, %d addresses, changed %v\n",
			f.IPs, asns, f.Diversity, f.AnswerDiversity, f.Jaccard, f.NSNames, f.NSAddrs, f.NSChanged)
	}
}
