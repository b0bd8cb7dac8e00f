package feeds

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tip-project/tip/lab/world"
)

const day = 24 * time.Hour

// The lab generates indicators whose bad-from times fall in this span around the
// lab epoch: feeds are already populated at the epoch and keep changing for months.
const (
	horizonBefore = 60 * day
	horizonAfter  = 300 * day
)

// Indicator sets: the lab populations that feeds draw from. An entry's Set in the
// truth names one of these.
const (
	setC2        = "c2"                // botnet C2 servers on hosting addresses
	setC2Cert    = "c2-cert"           // SHA-1 of the C2 servers' TLS certificates
	setScanner   = "scanner"           // brute-forcers and scanners: bots and residential hosts
	setNetblock  = "scanner-netblock"  // the /24s around some scanners
	setHijacked  = "hijacked-netblock" // DROP: hijacked or bulletproof netblocks
	setHijacked6 = "hijacked-netblock-v6"
	setBadASN    = "asn"            // ASN-DROP
	setMalDomain = "malware-domain" // lab domains of class malicious and single/double flux
	setMalHost   = "malware-host"   // www. names of some of those domains
	setMalURL    = "malware-url"    // URLhaus
	setPhish     = "phish"          // phishing URLs
	// False positives: never bad, listed by mistake.
	setPopularURL    = "fp-popular-url"    // URLs on popular benign domains
	setPopularDomain = "fp-popular-domain" // popular benign domains
	setCDNAddr       = "fp-cdn-addr"       // CDN edge addresses of popular domains
	setReservedAddr  = "fp-reserved-addr"  // private and shared addresses
	setBogon         = "fp-bogon"          // reserved ranges (fullbogons)
)

// indicator is one listed thing of the lab with the time it turned bad. One struct
// holds what every format needs; a field not used by an indicator's set is zero.
type indicator struct {
	set   string
	typ   IndicatorType
	value string
	// at is when the indicator turned bad, or for a false positive when the
	// mistaken report happened. Feeds list it a feed-specific delay later.
	at time.Time
	// offline is when the thing stopped working (C2 down, URL dead, domain taken
	// down); zero means never within the horizon.
	offline time.Time
	// fp says why the entry is a false positive; empty for true indicators.
	fp string

	addr     netip.Addr
	prefix   netip.Prefix
	asn      world.ASN
	bot      bool   // scanner: a member of a lab botnet
	service  string // scanner: what it attacks (ssh, mail, ...)
	port     int    // C2 port
	malware  string // C2 family, certificate listing reason
	hostname string // C2 reverse name (may be empty)
	sbl      string // DROP: SBL id
	id       int    // URLhaus / PhishTank id
	tags     string // URLhaus tags, comma-joined
	reporter string // URLhaus reporter
	target   string // PhishTank target brand
	attacks  int    // DShield: targets reporting scans
	email    string // DShield contact; may be empty
	netName  string // DShield network name; may be empty
	country  string // DShield/ASN-DROP country; may be empty
}

// population holds every indicator of the lab by set, each set in a fixed order.
type population map[string][]*indicator

// generator builds the population from the world; used tracks values so that every
// value belongs to exactly one indicator.
type generator struct {
	w        *world.World
	from, to time.Time
	used     map[string]bool
	pop      population
}

func generate(w *world.World) population {
	g := &generator{
		w: w, from: w.Start.Add(-horizonBefore), to: w.Start.Add(horizonAfter),
		used: map[string]bool{}, pop: population{},
	}
	g.c2()
	g.scanners()
	g.netblocks()
	g.hijacked()
	g.hijacked6()
	g.badASNs()
	g.malware()
	g.phish()
	g.falsePositives()
	return g.pop
}

func (g *generator) add(i *indicator) bool {
	if g.used[i.value] {
		return false
	}
	g.used[i.value] = true
	g.pop[i.set] = append(g.pop[i.set], i)
	return true
}

