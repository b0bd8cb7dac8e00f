//go:build bench

package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/tip-project/tip/dnsserve"
	"github.com/tip-project/tip/feeds"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// dnsTarget is the least DNSBL rate TIP must answer on one core.
const dnsTarget = 50000.0

// benchDNS serves the lab's large feed (a million listings) as a DNSBL and an
// RPZ zone, and measures, in one run: the index's memory per listing, the
// DNSBL's queries per second on one core under dnsperf against rbldnsd serving
// the same addresses, the time from a load's commit to the new serial, an AXFR
// of the whole zone, and an IXFR's size beside the change's.
func benchDNS(t *testing.T, l *lab, r *report) {
	ctx := context.Background()
	a := newActivities(t)
	db := a.Store.(*storage.DB)
	f, err := a.FetchSource(ctx, l.large)
	if err != nil || f.Status != contract.FetchChanged {
		t.Fatalf("fetch: %+v, %v", f, err)
	}
	if res, err := a.LoadSource(ctx, contract.LoadInput{Source: l.large, Fetch: f, RunKey: "dns-bench"}); err != nil || res.Status != contract.RunLoaded {
		t.Fatalf("load: %+v, %v", res, err)
	}
	cfg := dnsserve.Config{
		RPZ:           []dnsserve.RPZ{{Name: "rpz.tip."}},
		DNSBL:         []dnsserve.DNSBL{{Name: "bl.tip.", Lists: []dnsserve.List{{Code: 2, Name: "all"}}}},
		TransferAllow: testenv.Loopback(), Poll: time.Hour,
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	s, err := dnsserve.New(cfg, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	loadTook := time.Since(start)
	n := s.Listings()
	perListing := float64(heap()-before) / float64(n)
	udp, tcp := testenv.DNSListeners(t)
	sctx, stop := context.WithCancel(ctx)
	served := make(chan struct{})
	go func() { defer close(served); s.ServeListeners(sctx, udp, tcp) }()
	defer func() { stop(); <-served }()
	addr := udp.LocalAddr().String()

	// The queries: 100,000 listed addresses, in the DNSBL's form.
	rows, err := testenv.SQL(t, db).Query(ctx, `SELECT value FROM indicators WHERE type = 'ipv4' ORDER BY random() LIMIT 100000`)
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for rows.Next() {
		var v string
		rows.Scan(&v)
		ips = append(ips, v)
	}
	rows.Close()
	// rbldnsd refuses to run as root and reads its files as nobody: a folder
	// anyone can read, which a test's temporary folder (0700) is not.
	dir, err := os.MkdirTemp("", "tip-bench-dns-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var queries, rbl strings.Builder
	for _, ip := range ips {
		o := strings.Split(ip, ".")
		fmt.Fprintf(&queries, "%s.%s.%s.%s.bl.tip A\n", o[3], o[2], o[1], o[0])
	}
	writeFile(t, filepath.Join(dir, "queries"), queries.String())
	// rbldnsd serves every address TIP lists, from its own file.
	all, err := testenv.SQL(t, db).Query(ctx, `SELECT value FROM indicators WHERE type = 'ipv4'`)
	if err != nil {
		t.Fatal(err)
	}
	rbl.WriteString(":127.0.0.2:listed by TIP\n")
	for all.Next() {
		var v string
		all.Scan(&v)
		rbl.WriteString(v + "\n")
	}
	all.Close()
	writeFile(t, filepath.Join(dir, "bl.ip4set"), rbl.String())

	perf := func(server string) float64 {
		host, port, _ := net.SplitHostPort(server)
		out, err := exec.Command("dnsperf", "-s", host, "-p", port, "-d", filepath.Join(dir, "queries"), "-l", "10", "-c", "8", "-q", "500").CombinedOutput()
		if err != nil {
			t.Fatalf("dnsperf against %s: %v\n%s", server, err, out)
		}
		m := regexp.MustCompile(`Queries per second:\s+([0-9.]+)`).FindSubmatch(out)
		lost := regexp.MustCompile(`Queries lost:\s+(\d+)`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("dnsperf said:\n%s", out)
		}
		if lost != nil && string(lost[1]) != "0" {
			t.Logf("dnsperf against %s lost %s queries", server, lost[1])
		}
		qps, _ := strconv.ParseFloat(string(m[1]), 64)
		return qps
	}
	// TIP on one core: the Go scheduler's processors, for the measurement.
	procs := runtime.GOMAXPROCS(1)
	tipQPS := perf(addr)
	runtime.GOMAXPROCS(procs)

	rbldnsdAddr := testenv.FreeAddr(t)
	rhost, rport, _ := net.SplitHostPort(rbldnsdAddr)
	rcmd := exec.Command("rbldnsd", "-n", "-u", "nobody", "-w", dir, "-b", rhost+"/"+rport, "-4", "bl.tip:ip4set:bl.ip4set")
	rlog, _ := os.Create(filepath.Join(dir, "rbldnsd.log"))
	rcmd.Stdout, rcmd.Stderr = rlog, rlog
	if err := rcmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { rcmd.Process.Kill(); rcmd.Wait() }()
	for deadline := time.Now().Add(2 * time.Minute); ; {
		m, _, err := (&dns.Client{Timeout: time.Second}).Exchange(new(dns.Msg).SetQuestion(strings.Fields(queries.String())[0]+".", dns.TypeA), rbldnsdAddr)
		if err == nil && len(m.Answer) > 0 {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(rlog.Name())
			t.Fatalf("rbldnsd does not answer: %v\n%s", err, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
	rbldnsdQPS := perf(rbldnsdAddr)

	// A load's change reaching the zone: its commit to the new serial served.
	if err := db.UpsertSource(ctx, storage.SourceRow{Name: "bench-small", URL: "tip://bench", Format: "ip-list", Type: "ipv4", Prior: 0.9, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	serial0 := s.Serials()["rpz.tip."]
	var small strings.Builder
	for i := range 100 {
		fmt.Fprintf(&small, "45.99.%d.%d\n", i/200, 1+i%200)
	}
	committed := loadSmall(t, db, "bench-small", small.String())
	var toServe time.Duration
	for {
		if sn, err := dnsserve.Serial(ctx, addr, "rpz.tip."); err == nil && sn != serial0 {
			toServe = time.Since(committed)
			break
		}
		if time.Since(committed) > time.Minute {
			t.Fatal("no new serial a minute after the load")
		}
		time.Sleep(2 * time.Millisecond)
	}
	// The IXFR of that change, and an AXFR of the whole zone.
	ixfrRRs, ixfrBytes := transfer(t, addr, func(m *dns.Msg) { m.SetIxfr("rpz.tip.", serial0, "localhost.", "hostmaster.localhost.") })
	start = time.Now()
	axfrRRs, axfrBytes := transfer(t, addr, func(m *dns.Msg) { m.SetAxfr("rpz.tip.") })
	axfrTook := time.Since(start)

	r.add(t, "dns: %d listings indexed in %s, %.0f bytes of heap each", n, loadTook.Round(time.Millisecond), perListing)
	r.add(t, "dns: DNSBL %.0f queries/s on one core (dnsperf, 100,000 listed addresses), rbldnsd %.0f: %.2f × rbldnsd (target ≥ 1 and ≥ %.0f/s: %s)",
		tipQPS, rbldnsdQPS, tipQPS/rbldnsdQPS, dnsTarget, met(tipQPS >= rbldnsdQPS && tipQPS >= dnsTarget))
	r.add(t, "dns: a load's commit to its serial served: %s", toServe.Round(time.Millisecond))
	r.add(t, "dns: IXFR of a 100-address change: %d records, %d KB; AXFR of the zone: %d records, %d MB in %s",
		ixfrRRs, ixfrBytes>>10, axfrRRs, axfrBytes>>20, axfrTook.Round(time.Millisecond))
}

// loadSmall loads a small list as source's and returns when it committed.
func loadSmall(t *testing.T, db *storage.DB, source, body string) time.Time {
	t.Helper()
	ctx := context.Background()
	l, err := db.BeginListingLoad(ctx, source)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Rollback(ctx)
	if _, _, perr, cerr := l.CopyParsed(ctx, "ip-list", feeds.Options{}, strings.NewReader(body), nil); perr != nil || cerr != nil {
		t.Fatal(perr, cerr)
	}
	m, err := l.Merge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Commit(ctx, storage.SourceRun{RunKey: "bench-small", Fetch: contract.FetchResult{StartedAt: time.Now()},
		Result: contract.LoadResult{Source: source, Status: contract.RunLoaded, Entries: m.Entries, Added: m.Added}}); err != nil {
		t.Fatal(err)
	}
	return time.Now()
}

// transfer runs a zone transfer and counts its records and bytes.
func transfer(t *testing.T, addr string, set func(*dns.Msg)) (rrs int, bytes int) {
	t.Helper()
	m := new(dns.Msg)
	set(m)
	ch, err := (&dns.Transfer{}).In(m, addr)
	if err != nil {
		t.Fatal(err)
	}
	for env := range ch {
		if env.Error != nil {
			t.Fatal(env.Error)
		}
		rrs += len(env.RR)
		for _, rr := range env.RR {
			bytes += dns.Len(rr)
		}
	}
	return rrs, bytes
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}
