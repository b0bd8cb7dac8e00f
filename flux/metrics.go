package flux

import (
	"net/netip"
	"slices"
	"time"
)

// Bounds of the state Metrics keeps, whatever the number of observations. A month
// of 5-minute observations of a lab double-flux domain (545 bots in 40 ASNs) makes
// 22 KB of JSON and about 13 KB of heap, a quarter of it the IP sketch
// (TestMetricsOnTheLab); a domain that overflows every set stays under 50 KB of
// JSON (TestMetricsWorstCaseIsBounded). Exact sets turn into estimates past their
// limit (see Set and Sketch), and Summary.Approximate says so.
const (
	IPSketchBits     = 1 << 15 // distinct A/AAAA addresses: a 4 KiB sketch
	NSAddrSketchBits = 1 << 13 // distinct NS host addresses: a 1 KiB sketch
	MaxASNs          = 512     // distinct origin ASNs held (answers and name servers each)
	MaxPrefixes      = 512     // distinct IPv4 /16s held
	MaxCountries     = 256     // more than there are
	MaxNSNames       = 128     // distinct NS host names held
	MaxTTLValues     = 32      // distinct TTLs counted exactly; others join the nearest
	MaxAnswer        = 64      // addresses of the previous answer kept for Jaccard and the score
	MaxRecent        = 128     // IPv4 addresses of the diversity window
	MaxHourly        = 48      // hourly buckets: two days
	MaxDaily         = 92      // daily buckets: a quarter
)

// Metrics is the compact, bounded state of one domain watched over weeks or months:
// it folds in every observation and keeps cumulative counts (IPs, ASNs, /16s,
// countries, NS names and addresses), churn (new IPs per hour, Jaccard similarity
// of consecutive answers, NS changes), TTL statistics, the Holz score of each pair
// of consecutive answers, FluxBuster's D over a recent window, the NXDOMAIN streak
// and IP/ASN counts per hour and per day. The observations themselves belong in the
// database. Add reads the observations' ASN annotations (see Observation.Annotate)
// and never a table, and iterates no maps, so a workflow may keep a Metrics. Add
// changes it in place: a copy shares its slices, so keep one value per domain.
type Metrics struct {
	Domain       string    `json:"domain"`
	FirstSeen    time.Time `json:"first_seen,omitzero"` // first answer with addresses
	LastSeen     time.Time `json:"last_seen,omitzero"`  // last answer with addresses
	LastObserved time.Time `json:"last_observed,omitzero"`

	Observations int `json:"observations"`
	Answered     int `json:"answered"`
	NXDomains    int `json:"nxdomains,omitempty"`
	ServFails    int `json:"servfails,omitempty"`
	Failures     int `json:"failures,omitempty"` // errors and NODATA
	// NXDomainSince is the first NXDOMAIN of the current run without answers (a
	// SERVFAIL or error after it does not end the run; an answer does), so a
	// monitor can stop N days after a takedown. FailingSince is the first failed
	// resolution of that run, whatever the failure.
	NXDomainSince time.Time `json:"nxdomain_since,omitzero"`
	FailingSince  time.Time `json:"failing_since,omitzero"`

	IPs           Sketch       `json:"ips"`
	IPv6          int          `json:"ipv6,omitempty"` // of which AAAA
	ASNs          Set[uint32]  `json:"asns"`
	Prefixes      Set[uint16]  `json:"prefixes16"` // IPv4 /16s, as a<<8|b
	Countries     Set[string]  `json:"countries"`
	NSNames       Set[string]  `json:"ns_names"`
	NSAddrs       Sketch       `json:"ns_addrs"`
	NSASNs        Set[uint32]  `json:"ns_asns"`
	NSChecks      int          `json:"ns_checks,omitempty"`       // consecutive answers with NS sets compared
	NSNameChanges int          `json:"ns_name_changes,omitempty"` // of which the NS names differed
	NSAddrChanges int          `json:"ns_addr_changes,omitempty"` // of which the NS addresses differed
	TTLs          []TTLCount   `json:"ttls,omitempty"`            // answers by lowest TTL, sorted by TTL
	MinTTL        uint32       `json:"min_ttl,omitempty"`         // exact
	Jaccard       float64      `json:"jaccard,omitempty"`         // of the last two answers
	JaccardN      int          `json:"jaccard_n,omitempty"`       // consecutive pairs compared
	JaccardSum    float64      `json:"jaccard_sum,omitempty"`     // for the mean
	Score         float64      `json:"score,omitempty"`           // Holz score of the last two answers
	MaxScore      float64      `json:"max_score,omitempty"`       // highest such score
	Prev          []Record     `json:"prev,omitempty"`            // last answer's addresses
	PrevNS        []string     `json:"prev_ns,omitempty"`         // last answer's NS names, sorted
	PrevNSIPs     []netip.Addr `json:"prev_ns_addrs,omitempty"`   // and their addresses, sorted
	Recent        []Sighting   `json:"recent,omitempty"`          // the diversity window, oldest first
	Hourly        []Bucket     `json:"hourly,omitempty"`          // oldest first
	Daily         []Bucket     `json:"daily,omitempty"`           // oldest first
	// NoASN counts the answers folded in without origin ASNs (Observation.NoASN):
	// the ASN sets leave them out, and the pairs they are in are Unscored.
	// PrevNoASN says the last answer was one.
	NoASN     int  `json:"no_asn,omitempty"`
	Unscored  int  `json:"unscored,omitempty"`
	PrevNoASN bool `json:"prev_no_asn,omitempty"`
}

