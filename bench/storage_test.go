//go:build bench

package bench

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// storageScenario is a month of flux checks of some domains answering from
// a botnet: every cadence a check answering 5 of the botnet's bots (the
// window rotating by 2 each check) and 2 NS names, each with one bot's address.
type storageScenario struct {
	name    string
	domains int
	cadence time.Duration
	bots    int // the botnet's distinct addresses, in bots/16 ASNs
}

// storageStart is a Monday: the month of checks fills whole weekly partitions
// up to day 35, and the prune at storageStart+65d (window 30 days) finds
// every one of them before its cutoff.
var storageStart = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// benchStorage measures what a monitored domain-month costs in PostgreSQL
// (pg_total_relation_size of the flux tables, indexes and partitions
// included) at full resolution, and after the data-retention prune has
// summarised it hourly: scenarios that differ in checks (5- and 15-minute
// cadence) and in distinct answers (botnets of 600 and 4,800 addresses) show
// which of the two the bytes follow. TIP_BENCH_STORAGE_DOMAINS sets the
// domains of the base scenario (300).
func benchStorage(t *testing.T, r *report) {
	n := 300
	if v, err := strconv.Atoi(os.Getenv("TIP_BENCH_STORAGE_DOMAINS")); err == nil && v > 0 {
		n = v
	}
	for _, sc := range []storageScenario{
		{"5-min checks, 600 bots", n, 5 * time.Minute, 600},
		{"15-min checks, 600 bots", n, 15 * time.Minute, 600},
		{"5-min checks, 4800 bots", n, 5 * time.Minute, 4800},
	} {
		t.Run(sc.name, func(t *testing.T) { benchStorageScenario(t, r, sc) })
	}
}

func benchStorageScenario(t *testing.T, r *report, sc storageScenario) {
	ctx := context.Background()
	db, err := storage.OpenDB(ctx, testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	const month = 30 * 24 * time.Hour
	domains := make([]string, sc.domains)
	for i := range domains {
		domains[i] = fmt.Sprintf("d%04d.botnet.example", i)
		if err := db.SetFluxMonitor(ctx, domains[i], contract.MonitorWatching, nil, storageStart); err != nil {
			t.Fatal(err)
		}
	}
	bot := func(k int) flux.Record {
		k %= sc.bots
		return flux.Record{Addr: netip.AddrFrom4([4]byte{10, byte(k >> 8), byte(k), 1}), TTL: 300, ASN: uint32(64512 + k%(sc.bots/16)), Country: "ZZ"}
	}
	var ws []storage.FluxWrite
	checks, start := 0, time.Now()
	for at, k := storageStart, 0; at.Before(storageStart.Add(month)); at, k = at.Add(sc.cadence), k+1 {
		for i, d := range domains {
			o := flux.Observation{Domain: d, At: at.Add(time.Duration(i) * time.Millisecond), Status: flux.NoError}
			base := i*37 + 2*k
			for j := range 5 {
				o.A = append(o.A, bot(base+j))
			}
			for j := range 2 {
				o.NS = append(o.NS, flux.NameServer{Name: fmt.Sprintf("ns%d.d%04d.botnet.example", j+1, i), TTL: 300,
					Addrs: []flux.Record{bot(base + 101*(j+1))}})
			}
			ws = append(ws, storage.FluxWrite{Obs: o, Due: at, Late: time.Duration(i) * time.Millisecond})
			if len(ws) == 2000 {
				if err := db.RecordFluxChecks(ctx, ws); err != nil {
					t.Fatal(err)
				}
				checks += len(ws)
				ws = ws[:0]
			}
		}
	}
	if err := db.RecordFluxChecks(ctx, ws); err != nil {
		t.Fatal(err)
	}
	checks += len(ws)
	wrote := time.Since(start)
	full, err := db.FluxBytes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	res, err := db.Prune(ctx, storageStart.Add(65*24*time.Hour), storage.Retention{FluxFull: month}, false)
	if err != nil {
		t.Fatal(err)
	}
	pruned := time.Since(start)
	if res.Observations != int64(checks) {
		t.Fatalf("prune summarised %d observations of %d: %+v", res.Observations, checks, res)
	}
	after, err := db.FluxBytes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The passive DNS rows are updated by every check that sees them: the
	// dead versions make most of their size until (auto)vacuum reuses the
	// space. Compacted, the tables hold what they keep.
	if _, err := testenv.SQL(t, db).Exec(ctx, `VACUUM FULL flux_ips, flux_ns, flux_ns_addrs, flux_hours`); err != nil {
		t.Fatal(err)
	}
	compact, err := db.FluxBytes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ips, nsAddrs int64
	if err := testenv.SQL(t, db).QueryRow(ctx, `SELECT (SELECT count(*) FROM flux_ips), (SELECT count(*) FROM flux_ns_addrs)`).Scan(&ips, &nsAddrs); err != nil {
		t.Fatal(err)
	}
	per := func(b int64) string { return fmt.Sprintf("%.0f KB", float64(b)/float64(sc.domains)/1000) }
	r.add(t, "storage %s: %d domains, %d checks written in %s (%.0f checks/s); per domain-month: full resolution %s (observations %s, passive DNS %s); "+
		"after the prune (%s) %s (hourly %s, passive DNS %s), vacuumed %s (hourly %s, passive DNS %s: %d address rows, %d NS address rows)",
		sc.name, sc.domains, checks, secs(wrote), float64(checks)/wrote.Seconds(), per(full.Total()), per(full.Observations), per(full.PassiveDNS),
		secs(pruned), per(after.Total()), per(after.Hours), per(after.PassiveDNS), per(compact.Total()), per(compact.Hours), per(compact.PassiveDNS), ips, nsAddrs)
}
