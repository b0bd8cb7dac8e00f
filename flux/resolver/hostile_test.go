package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// honest is the true answer of the hostile servers' zone: every name has the A
// records 192.0.2.1..n and nothing else.
func honest(r *dns.Msg, n int) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	q := r.Question[0]
	if q.Qtype == dns.TypeA {
		for i := 1; i <= n; i++ {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300},
				A:   net.IPv4(192, 0, 2, byte(i)),
			})
		}
	}
	return m
}

func isTCP(w dns.ResponseWriter) bool {
	_, ok := w.RemoteAddr().(*net.TCPAddr)
	return ok
}

func writeRaw(w dns.ResponseWriter, m *dns.Msg) {
	b, err := m.Pack()
	if err != nil {
		panic(err)
	}
	_, _ = w.Write(b)
}

// big is an answer of 150 A records: over 2 KB, more than 1232 bytes advertised.
func big(r *dns.Msg) *dns.Msg { return honest(r, 150) }

func hostileConfig(servers ...string) Config {
	return Config{Recursive: servers, Timeout: 300 * time.Millisecond, Attempts: 1}
}

func TestHostileAnswersAreRefused(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler dns.HandlerFunc
		udpOnly bool                          // no TCP listener on the port
		config  func(c *Config)               // tweaks
		reason  error                         // the refusal expected, nil for an accepted answer
		check   func(*testing.T, Observation) // for accepted answers
	}{
		{
			name: "wrong ID",
			handler: func(w dns.ResponseWriter, r *dns.Msg) {
				m := honest(r, 1)
				m.Id++
				_ = w.WriteMsg(m)
			},
			reason: ErrIDMismatch,
		},
		{
			name: "wrong ID over TCP after truncation",
			handler: func(w dns.ResponseWriter, r *dns.Msg) {
				m := honest(r, 1)
				if isTCP(w) {
					m.Id++
				} else {
					m.Truncated, m.Answer = true, nil
				}
				_ = w.WriteMsg(m)
			},
			reason: ErrIDMismatch,
		},
		{
			name: "a spoof before the real answer is skipped",
			handler: func(w dns.ResponseWriter, r *dns.Msg) {
				spoof := honest(r, 1)
				spoof.Id++
				spoof.Answer[0].(*dns.A).A = net.IPv4(6, 6, 6, 6)
				_ = w.WriteMsg(spoof)
				_ = w.WriteMsg(honest(r, 1))
			},
			check: func(t *testing.T, o Observation) {
				if len(o.A) != 1 || o.A[0].IP != netip.MustParseAddr("192.0.2.1") {
					t.Errorf("spoofed answer believed: %+v", o)
				}
			},
		},
		{
			name: "wrong name",
			handler: func(w dns.ResponseWriter, r *dns.Msg) {
				m := honest(r, 1)
				m.Question[0].Name = "www.bank.example."
				m.Answer[0].Header().Name = "www.bank.example."
				_ = w.WriteMsg(m)
			},
			reason: ErrQuestionMismatch,
		},
		{
			name: "wrong type",
			handler: func(w dns.ResponseWriter, r *dns.Msg) {
				m := honest(r, 1)
				m.Question[0].Qtype = dns.TypeMX
				_ = w.WriteMsg(m)
			},
			reason: ErrQuestionMismatch,
		},
		{
			name: "wrong class",
			handler: func(w dns.ResponseWriter, r *dns.Msg) {
				m := honest(r, 1)
				m.Question[0].Qclass = dns.ClassCHAOS
				_ = w.WriteMsg(m)
			},
			reason: ErrQuestionMismatch,
		},
		{
			name: "no question",
			handler: func(w dns.ResponseWriter, r *dns.Msg) {
				m := honest(r, 1)
				m.Question = nil
				_ = w.WriteMsg(m)
			},
			reason: ErrQuestionMismatch,
		},
		{
			name: "question in other case is fine",
			handler: func(w dns.ResponseWriter, r *dns.Msg) {
				m := honest(r, 1)
				m.Question[0].Name = "WwW.FlUx.TeSt."
				_ = w.WriteMsg(m)
			},
			check: func(t *testing.T, o Observation) {
				if len(o.A) != 1 {
					t.Errorf("case-changed question refused: %+v", o)
				}
			},
		},
		{
			name: "not a response",
			handler: func(w dns.ResponseWriter, r *dns.Msg) {
				m := honest(r, 1)
				m.Response = false
				_ = w.WriteMsg(m)
			},
			reason: ErrNotResponse,
		},
		{
			name: "garbage after the header",
			handler: func(w dns.ResponseWriter, r *dns.Msg) {
				b := []byte{byte(r.Id >> 8), byte(r.Id), 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0, 0xff, 0xfe, 0xfd}
				_, _ = w.Write(b)
			},
			reason: ErrMalformed,
		},
		{
			name: "two OPT records",
			handler: func(w dns.ResponseWriter, r *dns.Msg) {
				m := honest(r, 1)
				m.SetEdns0(1232, false)
				m.Extra = append(m.Extra, &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}})
				writeRaw(w, m)
			},
			reason: ErrMalformed,
		},
		{
			name:    "oversized over UDP",
			handler: func(w dns.ResponseWriter, r *dns.Msg) { writeRaw(w, big(r)) },
			reason:  ErrOversized,
		},
		{
			name: "oversized over TCP",
			handler: func(w dns.ResponseWriter, r *dns.Msg) {
				if !isTCP(w) {
					m := honest(r, 1)
					m.Truncated, m.Answer = true, nil
					_ = w.WriteMsg(m)
					return
				}
				writeRaw(w, big(r))
			},
			config: func(c *Config) { c.MaxTCPSize = 1500 },
			reason: ErrOversized,
		},
		{
			name: "truncated and no TCP",
			handler: func(w dns.ResponseWriter, r *dns.Msg) {
				m := honest(r, 1)
				m.Truncated = true
				_ = w.WriteMsg(m)
			},
			udpOnly: true,
			reason:  ErrTruncated,
		},
		{
			name: "truncated over TCP too",
			handler: func(w dns.ResponseWriter, r *dns.Msg) {
				m := honest(r, 1)
				m.Truncated = true
				_ = w.WriteMsg(m)
			},
			reason: ErrTruncated,
		},
		{
			name: "truncated mid-record, whole over TCP",
			handler: func(w dns.ResponseWriter, r *dns.Msg) {
				m := big(r)
				if isTCP(w) {
					writeRaw(w, m)
					return
				}
				m.Truncated = true
				b, _ := m.Pack()
				_, _ = w.Write(b[:1000]) // cut inside a record
			},
			check: func(t *testing.T, o Observation) {
				if len(o.A) != 150 {
					t.Errorf("the TCP answer was not used: %+v", o)
				}
			},
		},
		{
			name: "a server from before EDNS0 is asked again without it",
			handler: func(w dns.ResponseWriter, r *dns.Msg) {
				if r.IsEdns0() != nil {
					m := new(dns.Msg)
					m.SetRcode(r, dns.RcodeFormatError)
					_ = w.WriteMsg(m)
					return
				}
				_ = w.WriteMsg(honest(r, 1))
			},
			check: func(t *testing.T, o Observation) {
				if len(o.A) != 1 {
					t.Errorf("no answer after FORMERR: %+v", o)
				}
			},
		},
		{
			name: "TTL with the top bit set",
			handler: func(w dns.ResponseWriter, r *dns.Msg) {
				m := honest(r, 2)
				m.Answer[1].Header().Ttl = 1 << 31
				_ = w.WriteMsg(m)
			},
			reason: ErrBogusTTL,
		},
		{
			name: "huge TTL is clamped",
			handler: func(w dns.ResponseWriter, r *dns.Msg) {
				m := honest(r, 1)
				m.Answer[0].Header().Ttl = maxTTL31
				_ = w.WriteMsg(m)
			},
			check: func(t *testing.T, o Observation) {
				if o.A[0].TTL != DefaultMaxTTL {
					t.Errorf("TTL not clamped: %+v", o)
				}
			},
		},
		{
			name: "records outside the CNAME chain are ignored",
			handler: func(w dns.ResponseWriter, r *dns.Msg) {
				m := honest(r, 0)
				q := r.Question[0]
				if q.Qtype == dns.TypeA {
					m.Answer = []dns.RR{
						mustRR("www.flux.test. 60 IN CNAME edge.flux.test."),
						mustRR("edge.flux.test. 60 IN A 192.0.2.7"),
						mustRR("www.bank.example. 86400 IN A 6.6.6.6"),
						mustRR("flux.test. 60 IN A 6.6.6.7"),
					}
				}
				_ = w.WriteMsg(m)
			},
			check: func(t *testing.T, o Observation) {
				want := []CNAME{{Name: "www.flux.test", Target: "edge.flux.test", TTL: 60}}
				if !slices.Equal(o.CNAMEs, want) || len(o.A) != 1 || o.A[0].IP != netip.MustParseAddr("192.0.2.7") {
					t.Errorf("records outside the chain believed: %+v", o)
				}
			},
		},
		{
			name: "CNAME loop",
			handler: func(w dns.ResponseWriter, r *dns.Msg) {
				m := honest(r, 0)
				m.Answer = []dns.RR{
					mustRR("www.flux.test. 60 IN CNAME a.flux.test."),
					mustRR("a.flux.test. 60 IN CNAME b.flux.test."),
					mustRR("b.flux.test. 60 IN CNAME www.flux.test."),
				}
				_ = w.WriteMsg(m)
			},
			reason: ErrCNAMELoop,
		},
		{
			name: "CNAME chain too long",
			handler: func(w dns.ResponseWriter, r *dns.Msg) {
				m := honest(r, 0)
				// Each answer points one step further: c1, c2, ... without end.
				next := "c1.flux.test."
				if n := 0; r.Question[0].Name != "www.flux.test." {
					_, _ = fmt.Sscanf(r.Question[0].Name, "c%d.flux.test.", &n)
					next = "c" + strconv.Itoa(n+1) + ".flux.test."
				}
				m.Answer = []dns.RR{mustRR(r.Question[0].Name + " 60 IN CNAME " + next)}
				_ = w.WriteMsg(m)
			},
			reason: ErrCNAMELoop,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var udpOnly []string
			if tc.udpOnly {
				udpOnly = []string{"127.0.0.1"}
			}
			// Only A questions meet the hostility; the rest get honest NODATA.
			h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
				if r.Question[0].Qtype != dns.TypeA {
					_ = w.WriteMsg(honest(r, 0))
					return
				}
				tc.handler(w, r)
			})
			f := startFleet(t, map[string]dns.Handler{"127.0.0.1": h}, udpOnly...)
			cfg := hostileConfig(f.addr("127.0.0.1"))
			if tc.config != nil {
				tc.config(&cfg)
			}
			r, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			obs, err := r.Resolve(context.Background(), "www.flux.test")
			if tc.reason == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				tc.check(t, obs)
				return
			}
			if !errors.Is(err, tc.reason) {
				t.Fatalf("got %v, want a refusal for %q", err, tc.reason)
			}
			var rej *RejectError
			if !errors.As(err, &rej) || rej.Server != f.addr("127.0.0.1") {
				t.Errorf("the refusal does not name the server: %#v", err)
			}
			if obs.Queries == 0 {
				t.Errorf("no queries counted")
			}
		})
	}
}

