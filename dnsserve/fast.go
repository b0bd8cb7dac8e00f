package dnsserve

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
)

// fastConn answers the queries a mail server sends most, an A query of a DNSBL
// zone over UDP, straight from the packet's bytes: it reads the question, looks
// the key up, and writes the answer, with none of the library's unpacking,
// goroutine, packing and allocations per query. Every other packet (anything
// else asked, EDNS, TSIG, a name it does not take) goes to the library's
// server unchanged, which hands it to ServeDNS.
type fastConn struct {
	*net.UDPConn
	s    *Server
	name [256]byte
	// batch reads and writes many packets a system call (recvmmsg, sendmmsg):
	// in are the packets read, next the first not yet looked at.
	batch *ipv4.PacketConn
	in    []ipv4.Message
	n     int
	next  int
	out   []ipv4.Message
}

// fastBatch is how many packets one system call reads or writes.
const fastBatch = 64

func newFastConn(u *net.UDPConn, s *Server) *fastConn {
	c := &fastConn{UDPConn: u, s: s, batch: ipv4.NewPacketConn(u)}
	c.in = make([]ipv4.Message, fastBatch)
	c.out = make([]ipv4.Message, fastBatch)
	for i := range c.in {
		c.in[i].Buffers = [][]byte{make([]byte, maxUDPSize)}
		c.out[i].Buffers = [][]byte{make([]byte, 0, maxUDPSize)}
	}
	return c
}

// ReadFrom returns the next packet the fast path does not answer; the ones it
// answers are written back in batches.
func (c *fastConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		if c.next == c.n {
			n, err := c.batch.ReadBatch(c.in, 0)
			if err != nil {
				return 0, nil, err
			}
			c.n, c.next = n, 0
		}
		answers := 0
		for c.next < c.n {
			m := &c.in[c.next]
			c.next++
			q := m.Buffers[0][:m.N]
			if len(q) < 12 { // the library says what is wrong with it
				c.flush(answers)
				return copy(b, q), m.Addr, nil
			}
			ap := addrPort(m.Addr)
			out, handled := c.s.fast(q, ap.Addr().Unmap(), c.out[answers].Buffers[0][:0], &c.name)
			if !handled {
				c.flush(answers)
				return copy(b, q), m.Addr, nil
			}
			if out != nil {
				c.out[answers].Buffers[0], c.out[answers].Addr = out, m.Addr
				answers++
			}
		}
		c.flush(answers)
	}
}

// flush writes the first n answers, dropping what cannot be written (like a
// lost packet: the client asks again).
func (c *fastConn) flush(n int) {
	for sent := 0; sent < n; {
		k, err := c.batch.WriteBatch(c.out[sent:n], 0)
		if err != nil || k == 0 {
			return
		}
		sent += k
	}
}

func addrPort(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		return u.AddrPort()
	}
	return netip.AddrPort{}
}

// fast answers q when it is a plain DNSBL A query; handled false leaves it to
// the library. A nil answer with handled true is a query dropped by the rate
// limit.
func (s *Server) fast(q []byte, client netip.Addr, out []byte, buf *[256]byte) ([]byte, bool) {
	if len(q) < 12 {
		return nil, false
	}
	flags := binary.BigEndian.Uint16(q[2:])
	qd, an, ns, ar := binary.BigEndian.Uint16(q[4:]), binary.BigEndian.Uint16(q[6:]), binary.BigEndian.Uint16(q[8:]), binary.BigEndian.Uint16(q[10:])
	// A query (QR 0), opcode QUERY, one question, nothing else.
	if flags&0xF800 != 0 || qd != 1 || an != 0 || ns != 0 || ar != 0 {
		return nil, false
	}
	// The name, lower-cased, label by label; no compression in a question.
	name := buf[:0]
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
		if l > 63 || off+1+l > len(q) || len(name)+l+1 > 253 {
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
			name = append(name, ch)
		}
		name = append(name, '.')
		off += 1 + l
	}
	if off+4 != len(q) {
		return nil, false
	}
	qtype, qclass := binary.BigEndian.Uint16(q[off:]), binary.BigEndian.Uint16(q[off+2:])
	if qtype != dns.TypeA || qclass != dns.ClassINET {
		return nil, false
	}
	z, ownerLen := s.blZoneOf(name)
	if z == nil || ownerLen == 0 {
		return nil, false
	}
	k, ok := fastKey(name[:ownerLen])
	if !ok {
		return nil, false
	}
	if !s.limiter.allow(client) {
		s.m.limited.Inc()
		return nil, true
	}
	var codesBuf [8]uint8
	codes := s.codes(z, k, codesBuf[:0])
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
		z.listedA.Inc()
		return out, true
	}
	out[3] |= dns.RcodeNameError
	binary.BigEndian.PutUint16(out[8:], 1)
	zoneAt := 12 + len(name) - len(z.origin) // where the zone's labels start in the question
	out = append(out, 0xC0|byte(zoneAt>>8), byte(zoneAt))
	out = append(out, z.soaRR...)
	z.unlistedA.Inc()
	return out, true
}

// codes are the codes of the zone's lists holding a key.
func (s *Server) codes(z *blZone, k key, out []uint8) []uint8 {
	if listed, isTest := testPoint(k); isTest {
		if !listed {
			return nil
		}
		for _, l := range z.lists {
			out = append(out, l.Code)
		}
		return out
	}
	s.d.mu.RLock()
	defer s.d.mu.RUnlock()
	es := s.d.lookup(k)
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

// blZoneOf is the DNSBL zone a lower-case name is under, and the length of the
// owner before it (with its dot; 0 at the apex).
func (s *Server) blZoneOf(name []byte) (*blZone, int) {
	for _, z := range s.bl {
		n := len(name) - len(z.origin)
		switch {
		case n == 0 && string(name) == z.origin:
			return z, 0
		case n > 0 && name[n-1] == '.' && string(name[n:]) == z.origin:
			return z, n - 1
		}
	}
	return nil, 0
}

// fastKey reads an owner without allocating when it is an IPv4 address's
// reversed octets, the common question; anything else as parseKey does.
func fastKey(owner []byte) (key, bool) {
	var b [4]byte
	part, digits, v := 3, 0, 0
	for i, ch := range owner {
		switch {
		case ch >= '0' && ch <= '9':
			if digits > 0 && v == 0 { // a leading zero
				return parseKey(string(owner))
			}
			v, digits = v*10+int(ch-'0'), digits+1
			if v > 255 {
				return parseKey(string(owner))
			}
		case ch == '.' && digits > 0 && part > 0:
			b[part], part, digits, v = byte(v), part-1, 0, 0
		default:
			return parseKey(string(owner))
		}
		if i == len(owner)-1 && part == 0 && digits > 0 {
			b[0] = byte(v)
			return key{addr: netip.AddrFrom4(b)}, true
		}
	}
	return parseKey(string(owner))
}

// packetConn is the UDP socket the library reads: the fast path in front of a
// UDP socket, the socket itself otherwise.
func (s *Server) packetConn(pc net.PacketConn) net.PacketConn {
	if u, ok := pc.(*net.UDPConn); ok && len(s.bl) > 0 && addrPort(u.LocalAddr()).Addr().Is4() {
		return newFastConn(u, s)
	}
	return pc
}
