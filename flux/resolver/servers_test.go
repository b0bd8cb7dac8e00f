package resolver

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Servers learned from referrals are reached at Config.Port, so the test servers of
// one resolution share a port and differ by loopback address (all of 127/8 is
// loopback on Linux).

// listen binds UDP, and TCP unless udpOnly, on ip:port.
func listen(ip string, port int, udpOnly bool) (net.PacketConn, net.Listener, error) {
	pc, err := net.ListenPacket("udp", net.JoinHostPort(ip, fmt.Sprint(port)))
	if err != nil {
		return nil, nil, err
	}
	if udpOnly {
		return pc, nil, nil
	}
	_, p, _ := net.SplitHostPort(pc.LocalAddr().String())
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, p))
	if err != nil {
		pc.Close()
		return nil, nil, err
	}
	return pc, ln, nil
}

// listenAll binds every ip on one free port, trying a few ports.
func listenAll(t *testing.T, ips []string, udpOnly map[string]bool) (int, []net.PacketConn, []net.Listener) {
	t.Helper()
	for try := 0; try < 20; try++ {
		var pcs []net.PacketConn
		var lns []net.Listener
		port := 0
		ok := true
		for _, ip := range ips {
			pc, ln, err := listen(ip, port, udpOnly[ip])
			if err != nil {
				ok = false
				break
			}
			if port == 0 {
				_, p, _ := net.SplitHostPort(pc.LocalAddr().String())
				fmt.Sscan(p, &port)
			}
			pcs, lns = append(pcs, pc), append(lns, ln)
		}
		if ok {
			return port, pcs, lns
		}
		for i := range pcs {
			pcs[i].Close()
			if lns[i] != nil {
				lns[i].Close()
			}
		}
	}
	t.Fatalf("no common free port for %v", ips)
	return 0, nil, nil
}

// serve runs h on pc and ln (ln may be nil) until the test ends.
func serve(t *testing.T, pc net.PacketConn, ln net.Listener, h dns.Handler) {
	t.Helper()
	var servers []*dns.Server
	if pc != nil {
		servers = append(servers, &dns.Server{PacketConn: pc, Net: "udp", Handler: h})
	}
	if ln != nil {
		servers = append(servers, &dns.Server{Listener: ln, Net: "tcp", Handler: h})
	}
	for _, srv := range servers {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatal("test server did not start")
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.ShutdownContext(ctx)
		})
	}
}

// zone is a small authoritative server for tests: it answers from its records,
// refers names below its NS records (with whatever address records it holds for
// the NS hosts, in bailiwick or not), and says NXDOMAIN or NODATA otherwise. It
// counts the questions it got.
type zone struct {
	origin string
	rrs    []dns.RR
	// tamper, when set, edits each response before it is sent.
	tamper func(q dns.Question, m *dns.Msg)

	mu    sync.Mutex
	asked []string
}

func newZone(t *testing.T, origin string, records ...string) *zone {
	t.Helper()
	z := &zone{origin: dns.Fqdn(origin)}
	for _, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("record %q: %v", s, err)
		}
		z.rrs = append(z.rrs, rr)
	}
	return z
}

func (z *zone) questions() []string {
	z.mu.Lock()
	defer z.mu.Unlock()
	return append([]string(nil), z.asked...)
}

func (z *zone) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	q := r.Question[0]
	z.mu.Lock()
	z.asked = append(z.asked, strings.ToLower(q.Name)+" "+dns.Type(q.Qtype).String())
	z.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(r)
	z.answer(q, m)
	if z.tamper != nil {
		z.tamper(q, m)
	}
	_ = w.WriteMsg(m)
}

func (z *zone) answer(q dns.Question, m *dns.Msg) {
	name := strings.ToLower(q.Name)
	// A delegation below the origin, at or above the name, wins.
	for _, i := range dns.Split(name) {
		cut := name[i:]
		if cut == z.origin || !dns.IsSubDomain(z.origin, cut) {
			continue
		}
		if ns := z.find(cut, dns.TypeNS); len(ns) > 0 {
			m.Ns = ns
			for _, rr := range ns {
				host := rr.(*dns.NS).Ns
				m.Extra = append(m.Extra, z.find(host, dns.TypeA)...)
				m.Extra = append(m.Extra, z.find(host, dns.TypeAAAA)...)
			}
			return
		}
	}
	m.Authoritative = true
	if rrs := z.find(name, q.Qtype); len(rrs) > 0 {
		m.Answer = rrs
		return
	}
	if rrs := z.find(name, dns.TypeCNAME); len(rrs) > 0 {
		m.Answer = rrs
		return
	}
	soa := &dns.SOA{Hdr: dns.RR_Header{Name: z.origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
		Ns: "ns." + z.origin, Mbox: "hostmaster." + z.origin, Serial: 1, Refresh: 60, Retry: 60, Expire: 60, Minttl: 60}
	m.Ns = []dns.RR{soa}
	for _, rr := range z.rrs {
		if strings.EqualFold(rr.Header().Name, name) {
			return // NODATA
		}
	}
	m.Rcode = dns.RcodeNameError
}

func (z *zone) find(name string, qtype uint16) []dns.RR {
	var out []dns.RR
	for _, rr := range z.rrs {
		if h := rr.Header(); strings.EqualFold(h.Name, name) && h.Rrtype == qtype {
			out = append(out, dns.Copy(rr))
		}
	}
	return out
}

// fleet runs zones (and raw handlers) on loopback addresses sharing one port.
type fleet struct {
	port int
}

// startFleet serves each handler on its address; addresses in udpOnly get no TCP.
func startFleet(t *testing.T, handlers map[string]dns.Handler, udpOnly ...string) fleet {
	t.Helper()
	var ips []string
	for ip := range handlers {
		ips = append(ips, ip)
	}
	only := map[string]bool{}
	for _, ip := range udpOnly {
		only[ip] = true
	}
	port, pcs, lns := listenAll(t, ips, only)
	for i, ip := range ips {
		serve(t, pcs[i], lns[i], handlers[ip])
	}
	return fleet{port: port}
}

func (f fleet) addr(ip string) string { return net.JoinHostPort(ip, fmt.Sprint(f.port)) }
