package dnsserve_test

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tip-project/tip/dnsserve"
	"github.com/tip-project/tip/feeds"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// internet answers every A query with one address: the names' real answers,
// which a policy stands in front of.
func internet(t *testing.T) string {
	t.Helper()
	addr := testenv.FreeAddr(t)
	srv := &dns.Server{Addr: addr, Net: "udp", Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		q := r.Question[0]
		switch q.Qtype {
		case dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
				A: net.IPv4(203, 0, 113, 10)})
		case dns.TypeNS, dns.TypeSOA:
			m.Answer = append(m.Answer, &dns.SOA{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 1},
				Ns: "ns.example.", Mbox: "h.example.", Serial: 1, Refresh: 60, Retry: 60, Expire: 600, Minttl: 1})
		}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ListenAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return addr
}

// listedDB is a fresh database where the source phish-feed (weight 0.9)
// lists the domains.
func listedDB(t *testing.T, domains ...string) *storage.DB {
	t.Helper()
	ctx := context.Background()
	db := testenv.MigratedDB(t)
	if err := db.UpsertSource(ctx, storage.SourceRow{Name: "phish-feed", URL: "https://feeds.example/p", Format: "hosts", Type: "domain", Prior: 0.9, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	load(t, db, "phish-feed", domains...)
	return db
}

// startTIP serves cfg's zones from db on a free loopback port until the test ends.
func startTIP(t *testing.T, cfg dnsserve.Config, db *storage.DB) (*dnsserve.Server, string) {
	t.Helper()
	ctx := context.Background()
	s, err := dnsserve.New(cfg, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	udp, tcp := testenv.DNSListeners(t)
	sctx, stop := context.WithCancel(ctx)
	served := make(chan struct{})
	go func() { defer close(served); s.ServeListeners(sctx, udp, tcp) }()
	t.Cleanup(func() { stop(); <-served })
	return s, udp.LocalAddr().String()
}

// load lists the domains as source's whole list, as a blacklist refresh does.
func load(t *testing.T, db *storage.DB, source string, domains ...string) {
	t.Helper()
	var body strings.Builder
	for _, d := range domains {
		fmt.Fprintf(&body, "0.0.0.0 %s\n", d)
	}
	loadList(t, db, source, "hosts", body.String())
}

// loadList loads a list in a feed format as source's whole list.
func loadList(t *testing.T, db *storage.DB, source, format, body string) {
	t.Helper()
	ctx := context.Background()
	l, err := db.BeginListingLoad(ctx, source)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Rollback(ctx)
	if _, _, perr, cerr := l.CopyParsed(ctx, format, feeds.Options{}, strings.NewReader(body), nil); perr != nil || cerr != nil {
		t.Fatal(perr, cerr)
	}
	m, err := l.Merge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	run := storage.SourceRun{RunKey: fmt.Sprint(source, time.Now().UnixNano()), Fetch: contract.FetchResult{StartedAt: time.Now()},
		Result: contract.LoadResult{Source: source, Status: contract.RunLoaded, Entries: m.Entries, Added: m.Added, Removed: m.Removed}}
	if err := l.Commit(ctx, run); err != nil {
		t.Fatal(err)
	}
}

func resolve(addr, name string) (int, string) {
	m, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(new(dns.Msg).SetQuestion(name, dns.TypeA), addr)
	if err != nil {
		return -1, err.Error()
	}
	if len(m.Answer) > 0 {
		if a, ok := m.Answer[len(m.Answer)-1].(*dns.A); ok {
			return m.Rcode, a.A.String()
		}
	}
	return m.Rcode, ""
}

// A real Unbound takes TIP's RPZ zone as its primary: a listed domain gets the
// policy's NXDOMAIN through it, and once a refresh removes the listing, TIP's
// NOTIFY has Unbound transfer the change by IXFR and resolve the name again.
func TestUnboundFollowsTheRPZZone(t *testing.T) {
	db := listedDB(t, "evil-login.com", "bad-bank.net")
	unboundAddr := testenv.FreeAddr(t)
	cfg := dnsserve.Config{RPZ: []dnsserve.RPZ{{Name: "rpz.tip.", Selector: dnsserve.Selector{MinScore: 0.5}}},
		TransferAllow: testenv.Loopback(), Notify: []string{unboundAddr}, Poll: time.Minute}
	s, tip := startTIP(t, cfg, db)

	thost, tport, _ := net.SplitHostPort(tip)
	ihost, iport, _ := net.SplitHostPort(internet(t))
	addr, _ := testenv.StartUnboundAt(t, unboundAddr, `	verbosity: 2
	module-config: "respip iterator"
	cache-min-ttl: 0
	cache-max-ttl: 1
`, fmt.Sprintf(`forward-zone:
	name: "."
	forward-addr: %s@%s
rpz:
	name: "rpz.tip."
	primary: %s@%s
	allow-notify: 127.0.0.1
	zonefile: "{dir}/rpz.tip.zone"
	rpz-log: yes
	rpz-log-name: "tip"
`, ihost, iport, thost, tport), func(addr string) bool {
		rcode, _ := resolve(addr, "evil-login.com.")
		return rcode == dns.RcodeNameError
	})
	if rcode, a := resolve(addr, "bad-bank.net."); rcode != dns.RcodeNameError {
		t.Errorf("bad-bank.net through Unbound: %s %s, want the policy's NXDOMAIN", dns.RcodeToString[rcode], a)
	}
	if rcode, a := resolve(addr, "www.evil-login.com."); rcode != dns.RcodeNameError {
		t.Errorf("www.evil-login.com (under a listed domain): %s %s, want NXDOMAIN", dns.RcodeToString[rcode], a)
	}
	if rcode, a := resolve(addr, "good-shop.org."); rcode != dns.RcodeSuccess || a != "203.0.113.10" {
		t.Errorf("good-shop.org: %s %s, want its address", dns.RcodeToString[rcode], a)
	}

	// A refresh drops evil-login.com: within seconds of the NOTIFY, it resolves.
	removed := time.Now()
	load(t, db, "phish-feed", "bad-bank.net")
	for {
		if rcode, a := resolve(addr, "evil-login.com."); rcode == dns.RcodeSuccess && a == "203.0.113.10" {
			break
		}
		if time.Since(removed) > 20*time.Second {
			t.Fatalf("evil-login.com still blocked 20 s after its removal (serials %v)", s.Serials())
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(removed)
	if rcode, _ := resolve(addr, "bad-bank.net."); rcode != dns.RcodeNameError {
		t.Errorf("bad-bank.net after the refresh: %s, want it still blocked", dns.RcodeToString[rcode])
	}
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(s.Registry(), promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	metrics := rec.Body.String()
	if !strings.Contains(metrics, `tip_dns_transfers_total{kind="ixfr",zone="rpz.tip."}`) {
		t.Errorf("no IXFR in TIP's metrics:\n%s", grep(metrics, "tip_dns_transfers_total"))
	}
	t.Logf("unblocked through Unbound %s after the refresh; %s", took.Round(10*time.Millisecond), grep(metrics, "tip_dns_transfers_total{"))
}

func grep(text, prefix string) string {
	var out []string
	for l := range strings.SplitSeq(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "; ")
}
