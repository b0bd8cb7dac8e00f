package flux

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/tip-project/tip/feeds"
)

// Verdict is triage's conclusion about a domain.
type Verdict string

const (
	VerdictFlux       Verdict = "flux"            // A records rotate over many networks
	VerdictDoubleFlux Verdict = "double-flux"     // and so do its name servers
	VerdictBenign     Verdict = "benign"          // not flux by the scores
	VerdictCDN        Verdict = "cdn-allowlisted" // looks busy, but a known CDN serves it
	VerdictNXDomain   Verdict = "nxdomain"        // the name does not exist (any more)
	// VerdictError: no resolution answered, or the answers leave flux or not to
	// origin ASNs that were not to be had (Features.NoASN).
	VerdictError Verdict = "error"
)

// Fluxy reports whether the verdict calls for a monitor.
func (v Verdict) Fluxy() bool { return v == VerdictFlux || v == VerdictDoubleFlux }

// CDNDisparity is the ratio of distinct ASNs to distinct addresses below which
// answers look like a CDN (many edge servers in one or two networks) even when
// the Holz score is positive: a large RRset from one ASN scores above 0 from about
// 100 addresses on, while a flux network's bots sit in nearly as many ASNs as
// there are addresses.
const CDNDisparity = 0.1

// Thresholds of triage's second detector, for flux with small RRsets: two answers
// of 5 records pool at most 10 addresses, and 10 addresses need 7 ASNs for a Holz
// score above 0, which bots of a network spanning 15 ASNs often miss.
const (
	MaxRotationJaccard = 0.5 // answers a TTL apart sharing at most this much rotate
	MinRotationASNs    = 4   // distinct ASNs rotating answers must span
)

// Features are what triage measures over the answered resolutions, pooled.
type Features struct {
	Answers   int `json:"answers"`    // resolutions that answered with addresses
	IPs       int `json:"ips"`        // n_A: distinct A addresses
	IPv6      int `json:"ipv6"`       // distinct AAAA addresses (not scored)
	ASNs      int `json:"asns"`       // n_ASN: distinct origin ASNs of the A addresses
	Prefixes  int `json:"prefixes16"` // distinct /16s of the A addresses
	Countries int `json:"countries"`  // distinct countries of those ASNs
	Unrouted  int `json:"unrouted"`   // A addresses without a known origin AS
	// Diversity is FluxBuster's D over the pooled A addresses; AnswerDiversity is the
	// lowest D of a single answer.
	Diversity       float64 `json:"diversity"`
	AnswerDiversity float64 `json:"answer_diversity"`
	MinTTL          uint32  `json:"min_ttl"`
	Candidate       bool    `json:"candidate"` // some answer passed FluxBuster's prefilter
	// Jaccard is the similarity of the first and last answers' A addresses (1 with
	// a single answer): low when the second resolution brought new addresses.
	Jaccard float64 `json:"jaccard"`
	NSNames int     `json:"ns_names"` // distinct NS host names
	NSAddrs int     `json:"ns_addrs"` // distinct NS host addresses
	NSASNs  int     `json:"ns_asns"`  // distinct origin ASNs of those addresses
	// NSChanged says the NS names or their addresses differ between the first and
	// the last answered resolution: the name servers rotate (double flux).
	NSChanged bool `json:"ns_changed"`
	// Dropped counts the records the answers held past their bounds
	// (Observation.Dropped): the counts above leave them out.
	Dropped int `json:"dropped,omitempty"`
	// NoASN says why the origin ASNs are unknown (Observation.NoASN): ASNs,
	// Countries, Unrouted and NSASNs are then not counted, and the Holz score
	// (Assessment.Score) not computed.
	NoASN string `json:"no_asn,omitempty"`
}

// mayRotate is Rotating without its ASN criterion, which the addresses bound: no
// more ASNs than addresses.
func (f Features) mayRotate() bool {
	return f.Answers >= 2 && f.Jaccard <= MaxRotationJaccard && f.AnswerDiversity >= MinAnswerDiversity &&
		f.Diversity >= MinWindowDiversity && f.IPs >= MinRotationASNs
}