// TTLCount is how many answers had a given lowest TTL.
type TTLCount struct {
	TTL uint32 `json:"ttl"`
	N   int    `json:"n"`
}

// Sighting is an IPv4 address and when it was last seen (Unix seconds).
type Sighting struct {
	Addr netip.Addr `json:"addr"`
	At   int64      `json:"at"`
}

// Bucket sums the observations of one hour or one day.
type Bucket struct {
	Start        time.Time `json:"start"`
	Observations int       `json:"obs"`
	Answered     int       `json:"answered"`
	NewIPs       int       `json:"new_ips"`
	NewASNs      int       `json:"new_asns"`
	IPs          int       `json:"ips"`  // distinct IPs so far, at the bucket's last observation
	ASNs         int       `json:"asns"` // distinct ASNs so far
}

// Add folds one observation in. Observations should come in time order; one older
// than the newest bucket is counted in the newest bucket.
func (m *Metrics) Add(o Observation) {
	if m.Domain == "" {
		m.Domain = o.Domain
	}
	m.Observations++
	if o.At.After(m.LastObserved) {
		m.LastObserved = o.At
	}
	hour := addBucket(&m.Hourly, o.At.Truncate(time.Hour), MaxHourly)
	day := addBucket(&m.Daily, o.At.Truncate(24*time.Hour), MaxDaily)
	hour.Observations++
	day.Observations++

	if o.Answered() {
		m.answered(o, hour, day)
	} else {
		switch o.Status {
		case NXDomain:
			m.NXDomains++
			if m.NXDomainSince.IsZero() {
				m.NXDomainSince = o.At
			}
		case ServFail:
			m.ServFails++
		default:
			m.Failures++
		}
		if m.FailingSince.IsZero() {
			m.FailingSince = o.At
		}
	}
	for _, b := range []*Bucket{hour, day} {
		b.IPs, b.ASNs = m.IPs.Len(), m.ASNs.Len()
	}
}

func (m *Metrics) answered(o Observation, hour, day *Bucket) {
	m.Answered++
	if m.FirstSeen.IsZero() {
		m.FirstSeen = o.At
	}
	if o.At.After(m.LastSeen) {
		m.LastSeen = o.At
	}
	m.NXDomainSince, m.FailingSince = time.Time{}, time.Time{}
	hour.Answered++
	day.Answered++

	var cur []netip.Addr
	for _, rs := range [][]Record{o.A, o.AAAA} {
		for _, r := range rs {
			a := r.Addr.Unmap()
			cur = append(cur, a)
			if m.IPs.Add(a, IPSketchBits) {
				hour.NewIPs++
				day.NewIPs++
				if a.Is6() {
					m.IPv6++
				}
			}
			if r.ASN != 0 && m.ASNs.Add(r.ASN, MaxASNs) {
				hour.NewASNs++
				day.NewASNs++
			}
			if r.Country != "" {
				m.Countries.Add(r.Country, MaxCountries)
			}
			if a.Is4() {
				m.Prefixes.Add(slash16(a), MaxPrefixes)
			}
		}
	}
	if ttl, ok := o.MinTTL(); ok {
		m.addTTL(ttl)
	}

	if len(m.Prev) > 0 {
		prev := make([]netip.Addr, len(m.Prev))
		for i, r := range m.Prev {
			prev[i] = r.Addr
		}
		if j, ok := Jaccard(prev, cur); ok {
			m.Jaccard = j
			m.JaccardSum += j
			m.JaccardN++
		}
		// A score without the ASNs of either answer would pass for a low one: the
		// pair goes unscored, and Score stays the last pair's that was scored.
		if o.NoASN == "" && !m.PrevNoASN {
			m.Score = pairScore(m.Prev, o.A)
			if m.JaccardN-m.Unscored == 1 || m.Score > m.MaxScore {
				m.MaxScore = m.Score
			}
		} else {
			m.Unscored++
		}
	}
	if m.PrevNoASN = o.NoASN != ""; m.PrevNoASN {
		m.NoASN++
	}
	m.Prev = m.Prev[:0]
	for _, rs := range [][]Record{o.A, o.AAAA} {
		for _, r := range rs {
			if len(m.Prev) < MaxAnswer {
				m.Prev = append(m.Prev, Record{Addr: r.Addr.Unmap(), ASN: r.ASN})
			}
		}
	}
	m.addRecent(cur, o.At.Unix())

	if len(o.NS) > 0 {
		names, addrs := o.nsNames(), o.nsAddrs()
		for _, n := range names {
			m.NSNames.Add(n, MaxNSNames)
		}
		for _, ns := range o.NS {
			for _, r := range ns.Addrs {
				m.NSAddrs.Add(r.Addr, NSAddrSketchBits)
				if r.ASN != 0 {
					m.NSASNs.Add(r.ASN, MaxASNs)
				}
			}
		}
		if len(m.PrevNS) > 0 {
			m.NSChecks++
			if !slices.Equal(names, m.PrevNS) {
				m.NSNameChanges++
			}
			if !slices.Equal(addrs, m.PrevNSIPs) {
				m.NSAddrChanges++
			}
		}
		m.PrevNS = append(m.PrevNS[:0], names[:min(len(names), MaxAnswer)]...)
		m.PrevNSIPs = append(m.PrevNSIPs[:0], addrs[:min(len(addrs), MaxAnswer)]...)
	}
}

