package lookup

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"hash/maphash"
	"math"
	"net/netip"
	"slices"
	"time"
	"unsafe"

	"github.com/tip-project/tip/feeds"
	"github.com/tip-project/tip/storage"
)

// table is the index's data: every listing, active and removed, with its
// context, laid out for the garbage collector to skip. Strings live in one
// arena, listings and indicators in slices linked by index, times are
// microseconds since the epoch (PostgreSQL's precision), and the maps hold
// no pointers. Indicators and listings are never deleted, as in the
// database: a removed listing stays, inactive.
type table struct {
	seed  maphash.Seed
	arena []byte // indicator values and references, back to back

	types []string // indicator types, by indicator.typ
	inds  []indicator
	// byValue finds an indicator by the hash of its value; indicators whose
	// values hash alike are chained by hnext.
	byValue map[uint64]uint32
	// The CIDR indicators by block, per family: net4 keys are the address
	// shifted left 8 bits, or'd with the prefix length. lens4 and lens6 have
	// bit n set when a block of length n is held.
	nets4 map[uint64]uint32
	nets6 map[net6]uint32
	lens4 uint64
	lens6 [3]uint64

	ls     []listing
	said   []said
	strs   []string // the interned context strings ("" first)
	strIDs map[string]uint32

	srcs   []source // by listing.src
	srcIdx map[int32]uint16

	active    int // listings active
	staleSaid int // entries of said no listing refers to any more
}

// noTime is a NULL timestamp.
const noTime = math.MinInt64

// strRef is a string of the arena.
type strRef struct{ off, n uint32 }

type indicator struct {
	val   strRef
	head  uint32 // its first listing, +1 (0: none)
	hnext uint32 // the next indicator whose value hashes alike, +1 (0: none)
	typ   uint8
}

type listing struct {
	firstSeen int64
	lastSeen  int64 // noTime while active: the source's last success stands in
	removedAt int64
	next      uint32 // the indicator's next listing, +1 (0: none)
	said      uint32 // what the source says of it, in table.said, +1 (0: nothing)
	src       uint16
	active    bool
}

// said is what a source says of a listing.
type said struct {
	listedAt int64
	ref      strRef
	category uint32 // interned, +1 (0: none of its own, its source's)
	malware  uint32 // interned
	port     uint32 // interned
}

// source is what a lookup shows of a source.
type source struct {
	id          int32
	name        string
	rank        int
	weight      float64
	lastSuccess int64
	category    string
	tlp         string
	licence     string
	// known: in the sources table; a listing of a source that is not is not
	// shown (the SQL joins the sources).
	known bool
}

type net6 struct {
	hi, lo uint64
	bits   uint8
}

// The matches of a listing to a query, in the order listings tie on them.
const (
	matchCIDR uint8 = iota
	matchDomain
	matchExact
)

var matchNames = [...]string{matchCIDR: "cidr", matchDomain: "domain", matchExact: "exact"}

func newTable() *table {
	return &table{seed: maphash.MakeSeed(), byValue: map[uint64]uint32{}, nets4: map[uint64]uint32{}, nets6: map[net6]uint32{},
		strs: []string{""}, strIDs: map[string]uint32{"": 0}, srcIdx: map[int32]uint16{}}
}

func (t *table) bytes(r strRef) []byte { return t.arena[r.off : r.off+r.n] }

func (t *table) str(r strRef) string { return string(t.bytes(r)) }

func (t *table) putStr(s string) strRef {
	if s == "" {
		return strRef{}
	}
	r := strRef{off: uint32(len(t.arena)), n: uint32(len(s))}
	t.arena = append(t.arena, s...)
	return r
}

func (t *table) intern(s string) uint32 {
	if id, ok := t.strIDs[s]; ok {
		return id
	}
	id := uint32(len(t.strs))
	t.strs = append(t.strs, s)
	t.strIDs[s] = id
	return id
}

// typeID is the number of an indicator type, and whether any indicator has it.
func (t *table) typeID(typ string) (uint8, bool) {
	i := slices.Index(t.types, typ)
	return uint8(i), i >= 0
}

// find returns the indicator of a type and value.
func (t *table) find(typ uint8, value string) (uint32, bool) {
	i, ok := t.byValue[maphash.String(t.seed, value)]
	for ok {
		in := &t.inds[i]
		if in.typ == typ && string(t.bytes(in.val)) == value {
			return i, true
		}
		i, ok = in.hnext-1, in.hnext > 0
	}
	return 0, false
}

// indicator returns the indicator of a type and value, added if new.
func (t *table) indicator(typ, value string) uint32 {
	tid, ok := t.typeID(typ)
	if !ok {
		tid = uint8(len(t.types))
		t.types = append(t.types, typ)
	}
	if i, ok := t.find(tid, value); ok {
		return i
	}
	i := uint32(len(t.inds))
	in := indicator{val: t.putStr(value), typ: tid}
	h := maphash.String(t.seed, value)
	if prev, ok := t.byValue[h]; ok {
		in.hnext = prev + 1
	}
	t.byValue[h] = i
	t.inds = append(t.inds, in)
	if typ == string(feeds.CIDR) {
		if p, err := netip.ParsePrefix(value); err == nil {
			t.addNet(p.Masked(), i)
		}
	}
	return i
}

