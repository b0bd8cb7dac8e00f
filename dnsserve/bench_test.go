package dnsserve

import (
	"context"
	"net"
	"testing"

	"github.com/miekg/dns"
)

// BenchmarkServeDNS is the handler's cost of one DNSBL query, without the
// network (the recorder drops the answer).
func BenchmarkServeDNS(b *testing.B) {
	f := newFakeStore()
	f.set(1, true, "ipv4:45.10.0.7")
	s, err := New(testConfig, f, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Load(context.Background()); err != nil {
		b.Fatal(err)
	}
	m := new(dns.Msg)
	m.SetQuestion("7.0.10.45.bl.tip.", dns.TypeA)
	w := &recorder{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 5353}}
	b.ReportAllocs()
	for b.Loop() {
		w.msgs = w.msgs[:0]
		s.ServeDNS(w, m)
	}
}
