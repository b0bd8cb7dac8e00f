package dnsd

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/tip-project/tip/lab/world"
)

// fakeWriter is a dns.ResponseWriter that keeps what the handler wrote.
type fakeWriter struct {
	tcp     bool
	written []*dns.Msg
	packErr error
}

func (f *fakeWriter) LocalAddr() net.Addr {
	if f.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
}

func (f *fakeWriter) RemoteAddr() net.Addr {
	if f.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 40000}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 40000}
}

func (f *fakeWriter) WriteMsg(m *dns.Msg) error {
	if _, err := m.Pack(); err != nil {
		f.packErr = err
		return err
	}
	f.written = append(f.written, m)
	return nil
}

func (f *fakeWriter) Write(b []byte) (int, error) { return len(b), nil }
func (f *fakeWriter) Close() error                { return nil }
func (f *fakeWriter) TsigStatus() error           { return nil }
func (f *fakeWriter) TsigTimersOnly(bool)         {}
func (f *fakeWriter) Hijack()                     {}

// errorLog remembers whether anything was logged at error level (a recovered panic).
type errorLog struct {
	mu   sync.Mutex
	msgs []string
}

func (h *errorLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelDebug }
func (h *errorLog) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.mu.Lock()
		defer h.mu.Unlock()
		r.Attrs(func(a slog.Attr) bool {
			h.msgs = append(h.msgs, r.Message+": "+a.String())
			return true
		})
	}
	return nil
}
func (h *errorLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *errorLog) WithGroup(string) slog.Handler      { return h }

// FuzzServeDNS feeds arbitrary bytes, as a query, to the handler at arbitrary lab
// times: whatever unpacks must get an answer that packs, within the size limit of
// its transport, and must never panic.
func FuzzServeDNS(f *testing.F) {
	w := world.NewWorld(1)
	for _, d := range []*world.Domain{
		w.DomainsOf(world.SingleFlux)[0], w.DomainsOf(world.DoubleFlux)[0],
		w.DomainsOf(world.CDNDomain)[0], w.DomainsOf(world.Lame)[0],
	} {
		for _, q := range []struct {
			name  string
			qtype uint16
			edns  uint16
		}{
			{d.Name, dns.TypeA, 0},
			{"Ns1." + d.Name, dns.TypeA, 1232},
			{d.Name, dns.TypeNS, 4096},
			{"x." + d.Name, dns.TypeSOA, 0},
			{d.Name, dns.TypeANY, 512},
		} {
			m := new(dns.Msg)
			m.SetQuestion(dns.Fqdn(q.name), q.qtype)
			if q.edns > 0 {
				m.SetEdns0(q.edns, true)
			}
			b, err := m.Pack()
			if err != nil {
				f.Fatal(err)
			}
			f.Add(uint16(60), false, b)
		}
	}
	for _, d := range w.DomainsOf(world.CDNDomain) {
		if d.Answer == 40 {
			m := new(dns.Msg)
			m.SetQuestion(dns.Fqdn(d.Name), dns.TypeA)
			b, _ := m.Pack()
			f.Add(uint16(1), false, b)
			f.Add(uint16(1), true, b)
		}
	}
	f.Add(uint16(0), false, []byte{0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})

	log := &errorLog{}
	clock := world.FixedClock(w.Start)
	s := New(w, clock, slog.New(log))
	f.Fuzz(func(t *testing.T, hours uint16, tcp bool, data []byte) {
		r := new(dns.Msg)
		if err := r.Unpack(data); err != nil {
			return
		}
		clock.Set(w.Start.Add(time.Duration(hours%(24*14)) * time.Hour))
		fw := &fakeWriter{tcp: tcp}
		s.ServeDNS(fw, r)
		if fw.packErr != nil {
			t.Fatalf("answer does not pack: %v", fw.packErr)
		}
		if len(log.msgs) > 0 {
			t.Fatalf("handler failed: %v", log.msgs)
		}
		if len(fw.written) > 1 {
			t.Fatalf("%d answers to one query", len(fw.written))
		}
		if len(fw.written) == 1 && !tcp {
			limit := dns.MinMsgSize
			if opt := r.IsEdns0(); opt != nil {
				limit = max(limit, min(int(opt.UDPSize()), maxUDPSize))
			}
			if b, _ := fw.written[0].Pack(); len(b) > limit {
				t.Fatalf("%d-byte UDP answer, limit %d", len(b), limit)
			}
		}
	})
}
