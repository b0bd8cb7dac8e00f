package resolver

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"
)

// tree is a small delegation tree on loopback addresses sharing one port:
//
//	.            127.0.0.2  test. → ns.test (glue); example. → ns.example (glue)
//	test.        127.0.0.3  good.test → ns.good.test (glue)
//	                        evil.test → ns.elsewhere.example, with poisoned glue
//	                          pointing at 127.0.0.66 that test. may not vouch for
//	                        upward.test → 127.0.0.7, which refers back up
//	                        a.test ↔ b.test: glueless, each served by the other
//	example.     127.0.0.5  ns.elsewhere.example = 127.0.0.4; edge.cdn.example
//	evil.test.   127.0.0.4  answers with out-of-chain records and bad glue too
//	good.test.   127.0.0.6  www CNAME edge.cdn.example, with a forged A for it
//	poison       127.0.0.66 must never be asked
type tree struct {
	fleet
	zones map[string]*zone
}

func startTree(t *testing.T) *tree {
	t.Helper()
	root := newZone(t, ".",
		"test. 86400 IN NS ns.test.",
		"ns.test. 86400 IN A 127.0.0.3",
		"example. 86400 IN NS ns.example.",
		"ns.example. 86400 IN A 127.0.0.5",
	)
	tld := newZone(t, "test.",
		"good.test. 3600 IN NS ns.good.test.",
		"ns.good.test. 3600 IN A 127.0.0.6",
		"evil.test. 3600 IN NS ns.elsewhere.example.",
		"ns.elsewhere.example. 3600 IN A 127.0.0.66",
		"upward.test. 3600 IN NS ns.upward.test.",
		"ns.upward.test. 3600 IN A 127.0.0.7",
		"a.test. 3600 IN NS ns.b.test.",
		"b.test. 3600 IN NS ns.a.test.",
	)
	example := newZone(t, "example.",
		"ns.elsewhere.example. 3600 IN A 127.0.0.4",
		"edge.cdn.example. 60 IN A 192.0.2.50",
		"edge.cdn.example. 60 IN A 192.0.2.51",
	)
	evil := newZone(t, "evil.test.",
		"evil.test. 300 IN NS ns.elsewhere.example.",
		"www.evil.test. 60 IN A 192.0.2.1",
	)
	evil.tamper = func(q dns.Question, m *dns.Msg) {
		m.Answer = append(m.Answer, mustRR("www.bank.example. 86400 IN A 6.6.6.6"))
		m.Extra = append(m.Extra, mustRR("ns.elsewhere.example. 86400 IN A 6.6.6.6"))
	}
	good := newZone(t, "good.test.",
		"good.test. 3600 IN NS ns.good.test.",
		"ns.good.test. 3600 IN A 127.0.0.6",
		"www.good.test. 300 IN CNAME edge.cdn.example.",
	)
	good.tamper = func(q dns.Question, m *dns.Msg) {
		if q.Qtype == dns.TypeA && len(m.Answer) > 0 {
			m.Answer = append(m.Answer, mustRR("edge.cdn.example. 86400 IN A 6.6.6.6"))
		}
	}
	upward := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Ns = []dns.RR{mustRR("test. 86400 IN NS ns.test.")}
		m.Extra = []dns.RR{mustRR("ns.test. 86400 IN A 127.0.0.3")}
		_ = w.WriteMsg(m)
	})
	poison := newZone(t, ".", "www.evil.test. 86400 IN A 6.6.6.6")

	tr := &tree{zones: map[string]*zone{".": root, "test.": tld, "example.": example,
		"evil.test.": evil, "good.test.": good, "poison": poison}}
	tr.fleet = startFleet(t, map[string]dns.Handler{
		"127.0.0.2": root, "127.0.0.3": tld, "127.0.0.5": example,
		"127.0.0.4": evil, "127.0.0.6": good, "127.0.0.7": upward, "127.0.0.66": poison,
	})
	return tr
}

