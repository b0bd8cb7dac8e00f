package dnsserve

import (
	"net"
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