// Rotating is triage's second detector, FluxBuster's criteria over two answers: the
// answers rotate (Jaccard ≤ MaxRotationJaccard), each answer's /16 diversity D is at
// least 1/3 and the pooled D at least 0.5 (standing in for the 12-hour window), over
// at least MinRotationASNs ASNs. Round-robin sites do not rotate their set, CDNs
// rotate within one or two ASNs.
func (f Features) Rotating() bool {
	return f.Answers >= 2 && f.Jaccard <= MaxRotationJaccard && f.AnswerDiversity >= MinAnswerDiversity &&
		f.Diversity >= MinWindowDiversity && f.ASNs >= MinRotationASNs
}

// Assessment is triage's result for one domain.
type Assessment struct {
	Domain   string   `json:"domain"`
	Features Features `json:"features"`
	Score    float64  `json:"score"` // Holz flux-score; 0 when not Scored
	Verdict  Verdict  `json:"verdict"`
	Reason   string   `json:"reason"`
}

// Scored reports whether Score was computed: the domain answered, and the origin
// ASNs of its addresses were known.
func (a Assessment) Scored() bool { return a.Features.Answers > 0 && a.Features.NoASN == "" }

// Triage judges a domain from two resolutions taken at least the first answer's
// TTL apart (Holz et al.'s method). asns annotates the addresses with their origin
// AS; when nil, the observations' own annotations are used. allow may be nil.
//
// The rules, in order: an NXDOMAIN in the last resolution (or in every one) is
// nxdomain; no answer at all is error; an allowlisted domain suffix, or answers
// wholly in allowlisted ASNs and prefixes, is cdn-allowlisted. Two detectors then
// look for flux: a Holz score above 0, or FluxBuster's diversity over rotating
// answers (Features.Rotating). Neither firing, answers failing FluxBuster's
// prefilter (long TTLs), or fewer than CDNDisparity ASNs per address make benign;
// what remains is flux, double-flux when the name servers changed between the
// resolutions.
//
// Observations resolved without an ASN table (Observation.NoASN) leave the Holz
// score, the rotation's ASN criterion and the CDN disparity unknown. Their
// verdict is benign where no ASNs could make it flux (the prefilter fails, or the
// addresses are too few for a positive score even in as many ASNs and the
// answers do not rotate), and error, saying so, otherwise.
func Triage(first, second Observation, asns ASLookup, allow *Allowlist) Assessment {
	return TriageAll([]Observation{first, second}, asns, allow)
}