func (tr *tree) resolver(t *testing.T, tweak func(*Config)) *Resolver {
	t.Helper()
	cfg := Config{Roots: []string{tr.addr("127.0.0.2")}, Port: uint16(tr.port), Attempts: 1}
	if tweak != nil {
		tweak(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func addrList(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func TestIterative(t *testing.T) {
	tr := startTree(t)
	r := tr.resolver(t, nil)

	t.Run("glue out of bailiwick is ignored", func(t *testing.T) {
		obs, err := r.Resolve(context.Background(), "www.evil.test")
		if err != nil {
			t.Fatal(err)
		}
		if got := ips(obs.A); !slices.Equal(got, addrList("192.0.2.1")) {
			t.Errorf("A %v, want only 192.0.2.1", got)
		}
		if obs.Server != tr.addr("127.0.0.4") {
			t.Errorf("answered by %s", obs.Server)
		}
		if q := tr.zones["poison"].questions(); len(q) > 0 {
			t.Errorf("the poisoned glue was used: %v", q)
		}
		// The NS host's glue in the child's answer is out of its bailiwick too: its
		// address was looked up instead.
		want := []NameServer{{Name: "ns.elsewhere.example", TTL: 300, Addrs: []Addr{{IP: netip.MustParseAddr("127.0.0.4"), TTL: 3600}}}}
		if obs.Zone != "evil.test" || !slices.EqualFunc(obs.NS, want, equalNS) {
			t.Errorf("zone %q NS %+v, want %+v", obs.Zone, obs.NS, want)
		}
	})

	t.Run("CNAME into another zone, forged target ignored", func(t *testing.T) {
		obs, err := r.Resolve(context.Background(), "www.good.test")
		if err != nil {
			t.Fatal(err)
		}
		if got := ips(obs.A); !slices.Equal(got, addrList("192.0.2.50", "192.0.2.51")) {
			t.Errorf("A %v, want edge.cdn.example's", got)
		}
		want := []CNAME{{Name: "www.good.test", Target: "edge.cdn.example", TTL: 300}}
		if !slices.Equal(obs.CNAMEs, want) || obs.Server != tr.addr("127.0.0.5") {
			t.Errorf("chain %+v from %s", obs.CNAMEs, obs.Server)
		}
		if obs.Zone != "good.test" || len(obs.NS) != 1 || obs.NS[0].Name != "ns.good.test" {
			t.Errorf("zone %q NS %+v", obs.Zone, obs.NS)
		}
	})

	t.Run("referral cache", func(t *testing.T) {
		before := len(tr.zones["."].questions())
		if _, err := r.Resolve(context.Background(), "www.good.test"); err != nil {
			t.Fatal(err)
		}
		// One Resolve asks the root once per zone it enters (test., example.); the
		// AAAA and NS questions start from the cuts the A lookup found.
		if got := tr.zones["."].questions()[before:]; len(got) != 2 {
			t.Errorf("root asked %v", got)
		}
	})

	t.Run("NXDOMAIN", func(t *testing.T) {
		obs, err := r.Resolve(context.Background(), "nope.good.test")
		if err != nil || obs.Status != NXDomain || obs.Server != tr.addr("127.0.0.6") {
			t.Errorf("%+v %v", obs, err)
		}
	})

	t.Run("upward referral is lame", func(t *testing.T) {
		_, err := r.Resolve(context.Background(), "www.upward.test")
		var rej *RejectError
		if !errors.Is(err, ErrLame) || !errors.As(err, &rej) || rej.Server != tr.addr("127.0.0.7") {
			t.Errorf("got %v, want a lame refusal from 127.0.0.7", err)
		}
	})

	t.Run("glueless loop ends", func(t *testing.T) {
		obs, err := r.Resolve(context.Background(), "www.a.test")
		if err == nil {
			t.Fatalf("resolved through a delegation loop: %+v", obs)
		}
		if obs.Queries > 10 {
			t.Errorf("%d queries to find out", obs.Queries)
		}
	})

	t.Run("depth bound", func(t *testing.T) {
		r := tr.resolver(t, func(c *Config) { c.MaxDepth = 1 })
		_, err := r.Resolve(context.Background(), "www.a.test")
		if !errors.Is(err, ErrDepth) {
			t.Errorf("got %v, want ErrDepth", err)
		}
	})

	t.Run("query budget", func(t *testing.T) {
		r := tr.resolver(t, func(c *Config) { c.MaxQueries = 2 })
		obs, err := r.Resolve(context.Background(), "www.good.test")
		if !errors.Is(err, ErrBudget) || obs.Queries != 2 {
			t.Errorf("got %v after %d queries, want ErrBudget after 2", err, obs.Queries)
		}
	})
}

func equalNS(a, b NameServer) bool {
	return a.Name == b.Name && a.TTL == b.TTL && slices.Equal(a.Addrs, b.Addrs)
}
