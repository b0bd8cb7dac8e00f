package feeds

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tip-project/tip/lab/world"
)

// removal says when a listing ends.
type removal int

const (
	forever      removal = iota
	afterSpan            // listed for a random span in [keepMin, keepMax]
	afterOffline         // offlineLag after the indicator went offline; never if it did not
)

// rule says how a list takes indicators of one set: which of them, how long after
// they turned bad, and for how long.
type rule struct {
	set   string
	delay time.Duration
	// A rule with a share keeps the indicators whose draw for shareKey falls in
	// [lo, hi). Lists drawing on the same key overlap by construction: OpenPhish
	// takes [0, 0.8) of the phish and PhishTank [0.3, 1), so half are on both.
	shareKey string
	lo, hi   float64
	only     func(*indicator) bool
	onlyDoc  string
	until    removal
	keepMin  time.Duration
	keepMax  time.Duration
	// offlineLag follows the indicator going offline (afterOffline).
	offlineLag time.Duration
	// via copies the listings of another list, delay later: an aggregator such as
	// FireHOL picking up its sources.
	via string
}

// listing is one indicator on one list from listed until removed (zero: never).
type listing struct {
	*indicator
	listed, removed time.Time
}

// active reports whether the listing is on its list at lab time t.
func (l *listing) active(t time.Time) bool {
	return !t.Before(l.listed) && (l.removed.IsZero() || t.Before(l.removed))
}

// online reports whether the listed thing still worked at t.
func (l *listing) online(t time.Time) bool { return l.offline.IsZero() || t.Before(l.offline) }

// lastSeen is when a daily check last found the thing online: at listing, then at
// every lab midnight (UTC) until it went offline. ok is false when it was already
// offline when listed.
func (l *listing) lastSeen(t time.Time) (seen time.Time, ok bool) {
	if !l.offline.IsZero() && !l.offline.After(l.listed) {
		return time.Time{}, false
	}
	m := t.Truncate(day)
	if !l.offline.IsZero() && !m.Before(l.offline) {
		m = l.offline.Add(-time.Nanosecond).Truncate(day)
	}
	if m.Before(l.listed) {
		return l.listed, true
	}
	return m, true
}

// changedAt is the last time at or before t when this listing changed what a feed
// shows: listing, removal, and for feeds that show them the online status and the
// daily last-online stamp. Zero when it is not listed yet.
func (l *listing) changedAt(t time.Time, status, daily bool) time.Time {
	switch {
	case t.Before(l.listed):
		return time.Time{}
	case !l.removed.IsZero() && !t.Before(l.removed):
		return l.removed
	}
	c := l.listed
	if daily {
		if s, ok := l.lastSeen(t); ok && s.After(c) {
			c = s
		}
	}
	if status && !l.offline.IsZero() && l.offline.After(l.listed) && !t.Before(l.offline) && l.offline.After(c) {
		c = l.offline
	}
	return c
}

// listSpec is a named list: the timeline several feeds of one provider share
// (Feodo's txt, csv and json list the same C2s).
type listSpec struct {
	name  string
	rules []rule
}

func isIPv4(i *indicator) bool { return i.typ == IPv4 }