// A refused answer sends the resolver to the next server; when all are refused,
// the error lists every reason.
func TestNextServerAfterRefusal(t *testing.T) {
	wrongID := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := honest(r, 1)
		m.Id++
		_ = w.WriteMsg(m)
	})
	bogusTTL := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := honest(r, 1)
		if len(m.Answer) > 0 {
			m.Answer[0].Header().Ttl = 0xffffffff
		}
		_ = w.WriteMsg(m)
	})
	good := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) { _ = w.WriteMsg(honest(r, 3)) })
	f := startFleet(t, map[string]dns.Handler{"127.0.0.1": wrongID, "127.0.0.2": bogusTTL, "127.0.0.3": good})

	r, err := New(hostileConfig(f.addr("127.0.0.1"), f.addr("127.0.0.2"), f.addr("127.0.0.3")))
	if err != nil {
		t.Fatal(err)
	}
	obs, err := r.Resolve(context.Background(), "www.flux.test")
	if err != nil {
		t.Fatal(err)
	}
	if obs.Server != f.addr("127.0.0.3") || len(obs.A) != 3 {
		t.Errorf("answer from %s with %d records, want the third server's 3", obs.Server, len(obs.A))
	}

	r, err = New(hostileConfig(f.addr("127.0.0.1"), f.addr("127.0.0.2")))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Resolve(context.Background(), "www.flux.test")
	var failed *FailedError
	if !errors.As(err, &failed) || len(failed.Errors) != 2 {
		t.Fatalf("want a FailedError with two reasons, got %v", err)
	}
	if !errors.Is(err, ErrIDMismatch) || !errors.Is(err, ErrBogusTTL) {
		t.Errorf("reasons missing: %v", err)
	}
}