// TriageAll is Triage over every resolution of a domain, in the order taken (at
// least one): the answers pool, and "first" and "last" (Jaccard, NSChanged, the
// NXDOMAIN rule) are the first and the last of them. A third resolution is taken
// for the domains LookAgain picks.
func TriageAll(looks []Observation, asns ASLookup, allow *Allowlist) Assessment {
	obs := slices.Clone(looks)
	if len(obs) == 0 {
		return Assessment{Verdict: VerdictError, Reason: "no resolution"}
	}
	if asns != nil {
		for i := range obs {
			obs[i] = obs[i].clone()
			obs[i].Annotate(asns)
		}
	}
	last := obs[len(obs)-1]
	res := Assessment{}
	for _, o := range obs {
		if res.Domain == "" {
			res.Domain = o.Domain
		}
	}
	var answered []Observation
	nx := 0
	var failures []string
	for _, o := range obs {
		switch {
		case o.Answered():
			answered = append(answered, o)
		case o.Status == NXDomain:
			nx++
			failures = append(failures, string(o.Status))
		case o.Status == NoError:
			failures = append(failures, "NODATA")
		case o.Error != "":
			failures = append(failures, fmt.Sprintf("%s (%s)", o.Status, o.Error))
		default:
			failures = append(failures, string(o.Status))
		}
	}
	switch {
	case last.Status == NXDomain || len(answered) == 0 && nx > 0:
		res.Verdict, res.Reason = VerdictNXDomain, "the name does not exist: "+strings.Join(failures, ", ")
		return res
	case len(answered) == 0:
		res.Verdict, res.Reason = VerdictError, "no answer: "+strings.Join(failures, ", ")
		return res
	}

	f := features(answered)
	res.Features = f
	score := "score not computed"
	what := fmt.Sprintf("%s in %s and %s, min TTL %d s", count(f.IPs, "IP"), count(f.ASNs, "ASN"), count(f.Prefixes, "/16"), f.MinTTL)
	if res.Scored() {
		res.Score = HolzScore(f.IPs, f.ASNs)
		score = fmt.Sprintf("score %+.1f", res.Score)
	} else {
		what = fmt.Sprintf("%s and %s, min TTL %d s; %s", count(f.IPs, "IP"), count(f.Prefixes, "/16"), f.MinTTL, f.NoASN)
	}
	if len(answered) < len(obs) {
		what += fmt.Sprintf("; only %d of %d resolutions answered (%s)", len(answered), len(obs), strings.Join(failures, ", "))
	}
	if f.Dropped > 0 {
		what += fmt.Sprintf("; %s past the answers' bounds not counted", count(f.Dropped, "record"))
	}
	if s, ok := allow.Domain(res.Domain); ok {
		res.Verdict, res.Reason = VerdictCDN, fmt.Sprintf("allowlisted suffix %s (%s: %s)", s, score, what)
		return res
	}
	if allowedAll(answered, allow) {
		res.Verdict, res.Reason = VerdictCDN, fmt.Sprintf("every address in an allowlisted ASN or prefix (%s: %s)", score, what)
		return res
	}
	if !res.Scored() {
		switch {
		case !f.Candidate:
			res.Verdict, res.Reason = VerdictBenign, "TTLs fail FluxBuster's prefilter; "+score+": "+what
		case HolzScore(f.IPs, f.IPs) <= 0 && !f.mayRotate():
			res.Verdict, res.Reason = VerdictBenign, fmt.Sprintf("%s, but the Holz score of %s is ≤ 0 in any number of ASNs and the answers do not rotate: %s",
				score, count(f.IPs, "IP"), what)
		default:
			res.Verdict, res.Reason = VerdictError, fmt.Sprintf("flux or not depends on the origin ASNs, unknown: %s", what)
		}
		return res
	}
	holz, rotating := res.Score > 0, f.Rotating()
	var why string
	switch {
	case holz:
		why = fmt.Sprintf("Holz score %+.1f > 0: %s", res.Score, what)
	case rotating:
		why = fmt.Sprintf("Holz score %+.1f, but the answers rotate (Jaccard %.2f) over %s with /16 diversity %.2f (%.2f per answer): %s",
			res.Score, f.Jaccard, count(f.ASNs, "ASN"), f.Diversity, f.AnswerDiversity, what)
	}
	switch {
	case !holz && !rotating:
		res.Verdict, res.Reason = VerdictBenign, fmt.Sprintf("Holz score %+.1f ≤ 0: %s", res.Score, what)
	case !f.Candidate:
		res.Verdict, res.Reason = VerdictBenign, "TTLs fail FluxBuster's prefilter; "+why
	case float64(f.ASNs) < CDNDisparity*float64(f.IPs):
		res.Verdict, res.Reason = VerdictBenign, fmt.Sprintf("CDN-like, %.2f ASNs per IP; %s", float64(f.ASNs)/float64(f.IPs), why)
	case f.NSChanged:
		res.Verdict, res.Reason = VerdictDoubleFlux, fmt.Sprintf("%s; name servers rotate (%s, %s in %s)", why, count(f.NSNames, "name"), count(f.NSAddrs, "address"), count(f.NSASNs, "ASN"))
	default:
		res.Verdict, res.Reason = VerdictFlux, why
	}
	return res
}

