package dnsd

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/tip-project/tip/lab/world"
)

// lab is one world, its clock and a running server on loopback.
type lab struct {
	w       *world.World
	clock   *world.Clock
	srv     *Server
	udp     string
	tcp     string
	udpConn net.PacketConn
}

func startLab(t *testing.T) *lab {
	t.Helper()
	w := world.NewWorld(1)
	clock := world.FixedClock(w.Start.Add(time.Hour))
	srv := New(w, clock, nil)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(pc, ln); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return &lab{w: w, clock: clock, srv: srv, udp: pc.LocalAddr().String(), tcp: ln.Addr().String(), udpConn: pc}
}

// query asks the lab server over proto ("udp", "udp+edns" with a 4096-byte buffer,
// or "tcp").
func (l *lab) query(t *testing.T, proto, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	return l.exchange(t, proto, m)
}

func (l *lab) exchange(t *testing.T, proto string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	addr := l.udp
	switch proto {
	case "udp+edns":
		m.SetEdns0(4096, false)
	case "tcp":
		c.Net, addr = "tcp", l.tcp
	}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", m.Question[0].Name, dns.Type(m.Question[0].Qtype), proto, err)
	}
	return r
}

// addrs lists the addresses of the A and AAAA records in rrs, in order.
func addrs(rrs []dns.RR) []netip.Addr {
	var out []netip.Addr
	for _, rr := range rrs {
		switch rr := rr.(type) {
		case *dns.A:
			a, _ := netip.AddrFromSlice(rr.A.To4())
			out = append(out, a)
		case *dns.AAAA:
			a, _ := netip.AddrFromSlice(rr.AAAA)
			out = append(out, a)
		}
	}
	return out
}

// domain returns the first domain of a class that is never taken down.
func domain(t *testing.T, w *world.World, c world.Class, keep func(*world.Domain) bool) *world.Domain {
	t.Helper()
	for _, d := range w.DomainsOf(c) {
		if d.TakedownAt.IsZero() && (keep == nil || keep(d)) {
			return d
		}
	}
	t.Fatalf("no %s domain", c)
	return nil
}

func TestAAnswersFollowTheWorld(t *testing.T) {
	l := startLab(t)
	for _, tc := range []struct {
		class world.Class
		// changes says whether the answer set must change after one TTL.
		changes bool
	}{
		{world.SingleFlux, true},
		{world.DoubleFlux, true},
		{world.CDNDomain, false}, // a CDN rotates too, but a small pool may repeat
		{world.RoundRobin, false},
		{world.Static, false},
		{world.Malicious, false},
	} {
		t.Run(string(tc.class), func(t *testing.T) {
			d := domain(t, l.w, tc.class, nil)
			l.clock.Set(l.w.Start.Add(time.Hour))
			var prev []netip.Addr
			for step := 0; step < 3; step++ {
				now := l.clock.Now()
				want, ttl := l.w.A(d, now)
				r := l.query(t, "udp+edns", d.Name, dns.TypeA)
				if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
					t.Fatalf("rcode %s aa %v", dns.RcodeToString[r.Rcode], r.Authoritative)
				}
				got := addrs(r.Answer)
				if !slices.Equal(got, want) {
					t.Fatalf("at %v: got %v, world says %v", now, got, want)
				}
				for _, rr := range r.Answer {
					if rr.Header().Ttl != ttl {
						t.Errorf("TTL %d, world says %d", rr.Header().Ttl, ttl)
					}
				}
				if len(r.Ns) == 0 {
					t.Errorf("no NS set in the authority section")
				}
				if prev != nil {
					same := slices.Equal(sorted(prev), sorted(got))
					if tc.changes && same {
						t.Errorf("%s: answer did not change after the TTL", d.Name)
					}
					if (tc.class == world.Static || tc.class == world.Malicious) && !same {
						t.Errorf("%s: answer changed: %v then %v", d.Name, prev, got)
					}
				}
				prev = got
				l.clock.Advance(time.Duration(ttl) * time.Second)
			}
		})
	}
}

