// Package dnsserve serves TIP's blacklists live over DNS (`tip serve dns`):
// Response Policy Zones for resolvers (BIND, Unbound), transferred by AXFR and
// IXFR with NOTIFY and TSIG, and DNSBL zones for mail servers (RFC 5782). Every
// answer comes from memory: an index of the active listings, built from
// PostgreSQL at start and brought up to date by the listing changes storage
// records (a NOTIFY, or a poll), one diff at a time.
package dnsserve

import (
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/tip-project/tip/export"
	"github.com/tip-project/tip/storage"
)

// Selector picks the listings a zone, or a list of a DNSBL zone, serves.
type Selector struct {
	// MinScore is the least score (the noisy-or of the listing sources'
	// weights) a listed indicator needs.
	MinScore float64
	// Sources, when set, are the only sources whose listings select an
	// indicator (e.g. TIP's own: tip-spamtrap-senders, tip-flux-agents).
	Sources []string
	// Types are the indicator types served (domain, ipv4, ipv6, cidr, url);
	// empty: domain, ipv4, ipv6 and cidr.
	Types []string
}

// DefaultTypes are the types a Selector without Types serves. A URL's host is
// left out unless asked for: a phishing page on a shared host must not block
// the host.
var DefaultTypes = []string{"domain", "ipv4", "ipv6", "cidr"}

func (s Selector) types() []string {
	if len(s.Types) == 0 {
		return DefaultTypes
	}
	return s.Types
}

// entry is one listed indicator: its active listings' sources.
type entry struct {
	id      int64
	typ     string
	value   string
	sources []int32
	member  uint64 // bit i: selectors[i] selects it
}

// data is everything the server answers from, under one lock: the index of the
// listings, the selectors, and the zones' records.
type data struct {
	mu sync.RWMutex

	selectors []Selector
	sourceSet []map[int32]bool // per selector: the IDs of its Sources; nil: any

	entries map[int64]*entry
	domains map[string]*entry     // domain indicators by name
	addrs   map[netip.Addr]*entry // ipv4 and ipv6 indicators
	nets    map[netip.Prefix]*entry
	netLens [2][]int // the prefix lengths held, v4 and v6, longest first

	weights   map[int32]float64
	names     map[int32]string
	sourceIDs map[string]int32
	supp      storage.Suppressed

	rpz   []*rpzZone // selectors[i] for i < len(rpz)
	lists []*list    // selectors[len(rpz)+i]
}

func newData(rpz []*rpzZone, lists []*list) *data {
	d := &data{rpz: rpz, lists: lists, entries: map[int64]*entry{}, domains: map[string]*entry{},
		addrs: map[netip.Addr]*entry{}, nets: map[netip.Prefix]*entry{}, weights: map[int32]float64{},
		names: map[int32]string{}, sourceIDs: map[string]int32{},
		supp: storage.Suppressed{Indicators: map[int64]bool{}, Listings: map[[2]int64]bool{}}}
	for _, z := range rpz {
		d.selectors = append(d.selectors, z.Selector)
	}
	for _, l := range lists {
		d.selectors = append(d.selectors, l.Selector)
	}
	return d
}

// setWeights takes the sources' names and weights, and resolves the
// selectors' source names.
func (d *data) setWeights(ws []storage.SourceWeight) {
	clear(d.weights)
	for _, w := range ws {
		d.weights[w.ID], d.names[w.ID], d.sourceIDs[w.Name] = w.Weight, w.Name, w.ID
	}
	d.sourceSet = make([]map[int32]bool, len(d.selectors))
	for i, s := range d.selectors {
		if len(s.Sources) == 0 {
			continue
		}
		d.sourceSet[i] = map[int32]bool{}
		for _, n := range s.Sources {
			if id, ok := d.sourceIDs[n]; ok {
				d.sourceSet[i][id] = true
			}
		}
	}
}

// listing applies one listing's state: a source lists the indicator (active)
// or no longer does. It returns the entry it touched (nil: none).
func (d *data) listing(l storage.IndexedListing) *entry {
	e := d.entries[l.IndicatorID]
	if e == nil {
		if !l.Active {
			return nil
		}
		e = &entry{id: l.IndicatorID, typ: l.Type, value: l.Value}
		if !d.add(e) {
			return nil
		}
	}
	i := slices.Index(e.sources, l.SourceID)
	switch {
	case l.Active && i < 0:
		e.sources = append(e.sources, l.SourceID)
	case !l.Active && i >= 0:
		e.sources = slices.Delete(e.sources, i, i+1)
	}
	return e
}