// randTime is a whole minute in [from, to).
func randTime(r *rand.Rand, from, to time.Time) time.Time {
	mins := int64(to.Sub(from) / time.Minute)
	if mins <= 0 {
		return from.Truncate(time.Minute)
	}
	return from.Truncate(time.Minute).Add(time.Duration(r.Int64N(mins)) * time.Minute)
}

// randSpan is a whole number of minutes in [lo, hi].
func randSpan(r *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(r.Int64N(int64((hi-lo)/time.Minute)+1))*time.Minute
}

// hostIn picks a host address inside p, avoiding the network and broadcast ends.
func hostIn(r *rand.Rand, p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	hostBits := len(b)*8 - p.Bits()
	if hostBits > 62 {
		hostBits = 62
	}
	n := 1 + r.Uint64N(uint64(1)<<hostBits-2)
	for i := len(b) - 1; i >= 0 && n > 0; i-- {
		b[i] |= byte(n)
		n >>= 8
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// slug turns an ASN name into a DNS label: "LAB-HOST-03 Cloud Ltd" -> "lab-host-03".
func slug(name string) string {
	f := strings.Fields(strings.ToLower(name))
	if len(f) == 0 {
		return "lab"
	}
	return f[0]
}

// rir is the registry of a country, as the Spamhaus JSON files name it.
func rir(country string) string {
	switch country {
	case "US":
		return "arin"
	case "BR", "AR":
		return "lacnic"
	case "CN", "IN", "VN", "KR", "JP", "ID":
		return "apnic"
	}
	return "ripencc"
}

var c2Families = []string{"QakBot", "Emotet", "Dridex", "TrickBot", "IcedID", "BumbleBee", "Pikabot", "BazarLoader"}
var c2Ports = []int{443, 443, 443, 8080, 447, 449, 2222, 995, 4443, 7080, 8443}

// c2 picks botnet C2 servers among the hosting addresses that no lab domain, name
// server or spamtrap uses, spread over the horizon; some carry a TLS certificate
// that SSLBL lists.
func (g *generator) c2() {
	taken := map[netip.Addr]bool{}
	for _, mx := range g.w.TrapMX {
		taken[mx.Addr] = true
	}
	for _, d := range g.w.Domains {
		for _, a := range append(slices.Clone(d.Pool), d.NSPool...) {
			taken[a] = true
		}
	}
	var pool []netip.Addr
	for _, a := range g.w.HostingAddrs() {
		if !taken[a] {
			pool = append(pool, a)
		}
	}
	r := g.w.Rand("feeds/c2")
	r.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	pool = pool[:min(len(pool), 600)]
	for _, a := range pool {
		asn, _ := g.w.ASNOf(a)
		at := randTime(r, g.from, g.to)
		i := &indicator{set: setC2, typ: IPv4, value: a.String(), addr: a, asn: asn, at: at,
			offline: at.Add(randSpan(r, 2*day, 25*day)),
			port:    c2Ports[r.IntN(len(c2Ports))], malware: c2Families[r.IntN(len(c2Families))]}
		if r.IntN(10) < 3 {
			b := a.As4()
			i.hostname = fmt.Sprintf("vps-%d-%d.%s.net", b[2], b[3], slug(asn.Name))
		}
		g.add(i)
		if r.IntN(10) < 4 {
			sum := sha1.Sum(fmt.Appendf(nil, "lab-cert/%d/%s", g.w.Seed, a))
			g.add(&indicator{set: setC2Cert, typ: SHA1, value: hex.EncodeToString(sum[:]), at: at,
				offline: i.offline, malware: i.malware + " C&C", addr: a})
		}
	}
}

var services = []string{"ssh", "ssh", "ssh", "mail", "apache", "imap", "ftp", "sip", "bruteforcelogin"}

// scanners are the attackers blocklist.de, CINS and DShield see: most bots of the
// lab's botnets plus other residential hosts, a tenth of them over IPv6.
func (g *generator) scanners() {
	r := g.w.Rand("feeds/scanners")
	var bots []netip.Addr
	for _, n := range g.w.Networks {
		bots = append(bots, n.Pool...)
	}
	r.Shuffle(len(bots), func(i, j int) { bots[i], bots[j] = bots[j], bots[i] })
	bots = bots[:len(bots)*7/10]
	res := g.w.ASNsOfKind(world.Residential)
	total := int((g.to.Sub(g.from))/day) * 30
	for k := 0; k < total; k++ {
		i := &indicator{set: setScanner, typ: IPv4, at: randTime(r, g.from, g.to), service: services[r.IntN(len(services))]}
		switch {
		case k < len(bots):
			i.addr, i.bot = bots[k], true
		case r.IntN(10) == 0:
			a := res[r.IntN(len(res))]
			i.typ, i.addr = IPv6, hostIn(r, netip.PrefixFrom(a.V6[0].Addr(), 64))
		default:
			a := res[r.IntN(len(res))]
			i.addr = hostIn(r, a.V4[r.IntN(len(a.V4))])
		}
		i.value = i.addr.String()
		i.asn, _ = g.w.ASNOf(i.addr)
		g.add(i)
	}
}

// netblocks are the /24s around some IPv4 scanners, as DShield reports them.
func (g *generator) netblocks() {
	for _, s := range g.pop[setScanner] {
		r := g.w.Rand("feeds/netblock/" + s.value)
		if s.typ != IPv4 || r.Float64() >= 0.12 {
			continue
		}
		p := netip.PrefixFrom(s.addr, 24).Masked()
		i := &indicator{set: setNetblock, typ: CIDR, value: p.String(), prefix: p, at: s.at, asn: s.asn,
			attacks: 150 + r.IntN(9000), netName: s.asn.Name, country: s.asn.Country,
			email: "abuse@" + slug(s.asn.Name) + ".net"}
		switch r.IntN(10) {
		case 0: // a network DShield knows nothing about
			i.netName, i.country, i.email = "", "", ""
		case 1, 2:
			i.email = ""
		}
		g.add(i)
	}
}

// hijacked carves DROP netblocks out of hosting and residential ASNs, keeping clear
// of C2 servers and scanners so every FireHOL line stands for one indicator.
func (g *generator) hijacked() {
	r := g.w.Rand("feeds/drop")
	asns := append(g.w.ASNsOfKind(world.Hosting), g.w.ASNsOfKind(world.Residential)...)
	var got []netip.Prefix
	taken := g.listedAddrs()
	n := 40 + int(horizonAfter/(3*day))
	for k := 0; len(got) < n && k < 50*n; k++ {
		a := asns[r.IntN(len(asns))]
		parent := a.V4[r.IntN(len(a.V4))]
		bits := 20 + r.IntN(5)
		base := hostIn(r, parent)
		p := netip.PrefixFrom(base, bits).Masked()
		if clashes(p, got, taken) {
			continue
		}
		at := randTime(r, g.w.Start, g.to)
		if len(got) < 40 { // DROP is never empty: most entries predate the epoch
			at = randTime(r, g.from, g.w.Start)
		}
		got = append(got, p)
		g.add(&indicator{set: setHijacked, typ: CIDR, value: p.String(), prefix: p, asn: a, at: at})
	}
	assignSBL(r, g.pop[setHijacked], 620000)
}

// clashes reports whether p overlaps a netblock already taken or holds an address
// of taken (sorted).
func clashes(p netip.Prefix, got []netip.Prefix, taken []netip.Addr) bool {
	for _, q := range got {
		if q.Overlaps(p) {
			return true
		}
	}
	k, _ := slices.BinarySearchFunc(taken, p.Masked().Addr(), netip.Addr.Compare)
	return k < len(taken) && p.Contains(taken[k])
}

// listedAddrs are the C2 and scanner addresses, sorted.
func (g *generator) listedAddrs() []netip.Addr {
	var out []netip.Addr
	for _, set := range []string{setC2, setScanner} {
		for _, i := range g.pop[set] {
			out = append(out, i.addr)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func (g *generator) hijacked6() {
	r := g.w.Rand("feeds/dropv6")
	var asns []world.ASN // as for IPv4: never a CDN's space
	for _, a := range g.w.ASNs {
		if a.Kind != world.CDN {
			asns = append(asns, a)
		}
	}
	var got []netip.Prefix
	taken := g.listedAddrs()
	for k := 0; len(got) < 16 && k < 1000; k++ {
		a := asns[r.IntN(len(asns))]
		bits := []int{36, 40, 44, 48}[r.IntN(4)]
		p := netip.PrefixFrom(hostIn(r, a.V6[0]), bits).Masked()
		if clashes(p, got, taken) {
			continue
		}
		got = append(got, p)
		at := randTime(r, g.w.Start, g.to)
		if k%2 == 0 {
			at = randTime(r, g.from, g.w.Start)
		}
		g.add(&indicator{set: setHijacked6, typ: CIDR, value: p.String(), prefix: p, asn: a, at: at})
	}
	assignSBL(r, g.pop[setHijacked6], 640000)
}

// assignSBL numbers SBL records in listing order, as Spamhaus does.
func assignSBL(r *rand.Rand, ins []*indicator, next int) {
	byAt := slices.Clone(ins)
	sort.SliceStable(byAt, func(i, j int) bool { return byAt[i].at.Before(byAt[j].at) })
	for _, i := range byAt {
		next += 1 + r.IntN(400)
		i.sbl = fmt.Sprintf("SBL%d", next)
	}
}

// badASNs puts five ASNs on ASN-DROP: four long before the epoch, one a few lab
// days after it. One has no country, as real records sometimes do.
func (g *generator) badASNs() {
	r := g.w.Rand("feeds/asndrop")
	host, res := g.w.ASNsOfKind(world.Hosting), g.w.ASNsOfKind(world.Residential)
	var picked []world.ASN
	for _, k := range r.Perm(len(host))[:3] {
		picked = append(picked, host[k])
	}
	for _, k := range r.Perm(len(res))[:2] {
		picked = append(picked, res[k])
	}
	for k, a := range picked {
		at := randTime(r, g.from, g.w.Start.Add(-day))
		if k == len(picked)-1 {
			at = randTime(r, g.w.Start.Add(2*day), g.w.Start.Add(6*day))
		}
		cc := a.Country
		if k == 1 {
			cc = ""
		}
		g.add(&indicator{set: setBadASN, typ: ASN, value: fmt.Sprintf("AS%d", a.Number), asn: a, at: at, country: cc})
	}
}

var reporters = []string{"anonymous", "lab_honeypot", "lab_sandbox", "geenensp_lab", "abuse_lab"}

// malware builds the malware domains (flux and malicious lab domains) and the
// malware download URLs on them, plus Mozi-style URLs on bots.
func (g *generator) malware() {
	r := g.w.Rand("feeds/malware")
	var urls []*indicator
	for _, d := range g.w.DomainsOf(world.SingleFlux, world.DoubleFlux, world.Malicious) {
		end := g.w.Start.Add(60 * day)
		if !d.TakedownAt.IsZero() {
			end = d.TakedownAt
		}
		latest := g.w.Start.Add(10 * day)
		if end.Add(-day).Before(latest) {
			latest = end.Add(-day)
		}
		at := randTime(r, g.w.Start.Add(-30*day), latest)
		dom := &indicator{set: setMalDomain, typ: Domain, value: d.Name, at: at, offline: d.TakedownAt}
		g.add(dom)
		if r.IntN(3) == 0 {
			g.add(&indicator{set: setMalHost, typ: Domain, value: "www." + d.Name, at: at, offline: d.TakedownAt})
		}
		for n := 3 + r.IntN(6); n > 0; n-- {
			u := &indicator{set: setMalURL, typ: URL, at: randTime(r, at, end), reporter: reporters[r.IntN(len(reporters))]}
			file, tags := malwareFile(r)
			u.value, u.tags = "http://"+d.Name+file, tags
			u.offline = u.at.Add(randSpan(r, day, 20*day))
			if !d.TakedownAt.IsZero() && u.offline.After(d.TakedownAt) {
				u.offline = d.TakedownAt
			}
			if g.add(u) {
				urls = append(urls, u)
			}
		}
	}
	var bots []netip.Addr
	for _, n := range g.w.Networks {
		bots = append(bots, n.Pool...)
	}
	total := int((g.to.Sub(g.from))/day) * 8
	for k := 0; k < total; k++ {
		a := bots[r.IntN(len(bots))]
		path := []string{"/i", "/Mozi.m", "/Mozi.a", "/bin.sh"}[r.IntN(4)]
		tags := []string{"32-bit,elf,mips,Mozi", "elf,Mozi", "32-bit,arm,elf,Mozi", "None"}[r.IntN(4)]
		u := &indicator{set: setMalURL, typ: URL, value: fmt.Sprintf("http://%s:%d%s", a, 1024+r.IntN(60000), path),
			at: randTime(r, g.from, g.to), tags: tags, reporter: reporters[r.IntN(len(reporters))], addr: a}
		u.offline = u.at.Add(randSpan(r, 6*time.Hour, 5*day))
		if g.add(u) {
			urls = append(urls, u)
		}
	}
	sort.SliceStable(urls, func(i, j int) bool { return urls[i].at.Before(urls[j].at) })
	for k, u := range urls {
		u.id = 3000000 + k
	}
}

func malwareFile(r *rand.Rand) (path, tags string) {
	word := []string{"invoice", "update", "payment", "scan", "document", "setup", "order"}[r.IntN(7)]
	tok := fmt.Sprintf("%06x", r.IntN(1<<24))
	switch r.IntN(6) {
	case 0:
		return "/bins/" + tok + ".x86", "elf,Mirai"
	case 1:
		return fmt.Sprintf("/wp-content/uploads/2026/%02d/%s_%s.exe", 1+r.IntN(12), word, tok), "exe,AgentTesla"
	case 2:
		return "/download/" + word + "_" + tok + ".zip", "zip,QakBot"
	case 3:
		return "/files/" + tok + ".dll", "dll,IcedID"
	case 4:
		return "/app/" + word + "-" + tok + ".apk", "apk,SpyNote"
	}
	return "/update/" + tok + ".bin", "None"
}

var brands = []string{"PayPal", "Microsoft", "Apple", "Amazon.com", "Facebook", "Netflix", "DHL", "Other", "Other"}

// phish builds phishing URLs: on malicious lab domains, on compromised ordinary
// sites and on bare hosting addresses; some carry commas in their query.
func (g *generator) phish() {
	r := g.w.Rand("feeds/phish")
	mal := g.w.DomainsOf(world.Malicious)
	sites := g.w.DomainsOf(world.Static, world.RoundRobin)
	hosting := g.w.HostingAddrs()
	var all []*indicator
	total := int((g.to.Sub(g.from))/day) * 6
	for k := 0; k < total; k++ {
		brand := brands[r.IntN(len(brands))]
		b := strings.ToLower(strings.TrimSuffix(brand, ".com"))
		tok := fmt.Sprintf("%08x", r.Uint32())
		var u string
		switch n := r.IntN(10); {
		case n < 4:
			u = fmt.Sprintf("http://%s/%s/login/%s/index.php", mal[r.IntN(len(mal))].Name, b, tok)
		case n < 7:
			u = fmt.Sprintf("https://%s/wp-includes/js/%s/%s/signin.html", sites[r.IntN(len(sites))].Name, tok, b)
		default:
			u = fmt.Sprintf("http://%s/%s/%s.com/verify.php", hosting[r.IntN(len(hosting))], tok, b)
		}
		if r.IntN(8) == 0 {
			u += fmt.Sprintf("?session=%04x,%04x&lang=en", r.IntN(1<<16), r.IntN(1<<16))
		}
		i := &indicator{set: setPhish, typ: URL, value: u, at: randTime(r, g.from, g.to), target: brand}
		i.offline = i.at.Add(randSpan(r, 12*time.Hour, 10*day))
		if g.add(i) {
			all = append(all, i)
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].at.Before(all[j].at) })
	next := 8800000
	for _, i := range all {
		next += 1 + r.IntN(3)
		i.id = next
	}
}

// Bogons is what FireHOL level1 carries from fullbogons in the lab.
var bogons = []string{"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
	"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
	"198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/3"}

// falsePositives are the mistakes feeds make, at fixed lab times around the epoch
// so a few days of lab time show them appearing.
func (g *generator) falsePositives() {
	r := g.w.Rand("feeds/false-positives")
	var popular []*world.Domain
	for _, d := range g.w.Domains {
		if d.Popular {
			popular = append(popular, d)
		}
	}
	r.Shuffle(len(popular), func(i, j int) { popular[i], popular[j] = popular[j], popular[i] })
	start := g.w.Start
	minute := func() time.Duration { return time.Duration(r.IntN(600)) * time.Minute }

	paths := []string{"/login", "/account/verify", "/signin?continue=mail"}
	for k, d := range popular[:3] {
		g.add(&indicator{set: setPopularURL, typ: URL, value: "https://" + d.Name + paths[k],
			at: start.Add(time.Duration(2*k-1)*day + minute()), target: "Other",
			fp: "URL on the popular benign domain " + d.Name + " (a legitimate page reported as phishing)"})
	}
	for k, d := range popular[3:5] {
		g.add(&indicator{set: setPopularDomain, typ: Domain, value: d.Name,
			at: start.Add(time.Duration(5*k-3)*day + minute()),
			fp: "popular benign domain " + d.Name + " (CDN-served, listed wholesale)"})
	}
	var cdn []*world.Domain
	for _, d := range g.w.DomainsOf(world.CDNDomain) {
		if d.Popular {
			cdn = append(cdn, d)
		}
	}
	for k := 0; k < 3; {
		d := cdn[r.IntN(len(cdn))]
		a := d.Pool[r.IntN(len(d.Pool))]
		if g.add(&indicator{set: setCDNAddr, typ: IPv4, value: a.String(), addr: a,
			at: start.Add(time.Duration(3*k-2)*day + minute()),
			fp: fmt.Sprintf("CDN edge address serving %s (%s): blocking it blocks benign traffic", d.Name, d.Network)}) {
			k++
		}
	}
	priv := netip.AddrFrom4([4]byte{192, 168, byte(r.IntN(256)), byte(1 + r.IntN(254))})
	shared := netip.AddrFrom4([4]byte{100, byte(64 + r.IntN(64)), byte(r.IntN(256)), byte(1 + r.IntN(254))})
	g.add(&indicator{set: setReservedAddr, typ: IPv4, value: priv.String(), addr: priv, at: start.Add(-day + minute()),
		fp: "private address (RFC 1918): never a real attacker"})
	g.add(&indicator{set: setReservedAddr, typ: IPv4, value: shared.String(), addr: shared, at: start.Add(2*day + minute()),
		fp: "shared address space (RFC 6598, carrier-grade NAT): never a real attacker"})
	for _, b := range bogons {
		p := netip.MustParsePrefix(b)
		g.add(&indicator{set: setBogon, typ: CIDR, value: b, prefix: p, at: g.from,
			fp: "bogon: reserved or unallocated address space, not a threat"})
	}
}
