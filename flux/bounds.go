package flux

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/tip-project/tip/textcap"
)

// Bounds of one observation. A fast-flux answer carries a handful to a few dozen
// addresses: bots are handed out a few at a time, with short TTLs, so that each
// answer reaches some that are up while the set rotates; the rotation over time,
// not the size of one answer, is what the detectors measure, and a monitor keeps
// MaxAnswer addresses of the previous answer for it. CDNs and round-robin sites
// answer with fewer still, and zones have 2 to 13 name servers with an address or
// two each. A server may still send 4,000 A records in one 64 KB TCP answer;
// kept whole, that would be 1 MB of JSON in every triage batch and monitor state
// that saw it. Past these bounds records are counted, not kept.
const (
	MaxRecords     = MaxAnswer // A records kept, and as many AAAA records
	MaxNameServers = 16        // NS hosts kept
	MaxNSAddrs     = 8         // addresses kept per NS host
	MaxDetail      = 1024      // bytes of Error kept
)

// Bound keeps the observation within MaxRecords, MaxNameServers, MaxNSAddrs and
// MaxDetail, counting the records it drops (duplicates included) in Dropped. A
// set within its bound is kept as received. Past it, the lowest addresses (the
// first names, for NS hosts) are kept, in order: an oversized answer served in any
// order keeps the same records, so a shuffled order does not pass for rotation.
func (o *Observation) Bound() {
	o.A = boundRecords(o.A, MaxRecords, &o.Dropped)
	o.AAAA = boundRecords(o.AAAA, MaxRecords, &o.Dropped)
	if len(o.NS) > MaxNameServers {
		ns := slices.Clone(o.NS)
		slices.SortStableFunc(ns, func(a, b NameServer) int { return strings.Compare(a.Name, b.Name) })
		for _, n := range ns[MaxNameServers:] {
			o.Dropped += 1 + len(n.Addrs)
		}
		o.NS = slices.Clone(ns[:MaxNameServers])
	}
	for i := range o.NS {
		o.NS[i].Addrs = boundRecords(o.NS[i].Addrs, MaxNSAddrs, &o.Dropped)
	}
	o.Error = textcap.Cap(o.Error, MaxDetail)
}

// boundRecords returns rs when it holds at most n records, and otherwise the n
// lowest distinct addresses in a new slice, adding the others to *dropped.
func boundRecords(rs []Record, n int, dropped *int) []Record {
	if len(rs) <= n {
		return rs
	}
	s := slices.Clone(rs)
	slices.SortFunc(s, func(a, b Record) int { return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.TTL, b.TTL)) })
	s = slices.CompactFunc(s, func(a, b Record) bool { return a.Addr == b.Addr })
	keep := min(len(s), n)
	*dropped += len(rs) - keep
	return slices.Clone(s[:keep])
}

// Shed drops detail until the observation's JSON takes at most maxBytes: the
// AAAA records first (no detector scores them), then the name servers'
// addresses, the name servers, and last the A records, the highest first. What
// goes is counted in Dropped and named in Error. It reports whether the
// observation fits; one that does not has no records left to shed.
func (o *Observation) Shed(maxBytes int) bool {
	size := func() int { b, _ := json.Marshal(o); return len(b) }
	if size() <= maxBytes {
		return true
	}
	detail, dropped := o.Error, 0
	var shed []string
	note := func(what string, n int) {
		o.Dropped += n
		dropped += n
		if !slices.Contains(shed, what) {
			shed = append(shed, what)
		}
		o.Error = fmt.Sprintf("%d records shed to fit a batch's size bound (%s)", dropped, strings.Join(shed, ", "))
		if detail != "" {
			o.Error = textcap.Cap(o.Error+"; "+detail, MaxDetail)
		}
	}
	steps := []func() bool{
		func() bool { // AAAA
			if len(o.AAAA) == 0 {
				return false
			}
			note("AAAA", len(o.AAAA))
			o.AAAA = nil
			return true
		},
		func() bool { // NS addresses
			n := 0
			for i := range o.NS {
				n += len(o.NS[i].Addrs)
				o.NS[i].Addrs = nil
			}
			if n > 0 {
				note("NS addresses", n)
			}
			return n > 0
		},
		func() bool { // NS
			if len(o.NS) == 0 {
				return false
			}
			note("NS", len(o.NS))
			o.NS = nil
			return true
		},
	}
	for _, step := range steps {
		if step() && size() <= maxBytes {
			return true
		}
	}
	for len(o.A) > 0 {
		keep := len(o.A) / 2
		note("A", len(o.A)-keep)
		o.A = slices.Clone(o.A[:keep])
		if size() <= maxBytes {
			return true
		}
	}
	return size() <= maxBytes
}

// ShedBatch keeps the JSON of a batch of observations (an array) within maxBytes:
// when it is larger, the largest observations shed detail (Shed) down to a common
// size, chosen so that the smaller ones stay whole. It returns how many shed.
func ShedBatch(obs []Observation, maxBytes int) int {
	budget := maxBytes - 2 - max(len(obs)-1, 0) // brackets and commas aside
	sizes := make([]int, len(obs))
	total := 0
	for i := range obs {
		b, _ := json.Marshal(&obs[i])
		sizes[i] = len(b)
		total += len(b)
	}
	if total <= budget {
		return 0
	}
	// The cap c each observation may take: the sizes below it stay, the others
	// take c each, and all of them fit.
	sorted := slices.Sorted(slices.Values(sizes))
	c, below := 0, 0
	for k, s := range sorted {
		if below+(len(sorted)-k)*s > budget {
			c = (budget - below) / (len(sorted) - k)
			break
		}
		below += s
	}
	n := 0
	for i := range obs {
		if sizes[i] > c {
			obs[i].Shed(max(c, 0))
			n++
		}
	}
	return n
}
