package resolver

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"

	"github.com/tip-project/tip/flux"
)

// A server answering over TCP with as much as 64 KB holds: 4,000 A records
// (highest address first) and 1,500 name servers with glue. The observation
// keeps the lowest flux.MaxRecords addresses and flux.MaxNameServers name
// servers, and counts the rest.
func TestObservationOfAHugeAnswerIsBounded(t *testing.T) {
	const nA, nNS = 4000, 1500
	srv := startFleet(t, map[string]dns.Handler{"127.0.0.1": dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		q := r.Question[0]
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative, m.Compress = true, true
		switch q.Qtype {
		case dns.TypeA:
			for i := nA - 1; i >= 0; i-- {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A: net.IPv4(10, byte(i>>16), byte(i>>8), byte(i))})
			}
		case dns.TypeNS:
			for i := range nNS {
				host := fmt.Sprintf("ns%d.%s", i, q.Name)
				m.Answer = append(m.Answer, &dns.NS{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 60}, Ns: host})
				m.Extra = append(m.Extra, &dns.A{Hdr: dns.RR_Header{Name: host, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A: net.IPv4(172, 16, byte(i>>8), byte(i))})
			}
		}
		if _, tcp := w.RemoteAddr().(*net.TCPAddr); !tcp && len(m.Answer) > 0 {
			m.Truncated, m.Answer, m.Extra = true, nil, nil
		}
		if err := w.WriteMsg(m); err != nil {
			t.Errorf("write %s: %v", dns.Type(q.Qtype), err)
		}
	})})
	r, err := New(hostileConfig(srv.addr("127.0.0.1")))
	if err != nil {
		t.Fatal(err)
	}
	full, err := r.Resolve(context.Background(), "flux.test")
	if err != nil || len(full.A) != nA || len(full.NS) != nNS {
		t.Fatalf("resolve: %d A, %d NS, %v (warnings %v)", len(full.A), len(full.NS), err, full.Warnings)
	}
	o, err := r.Observe(context.Background(), "flux.test")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(o)
	t.Logf("%d A and %d NS received; observation keeps %d A and %d NS, %d dropped: %d bytes of JSON", nA, nNS, len(o.A), len(o.NS), o.Dropped, len(b))
	if len(o.A) != flux.MaxRecords || len(o.NS) != flux.MaxNameServers {
		t.Fatalf("%d A, %d NS kept", len(o.A), len(o.NS))
	}
	if want := (nA - flux.MaxRecords) + 2*(nNS-flux.MaxNameServers); o.Dropped != want {
		t.Errorf("dropped %d, want %d", o.Dropped, want)
	}
	if o.A[0].Addr != netip.MustParseAddr("10.0.0.0") || !slices.IsSortedFunc(o.A, func(a, b flux.Record) int { return a.Addr.Compare(b.Addr) }) {
		t.Errorf("not the lowest addresses: %v …", o.A[:2])
	}
	if len(b) > 10<<10 {
		t.Errorf("%d bytes of JSON", len(b))
	}
}
