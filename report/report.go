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

// FluxPoint is one check of a flux domain and where the domain stood after it.
type FluxPoint struct {
	At     time.Time
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
	for _, dom := range domains {
		checks, n, err := db.FluxChecks(ctx, dom.Domain, o.Since, o.Points)
		if err != nil {
			return nil, err
		}
		seen, err := db.FluxSightings(ctx, dom.Domain)
		if err != nil {
			return nil, err
		}
		d.Flux = append(d.Flux, FluxTimeline{Domain: dom, Checks: n, Points: fluxPoints(checks, seen)})
	}
	return d, nil
}

// fluxPoints turns checks into timeline points. seen lists the domain's
// addresses first seen first: a check has seen those first seen at or before it.
func fluxPoints(checks []storage.FluxCheck, seen []storage.FluxSighting) []FluxPoint {
	var asnFirst []time.Time // when each ASN was first seen, in order
	known := map[uint32]bool{}
	for _, s := range seen {
		if s.ASN != 0 && !known[s.ASN] {
			known[s.ASN] = true
			asnFirst = append(asnFirst, s.FirstSeen)
		}
	}
	upTo := func(n int, at func(int) time.Time, t time.Time) int {
		return sort.Search(n, func(i int) bool { return at(i).After(t) })
	}
	out := make([]FluxPoint, 0, len(checks))
	for _, c := range checks {
		o := c.Obs
		p := FluxPoint{At: o.At, Status: o.Status, IPs: len(o.A) + len(o.AAAA), TTL: math.NaN(), Score: math.NaN(),
			SeenIPs:  upTo(len(seen), func(i int) time.Time { return seen[i].FirstSeen }, o.At),
			SeenASNs: upTo(len(asnFirst), func(i int) time.Time { return asnFirst[i] }, o.At)}
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
