package dnsd

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/tip-project/tip/lab/world"
)

// maxUDPSize is the largest UDP answer the server sends, and what its OPT record
// advertises; clients asking for more get this much.
const maxUDPSize = 4096

// SOA timers shared by every zone; only the serial and the negative TTL vary.
const (
	soaRefresh = 3600
	soaRetry   = 600
	soaExpire  = 14 * 86400
)

// reply builds the full answer to r at lab time now, and the size it must fit in
// on the transport it came from.
func (s *Server) reply(r *dns.Msg, now time.Time, tcp bool) (*dns.Msg, int) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Compress = true
	size := dns.MinMsgSize
	if tcp {
		size = dns.MaxMsgSize
	}
	if len(r.Question) != 1 {
		m.Question = nil
		m.Rcode = dns.RcodeFormatError
		return m, size
	}

	var opt *dns.OPT
	for _, rr := range r.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			if opt != nil { // RFC 6891 6.1.1: more than one OPT is a format error
				m.Rcode = dns.RcodeFormatError
				return m, size
			}
			opt = o
		}
	}
	if opt != nil {
		m.SetEdns0(maxUDPSize, opt.Do())
		if !tcp {
			size = min(max(int(opt.UDPSize()), dns.MinMsgSize), maxUDPSize)
		}
		if opt.Version() != 0 {
			m.Rcode = dns.RcodeBadVers
			return m, size
		}
	}

	if r.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeNotImplemented
		return m, size
	}
	q := r.Question[0]
	switch {
	case q.Qclass != dns.ClassINET:
		m.Rcode = dns.RcodeRefused
	case q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR:
		m.Rcode = dns.RcodeRefused // no zone transfers
	case q.Qtype == dns.TypeMAILA || q.Qtype == dns.TypeMAILB || q.Qtype == dns.TypeTKEY:
		m.Rcode = dns.RcodeNotImplemented
	case q.Qtype == dns.TypeNone || q.Qtype == dns.TypeOPT || q.Qtype == dns.TypeTSIG:
		m.Rcode = dns.RcodeFormatError
	default:
		s.answer(m, q, now)
	}
	return m, size
}

// answer fills m from the world's truth for q at lab time now.
func (s *Server) answer(m *dns.Msg, q dns.Question, now time.Time) {
	d, owner := s.zoneOf(q.Name)
	if d == nil {
		m.Rcode = dns.RcodeRefused // not a lab zone: this server is not authoritative
		return
	}
	switch d.StatusAt(now) {
	case world.Refused:
		m.Rcode = dns.RcodeRefused
		return
	case world.ServFail:
		m.Rcode = dns.RcodeServerFailure
		return
	case world.NXDomain:
		s.negative(m, d, now, dns.RcodeNameError)
		return
	}
	m.Authoritative = true

	switch {
	case owner == d.Name:
		m.Answer = s.apex(d, q, now)
	case slices.Contains(d.NSNames, owner):
		if q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY {
			if ip, ok := s.world.NSHostAddr(d, owner, now); ok {
				m.Answer = []dns.RR{addrRR(q.Name, d.NSTTL, ip)}
			}
		}
	case s.world.HostExists(d, owner):
		// www.<zone> and, for wildcard zones, any name below: answered like the apex.
		if q.Qtype == dns.TypeA || q.Qtype == dns.TypeAAAA || q.Qtype == dns.TypeANY {
			m.Answer = s.apex(d, q, now)
		}
	default:
		s.negative(m, d, now, dns.RcodeNameError)
		return
	}
	if len(m.Answer) == 0 {
		s.negative(m, d, now, dns.RcodeSuccess) // NODATA
		return
	}
	ns, glue := s.nsSet(d, now)
	if q.Qtype == dns.TypeNS && owner == d.Name {
		m.Extra = append(glue, m.Extra...)
		return
	}
	// Like servers without minimal-responses: the zone's NS set and its glue ride
	// along. fit drops them first when space is short.
	m.Ns = ns
	m.Extra = append(glue, m.Extra...)
}

