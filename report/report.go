// Package report writes TIP's report: one self-contained HTML page (Chart.js
// and the data inlined, nothing fetched when it opens) with charts of the source
// weights and health over time, the source-overlap heat map, the spam by sender
// ASN and country, the top campaigns, and a timeline per monitored flux domain.
// Collect reads the data from PostgreSQL, bounded so that a large database
// still makes a small page; Write renders it.
package report

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/storage"
)

// Options say what Collect reads. Zero values take the defaults.
type Options struct {
	Since   time.Time // the charts over time start here; zero: all that was recorded
	Domains int       // monitored flux domains charted, most addresses first (50)
	Points  int       // points of a line at most: refreshes, checks of a domain (200)
	Slices  int       // bars of the source runs over time at most (60)
	Top     int       // rows of the spam charts before "other", and campaigns (10)
	// FluxFull is how long flux checks are kept at full resolution
	// (retention.flux_full_days): the timelines draw hourly summaries before
	// (config's default when zero; negative: every check kept). Now is when
	// the report is made (zero: now).
	FluxFull time.Duration
	Now      time.Time

	Version string // of the tip binary, shown in the header
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Domains, 50)
	def(&o.Points, 200)
	def(&o.Slices, 60)
	def(&o.Top, 10)
	if o.FluxFull == 0 {
		o.FluxFull = config.Default().Retention.FluxFull()
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	return o
}

// ReportOverrides is how many of the latest overrides a report lists.
const ReportOverrides = 200

// Data is what a report shows.
type Data struct {
	Generated time.Time
	Origin    string // the database read: "PostgreSQL 127.0.0.1:5433/tip"
	Version   string
	Since     time.Time // zero: all history

	Totals storage.Totals
	// Metrics are the source metrics of the refreshes, sampled; MetricsNote
	// says why there are none when the database cannot hold them yet.
	Metrics     []storage.MetricsPoint
	MetricsNote string
	// Runs count the source runs by source and status in slices of RunStep.
	Runs    []storage.RunCount
	RunStep time.Duration
	Overlap storage.Overlap
	Spam    storage.SpamStats
	// Overrides are the analysts' overrides, standing or not, the newest first
	// (at most ReportOverrides); OverridesNote says why they could not be read.
	Overrides     []storage.Override
	OverrideCount storage.OverrideCounts
	OverridesNote string
	// Flux holds the charted domains' timelines, of FluxMonitored monitored.
	Flux          []FluxTimeline
	FluxMonitored int
}

// FluxTimeline is one monitored domain over time.
type FluxTimeline struct {
	Domain storage.FluxDomain
	Checks int         // checks recorded (since Data.Since)
	Points []FluxPoint // at most Options.Points of them, oldest first
}

// FluxPoint is one check of a flux domain and where the domain stood after it,
// or, before the full-resolution window, one hour of checks (Checks > 1 or
// Hour): then IPs, ASNs and TTL are the hour's largest and lowest, Score its
// highest, Status NOERROR when one answered, and the Seen counts are at its
// last check.
type FluxPoint struct {
	At     time.Time
	Hour   bool // an hour's summary
	Checks int  // the checks the point stands for
	Status flux.Status
	IPs    int // addresses in this check's answer
	ASNs   int // their distinct origin ASNs
	// SeenIPs and SeenASNs count the distinct addresses recorded behind the
	// domain up to this check, and their ASNs.
	SeenIPs, SeenASNs int
	TTL               float64 // the answer's lowest TTL in seconds; NaN without an answer
	// Score is the monitor's Holz score of this answer pooled with the answer
	// before it (flux.Metrics); NaN unless both answered.
	Score float64
}

