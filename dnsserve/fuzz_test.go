package dnsserve

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// recorder is a ResponseWriter that keeps what the handler wrote.
type recorder struct {
	msgs   []*dns.Msg
	remote net.Addr
}

func (r *recorder) LocalAddr() net.Addr       { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (r *recorder) RemoteAddr() net.Addr      { return r.remote }
func (r *recorder) WriteMsg(m *dns.Msg) error { r.msgs = append(r.msgs, m); return nil }
func (r *recorder) Write(b []byte) (int, error) {
	return len(b), nil
}
func (r *recorder) Close() error        { return nil }
func (r *recorder) TsigStatus() error   { return nil }
func (r *recorder) TsigTimersOnly(bool) {}
func (r *recorder) Hijack()             {}

// FuzzServeDNS hands the handler any message the library unpacks: whatever it
// asks, the server answers one message that packs (or drops it), and never panics.
func FuzzServeDNS(f *testing.F) {
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"7.2.0.192.bl.tip.", dns.TypeA}, {"7.2.0.192.bl.tip.", dns.TypeTXT}, {"test.bl.tip.", dns.TypeA},
		{"rpz.tip.", dns.TypeSOA}, {"rpz.tip.", dns.TypeAXFR}, {"rpz.tip.", dns.TypeIXFR}, {"evil.example.rpz.tip.", dns.TypeA},
		{"x.y.z.other.", dns.TypeANY}, {"0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.tip.", dns.TypeA},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.SetEdns0(4096, true)
		b, _ := m.Pack()
		f.Add(b)
	}
	s, err := New(testConfig, newFakeStore(), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m := new(dns.Msg)
		if err := m.Unpack(b); err != nil {
			return // the library refuses it before the handler
		}
		if m.Response || len(m.Question) != 1 { // what acceptMsg leaves to the library
			return
		}
		w := &recorder{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 5353}}
		s.ServeDNS(w, m)
		if len(w.msgs) > 1 {
			t.Fatalf("%d answers to one query", len(w.msgs))
		}
		for _, a := range w.msgs {
			if _, err := a.Pack(); err != nil {
				t.Fatalf("an answer that does not pack: %v\n%s", err, a)
			}
		}
	})
}

// FuzzFastPath holds the fast path to the library's: for any packet it
// answers, the answer unpacks, and says what ServeDNS says of the same query
// (rcode, answers, the SOA of a negative answer).
func FuzzFastPath(f *testing.F) {
	for _, name := range []string{"7.0.10.45.bl.tip.", "8.0.10.45.BL.Tip.", "9.1.20.45.bl.tip.", "2.0.0.127.bl.tip.", "1.0.0.127.bl.tip.",
		"test.bl.tip.", "www.Evil.Example.bl.tip.", "good.example.bl.tip.", "bl.tip.", "x.rpz.tip.",
		"7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.tip.", "300.1.1.1.bl.tip.", "01.1.1.1.bl.tip."} {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeTXT} {
			m := new(dns.Msg)
			m.SetQuestion(name, qtype)
			b, _ := m.Pack()
			f.Add(b)
		}
	}
	store := newFakeStore()
	store.set(1, true, "ipv4:45.10.0.7", "cidr:45.20.0.0/16", "domain:evil.example", "ipv6:2001:db8::7")
	store.set(3, true, "ipv4:45.10.0.8")
	s, err := New(testConfig, store, nil)
	if err != nil {
		f.Fatal(err)
	}
	if err := s.Load(context.Background()); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 12 {
			return
		}
		var buf [256]byte
		out, handled := s.fast(b, netip.MustParseAddr("127.0.0.9"), nil, &buf)
		if !handled || out == nil {
			return
		}
		got := new(dns.Msg)
		if err := got.Unpack(out); err != nil {
			t.Fatalf("the fast answer does not unpack: %v", err)
		}
		q := new(dns.Msg)
		if err := q.Unpack(b); err != nil {
			t.Fatalf("the fast path answered a query the library cannot read: %v", err)
		}
		w := &recorder{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 5353}}
		s.ServeDNS(w, q)
		if len(w.msgs) != 1 {
			t.Fatalf("ServeDNS answered %d times", len(w.msgs))
		}
		want := w.msgs[0]
		if got.Rcode != want.Rcode || got.Id != want.Id || !got.Response || !got.Authoritative || got.RecursionDesired != want.RecursionDesired {
			t.Fatalf("fast %s, library %s", got.MsgHdr.String(), want.MsgHdr.String())
		}
		if a, b := rrs(got.Answer), rrs(want.Answer); a != b {
			t.Fatalf("answers: fast %s, library %s", a, b)
		}
		if a, b := rrs(got.Ns), rrs(want.Ns); !strings.EqualFold(a, b) {
			t.Fatalf("authority: fast %s, library %s", a, b)
		}
	})
}

// rrs writes records for comparison.
func rrs(list []dns.RR) string {
	var out []string
	for _, rr := range list {
		out = append(out, rr.String())
	}
	return strings.Join(out, " | ")
}
