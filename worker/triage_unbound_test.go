package worker_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/activities"
	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/ipasn"
	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/worker"
	"github.com/tip-project/tip/workflows"
	"github.com/tip-project/tip/workflows/contract"
)

// Triage on the real workflow and worker, its DNS through a real caching
// resolver (Unbound) that forwards to an authoritative server of the test's
// own, whose answers change only when their TTLs run out: with the default
// settings (the maximum wait included) every flux and double-flux name is
// found, the small flux name on its third resolution, and no CDN, round-robin
// or static name is flagged. Resolved twice at once, through the same cache, no
// name looks like flux: the waits make the difference.
func TestTriageBehindACachingResolver(t *testing.T) {
	ctx := context.Background()
	cfg := testenv.Config(t)
	zone := newTTLZone()
	auth := serveZone(t, zone)
	cfg.Postgres.DSN = testenv.NewDatabase(t)
	cfg = testenv.NewBucket(t, cfg)
	cfg.Flux.Resolvers = startUnbound(t, auth)
	cfg.Flux.ASNTable = serveASNTable(t)
	cfg.Flux.ASNTableAllowPrivate = true

	// The control: two resolutions at once hit the cache and see one answer.
	res, err := worker.NewResolver(cfg.Flux, nil)
	if err != nil {
		t.Fatal(err)
	}
	dns := &activities.Resolution{Resolver: res, ASN: activities.NewASNTables(true, ipasn.Limits{}), ASNTable: cfg.Flux.ASNTable}
	names := zone.names()
	first, err := dns.Resolve(ctx, names)
	if err != nil {
		t.Fatal(err)
	}
	second, err := dns.Resolve(ctx, names)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range names {
		if !first[i].Answered() {
			t.Fatalf("%s through Unbound: %s %s", d, first[i].Status, first[i].Error)
		}
		if as := flux.Triage(first[i], second[i], nil, nil); as.Verdict.Fluxy() {
			t.Errorf("%s resolved twice at once: %s (%s); the cache should have answered the same", d, as.Verdict, as.Reason)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	stop := runWorker(t, cfg)
	defer stop()
	c, err := starter.Dial(ctx, cfg.Temporal, nil, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	db, err := storage.OpenDB(ctx, cfg.Postgres.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out contract.ModuleResult
	started := time.Now()
	execute(t, c, cfg.Temporal.TaskQueue, "flux-triage/"+t.Name(), workflows.FluxTriage,
		contract.ModuleInput{Module: contract.FluxTriageModule, Events: []contract.Event{{Kind: contract.EventDomainsDiscovered, Items: names, From: "spam-collect"}}}, &out)
	t.Logf("triage (max wait %s) took %s: %s", cfg.Flux.TriageWait, time.Since(started).Round(time.Second), out.Summary)
	if !strings.Contains(out.Summary, "resolved a third time") {
		t.Errorf("summary %q: the small flux name was not resolved a third time", out.Summary)
	}
	rows, err := db.FluxDomains(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]storage.FluxDomain{}
	for _, r := range rows {
		got[r.Domain] = r
	}
	for _, d := range names {
		r, ok := got[d]
		want := zone.want(d)
		switch {
		case !ok:
			t.Errorf("%s was not triaged", d)
		case want != "" && r.Verdict != want:
			t.Errorf("%s: %s (%s), want %s", d, r.Verdict, r.Reason, want)
		case want == "" && flux.Verdict(r.Verdict).Fluxy():
			t.Errorf("%s flagged %s (%s)", d, r.Verdict, r.Reason)
		}
	}
}

// startUnbound runs a real Unbound that forwards test. to auth, caching by the
// answers' TTLs, and returns its address.
func startUnbound(t *testing.T, auth string) string {
	t.Helper()
	ahost, aport, _ := net.SplitHostPort(auth)
	addr, _ := testenv.StartUnbound(t, `	verbosity: 1
	module-config: "iterator"
	local-zone: "test." nodefault
	domain-insecure: "test."
	cache-min-ttl: 0
	prefetch: no
	serve-expired: no
`, fmt.Sprintf(`forward-zone:
	name: "test."
	forward-addr: %s@%s
	forward-no-cache: no
`, ahost, aport), func(addr string) bool {
		// Up once it answers for the test zone.
		m, _, err := (&dns.Client{Timeout: time.Second}).Exchange(new(dns.Msg).SetQuestion("test.", dns.TypeSOA), addr)
		return err == nil && m.Rcode == dns.RcodeSuccess
	})
	return addr
}

// The scenario's addresses: each bot in a /16 and an AS of its own, the CDN's
// edge servers in one /16 of one AS, the round-robin site's four servers in
// four ASes, the small flux network's six bots in four ASes sharing some.
func bot(i int) netip.Addr { return netip.AddrFrom4([4]byte{byte(20 + i/200), byte(i % 200), 0, 1}) }
func cdnEdge(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{30, 0, byte(i / 200), byte(1 + i%200)})
}
func rrServer(i int) netip.Addr { return netip.AddrFrom4([4]byte{40, byte(1 + i), 0, 1}) }
func smallBot(i int) netip.Addr { return netip.AddrFrom4([4]byte{60, byte(1 + i), 0, 1}) }

// smallBotAS is the AS of each small-flux bot: two answers of two bots span
// three ASes (one short of flux.MinRotationASNs), the third brings a fourth.
var smallBotAS = []uint32{64601, 64602, 64601, 64603, 64604, 64602}

// serveASNTable serves the scenario's iptoasn table on loopback and returns its URL.
func serveASNTable(t *testing.T) string {
	t.Helper()
	var rows []ipasn.Range
	slash16 := func(a netip.Addr, as uint32) {
		b := a.As4()
		rows = append(rows, ipasn.Range{First: netip.AddrFrom4([4]byte{b[0], b[1], 0, 0}), Last: netip.AddrFrom4([4]byte{b[0], b[1], 255, 255}),
			AS: ipasn.AS{Number: as, Country: "ZZ", Description: fmt.Sprintf("AS%d", as)}})
	}
	for i := range 400 {
		slash16(bot(i), uint32(65000+i))
	}
	slash16(cdnEdge(0), 64500)
	for i := range 4 {
		slash16(rrServer(i), uint32(64700+i))
	}
	slash16(netip.MustParseAddr("50.0.0.1"), 64800)
	for i, as := range smallBotAS {
		slash16(smallBot(i), as)
	}
	slices.SortFunc(rows, func(a, b ipasn.Range) int { return a.First.Compare(b.First) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { ipasn.Write(w, rows) }))
	t.Cleanup(srv.Close)
	return srv.URL + "/ip2asn-combined.tsv"
}

// rotor numbers the sets a name answers with: the first asked gets set 0, and
// the set moves on only when asked after its TTL ran out.
type rotor struct {
	n     int
	until time.Time
}

func (r *rotor) set(now time.Time, ttl uint32) int {
	switch {
	case r.until.IsZero():
	case !now.Before(r.until):
		r.n++
	default:
		return r.n
	}
	r.until = now.Add(time.Duration(ttl) * time.Second)
	return r.n
}

// ttlName is one name of the zone: its n-th A set, its NS set (double flux
// only), and what triage must call it ("" for anything not fluxy).
type ttlName struct {
	want       flux.Verdict
	aTTL       uint32
	a          func(n int) []netip.Addr
	aaaa       []netip.Addr
	nsTTL      uint32
	ns         func(n int) []string // nil: the name is no zone apex
	roundRobin bool                 // the same set in turn, each answer starting one further
	aRot       rotor
	nsRot      rotor
	asked      int
}

// ttlZone is the test's authoritative zone test.: flux names rotating their
// A sets (and, for double flux, their NS sets) once per TTL, a CDN, a
// round-robin site and static names.
type ttlZone struct {
	mu     sync.Mutex
	byName map[string]*ttlName // FQDN, lower case
	hosts  map[string]netip.Addr
}

const zoneTTL = 5 // the apex's NS, SOA and name-server addresses

func newTTLZone() *ttlZone {
	z := &ttlZone{byName: map[string]*ttlName{}, hosts: map[string]netip.Addr{"ns.test.": netip.MustParseAddr("50.0.0.53")}}
	fluxSet := func(base, per int) func(int) []netip.Addr {
		return func(n int) []netip.Addr {
			var out []netip.Addr
			for i := range per {
				out = append(out, bot(base+(n*per+i)%50))
			}
			return out
		}
	}
	for i, ttl := range []uint32{3, 4, 5} {
		z.byName[fmt.Sprintf("flux%d.test.", i+1)] = &ttlName{want: flux.VerdictFlux, aTTL: ttl, a: fluxSet(50*i, 5)}
	}
	z.byName["small.test."] = &ttlName{want: flux.VerdictFlux, aTTL: 3, a: func(n int) []netip.Addr {
		return []netip.Addr{smallBot((2 * n) % 6), smallBot((2*n + 1) % 6)}
	}}
	for i := range 2 {
		name := fmt.Sprintf("dflux%d.test.", i+1)
		// Its name servers are bots too, two at a time, in its own zone; their NS
		// records live longer than any address record of the scenario, as most do.
		for k := range 20 {
			z.hosts[fmt.Sprintf("ns%d.%s", k, name)] = bot(300 + 20*i + k)
		}
		z.byName[name] = &ttlName{want: flux.VerdictDoubleFlux, aTTL: 3, a: fluxSet(150+50*i, 5), nsTTL: 8, ns: func(n int) []string {
			return []string{fmt.Sprintf("ns%d.%s", (2*n)%20, name), fmt.Sprintf("ns%d.%s", (2*n+1)%20, name)}
		}}
	}
	z.byName["cdn.test."] = &ttlName{aTTL: 3, a: func(n int) []netip.Addr {
		var out []netip.Addr
		for i := range 12 {
			out = append(out, cdnEdge((n*12+i)%400))
		}
		return out
	}}
	z.byName["rr.test."] = &ttlName{aTTL: 3, roundRobin: true, a: func(int) []netip.Addr {
		return []netip.Addr{rrServer(0), rrServer(1), rrServer(2), rrServer(3)}
	}}
	z.byName["static1.test."] = &ttlName{aTTL: 3, a: func(int) []netip.Addr { return []netip.Addr{netip.MustParseAddr("50.0.0.1")} }}
	z.byName["static2.test."] = &ttlName{aTTL: 5, a: func(int) []netip.Addr {
		return []netip.Addr{netip.MustParseAddr("50.0.0.2"), netip.MustParseAddr("50.0.0.3")}
	}, aaaa: []netip.Addr{netip.MustParseAddr("2001:db8::2")}}
	return z
}

// names are the zone's names to triage, sorted.
func (z *ttlZone) names() []string {
	var out []string
	for n := range z.byName {
		out = append(out, strings.TrimSuffix(n, "."))
	}
	slices.Sort(out)
	return out
}

func (z *ttlZone) want(domain string) string { return string(z.byName[domain+"."].want) }

func (z *ttlZone) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg).SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	now := time.Now()
	hdr := func(rrtype uint16, ttl uint32) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: ttl}
	}
	addr := func(ip netip.Addr, ttl uint32) dns.RR {
		if ip.Is4() {
			return &dns.A{Hdr: hdr(dns.TypeA, ttl), A: ip.AsSlice()}
		}
		return &dns.AAAA{Hdr: hdr(dns.TypeAAAA, ttl), AAAA: ip.AsSlice()}
	}
	soa := &dns.SOA{Hdr: dns.RR_Header{Name: "test.", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: zoneTTL},
		Ns: "ns.test.", Mbox: "hostmaster.test.", Serial: 1, Refresh: 60, Retry: 60, Expire: 600, Minttl: zoneTTL}

	z.mu.Lock()
	defer z.mu.Unlock()
	n, isName := z.byName[name]
	host, isHost := z.hosts[name]
	switch {
	case name == "test." && q.Qtype == dns.TypeSOA:
		m.Answer = append(m.Answer, soa)
	case name == "test." && q.Qtype == dns.TypeNS:
		m.Answer = append(m.Answer, &dns.NS{Hdr: hdr(dns.TypeNS, zoneTTL), Ns: "ns.test."})
	case isHost && q.Qtype == dns.TypeA:
		m.Answer = append(m.Answer, addr(host, zoneTTL))
	case isName && q.Qtype == dns.TypeA:
		set := n.a(n.aRot.set(now, n.aTTL))
		if n.roundRobin {
			k := n.asked % len(set)
			set = append(slices.Clone(set[k:]), set[:k]...)
			n.asked++
		}
		for _, ip := range set {
			m.Answer = append(m.Answer, addr(ip, n.aTTL))
		}
	case isName && q.Qtype == dns.TypeAAAA && len(n.aaaa) > 0:
		for _, ip := range n.aaaa {
			m.Answer = append(m.Answer, addr(ip, n.aTTL))
		}
	case isName && q.Qtype == dns.TypeNS && n.ns != nil:
		for _, h := range n.ns(n.nsRot.set(now, n.nsTTL)) {
			m.Answer = append(m.Answer, &dns.NS{Hdr: hdr(dns.TypeNS, n.nsTTL), Ns: h})
		}
	case isName || isHost || name == "test.":
		m.Ns = append(m.Ns, soa) // NODATA
	default:
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, soa)
	}
	_ = w.WriteMsg(m)
}

// serveZone serves the zone on a free loopback port, UDP and TCP, until the
// test ends, and returns its address.
func serveZone(t *testing.T, z *ttlZone) string {
	t.Helper()
	udp, tcp := testenv.DNSListeners(t)
	for _, srv := range []*dns.Server{{PacketConn: udp, Handler: z}, {Listener: tcp, Handler: z}} {
		go srv.ActivateAndServe()
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return udp.LocalAddr().String()
}
