package dnsserve

import (
	"context"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// transfer answers an AXFR or IXFR of an RPZ zone (RFC 5936, RFC 1995): to a
// client the ACL allows, signed with a configured TSIG key when keys are set,
// over TCP. An IXFR gets the journal from the client's serial when it reaches
// back that far, the whole zone otherwise; over UDP it gets the SOA alone,
// which sends the client to TCP.
func (s *Server) transfer(w dns.ResponseWriter, r *dns.Msg, m *dns.Msg, z *rpzZone, client netip.Addr, udp bool) {
	q := r.Question[0]
	if !s.transferAllowed(w, r, client) {
		s.m.transfer(z.origin, "refused")
		m.Rcode = dns.RcodeRefused
		w.WriteMsg(m)
		return
	}
	var clientSerial uint32
	incremental := false
	if q.Qtype == dns.TypeIXFR {
		for _, rr := range r.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				clientSerial, incremental = soa.Serial, true
			}
		}
	}
	ttl := uint32(s.cfg.TTL.Seconds())
	s.d.mu.RLock()
	serial := z.serial
	soa := s.soa(z.origin, serial)
	if udp {
		s.d.mu.RUnlock()
		if q.Qtype == dns.TypeAXFR {
			m.Rcode = dns.RcodeRefused // AXFR is TCP only
		} else {
			m.Authoritative = true
			m.Answer = []dns.RR{soa}
		}
		s.signed(r, m)
		w.WriteMsg(m)
		return
	}
	var journal []delta
	if incremental {
		if serialNotOlder(clientSerial, serial) {
			s.d.mu.RUnlock()
			s.m.transfer(z.origin, "current")
			m.Authoritative = true
			m.Answer = []dns.RR{soa}
			s.signed(r, m)
			w.WriteMsg(m)
			return
		}
		journal, incremental = z.since(clientSerial)
	}
	var owners []string
	if !incremental {
		owners = sortedOwners(z)
	}
	s.d.mu.RUnlock()

	kind := "axfr"
	if incremental {
		kind = "ixfr"
	}
	s.m.transfer(z.origin, kind)
	ch := make(chan *dns.Envelope)
	tr := new(dns.Transfer)
	tr.TsigSecret = s.cfg.TSIG
	done := make(chan error, 1)
	go func() { done <- tr.Out(w, r, ch) }()
	b := batcher{ch: ch}
	b.add(soa)
	if incremental {
		for _, d := range journal {
			b.add(s.soa(z.origin, d.from))
			for _, o := range d.removed {
				b.add(z.records(o, ttl)...)
			}
			b.add(s.soa(z.origin, d.to))
			for _, o := range d.added {
				b.add(z.records(o, ttl)...)
			}
		}
	} else {
		b.add(s.ns(z.origin))
		for _, o := range owners {
			b.add(z.records(o, ttl)...)
		}
	}
	b.add(soa)
	b.flush()
	close(ch)
	if err := <-done; err != nil {
		s.log.Warn("dns: transfer", "zone", z.origin, "kind", kind, "client", client, "err", err)
	}
	w.Hijack()
	w.Close()
}

// transferAllowed says whether a client may transfer: in the ACL, and with a
// valid signature of a configured key when keys are configured.
func (s *Server) transferAllowed(w dns.ResponseWriter, r *dns.Msg, client netip.Addr) bool {
	allowed := false
	for _, p := range s.cfg.TransferAllow {
		if p.Contains(client) {
			allowed = true
		}
	}
	if !allowed {
		return false
	}
	if len(s.cfg.TSIG) == 0 {
		return true
	}
	t := r.IsTsig()
	return t != nil && w.TsigStatus() == nil
}

// signed signs an answer with the request's key when the request was signed.
func (s *Server) signed(r, m *dns.Msg) {
	if t := r.IsTsig(); t != nil {
		m.SetTsig(t.Hdr.Name, t.Algorithm, 300, time.Now().Unix())
	}
}

// serialNotOlder says whether serial a is b or newer (RFC 1982).
func serialNotOlder(a, b uint32) bool { return a == b || int32(a-b) > 0 }

// batcher cuts a transfer into messages of at most about 32 KB.
type batcher struct {
	ch    chan *dns.Envelope
	rrs   []dns.RR
	bytes int
}

func (b *batcher) add(rrs ...dns.RR) {
	for _, rr := range rrs {
		b.rrs = append(b.rrs, rr)
		b.bytes += len(rr.Header().Name) + 32
		if b.bytes > 32<<10 {
			b.flush()
		}
	}
}

func (b *batcher) flush() {
	if len(b.rrs) > 0 {
		b.ch <- &dns.Envelope{RR: b.rrs}
		b.rrs, b.bytes = nil, 0
	}
}

// notifyAll tells every configured secondary of a zone's new serial (RFC 1996),
// each in the background, three tries two seconds apart.
func (s *Server) notifyAll(ctx context.Context, origin string) {
	serial, ok := s.serial(origin)
	if !ok {
		return
	}
	for _, target := range s.cfg.Notify {
		go func() {
			m := new(dns.Msg)
			m.SetNotify(origin)
			m.Answer = []dns.RR{s.soa(origin, serial)}
			c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
			for try := range 3 {
				if try > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(2 * time.Second):
					}
				}
				r, _, err := c.ExchangeContext(ctx, m, target)
				if err == nil && r.Rcode == dns.RcodeSuccess {
					s.m.notify(origin, "ok")
					return
				}
			}
			s.m.notify(origin, "failed")
			s.log.Warn("dns: notify unanswered", "zone", origin, "serial", serial, "secondary", target)
		}()
	}
}
