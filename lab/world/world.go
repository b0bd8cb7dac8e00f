// Package world is the ground truth of TIP's lab, a simulated Internet: ASNs and
// their address blocks, botnets, and domains that behave like fast-flux networks,
// CDNs, ordinary sites, takedowns and lame delegations, all generated
// deterministically from a seed and driven by a lab clock. Because the ground truth
// is known, what TIP collects and detects can be scored.
package world

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tip-project/tip/ipasn"
)

// DefaultStart is the lab epoch: lab time 0.
var DefaultStart = time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)

// ASNKind says what an autonomous system hosts in the lab.
type ASNKind string

const (
	Residential ASNKind = "residential" // broadband: where bots (flux agents, spam senders) live
	Hosting     ASNKind = "hosting"     // servers: C2, phishing, ordinary sites, name servers
	CDN         ASNKind = "cdn"         // content delivery: many IPs, few ASNs
)

// ASN is an autonomous system with its address blocks.
type ASN struct {
	Number  int
	Name    string
	Country string
	Kind    ASNKind
	V4      []netip.Prefix
	V6      []netip.Prefix
}

// Class is a domain's ground-truth behaviour.
type Class string

const (
	SingleFlux Class = "single-flux" // A records rotate through a botnet pool
	DoubleFlux Class = "double-flux" // A and NS records (and NS addresses) rotate
	CDNDomain  Class = "cdn"         // many IPs in one or two ASNs: must never be called flux
	RoundRobin Class = "round-robin" // a few fixed IPs, rotated order
	Static     Class = "static"      // one fixed IP
	Malicious  Class = "malicious"   // phishing/malware site on a static hosting IP (not flux)
	Lame       Class = "lame"        // delegated, but the server is not authoritative
)

// IsFlux reports whether the class is a fast-flux network.
func (c Class) IsFlux() bool { return c == SingleFlux || c == DoubleFlux }

// Domain is one lab zone and how it answers over lab time.
type Domain struct {
	Name    string
	Class   Class
	Network string // flux network (botnet) or CDN provider it belongs to
	TTL     uint32 // A/AAAA TTL
	NSTTL   uint32
	Answer  int          // A records per answer
	Pool    []netip.Addr // A candidates
	PoolV6  []netip.Addr // AAAA candidates (may be empty)
	NSNames []string     // candidate NS host names (rotated for double flux)
	NSPool  []netip.Addr // candidate NS host addresses (rotated for double flux)
	NSCount int          // NS records per answer
	Popular bool         // a well-known benign name (a false positive when listed)
	// Wildcard zones answer any name below them with the zone's addresses, as spam
	// and flux zones commonly do (per-recipient hosts in URLs); other zones have only
	// www below them besides their name servers.
	Wildcard bool
	// TakedownAt starts NXDOMAIN answers; ServfailAt replaces them by SERVFAIL (the
	// zone is gone from its servers). Zero means never.
	TakedownAt, ServfailAt time.Time
}

// FluxNetwork is a botnet whose infected hosts serve as flux agents.
type FluxNetwork struct {
	Name string
	Pool []netip.Addr // every bot address
	ASNs []int
}

// World is the lab's ground truth, generated from a seed.
type World struct {
	Seed     uint64
	Start    time.Time
	ASNs     []ASN
	Networks []FluxNetwork
	Domains  []*Domain
	// TrapMX are the spamtraps' own MX hosts: the first Received header they write
	// holds the true sender IP.
	TrapMX []TrapMX
	// AgentTrapMX is a third trap's MX, whose mail stays in a Maildir on its own
	// server, where a spamtrap agent parses it: neither the archive nor the IMAP
	// trap carries it.
	AgentTrapMX TrapMX

	byName  map[string]*Domain
	ranges  []asnRange // sorted, for ASNOf
	hosting []netip.Addr
}

// TrapMX is one spamtrap mail exchanger.
type TrapMX struct {
	Name string
	Addr netip.Addr
	Trap string // the trap's domain
}

// Rand returns a generator for one purpose: the same seed and label always give the
// same sequence, and different labels are independent.
func (w *World) Rand(label string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(label))
	return rand.New(rand.NewPCG(w.Seed, h.Sum64()))
}

// Domain returns the lab domain with that name (lower case, no trailing dot).
func (w *World) Domain(name string) (*Domain, bool) {
	d, ok := w.byName[name]
	return d, ok
}

