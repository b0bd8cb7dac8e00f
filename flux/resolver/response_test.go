package resolver

import (
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// The question every packet here answers: www.flux.test A, ID 0x1234, EDNS0 1232.
func testQuery() *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion("www.flux.test.", dns.TypeA)
	q.Id = 0x1234
	q.SetEdns0(1232, false)
	return q
}

// qname is www.flux.test in wire format, at offset 12 of every packet.
var qname = []byte("\x03www\x04flux\x04test\x00")

// header builds a 12-byte header: ID 0x1234, the flags, and the section counts.
func header(flags uint16, qd, an, ns, ar uint16) []byte {
	b := make([]byte, 12)
	for i, v := range []uint16{0x1234, flags, qd, an, ns, ar} {
		binary.BigEndian.PutUint16(b[2*i:], v)
	}
	return b
}

func cat(parts ...[]byte) []byte { return slices.Concat(parts...) }

// rrA is an A record for owner (wire format) with a TTL.
func rrA(owner []byte, ttl uint32, ip [4]byte) []byte {
	b := cat(owner, []byte{0, 1, 0, 1}, binary.BigEndian.AppendUint32(nil, ttl), []byte{0, 4}, ip[:])
	return b
}

const (
	flagsQR   = 0x8000
	flagsAA   = 0x0400
	flagsTC   = 0x0200
	flagsResp = flagsQR | flagsAA
	answerOff = 12 + 15 + 4 // where the answer section starts: header, qname, type+class
)

var (
	question = cat(qname, []byte{0, 1, 0, 1})
	toQName  = []byte{0xc0, 12}                               // compression pointer to the question's name
	optRR    = []byte{0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0} // OPT, 1232 bytes, no options
)