// Collect reads a report's data.
func Collect(ctx context.Context, db *storage.DB, o Options) (*Data, error) {
	o = o.withDefaults()
	d := &Data{Generated: time.Now().UTC(), Version: o.Version, Since: o.Since,
		Origin: "PostgreSQL " + db.Addr() + "/" + db.Database()}
	var err error
	if d.Totals, err = db.Totals(ctx); err != nil {
		return nil, err
	}
	d.Metrics, err = db.MetricsHistory(ctx, o.Since, o.Points)
	if errors.Is(err, storage.ErrSchemaBehind) {
		d.MetricsNote, err = "this database predates their history (migration 12): `tip migrate` adds it "+
			"(a worker migrates when it starts), and every refresh after that adds a point", nil
	}
	if err != nil {
		return nil, err
	}
	if d.RunStep, d.Runs, err = db.RunHistory(ctx, o.Since, o.Slices); err != nil {
		return nil, err
	}
	if d.Overlap, err = db.SourceOverlap(ctx); err != nil {
		return nil, err
	}
	if d.Spam, err = db.SpamStats(ctx, o.Top); err != nil {
		return nil, err
	}
	// A database not yet migrated to hold overrides still gets its report.
	if d.OverrideCount, err = db.CountOverrides(ctx); err == nil {
		d.Overrides, err = db.Overrides(ctx, "", true, ReportOverrides)
	}
	if err != nil {
		d.OverridesNote = err.Error()
	}
	domains, total, err := db.MonitoredFluxDomains(ctx, o.Domains)
	if err != nil {
		return nil, err
	}
	d.FluxMonitored = total
	var floor time.Time
	if o.FluxFull > 0 {
		floor = storage.FullResolutionFrom(o.Now, o.FluxFull)
	}
	for _, dom := range domains {
		hours, err := db.FluxHours(ctx, dom.Domain, o.Since, floor)
		if err != nil {
			return nil, err
		}
		checks, n, err := db.FluxChecks(ctx, dom.Domain, o.Since, floor, o.Points)
		if err != nil {
			return nil, err
		}
		seen, err := db.FluxSightings(ctx, dom.Domain)
		if err != nil {
			return nil, err
		}
		for _, h := range hours {
			n += h.Checks
		}
		hours = storage.MergeFluxHours(hours, o.Points/2)
		d.Flux = append(d.Flux, FluxTimeline{Domain: dom, Checks: n, Points: append(hourPoints(hours, seen), fluxPoints(checks, seen)...)})
	}
	return d, nil
}

// seenBy counts the addresses of a domain and their ASNs first seen at or
// before a time. seen lists the addresses first seen first.
type seenBy struct {
	seen     []storage.FluxSighting
	asnFirst []time.Time // when each ASN was first seen, in order
}

func newSeenBy(seen []storage.FluxSighting) seenBy {
	s := seenBy{seen: seen}
	known := map[uint32]bool{}
	for _, x := range seen {
		if x.ASN != 0 && !known[x.ASN] {
			known[x.ASN] = true
			s.asnFirst = append(s.asnFirst, x.FirstSeen)
		}
	}
	return s
}

func (s seenBy) at(t time.Time) (ips, asns int) {
	ips = sort.Search(len(s.seen), func(i int) bool { return s.seen[i].FirstSeen.After(t) })
	asns = sort.Search(len(s.asnFirst), func(i int) bool { return s.asnFirst[i].After(t) })
	return ips, asns
}

// hourPoints turns hourly summaries into timeline points.
func hourPoints(hours []storage.FluxHour, seen []storage.FluxSighting) []FluxPoint {
	by := newSeenBy(seen)
	out := make([]FluxPoint, 0, len(hours))
	for _, h := range hours {
		p := FluxPoint{At: h.Hour, Hour: true, Checks: h.Checks, Status: h.LastStatus, IPs: h.MaxAnswer, ASNs: h.MaxAnswerASNs,
			TTL: math.NaN(), Score: h.MaxScore}
		if h.Answered > 0 {
			p.Status = flux.NoError
		}
		if h.MinTTL >= 0 {
			p.TTL = float64(h.MinTTL)
		}
		p.SeenIPs, p.SeenASNs = by.at(h.LastAt)
		out = append(out, p)
	}
	return out
}

// fluxPoints turns checks into timeline points. seen lists the domain's
// addresses first seen first: a check has seen those first seen at or before it.
func fluxPoints(checks []storage.FluxCheck, seen []storage.FluxSighting) []FluxPoint {
	by := newSeenBy(seen)
	out := make([]FluxPoint, 0, len(checks))
	for _, c := range checks {
		o := c.Obs
		p := FluxPoint{At: o.At, Checks: 1, Status: o.Status, IPs: len(o.A) + len(o.AAAA), TTL: math.NaN(), Score: math.NaN()}
		p.SeenIPs, p.SeenASNs = by.at(o.At)
		asns := map[uint32]bool{}
		for _, r := range append(o.A[:len(o.A):len(o.A)], o.AAAA...) {
			if r.ASN != 0 {
				asns[r.ASN] = true
			}
		}
		p.ASNs = len(asns)
		if ttl, ok := o.MinTTL(); ok {
			p.TTL = float64(ttl)
		}
		if c.Prev != nil {
			// the monitor's own figure: its metrics after these two answers
			var m flux.Metrics
			m.Add(*c.Prev)
			m.Add(o)
			p.Score = m.Score
		}
		out = append(out, p)
	}
	return out
}

// Describe is a one-line account of the data, for the command's output.
func (d *Data) Describe() string {
	return fmt.Sprintf("%d sources, %d refreshes charted, %d mails, %d of %d monitored flux domains",
		len(d.Overlap.Sources), len(distinctTimes(d.Metrics)), d.Spam.Mails, len(d.Flux), d.FluxMonitored)
}

func distinctTimes(ps []storage.MetricsPoint) []time.Time {
	var out []time.Time
	for _, p := range ps {
		if n := len(out); n == 0 || !out[n-1].Equal(p.At) {
			out = append(out, p.At)
		}
	}
	return out
}