// add indexes a new entry; false for a value the DNS cannot serve.
func (d *data) add(e *entry) bool {
	switch e.typ {
	case "domain":
		d.domains[e.value] = e
	case "ipv4", "ipv6":
		a, err := netip.ParseAddr(e.value)
		if err != nil {
			return false
		}
		d.addrs[a.Unmap()] = e
	case "cidr":
		p, err := netip.ParsePrefix(e.value)
		if err != nil {
			return false
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p.Addr())).Masked()
		d.nets[p] = e
		fam := family(p.Addr())
		if !slices.Contains(d.netLens[fam], p.Bits()) {
			d.netLens[fam] = append(d.netLens[fam], p.Bits())
			slices.SortFunc(d.netLens[fam], func(a, b int) int { return b - a })
		}
	case "url":
	default:
		return false
	}
	d.entries[e.id] = e
	return true
}

// drop forgets an entry no source lists any more.
func (d *data) drop(e *entry) {
	delete(d.entries, e.id)
	switch e.typ {
	case "domain":
		delete(d.domains, e.value)
	case "ipv4", "ipv6":
		if a, err := netip.ParseAddr(e.value); err == nil {
			delete(d.addrs, a.Unmap())
		}
	case "cidr":
		for p, x := range d.nets {
			if x == e {
				delete(d.nets, p)
			}
		}
	}
}

func unmapBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

func family(a netip.Addr) int {
	if a.Is4() {
		return 0
	}
	return 1
}

// score is an entry's score: the noisy-or of the weights of its sources that
// count (not marked false positives), and whether any source counts.
func (d *data) score(e *entry) (float64, []int32) {
	if d.supp.Indicators[e.id] {
		return 0, nil
	}
	p := 1.0
	var counted []int32
	for _, s := range e.sources {
		if d.supp.Listings[[2]int64{e.id, int64(s)}] {
			continue
		}
		counted = append(counted, s)
		p *= 1 - math.Min(d.weights[s], 0.999999)
	}
	return 1 - p, counted
}

// membership is the selectors that select an entry now.
func (d *data) membership(e *entry) uint64 {
	score, counted := d.score(e)
	if len(counted) == 0 {
		return 0
	}
	var m uint64
	for i, s := range d.selectors {
		if score < s.MinScore || !slices.Contains(s.types(), e.typ) {
			continue
		}
		if set := d.sourceSet[i]; set != nil && !slices.ContainsFunc(counted, func(id int32) bool { return set[id] }) {
			continue
		}
		m |= 1 << i
	}
	return m
}

// reevaluate brings the membership of the entries (all when nil) up to date and
// applies what changed to the RPZ zones' records; entries no source lists are
// dropped. It returns the zones whose records changed.
func (d *data) reevaluate(es []*entry) []*rpzZone {
	if es == nil {
		es = make([]*entry, 0, len(d.entries))
		for _, e := range d.entries {
			es = append(es, e)
		}
	}
	changed := map[*rpzZone]bool{}
	for _, e := range es {
		m := uint64(0)
		if len(e.sources) > 0 {
			m = d.membership(e)
		}
		if m != e.member {
			for i, z := range d.rpz {
				was, is := e.member&(1<<i) != 0, m&(1<<i) != 0
				if was != is && z.apply(e, is) {
					changed[z] = true
				}
			}
			e.member = m
		}
		if len(e.sources) == 0 && d.entries[e.id] == e {
			d.drop(e)
		}
	}
	var out []*rpzZone
	for _, z := range d.rpz {
		if changed[z] {
			out = append(out, z)
		}
	}
	return out
}

// lookup finds the entries a DNSBL key is listed by.
func (d *data) lookup(k key) []*entry {
	if k.addr.IsValid() {
		return d.lookupAddr(k.addr)
	}
	return d.lookupDomain(k.domain)
}

// lookupAddr finds the entries an address is listed by: itself, and every
// block holding it.
func (d *data) lookupAddr(a netip.Addr) []*entry {
	var out []*entry
	if e := d.addrs[a]; e != nil {
		out = append(out, e)
	}
	for _, bits := range d.netLens[family(a)] {
		p, err := a.Prefix(bits)
		if err == nil {
			if e := d.nets[p]; e != nil {
				out = append(out, e)
			}
		}
	}
	return out
}

// lookupDomain finds the entries a name is listed by: itself, and each listed
// domain above it.
func (d *data) lookupDomain(name string) []*entry {
	var out []*entry
	for {
		if e := d.domains[name]; e != nil {
			out = append(out, e)
		}
		i := strings.IndexByte(name, '.')
		if i < 0 {
			return out
		}
		name = name[i+1:]
	}
}

// sourceNames names an entry's counted sources, sorted.
func (d *data) sourceNames(e *entry) []string {
	_, counted := d.score(e)
	out := make([]string, 0, len(counted))
	for _, s := range counted {
		out = append(out, d.names[s])
	}
	slices.Sort(out)
	return out
}

// owners are an entry's owner names in an RPZ zone (relative to it).
func owners(e *entry) []string {
	os, _ := export.RPZOwners(e.typ, e.value)
	return os
}