func sorted(a []netip.Addr) []netip.Addr {
	a = slices.Clone(a)
	slices.SortFunc(a, netip.Addr.Compare)
	return a
}

func TestCDNStaysWithinItsProvider(t *testing.T) {
	l := startLab(t)
	for _, d := range l.w.DomainsOf(world.CDNDomain) {
		asns := map[int]bool{}
		for step := 0; step < 5; step++ {
			r := l.query(t, "tcp", d.Name, dns.TypeA)
			if len(r.Answer) != d.Answer {
				t.Errorf("%s: %d records, want %d", d.Name, len(r.Answer), d.Answer)
			}
			for _, ip := range addrs(r.Answer) {
				a, ok := l.w.ASNOf(ip)
				if !ok || a.Kind != world.CDN || !strings.HasPrefix(a.Name, d.Network) {
					t.Errorf("%s: %v is in %+v, not %s", d.Name, ip, a, d.Network)
				}
				asns[a.Number] = true
			}
			l.clock.Advance(time.Duration(d.TTL) * time.Second)
		}
		if len(asns) > 2 {
			t.Errorf("%s: %d ASNs, want one or two", d.Name, len(asns))
		}
	}
}

func TestAAAA(t *testing.T) {
	l := startLab(t)
	with := domain(t, l.w, world.SingleFlux, func(d *world.Domain) bool { return len(d.PoolV6) > 0 })
	without := domain(t, l.w, world.Static, nil)

	r := l.query(t, "udp", with.Name, dns.TypeAAAA)
	want, _ := l.w.AAAA(with, l.clock.Now())
	if got := addrs(r.Answer); len(got) == 0 || !slices.Equal(got, want) {
		t.Errorf("%s AAAA: got %v, world says %v", with.Name, got, want)
	}

	r = l.query(t, "udp", without.Name, dns.TypeAAAA)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || !hasSOA(r, without.Name) {
		t.Errorf("%s AAAA: want NODATA with SOA, got\n%v", without.Name, r)
	}
}

func hasSOA(r *dns.Msg, zone string) bool {
	for _, rr := range r.Ns {
		if soa, ok := rr.(*dns.SOA); ok && soa.Hdr.Name == dns.Fqdn(zone) {
			return true
		}
	}
	return false
}

func TestDoubleFluxRotatesNameServers(t *testing.T) {
	l := startLab(t)
	d := domain(t, l.w, world.DoubleFlux, nil)
	seen := map[string]bool{}
	seenAddr := map[netip.Addr]bool{}
	for step := 0; step < 6; step++ {
		now := l.clock.Now()
		want, ttl := l.w.NS(d, now)
		r := l.query(t, "udp", d.Name, dns.TypeNS)
		var names []string
		for _, rr := range r.Answer {
			ns := rr.(*dns.NS)
			if ns.Hdr.Ttl != ttl {
				t.Errorf("NS TTL %d, world says %d", ns.Hdr.Ttl, ttl)
			}
			names = append(names, strings.TrimSuffix(ns.Ns, "."))
		}
		glue := map[string]netip.Addr{}
		for _, rr := range r.Extra {
			if a, ok := rr.(*dns.A); ok {
				glue[strings.TrimSuffix(a.Hdr.Name, ".")] = addrs([]dns.RR{a})[0]
			}
		}
		if len(names) != len(want) {
			t.Fatalf("%d NS records, world says %d", len(names), len(want))
		}
		for i, h := range want {
			if names[i] != h.Name || glue[h.Name] != h.Addr {
				t.Errorf("NS %d: %s glue %v, world says %s %v", i, names[i], glue[names[i]], h.Name, h.Addr)
			}
			// The NS host's own A record agrees with the glue.
			hr := l.query(t, "udp", h.Name, dns.TypeA)
			if got := addrs(hr.Answer); len(got) != 1 || got[0] != h.Addr {
				t.Errorf("%s A: %v, glue says %v", h.Name, got, h.Addr)
			}
			seen[h.Name] = true
			seenAddr[h.Addr] = true
		}
		l.clock.Advance(time.Duration(ttl) * time.Second)
	}
	if len(seen) <= d.NSCount || len(seenAddr) <= d.NSCount {
		t.Errorf("NS did not rotate over 6 TTLs: %d names, %d addresses", len(seen), len(seenAddr))
	}
}