// features pools the answered observations (at least one).
func features(answered []Observation) Features {
	var f Features
	var v4, v6, nsAddrs, unrouted []netip.Addr
	var asns, nsASNs []uint32
	var countries, nsNames []string
	f.AnswerDiversity = 1 // lowered by the first answer with A records
	for i, o := range answered {
		var answer []netip.Addr
		var aTTL uint32
		for k, r := range o.A {
			answer = append(answer, r.Addr)
			if k == 0 || r.TTL < aTTL {
				aTTL = r.TTL
			}
			if r.ASN != 0 {
				asns = append(asns, r.ASN)
			} else {
				unrouted = append(unrouted, r.Addr)
			}
			if r.Country != "" {
				countries = append(countries, r.Country)
			}
		}
		if len(answer) > 0 {
			v4 = append(v4, answer...)
			f.AnswerDiversity = min(f.AnswerDiversity, Diversity(answer))
			f.Candidate = f.Candidate || Candidate(aTTL, len(sortedAddrs(slices.Clone(answer))))
		}
		for _, r := range o.AAAA {
			v6 = append(v6, r.Addr)
		}
		if ttl, ok := o.MinTTL(); ok && (i == 0 || ttl < f.MinTTL) {
			f.MinTTL = ttl
		}
		for _, ns := range o.NS {
			nsNames = append(nsNames, ns.Name)
			for _, r := range ns.Addrs {
				nsAddrs = append(nsAddrs, r.Addr)
				if r.ASN != 0 {
					nsASNs = append(nsASNs, r.ASN)
				}
			}
		}
	}
	if len(v4) == 0 {
		f.AnswerDiversity = 0
	}
	f.Answers, f.Jaccard = len(answered), 1
	if len(answered) > 1 {
		f.Jaccard, _ = Jaccard(aAddrs(answered[0]), aAddrs(answered[len(answered)-1]))
	}
	v4 = sortedAddrs(v4)
	f.IPs, f.IPv6 = len(v4), len(sortedAddrs(v6))
	f.ASNs, f.Countries = countDistinct(asns), countDistinct(countries)
	f.Diversity = Diversity(v4)
	f.Prefixes = countPrefixes(v4)
	f.Unrouted = countDistinct(unrouted)
	f.NSNames, f.NSAddrs, f.NSASNs = countDistinct(nsNames), len(sortedAddrs(nsAddrs)), countDistinct(nsASNs)
	if first, last := answered[0], answered[len(answered)-1]; len(answered) > 1 && len(first.NS) > 0 && len(last.NS) > 0 {
		f.NSChanged = !slices.Equal(first.nsNames(), last.nsNames()) || !slices.Equal(first.nsAddrs(), last.nsAddrs())
	}
	for _, o := range answered {
		f.Dropped += o.Dropped
		if f.NoASN == "" {
			f.NoASN = o.NoASN
		}
	}
	if f.NoASN != "" {
		f.ASNs, f.Countries, f.Unrouted, f.NSASNs = 0, 0, 0, 0
	}
	return f
}

func aAddrs(o Observation) []netip.Addr {
	out := make([]netip.Addr, len(o.A))
	for i, r := range o.A {
		out[i] = r.Addr
	}
	return out
}

// allowedAll reports whether every address answered is allowlisted.
func allowedAll(answered []Observation, allow *Allowlist) bool {
	if allow.Empty() {
		return false
	}
	for _, o := range answered {
		for _, rs := range [][]Record{o.A, o.AAAA} {
			for _, r := range rs {
				if !allow.Record(r) {
					return false
				}
			}
		}
	}
	return true
}