// DomainsOf lists the domains of a class in generation order.
func (w *World) DomainsOf(classes ...Class) []*Domain {
	var out []*Domain
	for _, d := range w.Domains {
		if slices.Contains(classes, d.Class) {
			out = append(out, d)
		}
	}
	return out
}

// ASNOf finds the ASN announcing an address.
func (w *World) ASNOf(ip netip.Addr) (ASN, bool) {
	i := sort.Search(len(w.ranges), func(i int) bool { return !w.ranges[i].last.Less(ip) })
	if i < len(w.ranges) && !ip.Less(w.ranges[i].first) {
		return w.ASNs[w.ranges[i].asn], true
	}
	return ASN{}, false
}

// ASNsOfKind lists the ASNs of one kind.
func (w *World) ASNsOfKind(k ASNKind) []ASN {
	var out []ASN
	for _, a := range w.ASNs {
		if a.Kind == k {
			out = append(out, a)
		}
	}
	return out
}

// HostingAddrs are server addresses in hosting ASNs (C2, phishing sites, NS hosts),
// in a fixed order.
func (w *World) HostingAddrs() []netip.Addr { return w.hosting }

// Day is the number of whole lab days since the lab epoch.
func (w *World) Day(t time.Time) int {
	if t.Before(w.Start) {
		return -1
	}
	return int(t.Sub(w.Start) / (24 * time.Hour))
}

// NewWorld generates the lab from a seed. It is pure: the same seed gives the same
// world, byte for byte.
func NewWorld(seed uint64) *World {
	w := &World{Seed: seed, Start: DefaultStart, byName: map[string]*Domain{}}
	w.genASNs()
	w.genNetworks()
	w.genDomains()
	return w
}

var countries = []string{"US", "DE", "NL", "RU", "CN", "BR", "IN", "UA", "RO", "TR", "VN", "FR", "GB", "KR", "JP", "PL", "IT", "ES", "ID", "AR"}

// bogon8 lists first octets that are never used for lab hosts (reserved, private,
// multicast, loopback, CGNAT's 100, the benchmarking 198 and test nets' 192/203).
var bogon8 = map[int]bool{0: true, 10: true, 100: true, 127: true, 169: true, 172: true, 192: true, 198: true, 203: true}

func (w *World) genASNs() {
	r := w.Rand("asns")
	// Every lab /16 is distinct: shuffle the usable /16 blocks and hand them out.
	var blocks []uint16
	for a := 1; a < 224; a++ {
		if bogon8[a] {
			continue
		}
		for b := 0; b < 256; b += 7 { // a sparse, deterministic subset keeps the table small
			blocks = append(blocks, uint16(a)<<8|uint16(b))
		}
	}
	r.Shuffle(len(blocks), func(i, j int) { blocks[i], blocks[j] = blocks[j], blocks[i] })
	next := 0
	usedNum := map[int]bool{}
	newASN := func(kind ASNKind, name string, nblocks int) {
		num := 0
		for num == 0 || usedNum[num] {
			num = 1000 + r.IntN(60000)
		}
		usedNum[num] = true
		a := ASN{Number: num, Kind: kind, Country: countries[r.IntN(len(countries))]}
		a.Name = strings.ReplaceAll(name, "{cc}", a.Country)
		for k := 0; k < nblocks; k++ {
			blk := blocks[next]
			next++
			bits := 16 + r.IntN(4) // /16 to /19
			a.V4 = append(a.V4, netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(blk >> 8), byte(blk), 0, 0}), bits))
		}
		// One IPv6 /32 per ASN in 2a0x::/16 space.
		var v6 [16]byte
		v6[0], v6[1] = 0x2a, byte(r.IntN(16))
		binary.BigEndian.PutUint16(v6[2:], uint16(num))
		a.V6 = []netip.Prefix{netip.PrefixFrom(netip.AddrFrom16(v6), 32)}
		w.ASNs = append(w.ASNs, a)
	}
	isps := []string{"Telecom", "Broadband", "Cable", "DSL", "Mobile", "Net"}
	for i := 0; i < 60; i++ {
		newASN(Residential, fmt.Sprintf("LAB-RES-%02d {cc} %s", i, isps[i%len(isps)]), 1+r.IntN(3))
	}
	hosts := []string{"Hosting", "Servers", "Cloud", "Datacenter", "VPS"}
	for i := 0; i < 20; i++ {
		newASN(Hosting, fmt.Sprintf("LAB-HOST-%02d %s Ltd", i, hosts[i%len(hosts)]), 1+r.IntN(2))
	}
	newASN(CDN, "LAB-CDN-A Edge Networks", 6)
	newASN(CDN, "LAB-CDN-B Global Delivery", 4)
	newASN(CDN, "LAB-CDN-B Global Delivery EU", 3)

	for i, a := range w.ASNs {
		for _, p := range append(slices.Clone(a.V4), a.V6...) {
			w.ranges = append(w.ranges, asnRange{first: p.Masked().Addr(), last: lastAddr(p), asn: i})
		}
	}
	sort.Slice(w.ranges, func(i, j int) bool { return w.ranges[i].first.Less(w.ranges[j].first) })

	// A fixed list of server addresses in hosting ASNs.
	hr := w.Rand("hosting-addrs")
	for _, a := range w.ASNsOfKind(Hosting) {
		for k := 0; k < 40; k++ {
			w.hosting = append(w.hosting, randomAddrIn(hr, a.V4[hr.IntN(len(a.V4))]))
		}
	}
	w.hosting = uniqueAddrs(w.hosting)
}