func TestTakedown(t *testing.T) {
	l := startLab(t)
	var d *world.Domain
	for _, c := range l.w.DomainsOf(world.SingleFlux) {
		if !c.TakedownAt.IsZero() {
			d = c
			break
		}
	}
	if d == nil {
		t.Fatal("no domain is ever taken down")
	}
	for _, tc := range []struct {
		at    time.Time
		rcode int
		aa    bool
	}{
		{d.TakedownAt.Add(-time.Second), dns.RcodeSuccess, true},
		{d.TakedownAt, dns.RcodeNameError, true},
		{d.ServfailAt.Add(-time.Second), dns.RcodeNameError, true},
		{d.ServfailAt, dns.RcodeServerFailure, false},
	} {
		l.clock.Set(tc.at)
		r := l.query(t, "udp", d.Name, dns.TypeA)
		if r.Rcode != tc.rcode || r.Authoritative != tc.aa {
			t.Errorf("at %v: %s aa=%v, want %s aa=%v", tc.at, dns.RcodeToString[r.Rcode], r.Authoritative,
				dns.RcodeToString[tc.rcode], tc.aa)
		}
		switch tc.rcode {
		case dns.RcodeSuccess:
			if len(r.Answer) == 0 {
				t.Errorf("at %v: no answer before the takedown", tc.at)
			}
		case dns.RcodeNameError:
			if len(r.Answer) != 0 || !hasSOA(r, d.Name) {
				t.Errorf("at %v: NXDOMAIN without the zone's SOA:\n%v", tc.at, r)
			}
		}
	}
}

func TestRcodes(t *testing.T) {
	l := startLab(t)
	lame := l.w.DomainsOf(world.Lame)[0]
	static := domain(t, l.w, world.Static, nil)
	flux := domain(t, l.w, world.SingleFlux, nil)
	for _, tc := range []struct {
		name    string
		qtype   uint16
		rcode   int
		aa      bool
		answers int
		soa     string // zone whose SOA must be in the authority section
	}{
		{lame.Name, dns.TypeA, dns.RcodeRefused, false, 0, ""},
		{"ns1." + lame.Name, dns.TypeA, dns.RcodeRefused, false, 0, ""},
		{"example.org", dns.TypeA, dns.RcodeRefused, false, 0, ""},
		{"com", dns.TypeNS, dns.RcodeRefused, false, 0, ""},
		{".", dns.TypeNS, dns.RcodeRefused, false, 0, ""},
		{"nope." + static.Name, dns.TypeA, dns.RcodeNameError, true, 0, static.Name},
		{"www." + static.Name, dns.TypeA, dns.RcodeSuccess, true, 1, ""},         // www exists everywhere
		{"www." + flux.Name, dns.TypeA, dns.RcodeSuccess, true, flux.Answer, ""}, // flux zones are wildcards
		{"x7f3.a.ns1." + flux.Name, dns.TypeA, dns.RcodeSuccess, true, flux.Answer, ""},
		{flux.Name, dns.TypeMX, dns.RcodeSuccess, true, 0, flux.Name},
		{"ns1." + flux.Name, dns.TypeAAAA, dns.RcodeSuccess, true, 0, flux.Name},
		{"ns2." + static.Name, dns.TypeA, dns.RcodeSuccess, true, 1, ""},
		{static.Name, dns.TypeSOA, dns.RcodeSuccess, true, 1, ""},
		{static.Name, dns.TypeNS, dns.RcodeSuccess, true, 2, ""},
		{static.Name, dns.TypeANY, dns.RcodeSuccess, true, 1, ""},
		{static.Name, dns.TypeAXFR, dns.RcodeRefused, false, 0, ""},
		{static.Name, dns.TypeMAILB, dns.RcodeNotImplemented, false, 0, ""},
	} {
		t.Run(tc.name+"/"+dns.Type(tc.qtype).String(), func(t *testing.T) {
			r := l.query(t, "udp", tc.name, tc.qtype)
			if r.Rcode != tc.rcode || r.Authoritative != tc.aa || len(r.Answer) != tc.answers {
				t.Errorf("got %s aa=%v %d answers, want %s aa=%v %d answers",
					dns.RcodeToString[r.Rcode], r.Authoritative, len(r.Answer),
					dns.RcodeToString[tc.rcode], tc.aa, tc.answers)
			}
			if tc.soa != "" && !hasSOA(r, tc.soa) {
				t.Errorf("no SOA of %s in the authority section:\n%v", tc.soa, r)
			}
		})
	}
}