// apex answers q for the zone's own name.
func (s *Server) apex(d *world.Domain, q dns.Question, now time.Time) []dns.RR {
	var out []dns.RR
	switch q.Qtype {
	case dns.TypeA, dns.TypeANY: // ANY: a subset will do (RFC 8482)
		ips, ttl := s.world.A(d, now)
		for _, ip := range ips {
			out = append(out, addrRR(q.Name, ttl, ip))
		}
		if len(out) == 0 && q.Qtype == dns.TypeANY {
			soa := s.soa(d, now)
			soa.Hdr.Name = q.Name
			out = append(out, soa)
		}
	case dns.TypeAAAA:
		ips, ttl := s.world.AAAA(d, now)
		for _, ip := range ips {
			out = append(out, addrRR(q.Name, ttl, ip))
		}
	case dns.TypeNS:
		ns, _ := s.nsSet(d, now)
		for _, rr := range ns {
			rr.Header().Name = q.Name
		}
		out = ns
	case dns.TypeSOA:
		soa := s.soa(d, now)
		soa.Hdr.Name = q.Name
		out = append(out, soa)
	}
	return out
}

// zoneOf finds the deepest lab zone holding name, and the name in the world's
// spelling (lower case, no trailing dot).
func (s *Server) zoneOf(name string) (*world.Domain, string) {
	lower := strings.TrimSuffix(strings.ToLower(name), ".")
	if lower == "" {
		return nil, ""
	}
	for _, i := range dns.Split(lower) {
		if d, ok := s.world.Domain(lower[i:]); ok {
			return d, lower
		}
	}
	return nil, ""
}

// nsSet returns the zone's NS records at lab time now and the A glue of their hosts.
func (s *Server) nsSet(d *world.Domain, now time.Time) (ns, glue []dns.RR) {
	hosts, ttl := s.world.NS(d, now)
	for _, h := range hosts {
		ns = append(ns, &dns.NS{Hdr: header(d.Name, dns.TypeNS, ttl), Ns: dns.Fqdn(h.Name)})
		if h.Addr.IsValid() {
			glue = append(glue, addrRR(h.Name, ttl, h.Addr))
		}
	}
	return ns, glue
}

// negative makes m an authoritative NXDOMAIN or NODATA answer with the zone's SOA
// in the authority section, its TTL capped by the negative TTL (RFC 2308).
func (s *Server) negative(m *dns.Msg, d *world.Domain, now time.Time, rcode int) {
	m.Authoritative = true
	m.Rcode = rcode
	m.Answer = nil
	soa := s.soa(d, now)
	soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
	m.Ns = []dns.RR{soa}
}

// soa is the zone's SOA at lab time now. Zones whose answers rotate bump the serial
// every TTL, as if the zone were re-signed or regenerated each time.
func (s *Server) soa(d *world.Domain, now time.Time) *dns.SOA {
	mname := "ns1." + d.Name
	if hosts, _ := s.world.NS(d, now); len(hosts) > 0 {
		mname = hosts[0].Name
	} else if len(d.NSNames) > 0 {
		mname = d.NSNames[0]
	}
	serial := s.world.Start
	if rotates(d.Class) && d.TTL > 0 {
		period := time.Duration(d.TTL) * time.Second
		serial = serial.Add(max(0, now.Sub(s.world.Start)) / period * period)
	}
	return &dns.SOA{
		Hdr:     header(d.Name, dns.TypeSOA, d.NSTTL),
		Ns:      dns.Fqdn(mname),
		Mbox:    dns.Fqdn("hostmaster." + d.Name),
		Serial:  uint32(serial.Unix()),
		Refresh: soaRefresh,
		Retry:   soaRetry,
		Expire:  soaExpire,
		Minttl:  min(max(d.TTL, 30), 300),
	}
}

func rotates(c world.Class) bool {
	return c.IsFlux() || c == world.CDNDomain || c == world.RoundRobin
}

func header(name string, rrtype uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: dns.Fqdn(name), Rrtype: rrtype, Class: dns.ClassINET, Ttl: ttl}
}

// addrRR is an A or AAAA record, whichever ip is.
func addrRR(name string, ttl uint32, ip netip.Addr) dns.RR {
	if ip.Is4() {
		return &dns.A{Hdr: header(name, dns.TypeA, ttl), A: ip.AsSlice()}
	}
	return &dns.AAAA{Hdr: header(name, dns.TypeAAAA, ttl), AAAA: ip.AsSlice()}
}

// fit makes m fit in size bytes: first without the optional NS set and glue of a
// positive answer, then by cutting records and setting TC so the client retries
// over TCP.
func fit(m *dns.Msg, size int) {
	if m.Len() <= size {
		return
	}
	if len(m.Answer) > 0 {
		m.Ns = nil
		m.Extra = slices.DeleteFunc(m.Extra, func(rr dns.RR) bool { return rr.Header().Rrtype != dns.TypeOPT })
		if m.Len() <= size {
			return
		}
	}
	m.Truncate(size)
}