// A server that never answers is tried Attempts times, then the next one is asked.
func TestRetryAfterTimeout(t *testing.T) {
	silent := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {})
	good := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) { _ = w.WriteMsg(honest(r, 1)) })
	f := startFleet(t, map[string]dns.Handler{"127.0.0.1": silent, "127.0.0.2": good})
	cfg := hostileConfig(f.addr("127.0.0.1"), f.addr("127.0.0.2"))
	cfg.Timeout = 100 * time.Millisecond
	cfg.Attempts = 2
	r, _ := New(cfg)
	obs, err := r.Query(context.Background(), f.addr("127.0.0.1"), "www.flux.test", dns.TypeA)
	if err == nil || obs != nil {
		t.Fatalf("a silent server answered: %v", obs)
	}
	s := r.newRun()
	a, err := s.ask(context.Background(), r.servers, ".", "www.flux.test.", dns.TypeA)
	if err != nil || a.server != f.addr("127.0.0.2") {
		t.Fatalf("ask: %v from %s", err, a.server)
	}
	// The silent server first, then the good one, which answered: no second round.
	if s.queries != 2 {
		t.Errorf("%d queries, want 2", s.queries)
	}

	// Both silent: each is tried twice.
	r, _ = New(Config{Recursive: []string{f.addr("127.0.0.1"), f.addr("127.0.0.1")}, Timeout: 50 * time.Millisecond, Attempts: 2})
	s = r.newRun()
	_, err = s.ask(context.Background(), r.servers, ".", "www.flux.test.", dns.TypeA)
	if !errors.Is(err, context.DeadlineExceeded) || s.queries != 4 {
		t.Errorf("all silent: %d queries, err %v; want 4 timeouts", s.queries, err)
	}
}

// The overall deadline comes from ctx and stops a resolution at once.
func TestContextDeadline(t *testing.T) {
	silent := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {})
	f := startFleet(t, map[string]dns.Handler{"127.0.0.1": silent})
	r, _ := New(Config{Recursive: []string{f.addr("127.0.0.1")}, Timeout: time.Minute, Attempts: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	obs, err := r.Resolve(ctx, "www.flux.test")
	if !errors.Is(err, context.DeadlineExceeded) || obs.Queries != 1 {
		t.Errorf("got %v after %d queries, want the deadline after 1", err, obs.Queries)
	}
}

func mustRR(s string) dns.RR {
	rr, err := dns.NewRR(s)
	if err != nil {
		panic(err)
	}
	return rr
}