func TestSOA(t *testing.T) {
	l := startLab(t)
	d := domain(t, l.w, world.SingleFlux, nil)
	serial := func() uint32 {
		r := l.query(t, "udp", d.Name, dns.TypeSOA)
		if len(r.Answer) != 1 {
			t.Fatalf("SOA: %v", r)
		}
		soa := r.Answer[0].(*dns.SOA)
		if soa.Ns != "ns1."+d.Name+"." || soa.Mbox != "hostmaster."+d.Name+"." {
			t.Errorf("SOA %v", soa)
		}
		return soa.Serial
	}
	first := serial()
	l.clock.Advance(time.Duration(d.TTL) * time.Second)
	if second := serial(); second <= first {
		t.Errorf("serial %d then %d: a rotating zone must bump it", first, second)
	}
}

// The big CDN answer does not fit in 512 bytes: plain UDP truncates, EDNS0 with a
// large buffer and TCP carry it whole.
func TestLargeAnswer(t *testing.T) {
	l := startLab(t)
	d := domain(t, l.w, world.CDNDomain, func(d *world.Domain) bool { return d.Answer == 40 })
	for _, tc := range []struct {
		proto     string
		bufsize   uint16 // EDNS0 buffer; 0: no EDNS0
		truncated bool
	}{
		{"udp", 0, true},
		{"udp", 512, true},
		{"udp", 4096, false},
		{"tcp", 0, false},
	} {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(d.Name), dns.TypeA)
		if tc.bufsize > 0 {
			m.SetEdns0(tc.bufsize, false)
		}
		r := l.exchange(t, tc.proto, m)
		if r.Truncated != tc.truncated {
			t.Errorf("%s bufsize %d: TC=%v, want %v", tc.proto, tc.bufsize, r.Truncated, tc.truncated)
		}
		if !tc.truncated && len(r.Answer) != 40 {
			t.Errorf("%s bufsize %d: %d records, want 40", tc.proto, tc.bufsize, len(r.Answer))
		}
		if tc.bufsize > 0 {
			opt := r.IsEdns0()
			if opt == nil || opt.UDPSize() != maxUDPSize {
				t.Errorf("%s bufsize %d: OPT not echoed: %v", tc.proto, tc.bufsize, opt)
			}
		}
		r.Compress = true
		if packed, _ := r.Pack(); tc.proto == "udp" && len(packed) > max(int(tc.bufsize), 512) {
			t.Errorf("%s bufsize %d: %d-byte answer", tc.proto, tc.bufsize, len(packed))
		}
	}
}

func TestEDNSVersion(t *testing.T) {
	l := startLab(t)
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(l.w.Domains[0].Name), dns.TypeA)
	m.SetEdns0(1232, true)
	m.IsEdns0().SetVersion(1)
	r := l.exchange(t, "udp", m)
	if r.Rcode != dns.RcodeBadVers || r.IsEdns0() == nil {
		t.Errorf("EDNS version 1: got %s, want BADVERS with OPT", dns.RcodeToString[r.Rcode])
	}
}

