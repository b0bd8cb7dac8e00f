package resolver

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/tip-project/tip/lab/dnsd"
	"github.com/tip-project/tip/lab/world"
)

// lab is the lab world served by its authoritative server on 127.0.0.1, and a root
// on 127.0.0.2 (same port) that delegates every lab TLD to it. The root leaves out
// the glue of its .net delegation, so .net names need a glueless lookup.
type lab struct {
	w     *world.World
	clock *world.Clock
	port  int
	root  *zone
}

const labNS = "a.nic.lab-root."

func startLab(t *testing.T) *lab {
	t.Helper()
	w := world.NewWorld(1)
	l := &lab{w: w, clock: world.FixedClock(w.Start.Add(time.Hour))}

	tlds := map[string]bool{}
	for _, d := range w.Domains {
		tlds[d.Name[strings.LastIndex(d.Name, ".")+1:]] = true
	}
	records := []string{labNS + " 86400 IN A 127.0.0.1"}
	for tld := range tlds {
		records = append(records, tld+". 172800 IN NS "+labNS)
	}
	l.root = newZone(t, ".", records...)
	l.root.tamper = func(q dns.Question, m *dns.Msg) {
		if len(m.Ns) > 0 && m.Ns[0].Header().Name == "net." {
			m.Extra = nil
		}
	}

	port, pcs, lns := listenAll(t, []string{"127.0.0.1", "127.0.0.2"}, nil)
	l.port = port
	srv := dnsd.New(w, l.clock, nil)
	if err := srv.Serve(pcs[0], lns[0]); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	serve(t, pcs[1], lns[1], l.root)
	return l
}

func (l *lab) addr(ip string) string { return fmt.Sprintf("%s:%d", ip, l.port) }

// modes are the three ways to reach the lab: the lab server as a recursive
// resolver, as the domain's own authoritative server, and from the root down.
func (l *lab) modes() []struct {
	name string
	cfg  Config
} {
	now := l.clock.Now
	return []struct {
		name string
		cfg  Config
	}{
		{"recursive", Config{Recursive: []string{l.addr("127.0.0.1")}, Now: now}},
		{"authoritative", Config{Roots: []string{l.addr("127.0.0.1")}, Port: uint16(l.port), Now: now}},
		{"from the root", Config{Roots: []string{l.addr("127.0.0.2")}, Port: uint16(l.port), Now: now}},
	}
}

func labDomain(t *testing.T, w *world.World, c world.Class, keep func(*world.Domain) bool) *world.Domain {
	t.Helper()
	for _, d := range w.DomainsOf(c) {
		if d.TakedownAt.IsZero() && (keep == nil || keep(d)) {
			return d
		}
	}
	t.Fatalf("no %s domain", c)
	return nil
}