// pairScore is the Holz score of two consecutive answers' A records pooled.
func pairScore(prev, a []Record) float64 {
	var ips []netip.Addr
	var asns []uint32
	for _, rs := range [][]Record{prev, a} {
		for _, r := range rs {
			if addr := r.Addr.Unmap(); addr.Is4() {
				ips = append(ips, addr)
				if r.ASN != 0 {
					asns = append(asns, r.ASN)
				}
			}
		}
	}
	return HolzScore(len(sortedAddrs(ips)), countDistinct(asns))
}

// addTTL counts an answer's lowest TTL; past MaxTTLValues distinct values, a new
// value is counted with the nearest one held, which keeps the median close.
func (m *Metrics) addTTL(ttl uint32) {
	if m.Answered == 1 || ttl < m.MinTTL {
		m.MinTTL = ttl
	}
	i, found := slices.BinarySearchFunc(m.TTLs, ttl, func(c TTLCount, t uint32) int { return cmpU32(c.TTL, t) })
	switch {
	case found:
	case len(m.TTLs) < MaxTTLValues:
		m.TTLs = slices.Insert(m.TTLs, i, TTLCount{TTL: ttl})
	case i == len(m.TTLs) || i > 0 && ttl-m.TTLs[i-1].TTL <= m.TTLs[i].TTL-ttl:
		i--
	}
	m.TTLs[i].N++
}

func cmpU32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// addRecent updates the diversity window with an answer's IPv4 addresses: an
// address seen again moves to the end; the window drops what is older than
// DiversityWindow and, past MaxRecent, the oldest.
func (m *Metrics) addRecent(addrs []netip.Addr, at int64) {
	for _, a := range addrs {
		if !a.Is4() {
			continue
		}
		if i := slices.IndexFunc(m.Recent, func(s Sighting) bool { return s.Addr == a }); i >= 0 {
			m.Recent = slices.Delete(m.Recent, i, i+1)
		}
		m.Recent = append(m.Recent, Sighting{Addr: a, At: at})
	}
	cut := at - int64(DiversityWindow/time.Second)
	drop := 0
	for drop < len(m.Recent) && (m.Recent[drop].At < cut || len(m.Recent)-drop > MaxRecent) {
		drop++
	}
	m.Recent = slices.Delete(m.Recent, 0, drop)
}

// addBucket returns the bucket starting at start, appending it (and dropping the
// oldest past limit) when it is newer than the last.
func addBucket(series *[]Bucket, start time.Time, limit int) *Bucket {
	s := *series
	if n := len(s); n > 0 && !start.After(s[n-1].Start) {
		return &s[n-1]
	}
	if len(s) >= limit {
		s = slices.Delete(s, 0, len(s)-limit+1)
	}
	s = append(s, Bucket{Start: start})
	*series = s
	return &s[len(s)-1]
}

