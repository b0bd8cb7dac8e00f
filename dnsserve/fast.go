package dnsserve

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// fastConn answers the queries a mail server sends most, an A query of a DNSBL
// zone over UDP, straight from the packet's bytes: it reads the question, looks
// the key up, and writes the answer, with none of the library's unpacking,
// goroutine and packing per query. Every other packet (anything else asked,
// EDNS options, TSIG, a name it does not take) goes to the library's server
// unchanged, which hands it to ServeDNS.
type fastConn struct {
	net.PacketConn
	s   *Server
	out []byte
}

// ReadFrom returns the next packet the fast path does not answer.
func (c *fastConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil || n < 12 {
			return n, addr, err
		}
		var client netip.Addr
		if u, ok := addr.(*net.UDPAddr); ok {
			client = u.AddrPort().Addr().Unmap()
		}
		out, handled := c.s.fast(b[:n], client, c.out[:0])
		if !handled {
			return n, addr, nil
		}
		if out != nil {
			c.PacketConn.WriteTo(out, addr) //nolint:errcheck // like a lost packet: the client asks again
			c.out = out
		}
	}
}

// fast answers q when it is a plain DNSBL A query; handled false leaves it to
// the library. A nil answer with handled true is a query dropped by the rate
// limit.
func (s *Server) fast(q []byte, client netip.Addr, out []byte) ([]byte, bool) {
	flags := binary.BigEndian.Uint16(q[2:])
	qd, an, ns, ar := binary.BigEndian.Uint16(q[4:]), binary.BigEndian.Uint16(q[6:]), binary.BigEndian.Uint16(q[8:]), binary.BigEndian.Uint16(q[10:])
	// A query (QR 0), opcode QUERY, one question, nothing else.
	if flags&0xF800 != 0 || qd != 1 || an != 0 || ns != 0 || ar != 0 {
		return nil, false
	}
	// The name, lower-cased, label by label; no compression in a question.
	var name strings.Builder
	off := 12
	for {
		if off >= len(q) {
			return nil, false
		}
		l := int(q[off])
		if l == 0 {
			off++
			break
		}
		if l > 63 || off+1+l > len(q) || name.Len()+l+1 > 253 {
			return nil, false
		}
		for _, ch := range q[off+1 : off+1+l] {
			switch {
			case ch >= 'A' && ch <= 'Z':
				ch += 'a' - 'A'
			case ch >= 'a' && ch <= 'z', ch >= '0' && ch <= '9', ch == '-', ch == '_':
			default:
				return nil, false // escapes and the like: the library's
			}
			name.WriteByte(ch)
		}
		name.WriteByte('.')
		off += 1 + l
	}
	if off+4 != len(q) {
		return nil, false
	}
	qtype, qclass := binary.BigEndian.Uint16(q[off:]), binary.BigEndian.Uint16(q[off+2:])
	if qtype != dns.TypeA || qclass != dns.ClassINET {
		return nil, false
	}
	qname := name.String()
	z, owner, ok := s.blZone(qname)
	if !ok || owner == "" {
		return nil, false
	}
	k, ok := parseKey(owner)
	if !ok {
		return nil, false
	}
	if !s.limiter.allow(client) {
		s.m.limited.Inc()
		return nil, true
	}
	codes := s.codes(z, k)
	// The answer: the header, the question as asked, then the A records (the
	// name a pointer to the question's) or the zone's SOA (its owner a pointer
	// to the zone's labels in the question).
	out = append(out, q[0], q[1], 0x84|q[2]&0x01, q[3]&0x10, 0, 1, 0, 0, 0, 0, 0, 0) // QR AA, RD and CD as asked, NOERROR
	out = append(out, q[12:]...)
	ttl := uint32(s.cfg.TTL.Seconds())
	if len(codes) > 0 {
		binary.BigEndian.PutUint16(out[6:], uint16(len(codes)))
		for _, c := range codes {
			out = append(out, 0xC0, 12, 0, byte(dns.TypeA), 0, byte(dns.ClassINET))
			out = binary.BigEndian.AppendUint32(out, ttl)
			out = append(out, 0, 4, 127, 0, 0, c)
		}
		s.m.query(z.origin, "A", dns.RcodeSuccess)
		return out, true
	}
	out[3] |= dns.RcodeNameError
	binary.BigEndian.PutUint16(out[8:], 1)
	zoneAt := 12 + len(qname) - len(z.origin) // where the zone's labels start in the question
	out = append(out, 0xC0|byte(zoneAt>>8), byte(zoneAt))
	out = append(out, z.soaRR...)
	s.m.query(z.origin, "A", dns.RcodeNameError)
	return out, true
}

// codes are the codes of the zone's lists holding a key.
func (s *Server) codes(z *blZone, k key) []uint8 {
	if listed, isTest := testPoint(k); isTest {
		if !listed {
			return nil
		}
		out := make([]uint8, 0, len(z.lists))
		for _, l := range z.lists {
			out = append(out, l.Code)
		}
		return out
	}
	s.d.mu.RLock()
	defer s.d.mu.RUnlock()
	var es []*entry
	if k.addr.IsValid() {
		es = s.d.lookupAddr(k.addr)
	} else {
		es = s.d.lookupDomain(k.domain)
	}
	var out []uint8
	for _, l := range z.lists {
		for _, e := range es {
			if e.member&(1<<l.bit) != 0 {
				out = append(out, l.Code)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}

// soaRR is the wire form of a DNSBL zone's SOA record after its owner name:
// type, class, TTL, and its data.
func (s *Server) soaRR(origin string) []byte {
	soa := s.soa(origin, 1)
	buf := make([]byte, 512)
	n, err := dns.PackRR(soa, buf, 0, nil, false)
	if err != nil {
		return nil
	}
	// Skip the owner (uncompressed: the zone's name) the pointer replaces.
	skip := len(origin) + 1
	if origin == "." {
		skip = 1
	}
	return buf[skip:n]
}
