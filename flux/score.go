package flux

import (
	"math"
	"net/netip"
	"time"
)

// The linear model of Holz, Gorecki, Rieck and Freiling, "Measuring and Detecting
// Fast-Flux Service Networks" (NDSS 2008), over the pooled answers of two
// resolutions a TTL apart. The NS-record weight of the published model is 0.
const (
	HolzWeightA   = 1.32   // per unique A record
	HolzWeightASN = 18.54  // per distinct origin ASN of those records
	HolzBias      = 142.38 // subtracted; fast-flux when the score is above 0
)

// HolzScore is f = 1.32·nA + 18.54·nASN − 142.38; a domain is fast-flux when f > 0.
func HolzScore(nA, nASN int) float64 {
	return HolzWeightA*float64(nA) + HolzWeightASN*float64(nASN) - HolzBias
}

// FluxBuster's thresholds (Perdisci et al., IEEE TDSC 2012).
const (
	MaxCandidateTTL     = 3 * 3600 // seconds: an RRset with a longer TTL is not a candidate
	ShortTTL            = 30       // seconds: a TTL this short makes a candidate even with few records
	MinCandidateRecords = 3        // records that make a candidate when the TTL is not short
	MinAnswerDiversity  = 1.0 / 3  // D one answer must reach
	MinWindowDiversity  = 0.5      // D the answers of a window must reach
	DiversityWindow     = 12 * time.Hour
)

// Candidate is FluxBuster's prefilter for one A RRset: TTL ≤ 3 h and (at least 3
// records or TTL ≤ 30 s).
func Candidate(ttl uint32, records int) bool {
	return ttl <= MaxCandidateTTL && (records >= MinCandidateRecords || ttl <= ShortTTL)
}

// Diversity is FluxBuster's D, the normalised entropy of the /16 prefixes of the
// distinct IPv4 addresses among addrs: D = (−Σ pᵢ log₂ pᵢ) / log₂ N with N the number
// of distinct addresses and pᵢ the share of them in /16 number i. It is 0 when N ≤ 1
// and 1 when every address sits in its own /16. IPv6 addresses are left out: the
// measure was defined, and its thresholds set, on IPv4.
func Diversity(addrs []netip.Addr) float64 {
	var v4 []netip.Addr
	for _, a := range addrs {
		if a = a.Unmap(); a.Is4() {
			v4 = append(v4, a)
		}
	}
	v4 = sortedAddrs(v4)
	n := len(v4)
	if n <= 1 {
		return 0
	}
	// Sorted addresses keep each /16 contiguous.
	var h float64
	run := 1
	for i := 1; i <= n; i++ {
		if i < n && slash16(v4[i]) == slash16(v4[i-1]) {
			run++
			continue
		}
		p := float64(run) / float64(n)
		h -= p * math.Log2(p)
		run = 1
	}
	return h / math.Log2(float64(n))
}

// slash16 numbers the /16 holding an IPv4 address.
func slash16(a netip.Addr) uint16 {
	b := a.Unmap().As4()
	return uint16(b[0])<<8 | uint16(b[1])
}

// Jaccard is |a ∩ b| / |a ∪ b| over two address sets (duplicates ignored); ok is
// false when both are empty, where the similarity is undefined.
func Jaccard(a, b []netip.Addr) (j float64, ok bool) {
	a, b = sortedAddrs(cloneAddrs(a)), sortedAddrs(cloneAddrs(b))
	if len(a)+len(b) == 0 {
		return 0, false
	}
	inter, i, k := 0, 0, 0
	for i < len(a) && k < len(b) {
		switch c := a[i].Compare(b[k]); {
		case c == 0:
			inter++
			i++
			k++
		case c < 0:
			i++
		default:
			k++
		}
	}
	return float64(inter) / float64(len(a)+len(b)-inter), true
}

func cloneAddrs(a []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, len(a))
	for i, x := range a {
		out[i] = x.Unmap()
	}
	return out
}