func (t *table) addNet(p netip.Prefix, i uint32) {
	bits := p.Bits()
	if a := p.Addr(); a.Is4() {
		t.nets4[key4(a, bits)] = i
		t.lens4 |= 1 << bits
		return
	}
	t.nets6[key6(p.Addr(), bits)] = i
	t.lens6[bits/64] |= 1 << (bits % 64)
}

func key4(a netip.Addr, bits int) uint64 {
	b := a.As4()
	u := binary.BigEndian.Uint32(b[:])
	if bits < 32 {
		u &^= 1<<(32-bits) - 1
	}
	return uint64(u)<<8 | uint64(bits)
}

func key6(a netip.Addr, bits int) net6 {
	b := a.As16()
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	switch {
	case bits == 0:
		hi, lo = 0, 0
	case bits < 64:
		hi &^= 1<<(64-bits) - 1
		lo = 0
	case bits < 128:
		lo &^= 1<<(128-bits) - 1
	}
	return net6{hi: hi, lo: lo, bits: uint8(bits)}
}

// source returns the interned number of a source.
func (t *table) source(id int32) uint16 {
	if i, ok := t.srcIdx[id]; ok {
		return i
	}
	i := uint16(len(t.srcs))
	t.srcIdx[id] = i
	t.srcs = append(t.srcs, source{id: id})
	return i
}

// setSources takes the sources as they are now.
func (t *table) setSources(ss []storage.LookupSource) {
	for i := range t.srcs {
		t.srcs[i].known = false
	}
	for _, s := range ss {
		t.srcs[t.source(s.ID)] = source{id: s.ID, name: s.Name, rank: s.Rank, weight: s.Weight, lastSuccess: micros(s.LastSuccess),
			category: s.Category, tlp: s.TLP, licence: s.Licence, known: true}
	}
}

// micros is t in microseconds since the epoch, noTime when zero (NULL).
func micros(t time.Time) int64 {
	if t.IsZero() {
		return noTime
	}
	return t.UnixMicro()
}

// apply sets a listing's state, adding it if new.
func (t *table) apply(r *storage.LookupListing) {
	ind := t.indicator(r.Type, r.Value)
	src := t.source(r.SourceID)
	var l *listing
	for n := t.inds[ind].head; n > 0; n = t.ls[n-1].next {
		if t.ls[n-1].src == src {
			l = &t.ls[n-1]
			break
		}
	}
	if l == nil {
		t.ls = append(t.ls, listing{next: t.inds[ind].head, src: src})
		t.inds[ind].head = uint32(len(t.ls))
		l = &t.ls[len(t.ls)-1]
	} else if l.active {
		t.active--
	}
	l.firstSeen, l.lastSeen, l.removedAt, l.active = micros(r.FirstSeen), micros(r.LastSeen), micros(r.RemovedAt), r.Active
	if l.active {
		t.active++
	}
	l.said = t.say(l.said, r)
}

// say returns the said entry of what r says, +1: old when it says the same,
// none when it says nothing.
func (t *table) say(old uint32, r *storage.LookupListing) uint32 {
	s := said{listedAt: micros(r.ListedAt), malware: t.intern(r.Malware), port: t.intern(r.Port)}
	if r.OwnCategory {
		s.category = t.intern(r.Category) + 1
	}
	if old > 0 {
		o := t.said[old-1]
		if o.listedAt == s.listedAt && o.category == s.category && o.malware == s.malware && o.port == s.port && string(t.bytes(o.ref)) == r.Ref {
			return old
		}
		t.staleSaid++
	}
	if s == (said{listedAt: noTime}) && r.Ref == "" {
		return 0
	}
	s.ref = t.putStr(r.Ref)
	t.said = append(t.said, s)
	return uint32(len(t.said))
}

// hit is a listing found for a query.
type hit struct {
	l, ind uint32
	match  uint8
}

// lookup finds the listings of a query as storage.Lookup does: those of the
// indicator itself, of the CIDR blocks covering an address or block, and of
// the listed domain that is a URL's host or a domain's registrable domain.
// Active listings come first, then by first sighting, then by source.
func (t *table) lookup(q Query) []storage.Listing {
	ind := q.Indicator
	var hs []hit
	if typ, ok := t.typeID(string(ind.Type)); ok {
		if i, ok := t.find(typ, ind.Value); ok {
			hs = t.hits(hs, i, matchExact)
		}
	}
	switch ind.Type {
	case feeds.IPv4, feeds.IPv6, feeds.CIDR:
		hs = t.covering(hs, ind.Value)
	case feeds.Domain, feeds.URL:
		if typ, ok := t.typeID(string(feeds.Domain)); ok {
			for n, name := range []string{q.Host, ind.Registrable} {
				if name == ind.Value || n == 1 && name == q.Host {
					continue
				}
				if i, ok := t.find(typ, name); ok {
					hs = t.hits(hs, i, matchDomain)
				}
			}
		}
	}
	slices.SortFunc(hs, t.compare)
	out := make([]storage.Listing, len(hs))
	for i, h := range hs {
		out[i] = t.listing(h)
	}
	return out
}