// listSpecs is every list of the lab, each after the lists it copies from.
var listSpecs = []listSpec{
	{"drop-v4", []rule{{set: setHijacked, delay: 2 * time.Hour, until: afterSpan, keepMin: 90 * day, keepMax: 720 * day}}},
	{"drop-v6", []rule{{set: setHijacked6, delay: 2 * time.Hour, until: afterSpan, keepMin: 90 * day, keepMax: 720 * day}}},
	{"asndrop", []rule{{set: setBadASN, delay: 4 * time.Hour}}},
	// Feodo lists a C2 while it is online and for 30 days after.
	{"feodo", []rule{{set: setC2, delay: time.Hour, until: afterOffline, offlineLag: 30 * day}}},
	{"sslbl", []rule{{set: setC2Cert, delay: 3 * time.Hour}}},
	{"urlhaus-recent", []rule{{set: setMalURL, delay: 15 * time.Minute, until: afterSpan, keepMin: 30 * day, keepMax: 30 * day}}},
	{"urlhaus-online", []rule{{set: setMalURL, delay: 15 * time.Minute, until: afterOffline}}},
	{"urlhaus-all", []rule{{set: setMalURL, delay: 15 * time.Minute}}},
	{"blocklistde-all", []rule{
		{set: setScanner, delay: 30 * time.Minute, until: afterSpan, keepMin: day, keepMax: 4 * day},
		{set: setReservedAddr},
	}},
	{"blocklistde-bots", []rule{{set: setScanner, delay: time.Hour, until: afterSpan, keepMin: 5 * day, keepMax: 20 * day,
		only: func(i *indicator) bool { return i.bot }, onlyDoc: "members of lab botnets"}}},
	{"blocklistde-ssh", []rule{{set: setScanner, delay: 30 * time.Minute, until: afterSpan, keepMin: day, keepMax: 4 * day,
		only: func(i *indicator) bool { return i.service == "ssh" }, onlyDoc: "ssh attackers"}}},
	{"cins", []rule{
		{set: setScanner, delay: 6 * time.Hour, shareKey: "cins", lo: 0, hi: 0.4, only: isIPv4, onlyDoc: "IPv4 only",
			until: afterSpan, keepMin: 3 * day, keepMax: 14 * day},
		{set: setC2, delay: day, shareKey: "cins-c2", lo: 0, hi: 0.3, until: afterSpan, keepMin: 5 * day, keepMax: 20 * day},
		{set: setCDNAddr},
	}},
	{"dshield", []rule{{set: setNetblock, delay: day, until: afterSpan, keepMin: 2 * day, keepMax: 5 * day}}},
	{"openphish", []rule{
		{set: setPhish, delay: 2 * time.Hour, shareKey: "phish", lo: 0, hi: 0.8, until: afterSpan, keepMin: 2 * day, keepMax: 7 * day},
		{set: setPopularURL, until: afterSpan, keepMin: 14 * day, keepMax: 14 * day},
	}},
	// PhishTank lists a phish once the community verified it and while it is online.
	{"phishtank", []rule{{set: setPhish, delay: 12 * time.Hour, shareKey: "phish", lo: 0.3, hi: 1,
		until: afterOffline, offlineLag: 4 * time.Hour}}},
	// FireHOL level1 picks up its sources five hours after they change.
	{"firehol-level1", []rule{
		{via: "feodo", delay: 5 * time.Hour},
		{via: "drop-v4", delay: 5 * time.Hour},
		{via: "dshield", delay: 5 * time.Hour},
		{set: setBogon},
	}},
	{"hosts", []rule{
		{set: setMalDomain, delay: 2 * day},
		{set: setMalHost, delay: 2 * day},
		{set: setPopularDomain},
	}},
}

// timelines builds every list's listings from the population.
func timelines(w *world.World, pop population) map[string][]*listing {
	out := map[string][]*listing{}
	for _, spec := range listSpecs {
		var ls []*listing
		for _, r := range spec.rules {
			if r.via != "" {
				for _, up := range out[r.via] {
					l := &listing{indicator: up.indicator, listed: up.listed.Add(r.delay)}
					if !up.removed.IsZero() {
						l.removed = up.removed.Add(r.delay)
					}
					ls = append(ls, l)
				}
				continue
			}
			for _, i := range pop[r.set] {
				if l, ok := r.take(w, spec.name, i); ok {
					ls = append(ls, l)
				}
			}
		}
		out[spec.name] = ls
	}
	return out
}

func (r rule) take(w *world.World, list string, i *indicator) (*listing, bool) {
	if r.only != nil && !r.only(i) {
		return nil, false
	}
	if r.hi > 0 {
		if u := w.Rand("feeds/share/" + r.shareKey + "/" + i.value).Float64(); u < r.lo || u >= r.hi {
			return nil, false
		}
	}
	l := &listing{indicator: i, listed: i.at.Add(r.delay)}
	switch r.until {
	case afterSpan:
		l.removed = l.listed.Add(randSpan(w.Rand("feeds/keep/"+list+"/"+i.value), r.keepMin, r.keepMax))
	case afterOffline:
		if !i.offline.IsZero() {
			l.removed = i.offline.Add(r.offlineLag)
		}
	}
	if !l.removed.IsZero() && !l.removed.After(l.listed) {
		return nil, false // gone before the feed got to it
	}
	return l, true
}

// timing documents a list's rules: the delays after bad-from and the removals
// that the truth's listed_at and removed_at follow.
func timing(list string) []Timing {
	for _, spec := range listSpecs {
		if spec.name != list {
			continue
		}
		var out []Timing
		for _, r := range spec.rules {
			if r.via == "" {
				out = append(out, r.timing())
				continue
			}
			for _, t := range timing(r.via) {
				t.Delay += Duration(r.delay)
				t.Removal = fmt.Sprintf("%s, %s later (copied from %s)", t.Removal, r.delay, r.via)
				t.Via = r.via
				out = append(out, t)
			}
		}
		return out
	}
	return nil
}