// count writes n and a noun, plural unless n is 1.
func count(n int, noun string) string {
	switch {
	case n == 1:
		return "1 " + noun
	case strings.HasSuffix(noun, "s"):
		return fmt.Sprintf("%d %ses", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func countDistinct[T comparable](xs []T) int {
	seen := make(map[T]struct{}, len(xs))
	for _, x := range xs {
		seen[x] = struct{}{}
	}
	return len(seen)
}

// countPrefixes counts the distinct /16s of sorted addresses (IPv4 only).
func countPrefixes(sorted []netip.Addr) int {
	n := 0
	for i, a := range sorted {
		if a.Is4() && (i == 0 || !sorted[i-1].Is4() || slash16(sorted[i-1]) != slash16(a)) {
			n++
		}
	}
	return n
}

// TTLMargin is waited past the longest TTL: a caching resolver counts a
// record's TTL in whole seconds and still hands it out in the second it reaches
// 0, and the workflow's clock and the worker's may differ by a little.
const TTLMargin = 2 * time.Second

// Wait is how long a triage waits before resolving again, and why.
type Wait struct {
	For time.Duration `json:"for"`
	// Longest is the longest TTL the answers carried (seconds; 0 without records).
	Longest uint32 `json:"longest"`
	// Capped says the maximum wait came first: answers with a TTL of Longest were
	// still in the resolver's cache when it ended.
	Capped bool `json:"capped,omitempty"`
}

// ResolveAgainAfter is when a triage resolves its domains again, from the
// moment the last of the observations was taken: once the longest TTL among
// them (LongestTTL) and TTLMargin have passed, bounded by maxWait. Behind a
// caching resolver the TTLs are what remains of its cached copies, and a copy is
// handed out unchanged until it expires; a rotating answer (A and AAAA, and the
// name servers of a double-flux domain) shows its next set only after that.
// The NS records of most zones live for hours, so a batch of ordinary domains
// usually waits the whole maxWait.
func ResolveAgainAfter(obs []Observation, maxWait time.Duration) Wait {
	longest, _ := LongestTTL(obs)
	w := Wait{For: time.Duration(longest)*time.Second + TTLMargin, Longest: longest}
	if w.For > maxWait {
		w.For, w.Capped = max(maxWait, 0), true
	}
	return w
}

// String says what the wait was for, as `tip flux probe` reports it.
func (w Wait) String() string {
	if w.Capped {
		return fmt.Sprintf("waited the maximum %s; TTLs of %d s had not run out: the answer may come from the resolver's cache", w.For, w.Longest)
	}
	if w.Longest == 0 {
		return fmt.Sprintf("waited %s: the answers held no TTLs", w.For)
	}
	return fmt.Sprintf("waited %s: the answers' TTLs (max %d s) ran out", w.For, w.Longest)
}

// LongestTTL is the longest TTL in the observations: of the A and AAAA records,
// the NS records and the name servers' addresses. ok is false without records.
func LongestTTL(obs []Observation) (ttl uint32, ok bool) {
	see := func(t uint32) { ttl, ok = max(ttl, t), true }
	for _, o := range obs {
		for _, rs := range [][]Record{o.A, o.AAAA} {
			for _, r := range rs {
				see(r.TTL)
			}
		}
		for _, ns := range o.NS {
			see(ns.TTL)
			for _, r := range ns.Addrs {
				see(r.TTL)
			}
		}
	}
	return ttl, ok
}

// LookAgain reports whether a benign verdict from two resolutions (Triage's a of
// first and second) is near enough to flux for a third resolution, once the
// second answers' TTLs have run out, to change it: the answers are scored and
// pass FluxBuster's prefilter, and either
//
//   - the second answer brought addresses the first lacked, and one more answer
//     bringing as many new addresses in as many new ASNs would make the Holz
//     score positive or the answers rotate over MinRotationASNs ASNs (small
//     RRsets, bots sharing networks); or
//   - the second answer repeats the first within the first's TTL, so it may be
//     the resolver's cached copy (the wait was capped), and what remains of its
//     TTL, with TTLMargin, runs out within maxWait: the third sees the zone's
//     next answer.
func LookAgain(a Assessment, first, second Observation, maxWait time.Duration) bool {
	f := a.Features
	if a.Verdict != VerdictBenign || !a.Scored() || !f.Candidate || f.Answers < 2 {
		return false
	}
	seen := map[netip.Addr]bool{}
	seenASN := map[uint32]bool{}
	for _, r := range first.A {
		seen[r.Addr], seenASN[r.ASN] = true, true
	}
	newIPs, newASNs := 0, 0
	fresh := map[uint32]bool{}
	for _, r := range second.A {
		if !seen[r.Addr] {
			newIPs++
			seen[r.Addr] = true
		}
		if r.ASN != 0 && !seenASN[r.ASN] && !fresh[r.ASN] {
			newASNs++
			fresh[r.ASN] = true
		}
	}
	if newIPs > 0 {
		// A CDN's edge servers stay within a network or two however many there are.
		ips, asns := f.IPs+newIPs, f.ASNs+newASNs
		return float64(asns) >= CDNDisparity*float64(ips) &&
			(HolzScore(ips, asns) > 0 || asns >= MinRotationASNs && f.AnswerDiversity >= MinAnswerDiversity)
	}
	ttl, ok := LongestTTL([]Observation{{A: first.A, AAAA: first.AAAA}})
	left, _ := LongestTTL([]Observation{{A: second.A, AAAA: second.AAAA}})
	cached := ok && second.At.Sub(first.At) < time.Duration(ttl)*time.Second
	return cached && time.Duration(left)*time.Second+TTLMargin <= maxWait
}

// NormalizeDomain is a reported name as TIP keys domains everywhere (feeds.Normalize:
// lower case, IDNA, no trailing dot), and whether it is a domain to triage: not an
// address, a single label, a public suffix or no host name at all.
func NormalizeDomain(raw string) (string, bool) {
	ind, drop, err := feeds.Normalize(feeds.Domain, strings.TrimSpace(raw))
	return ind.Value, err == nil && drop == ""
}