// Summary is what a monitor reports about its domain: the state query's answer and
// the source of its search attributes.
type Summary struct {
	Domain        string    `json:"domain"`
	FirstSeen     time.Time `json:"first_seen,omitzero"`
	LastSeen      time.Time `json:"last_seen,omitzero"`
	LastObserved  time.Time `json:"last_observed,omitzero"`
	Observations  int       `json:"observations"`
	Answered      int       `json:"answered"`
	IPs           int       `json:"ips"`
	IPv6          int       `json:"ipv6"`
	ASNs          int       `json:"asns"`
	Prefixes      int       `json:"prefixes16"`
	Countries     int       `json:"countries"`
	NSNames       int       `json:"ns_names"`
	NSAddrs       int       `json:"ns_addrs"`
	NSASNs        int       `json:"ns_asns"`
	NSChurn       float64   `json:"ns_churn"` // share of NS comparisons where names or addresses changed
	MinTTL        uint32    `json:"min_ttl"`
	MedianTTL     uint32    `json:"median_ttl"`
	NewIPsPerHour float64   `json:"new_ips_per_hour"` // over the last 24 hours observed
	Jaccard       float64   `json:"jaccard"`          // of the last two answers
	MeanJaccard   float64   `json:"mean_jaccard"`
	Diversity     float64   `json:"diversity"` // FluxBuster D over the window
	Score         float64   `json:"score"`     // Holz score of the last two answers
	MaxScore      float64   `json:"max_score"`
	DoubleFlux    bool      `json:"double_flux"` // the NS names or addresses have rotated
	NXDomainSince time.Time `json:"nxdomain_since,omitzero"`
	FailingSince  time.Time `json:"failing_since,omitzero"`
	Approximate   bool      `json:"approximate,omitempty"` // some count is past its exact range: an estimate
	// NoASN counts the answers seen without origin ASNs (no ASN table then): the
	// ASN counts and the scores leave them out.
	NoASN int `json:"no_asn,omitempty"`
}

// Summary derives the reported figures; now is the time the rate windows end.
func (m *Metrics) Summary(now time.Time) Summary {
	s := Summary{
		Domain: m.Domain, FirstSeen: m.FirstSeen, LastSeen: m.LastSeen, LastObserved: m.LastObserved,
		Observations: m.Observations, Answered: m.Answered,
		IPs: m.IPs.Len(), IPv6: m.IPv6, ASNs: m.ASNs.Len(), Prefixes: m.Prefixes.Len(), Countries: m.Countries.Len(),
		NSNames: m.NSNames.Len(), NSAddrs: m.NSAddrs.Len(), NSASNs: m.NSASNs.Len(),
		MinTTL: m.MinTTL, MedianTTL: m.MedianTTL(), NewIPsPerHour: m.NewIPsPerHour(now, 24*time.Hour),
		Jaccard: m.Jaccard, Diversity: m.Diversity(), Score: m.Score, MaxScore: m.MaxScore,
		NXDomainSince: m.NXDomainSince, FailingSince: m.FailingSince, NoASN: m.NoASN,
		Approximate: m.ASNs.Full() || m.Prefixes.Full() || m.Countries.Full() || m.NSNames.Full() || m.NSASNs.Full() ||
			m.IPs.Len() > m.IPs.Count || m.NSAddrs.Len() > m.NSAddrs.Count,
	}
	if m.JaccardN > 0 {
		s.MeanJaccard = m.JaccardSum / float64(m.JaccardN)
	}
	if m.NSChecks > 0 {
		changed := max(m.NSNameChanges, m.NSAddrChanges)
		s.NSChurn = float64(changed) / float64(m.NSChecks)
		s.DoubleFlux = changed > 0
	}
	return s
}

// MedianTTL is the (lower) median of the answers' lowest TTLs.
func (m *Metrics) MedianTTL() uint32 {
	total := 0
	for _, c := range m.TTLs {
		total += c.N
	}
	seen := 0
	for _, c := range m.TTLs {
		if seen += c.N; 2*seen >= total {
			return c.TTL
		}
	}
	return 0
}

// NewIPsPerHour is the rate of addresses never seen before over the window ending
// at now (shortened to the time since the first observation, and at least an hour).
// The first answer's addresses count as new.
func (m *Metrics) NewIPsPerHour(now time.Time, window time.Duration) float64 {
	if len(m.Hourly) == 0 {
		return 0
	}
	from := now.Add(-window)
	if m.FirstSeen.After(from) {
		from = m.FirstSeen
	}
	n := 0
	for _, b := range m.Hourly {
		if !b.Start.Before(from.Truncate(time.Hour)) && !b.Start.After(now) {
			n += b.NewIPs
		}
	}
	hours := max(now.Sub(from).Hours(), 1)
	return float64(n) / hours
}

// Diversity is FluxBuster's D over the window's addresses.
func (m *Metrics) Diversity() float64 {
	addrs := make([]netip.Addr, len(m.Recent))
	for i, s := range m.Recent {
		addrs[i] = s.Addr
	}
	return Diversity(addrs)
}

// NXDomainFor is how long the domain has answered nothing but NXDOMAIN (and
// failures after it) at now; 0 while it answers.
func (m *Metrics) NXDomainFor(now time.Time) time.Duration {
	if m.NXDomainSince.IsZero() {
		return 0
	}
	return now.Sub(m.NXDomainSince)
}