// honestPacket is a well-formed answer with compression, glue and OPT, as packed by
// miekg/dns.
func honestPacket(t testing.TB, edit func(*dns.Msg)) []byte {
	q := testQuery()
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	m.Compress = true
	m.Answer = []dns.RR{
		mustRR("www.flux.test. 60 IN A 192.0.2.1"),
		mustRR("www.flux.test. 60 IN A 192.0.2.2"),
	}
	m.Ns = []dns.RR{mustRR("flux.test. 3600 IN NS ns1.flux.test.")}
	m.Extra = []dns.RR{mustRR("ns1.flux.test. 3600 IN A 198.51.100.1")}
	m.SetEdns0(1232, false)
	if edit != nil {
		edit(m)
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseResponse(t *testing.T) {
	honest := honestPacket(t, nil)
	cut := func(b []byte, n int) []byte { return slices.Clone(b[:len(b)-n]) }
	withTC := func(b []byte) []byte {
		b = slices.Clone(b)
		b[2] |= flagsTC >> 8
		return b
	}
	for _, tc := range []struct {
		name    string
		raw     []byte
		maxSize int
		reason  error // nil: accepted
		check   func(*testing.T, *dns.Msg)
	}{
		{name: "honest, compressed", raw: honest, check: func(t *testing.T, m *dns.Msg) {
			if len(m.Answer) != 2 || len(m.Ns) != 1 || len(m.Extra) != 2 {
				t.Errorf("sections %d/%d/%d", len(m.Answer), len(m.Ns), len(m.Extra))
			}
		}},
		{name: "honest, uncompressed", raw: honestPacket(t, func(m *dns.Msg) { m.Compress = false })},
		{name: "question in other case", raw: cat(header(flagsResp, 1, 1, 0, 0),
			[]byte("\x03WWW\x04fLuX\x04TEST\x00\x00\x01\x00\x01"), rrA(toQName, 60, [4]byte{192, 0, 2, 1}))},
		{name: "short", raw: []byte{0x12, 0x34, 0x81}, reason: ErrMalformed},
		{name: "header only", raw: header(flagsResp, 0, 0, 0, 0), reason: ErrQuestionMismatch},
		{name: "wrong ID", raw: append([]byte{0x43, 0x21}, honest[2:]...), reason: ErrIDMismatch},
		{name: "a query, not a response", raw: cat(header(0, 1, 0, 0, 0), question), reason: ErrNotResponse},
		{name: "opcode NOTIFY", raw: cat(header(flagsResp|4<<11, 1, 0, 0, 0), question), reason: ErrQuestionMismatch},
		{name: "other type", raw: cat(header(flagsResp, 1, 0, 0, 0), qname, []byte{0, 28, 0, 1}), reason: ErrQuestionMismatch},
		{name: "two questions", raw: cat(header(flagsResp, 2, 0, 0, 0), question, question), reason: ErrQuestionMismatch},
		{name: "too large", raw: honest, maxSize: len(honest) - 1, reason: ErrOversized},
		{name: "compression loop", raw: cat(header(flagsResp, 1, 1, 0, 0), question,
			rrA([]byte{0xc0, answerOff}, 60, [4]byte{1, 2, 3, 4})), reason: ErrMalformed},
		{name: "pointer past the end", raw: cat(header(flagsResp, 1, 1, 0, 0), question,
			rrA([]byte{0xc1, 0xff}, 60, [4]byte{1, 2, 3, 4})), reason: ErrMalformed},
		{name: "counts lie", raw: cat(header(flagsResp, 1, 5, 0, 0), question,
			rrA(toQName, 60, [4]byte{1, 2, 3, 4})), reason: ErrMalformed},
		{name: "cut short without TC", raw: cut(honest, 5), reason: ErrMalformed},
		{name: "cut short with TC", raw: withTC(cut(honest, 5)), check: func(t *testing.T, m *dns.Msg) {
			if !m.Truncated || len(m.Answer)+len(m.Ns)+len(m.Extra) != 0 {
				t.Errorf("a cut message kept records: %v", m)
			}
		}},
		{name: "TC, whole", raw: withTC(honest), check: func(t *testing.T, m *dns.Msg) {
			if !m.Truncated || len(m.Answer) != 2 {
				t.Errorf("TC answer: %v", m)
			}
		}},
		{name: "two OPT", raw: cat(header(flagsResp, 1, 0, 0, 2), question, optRR, optRR), reason: ErrMalformed},
		{name: "OPT in the answer", raw: cat(header(flagsResp, 1, 1, 0, 0), question, optRR), reason: ErrMalformed},
		{name: "OPT TTL field holds flags", raw: cat(header(flagsResp, 1, 0, 0, 1), question,
			[]byte{0, 0, 41, 0x04, 0xd0, 0xff, 0, 0x80, 0, 0, 0}), check: func(t *testing.T, m *dns.Msg) {
			if m.Rcode != 0xff<<4 || !m.IsEdns0().Do() {
				t.Errorf("extended rcode %d, DO %v", m.Rcode, m.IsEdns0().Do())
			}
		}},
		{name: "TTL 2^31", raw: cat(header(flagsResp, 1, 1, 0, 0), question,
			rrA(toQName, 1<<31, [4]byte{1, 2, 3, 4})), reason: ErrBogusTTL},
		{name: "TTL 2^31-1", raw: cat(header(flagsResp, 1, 1, 0, 0), question,
			rrA(toQName, 1<<31-1, [4]byte{1, 2, 3, 4}))},
		{name: "bogus TTL in glue", raw: cat(header(flagsResp, 1, 0, 0, 1), question,
			rrA([]byte("\x03ns1\xc0\x10"), 0xffffffff, [4]byte{1, 2, 3, 4})), reason: ErrBogusTTL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			maxSize := tc.maxSize
			if maxSize == 0 {
				maxSize = 1232
			}
			m, err := ParseResponse(tc.raw, testQuery(), maxSize)
			if tc.reason == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if tc.check != nil {
					tc.check(t, m)
				}
				return
			}
			var rej *RejectError
			if !errors.Is(err, tc.reason) || !errors.As(err, &rej) || m != nil {
				t.Fatalf("got %v (%v), want a refusal for %q", err, m, tc.reason)
			}
			if !strings.Contains(err.Error(), tc.reason.Error()) {
				t.Errorf("message %q does not say %q", err, tc.reason)
			}
		})
	}
}