// Resolvers randomise the case of query names (0x20) and expect it back.
func TestMixedCase(t *testing.T) {
	l := startLab(t)
	d := domain(t, l.w, world.SingleFlux, nil)
	var b strings.Builder
	for i, c := range d.Name {
		if i%2 == 0 {
			c = []rune(strings.ToUpper(string(c)))[0]
		}
		b.WriteRune(c)
	}
	name := b.String() + "."
	for _, proto := range []string{"udp", "tcp"} {
		r := l.query(t, proto, name, dns.TypeA)
		if r.Question[0].Name != name {
			t.Errorf("%s: question %q, asked %q", proto, r.Question[0].Name, name)
		}
		if len(r.Answer) != d.Answer || r.Answer[0].Header().Name != name {
			t.Errorf("%s: %d answers for %q", proto, len(r.Answer), name)
		}
	}
}

func TestMalformedQueries(t *testing.T) {
	l := startLab(t)
	d := domain(t, l.w, world.Static, nil)
	rawQuery := func(mut func(*dns.Msg)) []byte {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(d.Name), dns.TypeA)
		mut(m)
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name  string
		pkt   []byte
		rcode int // -1: no answer expected
	}{
		{"short", []byte{1, 2, 3}, -1},
		{"header only, no question", []byte{0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, dns.RcodeFormatError},
		{"question count lies", []byte{0xbe, 0xef, 1, 0, 0, 5, 0, 0, 0, 0, 0, 0, 3, 'c', 'o'}, dns.RcodeFormatError},
		{"bad label", append([]byte{0xbe, 0xef, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c}, 0, 1, 0, 1), dns.RcodeFormatError},
		// 'G' sets opcode 8: the header parses, the opcode is unknown.
		{"garbage", []byte("\x12\x34GET / HTTP/1.1\r\nHost: example.org\r\n\r\n"), dns.RcodeNotImplemented},
		{"random", []byte{0x80, 0x01, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8, 0xf7, 0xf6, 0xf5, 0xf4}, -1},
		{"update", rawQuery(func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }), dns.RcodeNotImplemented},
		{"notify", rawQuery(func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }), dns.RcodeNotImplemented},
		{"a response", rawQuery(func(m *dns.Msg) { m.Response = true }), -1},
		{"two OPT", rawQuery(func(m *dns.Msg) { m.SetEdns0(1232, false); m.SetEdns0(1232, false) }), dns.RcodeFormatError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("udp", l.udp)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := conn.Write(tc.pkt); err != nil {
				t.Fatal(err)
			}
			if tc.rcode < 0 {
				return
			}
			buf := make([]byte, 4096)
			conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			r := new(dns.Msg)
			if err := r.Unpack(buf[:n]); err != nil {
				t.Fatalf("unpack answer: %v", err)
			}
			if r.Rcode != tc.rcode || !r.Response || r.Id != uint16(tc.pkt[0])<<8|uint16(tc.pkt[1]) {
				t.Errorf("got %s (QR=%v), want %s\n%v", dns.RcodeToString[r.Rcode], r.Response, dns.RcodeToString[tc.rcode], r)
			}
		})
	}
	// The server survived all of that.
	for _, proto := range []string{"udp", "tcp"} {
		if r := l.query(t, proto, d.Name, dns.TypeA); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
			t.Errorf("after garbage, %s query: %v", proto, r)
		}
	}
}

func TestListenAndServe(t *testing.T) {
	w := world.NewWorld(1)
	srv := New(w, world.FixedClock(w.Start), nil)
	if err := srv.ListenAndServe("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr()
	if _, port, _ := net.SplitHostPort(addr); port == "0" || port == "" {
		t.Fatalf("Addr() = %q", addr)
	}
	d := w.DomainsOf(world.Static)[0]
	for _, proto := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: proto, Timeout: 2 * time.Second}
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(d.Name), dns.TypeA)
		r, _, err := c.Exchange(m, addr)
		if err != nil || len(r.Answer) != 1 {
			t.Errorf("%s on %s: %v %v", proto, addr, r, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("second shutdown: %v", err)
	}
}