type asnRange struct {
	first, last netip.Addr
	asn         int
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().AsSlice()
	bits := p.Bits()
	for i := range a {
		for b := 0; b < 8; b++ {
			if i*8+b >= bits {
				a[i] |= 0x80 >> b
			}
		}
	}
	out, _ := netip.AddrFromSlice(a)
	return out
}

// randomAddrIn picks a host address inside p, avoiding the network and broadcast ends.
func randomAddrIn(r *rand.Rand, p netip.Prefix) netip.Addr {
	base := p.Masked().Addr().AsSlice()
	hostBits := len(base)*8 - p.Bits()
	if hostBits > 24 {
		hostBits = 24
	}
	n := 1 + r.Uint64N(1<<hostBits-2)
	for i := len(base) - 1; i >= 0 && n > 0; i-- {
		base[i] |= byte(n)
		n >>= 8
	}
	out, _ := netip.AddrFromSlice(base)
	return out
}

func uniqueAddrs(in []netip.Addr) []netip.Addr {
	seen := map[netip.Addr]bool{}
	out := in[:0]
	for _, a := range in {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

func (w *World) genNetworks() {
	res := w.ASNsOfKind(Residential)
	for i, spec := range []struct {
		name       string
		size, asns int
	}{{"botnet-alpha", 600, 40}, {"botnet-bravo", 350, 25}, {"botnet-charlie", 200, 15}} {
		r := w.Rand("network/" + spec.name)
		perm := r.Perm(len(res))[:spec.asns]
		sort.Ints(perm)
		n := FluxNetwork{Name: spec.name}
		for len(n.Pool) < spec.size {
			a := res[perm[r.IntN(len(perm))]]
			n.Pool = append(n.Pool, randomAddrIn(r, a.V4[r.IntN(len(a.V4))]))
			n.Pool = uniqueAddrs(n.Pool)
		}
		for _, p := range perm {
			n.ASNs = append(n.ASNs, res[p].Number)
		}
		_ = i
		w.Networks = append(w.Networks, n)
	}
}

var tlds = []string{"com", "net", "ru", "info", "biz", "xyz", "top", "cn", "org", "su"}

var syllables = []string{"ka", "zo", "mi", "tre", "lux", "pha", "rma", "qui", "vex", "dor", "bel", "sta", "ne", "ro", "xy", "lo", "pin", "gra", "mo", "tek"}

func (w *World) name(r *rand.Rand, parts int, tld string) string {
	for {
		s := ""
		for i := 0; i < parts; i++ {
			s += syllables[r.IntN(len(syllables))]
		}
		if r.IntN(3) == 0 {
			s += fmt.Sprint(r.IntN(100))
		}
		n := s + "." + tld
		if _, taken := w.byName[n]; !taken {
			return n
		}
	}
}

func (w *World) add(d *Domain) {
	w.Domains = append(w.Domains, d)
	w.byName[d.Name] = d
}

// pick returns n distinct addresses from pool.
func pick(r *rand.Rand, pool []netip.Addr, n int) []netip.Addr {
	idx := r.Perm(len(pool))[:min(n, len(pool))]
	out := make([]netip.Addr, len(idx))
	for i, k := range idx {
		out[i] = pool[k]
	}
	return out
}

func (w *World) genDomains() {
	r := w.Rand("domains")
	hosting := w.HostingAddrs()
	day := 24 * time.Hour

	// Fast-flux domains: each network's domains share its bot pool.
	for ni, n := range w.Networks {
		singles, doubles := []int{8, 6, 4}[ni], []int{3, 2, 1}[ni]
		for k := 0; k < singles+doubles; k++ {
			d := &Domain{
				Name:    w.name(r, 2+r.IntN(2), tlds[r.IntN(len(tlds))]),
				Class:   SingleFlux,
				Network: n.Name,
				TTL:     uint32(60 + 30*r.IntN(9)), // 60..300 s
				NSTTL:   3600,
				Answer:  5 + r.IntN(6),
				Pool:    pick(r, n.Pool, 150+r.IntN(len(n.Pool)-150)),
				NSCount: 2,
			}
			if k >= singles {
				d.Class = DoubleFlux
				d.NSTTL = d.TTL
				d.NSCount = 2 + r.IntN(3)
				for j := 0; j < 12; j++ {
					d.NSNames = append(d.NSNames, fmt.Sprintf("ns%d.%s", j+1, d.Name))
				}
				d.NSPool = pick(r, n.Pool, 60)
			} else {
				d.NSNames = []string{"ns1." + d.Name, "ns2." + d.Name}
				d.NSPool = pick(r, hosting, 2)
			}
			w.add(d)
		}
	}
	// Three flux domains are taken down on known lab days.
	for i, d := range w.DomainsOf(SingleFlux)[:3] {
		d.TakedownAt = w.Start.Add(time.Duration(2+i*2)*day + 6*time.Hour)
		d.ServfailAt = d.TakedownAt.Add(2 * day)
	}

	// CDN-like domains, including popular names that careless lists include.
	cdns := w.ASNsOfKind(CDN)
	cdnPools := map[string][]netip.Addr{}
	for _, a := range cdns {
		key := a.Name[:9] // LAB-CDN-A / LAB-CDN-B: provider B has two ASNs
		cr := w.Rand("cdn/" + a.Name)
		for k := 0; k < 80; k++ {
			cdnPools[key] = append(cdnPools[key], randomAddrIn(cr, a.V4[cr.IntN(len(a.V4))]))
		}
	}
	popular := []string{"google.com", "microsoft.com", "apple.com", "amazon.com", "wikipedia.org", "cloudflare.com", "akamaized.net", "office.com"}
	for i, name := range popular {
		provider := []string{"LAB-CDN-A", "LAB-CDN-B"}[i%2]
		w.add(&Domain{Name: name, Class: CDNDomain, Network: provider, TTL: uint32(20 + 10*r.IntN(5)), NSTTL: 86400,
			Answer: 2 + r.IntN(7), Pool: pick(r, uniqueAddrs(cdnPools[provider]), 40+r.IntN(40)), Popular: true,
			NSNames: []string{"ns1." + name, "ns2." + name}, NSPool: pick(r, cdnPools[provider], 2), NSCount: 2})
	}
	for i := 0; i < 4; i++ {
		provider := []string{"LAB-CDN-A", "LAB-CDN-B"}[i%2]
		name := "static." + w.name(r, 2, "net")
		answer := 4 + r.IntN(5)
		if i == 0 {
			answer = 40 // a large RRset: over 512 bytes, so plain UDP answers truncate
		}
		w.add(&Domain{Name: name, Class: CDNDomain, Network: provider, TTL: 30, NSTTL: 86400,
			Answer: answer, Pool: pick(r, uniqueAddrs(cdnPools[provider]), 60),
			NSNames: []string{"ns1." + name, "ns2." + name}, NSPool: pick(r, cdnPools[provider], 2), NSCount: 2})
	}

	// Ordinary sites: round-robin and static.
	for i := 0; i < 12; i++ {
		d := &Domain{Name: w.name(r, 2, []string{"com", "org", "net", "de"}[i%4]), NSTTL: 86400, NSCount: 2}
		d.NSNames = []string{"ns1." + d.Name, "ns2." + d.Name}
		d.NSPool = pick(r, hosting, 2)
		if i%2 == 0 {
			d.Class, d.TTL, d.Answer = RoundRobin, uint32(300*(1+r.IntN(12))), 2+r.IntN(3)
			d.Pool = pick(r, hosting, d.Answer)
		} else {
			d.Class, d.TTL, d.Answer = Static, uint32(3600*(1+r.IntN(24))), 1
			d.Pool = pick(r, hosting, 1)
		}
		w.add(d)
	}
	// Malicious but not flux: phishing and malware download sites on hosting IPs.
	for i := 0; i < 10; i++ {
		d := &Domain{Name: w.name(r, 3, tlds[r.IntN(len(tlds))]), Class: Malicious, TTL: 3600, NSTTL: 86400, Answer: 1, NSCount: 2}
		d.Pool = pick(r, hosting, 1)
		d.NSNames = []string{"ns1." + d.Name, "ns2." + d.Name}
		d.NSPool = pick(r, hosting, 2)
		w.add(d)
	}
	// A lame delegation.
	lame := &Domain{Name: w.name(r, 2, "com"), Class: Lame, TTL: 3600, NSTTL: 86400, NSCount: 2}
	lame.NSNames = []string{"ns1." + lame.Name, "ns2." + lame.Name}
	lame.NSPool = pick(r, hosting, 2)
	w.add(lame)

	for _, d := range w.Domains {
		d.Wildcard = d.Class.IsFlux() || d.Class == Malicious || d.Class == CDNDomain
	}

	// Give every address pool some IPv6 for AAAA answers where it is realistic.
	for _, d := range w.Domains {
		if d.Class == CDNDomain || d.Class == RoundRobin || d.Class == SingleFlux && r.IntN(3) == 0 {
			for _, ip := range d.Pool[:min(len(d.Pool), 8)] {
				if a, ok := w.ASNOf(ip); ok {
					d.PoolV6 = append(d.PoolV6, v6For(a, ip))
				}
			}
		}
	}

	w.TrapMX = []TrapMX{
		{Name: "mx1.trap-one.org", Addr: hosting[0], Trap: "trap-one.org"},
		{Name: "mx.spamtrap-two.net", Addr: hosting[1], Trap: "spamtrap-two.net"},
	}
	// The agent's trap has a server of its own, outside every pool above, so none
	// of its addresses turns up as a site or a sender.
	ar := w.Rand("trap/agent")
	inUse := map[netip.Addr]bool{}
	for _, a := range hosting {
		inUse[a] = true
	}
	hostingASNs := w.ASNsOfKind(Hosting)
	for {
		a := hostingASNs[ar.IntN(len(hostingASNs))]
		if addr := randomAddrIn(ar, a.V4[ar.IntN(len(a.V4))]); !inUse[addr] {
			w.AgentTrapMX = TrapMX{Name: "mx.trap-three.org", Addr: addr, Trap: "trap-three.org"}
			break
		}
	}
}

// v6For maps an IPv4 host into its ASN's IPv6 /32, so v4 and v6 answers agree on ASN.
func v6For(a ASN, ip netip.Addr) netip.Addr {
	b := a.V6[0].Addr().As16()
	v4 := ip.As4()
	copy(b[12:], v4[:])
	return netip.AddrFrom16(b)
}

// Status is how a domain answers at a lab time.
type Status int

const (
	Active   Status = iota
	NXDomain        // taken down: the name no longer exists
	ServFail        // the zone is gone from its servers
	Refused         // lame: the server is not authoritative
)

func (s Status) String() string {
	return [...]string{"active", "nxdomain", "servfail", "refused"}[s]
}

// StatusAt says how the domain answers at lab time t.
func (d *Domain) StatusAt(t time.Time) Status {
	switch {
	case d.Class == Lame:
		return Refused
	case !d.ServfailAt.IsZero() && !t.Before(d.ServfailAt):
		return ServFail
	case !d.TakedownAt.IsZero() && !t.Before(d.TakedownAt):
		return NXDomain
	}
	return Active
}

// epoch numbers the TTL periods since the lab epoch; answers change between epochs.
func (w *World) epoch(t time.Time, ttl uint32) uint64 {
	if ttl == 0 {
		ttl = 1
	}
	return uint64(max(0, t.Sub(w.Start)) / (time.Duration(ttl) * time.Second))
}

// choose picks n items of pool for one epoch: the same (domain, purpose, epoch)
// always yields the same answer, and rotating classes change every epoch.
func (w *World) choose(d *Domain, purpose string, epoch uint64, pool []netip.Addr, n int) []netip.Addr {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%s/%d", d.Name, purpose, epoch)
	r := rand.New(rand.NewPCG(w.Seed, h.Sum64()))
	return pick(r, pool, n)
}

// rotates reports whether the class changes its answer every TTL.
func (d *Domain) rotates() bool { return d.Class.IsFlux() || d.Class == CDNDomain }

// A returns the A records the domain's servers give at lab time t, with their TTL.
// Nothing is returned unless the status at t is Active.
func (w *World) A(d *Domain, t time.Time) ([]netip.Addr, uint32) {
	if d.StatusAt(t) != Active || len(d.Pool) == 0 {
		return nil, 0
	}
	if !d.rotates() {
		out := slices.Clone(d.Pool[:min(d.Answer, len(d.Pool))])
		if d.Class == RoundRobin { // same set, rotated order
			k := int(w.epoch(t, d.TTL) % uint64(len(out)))
			out = append(out[k:], out[:k]...)
		}
		return out, d.TTL
	}
	return w.choose(d, "a", w.epoch(t, d.TTL), d.Pool, d.Answer), d.TTL
}

// AAAA returns the AAAA records at lab time t.
func (w *World) AAAA(d *Domain, t time.Time) ([]netip.Addr, uint32) {
	if d.StatusAt(t) != Active || len(d.PoolV6) == 0 {
		return nil, 0
	}
	if !d.rotates() {
		return slices.Clone(d.PoolV6[:min(d.Answer, len(d.PoolV6))]), d.TTL
	}
	return w.choose(d, "aaaa", w.epoch(t, d.TTL), d.PoolV6, min(d.Answer, 4)), d.TTL
}

// HostExists reports whether name (lower case, no trailing dot), a name strictly
// below zone d that is not one of its name servers, exists: www always does, any
// other name only in wildcard zones.
func (w *World) HostExists(d *Domain, name string) bool {
	if !strings.HasSuffix(name, "."+d.Name) {
		return false
	}
	return d.Wildcard || name == "www."+d.Name
}

// NSHost is a name server record with its address.
type NSHost struct {
	Name string
	Addr netip.Addr
}

// NS returns the name servers (with addresses) at lab time t. Double-flux domains
// rotate both the names and their addresses every NS TTL.
func (w *World) NS(d *Domain, t time.Time) ([]NSHost, uint32) {
	if st := d.StatusAt(t); st == ServFail || st == NXDomain {
		return nil, 0
	}
	if d.Class != DoubleFlux {
		out := make([]NSHost, 0, len(d.NSNames))
		for i, n := range d.NSNames {
			out = append(out, NSHost{Name: n, Addr: d.NSPool[i%len(d.NSPool)]})
		}
		return out, d.NSTTL
	}
	ep := w.epoch(t, d.NSTTL)
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/ns/%d", d.Name, ep)
	r := rand.New(rand.NewPCG(w.Seed, h.Sum64()))
	names := slices.Clone(d.NSNames)
	r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	names = names[:d.NSCount]
	sort.Strings(names)
	addrs := w.choose(d, "ns-addr", ep, d.NSPool, d.NSCount)
	out := make([]NSHost, d.NSCount)
	for i := range names {
		out[i] = NSHost{Name: names[i], Addr: addrs[i]}
	}
	return out, d.NSTTL
}

// NSHostAddr answers an A query for a name server host of d at lab time t.
func (w *World) NSHostAddr(d *Domain, host string, t time.Time) (netip.Addr, bool) {
	hosts, _ := w.NS(d, t)
	for _, h := range hosts {
		if h.Name == host {
			return h.Addr, true
		}
	}
	if d.Class == DoubleFlux && slices.Contains(d.NSNames, host) && d.StatusAt(t) == Active {
		// A host not in the current NS set still resolves, to an address of this epoch.
		ep := w.epoch(t, d.NSTTL)
		return w.choose(d, "ns-host/"+host, ep, d.NSPool, 1)[0], true
	}
	if i := slices.Index(d.NSNames, host); i >= 0 && d.StatusAt(t) == Active {
		return d.NSPool[i%len(d.NSPool)], true
	}
	return netip.Addr{}, false
}

// ASNTable lists every announced prefix as an iptoasn row, sorted, so the lab can
// publish the IP-to-ASN table in the real public format.
func (w *World) ASNTable() []ipasn.Range {
	out := make([]ipasn.Range, 0, len(w.ranges))
	for _, r := range w.ranges {
		a := w.ASNs[r.asn]
		out = append(out, ipasn.Range{First: r.first, Last: r.last,
			AS: ipasn.AS{Number: uint32(a.Number), Country: a.Country, Description: a.Name}})
	}
	return out
}