// hits appends the listings of an indicator whose source is known.
func (t *table) hits(hs []hit, ind uint32, match uint8) []hit {
	for n := t.inds[ind].head; n > 0; n = t.ls[n-1].next {
		if t.srcs[t.ls[n-1].src].known {
			hs = append(hs, hit{l: n - 1, ind: ind, match: match})
		}
	}
	return hs
}

// covering appends the listings of the blocks holding an address or block,
// itself excepted, as PostgreSQL's >>= of the same family finds them.
func (t *table) covering(hs []hit, value string) []hit {
	var p netip.Prefix
	if a, err := netip.ParseAddr(value); err == nil {
		p = netip.PrefixFrom(a, a.BitLen())
	} else if p, err = netip.ParsePrefix(value); err != nil {
		return hs
	}
	a := p.Addr()
	for bits := 0; bits <= p.Bits(); bits++ {
		var i uint32
		var ok bool
		if a.Is4() {
			if t.lens4&(1<<bits) == 0 {
				continue
			}
			i, ok = t.nets4[key4(a, bits)]
		} else {
			if t.lens6[bits/64]&(1<<(bits%64)) == 0 {
				continue
			}
			i, ok = t.nets6[key6(a, bits)]
		}
		if ok && string(t.bytes(t.inds[i].val)) != value {
			hs = t.hits(hs, i, matchCIDR)
		}
	}
	return hs
}

// compare orders hits as storage.Lookup orders listings (active first, then
// by first sighting, then by source name), and the ties it leaves by match,
// then by listed value.
func (t *table) compare(a, b hit) int {
	la, lb := &t.ls[a.l], &t.ls[b.l]
	if la.active != lb.active {
		if la.active {
			return -1
		}
		return 1
	}
	if c := cmp.Compare(la.firstSeen, lb.firstSeen); c != 0 {
		return c
	}
	if c := cmp.Compare(t.srcs[la.src].rank, t.srcs[lb.src].rank); c != 0 {
		return c
	}
	if c := cmp.Compare(a.match, b.match); c != 0 {
		return c
	}
	return bytes.Compare(t.bytes(t.inds[a.ind].val), t.bytes(t.inds[b.ind].val))
}

// listing is a hit as storage.Lookup gives it.
func (t *table) listing(h hit) storage.Listing {
	l, in := &t.ls[h.l], &t.inds[h.ind]
	s := &t.srcs[l.src]
	out := storage.Listing{Source: s.name, Type: t.types[in.typ], Value: t.str(in.val), Match: matchNames[h.match],
		FirstSeen: time.UnixMicro(l.firstSeen), Active: l.active, Weight: s.weight,
		Category: s.category, TLP: s.tlp, Licence: s.licence}
	switch { // the listings view's coalesce(l.last_seen, s.last_success, l.first_seen)
	case l.lastSeen != noTime:
		out.LastSeen = time.UnixMicro(l.lastSeen)
	case s.lastSuccess != noTime:
		out.LastSeen = time.UnixMicro(s.lastSuccess)
	default:
		out.LastSeen = out.FirstSeen
	}
	out.RemovedAt = timePtr(l.removedAt)
	if l.said > 0 {
		sd := &t.said[l.said-1]
		if sd.category > 0 {
			out.Category = t.strs[sd.category-1]
		}
		out.Malware, out.Port, out.Ref = t.strs[sd.malware], t.strs[sd.port], t.str(sd.ref)
		out.Listed = timePtr(sd.listedAt)
	}
	return out
}

func timePtr(us int64) *time.Time {
	if us == noTime {
		return nil
	}
	t := time.UnixMicro(us)
	return &t
}

// compact trims the slices' spare capacity, after a build.
func (t *table) compact() {
	t.arena = slices.Clone(t.arena)
	t.inds = slices.Clone(t.inds)
	t.ls = slices.Clone(t.ls)
	t.said = slices.Clone(t.said)
}

// memory estimates the bytes the table holds.
func (t *table) memory() int64 {
	// A map entry is its key and value in a slot of a group of 8 with a control
	// byte each, the groups 7/8 full at most and about 2/3 on average.
	entry := func(slot uintptr) int64 { return int64(slot+1) * 3 / 2 }
	n := int64(cap(t.arena)) +
		int64(cap(t.inds))*int64(unsafe.Sizeof(indicator{})) +
		int64(cap(t.ls))*int64(unsafe.Sizeof(listing{})) +
		int64(cap(t.said))*int64(unsafe.Sizeof(said{})) +
		int64(len(t.byValue))*entry(16) + int64(len(t.nets4))*entry(16) + int64(len(t.nets6))*entry(unsafe.Sizeof(net6{})+8)
	for _, s := range t.strs {
		n += int64(len(s)) + 16 + entry(24)
	}
	return n + int64(cap(t.srcs))*int64(unsafe.Sizeof(source{}))
}