func (r rule) timing() Timing {
	t := Timing{Set: r.set, Delay: Duration(r.delay), Share: "all"}
	var parts []string
	if r.hi > 0 {
		parts = append(parts, fmt.Sprintf("draw %q in [%.2f, %.2f)", r.shareKey, r.lo, r.hi))
	}
	if r.onlyDoc != "" {
		parts = append(parts, r.onlyDoc)
	}
	if len(parts) > 0 {
		t.Share = strings.Join(parts, ", ")
	}
	switch r.until {
	case forever:
		t.Removal = "never"
	case afterSpan:
		if r.keepMin == r.keepMax {
			t.Removal = fmt.Sprintf("%s after listing", r.keepMin)
		} else {
			t.Removal = fmt.Sprintf("%s to %s after listing", r.keepMin, r.keepMax)
		}
	case afterOffline:
		t.Removal = fmt.Sprintf("%s after going offline", r.offlineLag)
	}
	return t
}

// Duration is a time.Duration that reads as "6h0m0s" in JSON.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes the duration as Go prints it.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads what MarshalText wrote.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// Timing is how one list treats one indicator set: listed_at = bad_from + Delay.
// Two feeds listing the same value list it exactly their delays apart.
type Timing struct {
	Set     string   `json:"set"`
	Delay   Duration `json:"delay"`
	Share   string   `json:"share"`
	Removal string   `json:"removal"`
	Via     string   `json:"via,omitempty"`
}

// Entry is one indicator a feed lists at a lab time.
type Entry struct {
	Value string        `json:"value"`
	Type  IndicatorType `json:"type"`
	Set   string        `json:"set"`
	// BadFrom is when the indicator turned bad; zero for a false positive.
	BadFrom       time.Time `json:"bad_from,omitzero"`
	ListedAt      time.Time `json:"listed_at"`
	RemovedAt     time.Time `json:"removed_at,omitzero"`
	FalsePositive bool      `json:"false_positive,omitempty"`
	Why           string    `json:"why,omitempty"`
}

// FeedTruth is what one feed lists at a lab time, by construction.
type FeedTruth struct {
	Feed      string        `json:"feed"`
	Path      string        `json:"path"`
	Behaviour Behaviour     `json:"behaviour"`
	Indicator IndicatorType `json:"indicator"`
	At        time.Time     `json:"at"`
	Count     int           `json:"count"`
	Entries   []Entry       `json:"entries,omitempty"`
	Timing    []Timing      `json:"timing,omitempty"`
	// Generator describes a feed too large to enumerate.
	Generator string `json:"generator,omitempty"`
	Note      string `json:"note,omitempty"`
}

// Truth says, for every feed of the catalog, which entries it lists at lab time
// at. Normal feeds serve exactly these entries; a dead or HTML-error feed serves
// none, a truncated one all but its cut last line, and the large feed is
// described by its generator.
func (s *Server) Truth(at time.Time) []FeedTruth {
	var out []FeedTruth
	for _, f := range s.feeds {
		ft := FeedTruth{Feed: f.Name, Path: f.Path, Behaviour: f.Behaviour, Indicator: f.Indicator, At: at}
		switch {
		case f.Behaviour == Large:
			ft.Count = s.largeLines()
			ft.Generator = s.largeDoc(at)
		case f.list != "":
			for _, l := range s.active(f.list, at) {
				ft.Entries = append(ft.Entries, l.entry())
			}
			sort.Slice(ft.Entries, func(i, j int) bool { return ft.Entries[i].Value < ft.Entries[j].Value })
			ft.Count = len(ft.Entries)
			ft.Timing = timing(f.list)
		}
		switch f.Behaviour {
		case Dead:
			ft.Note = "answers 404: the feed was withdrawn"
		case HTMLError:
			ft.Note = "answers an HTML error page with status 200 instead of the list"
		case Truncated:
			ft.Note = "the body stops in the middle of its last line"
		case Slow:
			ft.Note = "the body drips in small chunks"
		}
		out = append(out, ft)
	}
	return out
}

func (l *listing) entry() Entry {
	e := Entry{Value: l.value, Type: l.typ, Set: l.set, BadFrom: l.at, ListedAt: l.listed, RemovedAt: l.removed}
	if l.fp != "" {
		e.BadFrom, e.FalsePositive, e.Why = time.Time{}, true, l.fp
	}
	return e
}

// active lists a list's listings at t in the list's order.
func (s *Server) active(list string, t time.Time) []*listing {
	var out []*listing
	for _, l := range s.lists[list] {
		if l.active(t) {
			out = append(out, l)
		}
	}
	return out
}
