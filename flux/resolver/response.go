package resolver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// Reasons a response is refused. A refusal comes as a *RejectError that names the
// server and the details; errors.Is matches it against these values.
var (
	ErrMalformed        = errors.New("malformed message")
	ErrNotResponse      = errors.New("not a response")
	ErrIDMismatch       = errors.New("ID does not match the query")
	ErrQuestionMismatch = errors.New("question does not match the query")
	ErrOversized        = errors.New("message larger than allowed")
	ErrTruncated        = errors.New("truncated and not completed over TCP")
	ErrBogusTTL         = errors.New("TTL above 2^31-1")
	ErrLame             = errors.New("server is not authoritative and gives no usable referral")
	ErrCNAMELoop        = errors.New("CNAME chain loops or is too long")
	ErrRcode            = errors.New("unexpected response code")
)

// Errors that end a resolution without any server being at fault.
var (
	ErrBudget = errors.New("resolver: query budget exhausted")
	ErrDepth  = errors.New("resolver: too many referrals or nested name-server lookups")
)

// RejectError says why a response from a server was refused.
type RejectError struct {
	Server string // host:port; "" when the response was judged without its origin
	Reason error  // one of the Err* reasons above
	Detail string // what exactly was wrong
}

func (e *RejectError) Error() string {
	var b strings.Builder
	b.WriteString("resolver: ")
	if e.Server != "" {
		b.WriteString("response from " + e.Server + " refused: ")
	} else {
		b.WriteString("response refused: ")
	}
	b.WriteString(e.Reason.Error())
	if e.Detail != "" {
		b.WriteString(" (" + e.Detail + ")")
	}
	return b.String()
}

func (e *RejectError) Unwrap() error { return e.Reason }

func reject(reason error, format string, args ...any) *RejectError {
	return &RejectError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// maxTTL31 is the largest TTL RFC 2181 section 8 allows: the top bit must be clear.
const maxTTL31 = 1<<31 - 1

// ParseResponse decodes raw as the response to query and checks that it is one:
// the QR bit, the query's ID and opcode, exactly the query's question (name
// compared case-insensitively, type and class exactly), at most maxSize bytes,
// well-formed, at most one OPT record, and no TTL with the top bit set.
//
// RFC 2181 says a TTL with the top bit set should be read as zero; TIP refuses the
// whole message instead, because its monitors schedule their next look from TTLs
// and a server that sends such values is broken or hostile: the next server is
// asked instead.
//
// A truncated response (TC set) is returned as it is, so the caller can repeat the
// query over TCP; when a truncated message is cut mid-record, its sections are
// dropped and only the header and question are kept. A message without TC must
// hold as many records as its header counts.
func ParseResponse(raw []byte, query *dns.Msg, maxSize int) (*dns.Msg, error) {
	if len(query.Question) != 1 {
		return nil, errors.New("resolver: the query must have exactly one question")
	}
	if len(raw) < 12 {
		return nil, reject(ErrMalformed, "%d bytes, shorter than a header", len(raw))
	}
	// The ID and QR bit come straight from the header, so a stray packet is known for
	// what it is even when the rest does not parse.
	if id := binary.BigEndian.Uint16(raw); id != query.Id {
		return nil, reject(ErrIDMismatch, "got %d, sent %d", id, query.Id)
	}
	if raw[2]&0x80 == 0 {
		return nil, reject(ErrNotResponse, "QR bit clear")
	}
	if len(raw) > maxSize {
		return nil, reject(ErrOversized, "%d bytes, limit %d", len(raw), maxSize)
	}
	m := new(dns.Msg)
	if err := m.Unpack(raw); err != nil {
		if !m.Truncated || len(m.Question) != 1 {
			return nil, reject(ErrMalformed, "%v", err)
		}
		// Cut off mid-record: what was read is not to be trusted, the TCP answer will be.
		m.Answer, m.Ns, m.Extra = nil, nil, nil
	} else if !m.Truncated {
		// miekg/dns stops quietly where the records run out; a complete message has
		// as many as its header says.
		counts := []int{len(m.Question), len(m.Answer), len(m.Ns), len(m.Extra)}
		for i, n := range counts {
			if want := int(binary.BigEndian.Uint16(raw[4+2*i:])); n != want {
				return nil, reject(ErrMalformed, "header counts %d records in section %d, message holds %d", want, i, n)
			}
		}
	}
	if m.Opcode != query.Opcode {
		return nil, reject(ErrQuestionMismatch, "opcode %s, sent %s", dns.OpcodeToString[m.Opcode], dns.OpcodeToString[query.Opcode])
	}
	if len(m.Question) != 1 {
		return nil, reject(ErrQuestionMismatch, "%d questions", len(m.Question))
	}
	got, want := m.Question[0], query.Question[0]
	if !strings.EqualFold(got.Name, want.Name) || got.Qtype != want.Qtype || got.Qclass != want.Qclass {
		return nil, reject(ErrQuestionMismatch, "%s %s %s, asked %s %s %s",
			got.Name, dns.Class(got.Qclass), dns.Type(got.Qtype), want.Name, dns.Class(want.Qclass), dns.Type(want.Qtype))
	}
	opts := 0
	for _, rr := range m.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			opts++
		}
	}
	if opts > 1 {
		return nil, reject(ErrMalformed, "%d OPT records", opts)
	}
	for _, section := range [][]dns.RR{m.Answer, m.Ns} {
		for _, rr := range section {
			if rr.Header().Rrtype == dns.TypeOPT {
				return nil, reject(ErrMalformed, "OPT record outside the additional section")
			}
		}
	}
	for _, section := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range section {
			h := rr.Header()
			// An OPT record's TTL field holds flags, not a TTL.
			if h.Rrtype != dns.TypeOPT && h.Ttl > maxTTL31 {
				return nil, reject(ErrBogusTTL, "%s %s TTL %d", h.Name, dns.Type(h.Rrtype), h.Ttl)
			}
		}
	}
	return m, nil
}

// stray reports whether a UDP packet refused for err may be someone else's: a late
// answer to an earlier query, a spoof, or noise. Those are skipped while the real
// answer may still come; anything else ends the exchange.
func stray(err error) bool {
	return errors.Is(err, ErrIDMismatch) || errors.Is(err, ErrNotResponse) ||
		errors.Is(err, ErrMalformed) || errors.Is(err, ErrQuestionMismatch)
}
