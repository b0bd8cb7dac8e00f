package activities

import (
	"encoding/json"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/flux/resolver"
	"github.com/tip-project/tip/workflows/contract"
)

// hostileDNS answers every name with what fits in 64 KB over TCP (truncating over
// UDP): 4,000 A records, 2,000 AAAA records, or 1,500 name servers with glue.
func hostileDNS(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		q := r.Question[0]
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative, m.Compress = true, true
		hdr := func(name string, rrtype uint16) dns.RR_Header {
			return dns.RR_Header{Name: name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: 60}
		}
		switch q.Qtype {
		case dns.TypeA:
			for i := range 4000 {
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr(q.Name, dns.TypeA), A: net.IPv4(byte(1+i%200), byte(i>>8), byte(i), 1)})
			}
		case dns.TypeAAAA:
			for i := range 2000 {
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr(q.Name, dns.TypeAAAA), AAAA: net.IP{0x20, 1, 0xd, 0xb8, 14: byte(i >> 8), 15: byte(i)}})
			}
		case dns.TypeNS:
			for i := range 1500 {
				host := fmt.Sprintf("ns%d.%s", i, q.Name)
				m.Answer = append(m.Answer, &dns.NS{Hdr: hdr(q.Name, dns.TypeNS), Ns: host})
				m.Extra = append(m.Extra, &dns.A{Hdr: hdr(host, dns.TypeA), A: net.IPv4(172, 16, byte(i>>8), byte(i))})
			}
		}
		if _, tcp := w.RemoteAddr().(*net.TCPAddr); !tcp {
			m.Truncated, m.Answer, m.Extra = true, nil, nil
		}
		_ = w.WriteMsg(m)
	})
	// Generous timeouts: packing 64 KB answers for 16 resolutions at once takes a
	// loaded machine a while.
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h, ReadTimeout: time.Minute, WriteTimeout: time.Minute}} {
		go func() { _ = srv.ActivateAndServe() }()
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return pc.LocalAddr().String()
}

// A triage batch of 100 domains whose servers answer with all a TCP message
// holds stays within MaxResolveResult, and so three of them, AssessDomains' input
// at the most, within Temporal's 2 MB payload limit.
func TestResolveDomainsResultIsBounded(t *testing.T) {
	res, err := resolver.New(resolver.Config{Recursive: []string{hostileDNS(t)}, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var domains []string
	for i := range 100 {
		domains = append(domains, fmt.Sprintf("d%d.hostile.test", i))
	}
	a := &Flux{DNS: &Resolution{Resolver: res}}
	obs, err := runActivity[[]flux.Observation](t, a, a.ResolveDomains, domains)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(obs)
	in, _ := json.Marshal(contract.AssessInput{Origin: "spam", First: obs, Second: obs, Third: obs})
	t.Logf("100 domains of 4,000 A, 2,000 AAAA and 1,500 NS records each: %d KB of observations, %d KB of AssessDomains input", len(b)>>10, len(in)>>10)
	if len(b) > MaxResolveResult || len(in) > 3*MaxResolveResult+1024 || len(in) > 2<<20 {
		t.Errorf("%d bytes of observations, %d of assessment input", len(b), len(in))
	}
	for _, o := range obs {
		if !o.Answered() || len(o.A) == 0 || len(o.A) > flux.MaxRecords || o.Dropped < 4000-flux.MaxRecords {
			t.Fatalf("%s: %s, %d A, %d dropped, %q", o.Domain, o.Status, len(o.A), o.Dropped, o.Error)
		}
	}
}
