package dnsserve

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// maxUDPSize is the largest UDP answer the server sends, whatever a client's
// EDNS says: the size DNS flag day 2020 settled on, below fragmentation.
const maxUDPSize = 1232

// ServeDNS answers one query.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	client := remoteAddr(w)
	if !s.limiter.allow(client) {
		s.m.limited.Inc()
		return // dropped: a flood gets nothing back to reflect
	}
	m := new(dns.Msg)
	m.SetReply(r)
	zone, qtype := "-", "-"
	defer func() {
		s.m.query(zone, qtype, m.Rcode)
	}()
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	qtype = dns.TypeToString[q.Qtype]
	if qtype == "" {
		qtype = "other"
	}
	udp := isUDP(w)
	size := uint16(dns.MinMsgSize)
	if opt := r.IsEdns0(); opt != nil {
		if opt.Version() != 0 {
			m.SetEdns0(maxUDPSize, false)
			m.Rcode = dns.RcodeBadVers
			w.WriteMsg(m)
			return
		}
		size = min(max(opt.UDPSize(), dns.MinMsgSize), maxUDPSize)
		m.SetEdns0(size, false)
	}
	switch {
	case r.Opcode != dns.OpcodeQuery:
		m.Rcode = dns.RcodeNotImplemented
	case q.Qclass != dns.ClassINET:
		m.Rcode = dns.RcodeRefused
	case q.Qtype == dns.TypeANY:
		m.Rcode = dns.RcodeNotImplemented // RFC 8482: nothing to enumerate here
	}
	if m.Rcode != dns.RcodeSuccess {
		w.WriteMsg(m)
		return
	}
	qname := strings.ToLower(dns.CanonicalName(q.Name))
	if z, owner, ok := s.rpzZone(qname); ok {
		zone = z.origin
		if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
			s.transfer(w, r, m, z, client, udp)
			return
		}
		s.answerRPZ(m, z, owner, q.Qtype)
	} else if z, owner, ok := s.blZone(qname); ok {
		zone = z.origin
		if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
			m.Rcode = dns.RcodeRefused // a DNSBL is asked, not transferred
		} else {
			s.answerDNSBL(m, z, owner, q.Qtype)
		}
	} else {
		m.Rcode = dns.RcodeRefused // not a zone of this server
	}
	if udp {
		m.Truncate(int(size))
	}
	if t := r.IsTsig(); t != nil && w.TsigStatus() == nil {
		m.SetTsig(t.Hdr.Name, t.Algorithm, 300, time.Now().Unix()) // signed by the writer
	}
	w.WriteMsg(m)
}

func (s *Server) rpzZone(qname string) (*rpzZone, string, bool) {
	for _, z := range s.d.rpz {
		if owner, ok := ownerOf(qname, z.origin); ok {
			return z, owner, true
		}
	}
	return nil, "", false
}

func (s *Server) blZone(qname string) (*blZone, string, bool) {
	for _, z := range s.bl {
		if owner, ok := ownerOf(qname, z.origin); ok {
			return z, owner, true
		}
	}
	return nil, "", false
}

// answerRPZ answers a plain query in an RPZ zone: the apex's SOA and NS, an
// owner's policy records.
func (s *Server) answerRPZ(m *dns.Msg, z *rpzZone, owner string, qtype uint16) {
	m.Authoritative = true
	s.d.mu.RLock()
	defer s.d.mu.RUnlock()
	switch {
	case owner == "" && qtype == dns.TypeSOA:
		m.Answer = append(m.Answer, s.soa(z.origin, z.serial))
	case owner == "" && qtype == dns.TypeNS:
		m.Answer = append(m.Answer, s.ns(z.origin))
	case owner == "":
		m.Ns = append(m.Ns, s.soa(z.origin, z.serial))
	case z.owners[owner] > 0:
		for _, rr := range z.records(owner, uint32(s.cfg.TTL.Seconds())) {
			if rr.Header().Rrtype == qtype || rr.Header().Rrtype == dns.TypeCNAME {
				m.Answer = append(m.Answer, rr)
			}
		}
		if len(m.Answer) == 0 {
			m.Ns = append(m.Ns, s.soa(z.origin, z.serial))
		}
	default:
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, s.soa(z.origin, z.serial))
	}
}

// answerDNSBL answers a DNSBL query: A 127.0.0.CODE for each list holding the
// address or domain (itself, a block holding the address, a domain above the
// name), TXT with the sources and the score; NXDOMAIN when none does.
func (s *Server) answerDNSBL(m *dns.Msg, z *blZone, owner string, qtype uint16) {
	m.Authoritative = true
	ttl := uint32(s.cfg.TTL.Seconds())
	name := m.Question[0].Name
	if owner == "" {
		switch qtype {
		case dns.TypeSOA:
			m.Answer = append(m.Answer, s.soa(z.origin, 1))
		case dns.TypeNS:
			m.Answer = append(m.Answer, s.ns(z.origin))
		default:
			m.Ns = append(m.Ns, s.soa(z.origin, 1))
		}
		return
	}
	k, ok := parseKey(owner)
	if !ok {
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, s.soa(z.origin, 1))
		return
	}
	codes := s.codes(z, k, nil)
	if len(codes) == 0 {
		m.Rcode = dns.RcodeNameError
		m.Ns = append(m.Ns, s.soa(z.origin, 1))
		return
	}
	switch qtype {
	case dns.TypeA:
		for _, c := range codes {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl},
				A: net.IPv4(127, 0, 0, c)})
		}
	case dns.TypeTXT:
		var names []string
		for _, l := range z.lists {
			if slices.Contains(codes, l.Code) && l.Name != "" {
				names = append(names, l.Name)
			}
		}
		sources, score := s.listedBy(z, k)
		slices.Sort(sources)
		txt := fmt.Sprintf("listed by TIP in %s: %s; score %.2f", strings.Join(names, ", "), strings.Join(sources, ", "), score)
		m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl},
			Txt: splitTXT(txt)})
	default:
		m.Ns = append(m.Ns, s.soa(z.origin, 1)) // NODATA
	}
}

// splitTXT cuts a text into TXT character-strings of at most 255 bytes.
func splitTXT(s string) []string {
	var out []string
	for len(s) > 255 {
		out = append(out, s[:255])
		s = s[255:]
	}
	return append(out, s)
}

func remoteAddr(w dns.ResponseWriter) netip.Addr {
	if ap, err := netip.ParseAddrPort(w.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

func isUDP(w dns.ResponseWriter) bool {
	_, ok := w.RemoteAddr().(*net.UDPAddr)
	return ok
}

// listedBy are the sources listing a key in the zone's lists, and its best
// score: what a TXT answer says.
func (s *Server) listedBy(z *blZone, k key) (sources []string, score float64) {
	if _, isTest := testPoint(k); isTest {
		return []string{"a test point (RFC 5782)"}, 0
	}
	s.d.mu.RLock()
	defer s.d.mu.RUnlock()
	es := s.d.lookup(k)
	for _, e := range es {
		if !slices.ContainsFunc(z.lists, func(l *list) bool { return e.member&(1<<l.bit) != 0 }) {
			continue
		}
		sc, _ := s.d.score(e)
		score = max(score, sc)
		for _, n := range s.d.sourceNames(e) {
			if !slices.Contains(sources, n) {
				sources = append(sources, n)
			}
		}
	}
	return sources, score
}