var reasons = []error{ErrMalformed, ErrNotResponse, ErrIDMismatch, ErrQuestionMismatch, ErrOversized, ErrBogusTTL}

// FuzzParseResponse: whatever the bytes, ParseResponse does not panic, refuses with
// one of its typed reasons, and what it accepts answers the question asked, fits
// the limit and carries no TTL over 2^31-1 and at most one OPT.
func FuzzParseResponse(f *testing.F) {
	honest := honestPacket(f, nil)
	f.Add(honest, false)
	f.Add(honestPacket(f, func(m *dns.Msg) { m.Compress = false }), false)
	f.Add(honestPacket(f, func(m *dns.Msg) {
		m.Answer = append([]dns.RR{mustRR("www.flux.test. 60 IN CNAME edge.cdn.example.")}, m.Answer...)
		m.Extra = append(m.Extra, mustRR("ns1.flux.test. 3600 IN AAAA 2001:db8::1"))
	}), true)
	for _, n := range []int{1, 5, 16, 40} { // truncated mid-record, with and without TC
		b := slices.Clone(honest[:len(honest)-n])
		f.Add(b, false)
		b = slices.Clone(b)
		b[2] |= flagsTC >> 8
		f.Add(b, false)
	}
	f.Add(cat(header(flagsResp, 1, 1, 0, 0), question, rrA([]byte{0xc0, answerOff}, 60, [4]byte{1, 2, 3, 4})), false)
	f.Add(cat(header(flagsResp, 1, 1, 0, 0), question, rrA([]byte{0xc1, 0xff}, 60, [4]byte{1, 2, 3, 4})), false)
	f.Add(cat(header(flagsResp, 1, 1, 0, 0), question, rrA(toQName, 1<<31, [4]byte{1, 2, 3, 4})), false)
	f.Add(cat(header(flagsResp, 1, 0, 0, 2), question, optRR, optRR), false)
	f.Add(cat(header(flagsResp, 1, 0, 0, 1), question, []byte{0, 0, 41, 0x04, 0xd0, 0xff, 0, 0x80, 0, 0, 0}), true)
	f.Add(cat(header(flagsResp, 1, 0, 0, 0), []byte("\x03WWW\x04fLuX\x04TEST\x00\x00\x01\x00\x01")), false)
	f.Add(header(flagsResp, 0, 0, 0, 0), false)
	f.Add([]byte{0x12, 0x34}, false)

	q := testQuery()
	f.Fuzz(func(t *testing.T, raw []byte, tcp bool) {
		limit := 1232
		if tcp {
			limit = dns.MaxMsgSize
		}
		m, err := ParseResponse(raw, q, limit)
		if err != nil {
			var rej *RejectError
			if !errors.As(err, &rej) || !slices.Contains(reasons, rej.Reason) || m != nil {
				t.Fatalf("refusal without a known reason: %v (msg %v)", err, m)
			}
			return
		}
		if len(raw) > limit {
			t.Fatalf("%d bytes accepted, limit %d", len(raw), limit)
		}
		if !m.Response || m.Id != q.Id || len(m.Question) != 1 {
			t.Fatalf("accepted a non-answer: %v", m)
		}
		got, want := m.Question[0], q.Question[0]
		if !strings.EqualFold(got.Name, want.Name) || got.Qtype != want.Qtype || got.Qclass != want.Qclass {
			t.Fatalf("accepted the answer to %v", got)
		}
		opts := 0
		for i, section := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
			for _, rr := range section {
				if rr.Header().Rrtype == dns.TypeOPT {
					if i != 2 {
						t.Fatalf("OPT in section %d", i)
					}
					opts++
				} else if rr.Header().Ttl > maxTTL31 {
					t.Fatalf("accepted TTL %d", rr.Header().Ttl)
				}
			}
		}
		if opts > 1 {
			t.Fatalf("accepted %d OPT records", opts)
		}
	})
}