func ips(as []Addr) []netip.Addr {
	out := make([]netip.Addr, len(as))
	for i, a := range as {
		out[i] = a.IP
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func sortedAddrs(a []netip.Addr) []netip.Addr {
	a = slices.Clone(a)
	slices.SortFunc(a, netip.Addr.Compare)
	return a
}

// matchWorld checks an observation of d against the world's truth at lab time now.
func matchWorld(t *testing.T, w *world.World, d *world.Domain, obs Observation, now time.Time) {
	t.Helper()
	if obs.Status != NoError || obs.Domain != d.Name || !obs.Time.Equal(now) {
		t.Errorf("%s: status %s, domain %q, time %v", d.Name, obs.Status, obs.Domain, obs.Time)
	}
	for _, fam := range []struct {
		name string
		got  []Addr
		want func(*world.Domain, time.Time) ([]netip.Addr, uint32)
	}{{"A", obs.A, w.A}, {"AAAA", obs.AAAA, w.AAAA}} {
		want, ttl := fam.want(d, now)
		if !slices.Equal(ips(fam.got), sortedAddrs(want)) {
			t.Errorf("%s %s: got %v, world says %v", d.Name, fam.name, ips(fam.got), want)
		}
		for _, a := range fam.got {
			if a.TTL != ttl {
				t.Errorf("%s %s TTL %d, world says %d", d.Name, fam.name, a.TTL, ttl)
			}
		}
	}
	hosts, nsTTL := w.NS(d, now)
	if obs.Zone != d.Name || len(obs.NS) != len(hosts) {
		t.Fatalf("%s: zone %q with %d NS, world says %d: %+v", d.Name, obs.Zone, len(obs.NS), len(hosts), obs.NS)
	}
	for _, h := range hosts {
		i := slices.IndexFunc(obs.NS, func(ns NameServer) bool { return ns.Name == h.Name })
		if i < 0 {
			t.Errorf("%s: NS %s missing from %+v", d.Name, h.Name, obs.NS)
			continue
		}
		ns := obs.NS[i]
		if ns.TTL != nsTTL || len(ns.Addrs) != 1 || ns.Addrs[0].IP != h.Addr {
			t.Errorf("%s: NS %+v, world says %s %v TTL %d", d.Name, ns, h.Name, h.Addr, nsTTL)
		}
	}
	if len(obs.Warnings) > 0 {
		t.Errorf("%s: warnings %v", d.Name, obs.Warnings)
	}
}

func TestLabDomains(t *testing.T) {
	l := startLab(t)
	w := l.w
	domains := []*world.Domain{
		labDomain(t, w, world.SingleFlux, nil),
		labDomain(t, w, world.SingleFlux, func(d *world.Domain) bool { return len(d.PoolV6) > 0 }),
		labDomain(t, w, world.DoubleFlux, nil),
		labDomain(t, w, world.CDNDomain, func(d *world.Domain) bool { return d.Popular }),
		labDomain(t, w, world.CDNDomain, func(d *world.Domain) bool { return strings.HasSuffix(d.Name, ".net") }),
		labDomain(t, w, world.RoundRobin, nil),
		labDomain(t, w, world.Static, nil),
		labDomain(t, w, world.Malicious, nil),
	}
	for _, m := range l.modes() {
		t.Run(m.name, func(t *testing.T) {
			r, err := New(m.cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range domains {
				now := l.clock.Now()
				obs, err := r.Resolve(context.Background(), d.Name)
				if err != nil {
					t.Fatalf("%s (%s): %v", d.Name, d.Class, err)
				}
				matchWorld(t, w, d, obs, now)
				if obs.Server != l.addr("127.0.0.1") {
					t.Errorf("%s: answered by %s", d.Name, obs.Server)
				}
			}
		})
	}
}

// From the root, one referral leads to the lab server; AAAA and NS start from the
// zone cut the A lookup found. A .net name needs the address of the .net server,
// which the root's referral left out.
func TestLabFromTheRoot(t *testing.T) {
	l := startLab(t)
	mode := l.modes()[2]
	r, err := New(mode.cfg)
	if err != nil {
		t.Fatal(err)
	}
	com := labDomain(t, l.w, world.SingleFlux, func(d *world.Domain) bool { return strings.HasSuffix(d.Name, ".com") })
	net := labDomain(t, l.w, world.CDNDomain, func(d *world.Domain) bool { return strings.HasSuffix(d.Name, ".net") })
	for _, tc := range []struct {
		d    *world.Domain
		root []string // the questions the root gets
	}{
		{com, []string{com.Name + ". A"}},
		{net, []string{net.Name + ". A", labNS + " A"}},
	} {
		before := len(l.root.questions())
		obs, err := r.Resolve(context.Background(), tc.d.Name)
		if err != nil {
			t.Fatal(err)
		}
		matchWorld(t, l.w, tc.d, obs, l.clock.Now())
		if got := l.root.questions()[before:]; !slices.Equal(got, tc.root) {
			t.Errorf("%s: the root was asked %v, want %v", tc.d.Name, got, tc.root)
		}
		// Root, lab: A; lab: AAAA, NS; plus the glueless lookup of the .net server.
		if want := 4 + len(tc.root) - 1; obs.Queries != want {
			t.Errorf("%s: %d queries, want %d", tc.d.Name, obs.Queries, want)
		}
	}
}

// Double flux: every NS TTL the name servers and their addresses change, and each
// observation shows the set the world has at that moment.
func TestLabDoubleFluxNS(t *testing.T) {
	l := startLab(t)
	d := labDomain(t, l.w, world.DoubleFlux, nil)
	for _, m := range l.modes() {
		t.Run(m.name, func(t *testing.T) {
			r, err := New(m.cfg)
			if err != nil {
				t.Fatal(err)
			}
			l.clock.Set(l.w.Start.Add(time.Hour))
			names := map[string]bool{}
			addrs := map[netip.Addr]bool{}
			for step := 0; step < 5; step++ {
				now := l.clock.Now()
				obs, err := r.Resolve(context.Background(), d.Name)
				if err != nil {
					t.Fatal(err)
				}
				matchWorld(t, l.w, d, obs, now)
				for _, ns := range obs.NS {
					names[ns.Name] = true
					for _, a := range ns.Addrs {
						addrs[a.IP] = true
					}
				}
				l.clock.Advance(time.Duration(d.NSTTL) * time.Second)
			}
			if len(names) <= d.NSCount || len(addrs) <= d.NSCount {
				t.Errorf("NS rotation not seen: %d names, %d addresses over 5 TTLs", len(names), len(addrs))
			}
		})
	}
}

// The 40-record CDN answer does not fit in 512 bytes: the lab truncates it over
// UDP and the resolver fetches it over TCP, one query more.
func TestLabTCPFallback(t *testing.T) {
	l := startLab(t)
	d := labDomain(t, l.w, world.CDNDomain, func(d *world.Domain) bool { return d.Answer == 40 })
	queries := map[int]int{}
	for _, size := range []int{512, 1232} {
		cfg := l.modes()[0].cfg
		cfg.UDPSize = size
		r, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		obs, err := r.Resolve(context.Background(), d.Name)
		if err != nil {
			t.Fatal(err)
		}
		if len(obs.A) != 40 {
			t.Errorf("UDP size %d: %d A records, want 40", size, len(obs.A))
		}
		matchWorld(t, l.w, d, obs, l.clock.Now())
		queries[size] = obs.Queries
	}
	if queries[512] != queries[1232]+1 {
		t.Errorf("queries: %d with 512 bytes, %d with 1232; want one more for TCP", queries[512], queries[1232])
	}
}

// Taken-down domains answer NXDOMAIN, then SERVFAIL; a lame delegation refuses.
// These are results, not errors, and the resolver stops after the A question.
func TestLabDeadDomains(t *testing.T) {
	l := startLab(t)
	var down *world.Domain
	for _, d := range l.w.DomainsOf(world.SingleFlux) {
		if !d.TakedownAt.IsZero() {
			down = d
			break
		}
	}
	lame := l.w.DomainsOf(world.Lame)[0]
	for _, m := range l.modes() {
		t.Run(m.name, func(t *testing.T) {
			r, err := New(m.cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				d      *world.Domain
				at     time.Time
				status Status
			}{
				{down, down.TakedownAt.Add(-time.Second), NoError},
				{down, down.TakedownAt, NXDomain},
				{down, down.ServfailAt, ServFail},
				{lame, l.w.Start, Refused},
			} {
				l.clock.Set(tc.at)
				obs, err := r.Resolve(context.Background(), tc.d.Name)
				if err != nil {
					t.Fatalf("%s at %v: %v", tc.d.Name, tc.at, err)
				}
				if obs.Status != tc.status {
					t.Errorf("%s at %v: %s, want %s", tc.d.Name, tc.at, obs.Status, tc.status)
				}
				if tc.status != NoError && (len(obs.A) > 0 || len(obs.NS) > 0) {
					t.Errorf("%s: %s with records: %+v", tc.d.Name, obs.Status, obs)
				}
			}
		})
	}
}

// Every query of a resolution waits its turn under the per-server rate limit: with
// a burst of 2 at 10 per second, each query past the second waits 100 ms. Time is
// a fake clock that moves only when the limiter sleeps.
func TestLabRateLimit(t *testing.T) {
	l := startLab(t)
	d := labDomain(t, l.w, world.SingleFlux, nil)
	cfg := l.modes()[0].cfg
	cfg.Rate, cfg.Burst = 10, 2
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	r.limit.now, r.limit.sleep = clock.Now, clock.Sleep
	total := 0
	for i := 0; i < 3; i++ {
		obs, err := r.Resolve(context.Background(), d.Name)
		if err != nil {
			t.Fatal(err)
		}
		total += obs.Queries
	}
	if len(clock.slept) != total-2 {
		t.Fatalf("%d waits for %d queries, want %d", len(clock.slept), total, total-2)
	}
	for _, s := range clock.slept {
		if s != 100*time.Millisecond {
			t.Errorf("waited %v, want 100ms: %v", s, clock.slept)
			break
		}
	}
}
