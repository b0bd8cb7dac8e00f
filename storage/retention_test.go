package storage_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/fluxview"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/report"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// botnetCheck is domain's k-th check of a botnet answering three of 40
// addresses in 8 ASNs, delegated to one NS name with one of 10 addresses, its
// TTL falling; every 50th check NXDOMAIN.
func botnetCheck(domain string, at time.Time, k int) flux.Observation {
	o := flux.Observation{Domain: domain, At: at, Status: flux.NoError}
	if k%50 == 49 {
		o.Status = flux.NXDomain
		return o
	}
	for j := range 3 {
		h := (k*3 + j) % 40
		o.A = append(o.A, flux.Record{Addr: netip.AddrFrom4([4]byte{198, 51, 100, byte(h + 1)}), TTL: uint32(60 + 60*(k%5)), ASN: uint32(64500 + h%8)})
	}
	o.NS = []flux.NameServer{{Name: "ns1.botnet.example", Addrs: []flux.Record{{Addr: netip.AddrFrom4([4]byte{192, 0, 2, byte(k%10 + 1)}), TTL: 300}}}}
	return o
}

// lifecycleWorld is what TestPruneRemovesOnlyWhatExpired writes: two domains
// checked every 5 minutes for 15 days up to now, some checks late, and checks
// right at the edges of the full-resolution window of keep.
type lifecycleWorld struct {
	now    time.Time
	keep   time.Duration
	cutoff time.Time
}

func writeLifecycle(t *testing.T, ctx context.Context, db *storage.DB) lifecycleWorld {
	t.Helper()
	w := lifecycleWorld{now: time.Date(2026, 11, 20, 10, 17, 0, 0, time.UTC), keep: 3 * 24 * time.Hour}
	w.cutoff = storage.FullResolutionFrom(w.now, w.keep) // 2026-11-17 10:00, a Tuesday: the week of 11-16 straddles it
	var ws []storage.FluxWrite
	flush := func() {
		if err := db.RecordFluxChecks(ctx, ws); err != nil {
			t.Fatal(err)
		}
		ws = ws[:0]
	}
	for _, d := range []string{"a.flux.example", "b.flux.example", "edge.flux.example"} {
		if err := db.SetFluxMonitor(ctx, d, contract.MonitorWatching, nil, w.now.Add(-15*24*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	for i, d := range []string{"a.flux.example", "b.flux.example"} {
		k := 0
		for at := w.now.Add(-15 * 24 * time.Hour); !at.After(w.now); at = at.Add(5 * time.Minute) {
			due := at.Add(time.Duration(i) * time.Second)
			late := time.Duration(0)
			if k%37 == 0 {
				late = 90 * time.Second // the worker was slow
			}
			ws = append(ws, storage.FluxWrite{Obs: botnetCheck(d, due.Add(late), k+i*7), Due: due, Late: late})
			if len(ws) == 500 {
				flush()
			}
			k++
		}
	}
	// The edges: a check a second before the cutoff (summarised), one at it
	// (kept), and one due in the week before the cutoff's but run after the
	// cutoff (kept, and its week's partition with it).
	edge := "edge.flux.example"
	ws = append(ws,
		storage.FluxWrite{Obs: botnetCheck(edge, w.cutoff.Add(-time.Second), 1), Due: w.cutoff.Add(-time.Second)},
		storage.FluxWrite{Obs: botnetCheck(edge, w.cutoff, 2), Due: w.cutoff},
		storage.FluxWrite{Obs: botnetCheck(edge, w.cutoff.Add(time.Minute), 3), Due: time.Date(2026, 11, 15, 23, 0, 0, 0, time.UTC),
			Late: w.cutoff.Add(time.Minute).Sub(time.Date(2026, 11, 15, 23, 0, 0, 0, time.UTC))})
	flush()
	return w
}

// lifecycleView is everything a user reads of the flux data: passive DNS,
// timelines (tip flux show, the report), the networks and their exports.
func lifecycleView(t *testing.T, ctx context.Context, db *storage.DB, w lifecycleWorld) string {
	t.Helper()
	var b strings.Builder
	nets, err := db.UpdateFluxNetworks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "networks %+v\n", nets)
	for _, q := range []string{"a.flux.example", "b.flux.example", "edge.flux.example", "198.51.100.7", "ns1.botnet.example", "192.0.2.3"} {
		rs, err := db.PassiveDNS(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "pdns %s: %+v\n", q, rs)
	}
	for _, d := range []string{"a.flux.example", "b.flux.example", "edge.flux.example"} {
		h, err := fluxview.Load(ctx, db, d, w.cutoff, 0)
		if err != nil {
			t.Fatal(err)
		}
		tl, _ := fluxview.Draw(h)
		fmt.Fprintf(&b, "timeline %s: %+v\n", d, tl)
		var show strings.Builder
		row, err := db.FluxDomainRow(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		fluxview.Show(&show, row, tl)
		b.WriteString(show.String())
	}
	d, err := report.Collect(ctx, db, report.Options{Now: w.now, FluxFull: w.keep, Points: 300})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "report totals %+v\n", d.Totals)
	for _, tl := range d.Flux {
		fmt.Fprintf(&b, "report %s: %d checks, %+v\n", tl.Domain.Domain, tl.Checks, tl.Points)
	}
	stix, err := db.TAXIIFluxNetworks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "taxii %+v\n", stix)
	return b.String()
}

// TestPruneRemovesOnlyWhatExpired: a prune summarises and removes the checks
// before the full-resolution window and nothing else — a check a second
// before the cutoff goes, one at it stays, a late one run after it stays with
// its week's partition — drops whole the weeks it emptied, and changes
// nothing a user reads: passive DNS, tip flux show, the report, networks.
// A dry run counts the same and changes nothing; a second prune finds nothing.
func TestPruneRemovesOnlyWhatExpired(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	w := writeLifecycle(t, ctx, db)
	sql := testenv.SQL(t, db)
	if _, err := sql.Exec(ctx, `INSERT INTO sources (name, url, format, type, prior, enabled) VALUES ('old-only', 'http://x/1', 'plain', 'domain', 0.5, true), ('busy', 'http://x/2', 'plain', 'domain', 0.5, true)`); err != nil {
		t.Fatal(err)
	}
	runs := []struct {
		source string
		ago    time.Duration
	}{{"old-only", 400 * 24 * time.Hour}, {"old-only", 300 * 24 * time.Hour}, {"busy", 300 * 24 * time.Hour}, {"busy", 181 * 24 * time.Hour}, {"busy", 179 * 24 * time.Hour}, {"busy", time.Hour}}
	for i, r := range runs {
		if _, err := sql.Exec(ctx, `INSERT INTO source_runs (source, run_key, started_at, finished_at, status) VALUES ($1, $2, $3, $3, 'loaded')`,
			r.source, fmt.Sprint("run-", i), w.now.Add(-r.ago)); err != nil {
			t.Fatal(err)
		}
	}
	windows := storage.Retention{FluxFull: w.keep, SourceRuns: 180 * 24 * time.Hour}

	recent := func() []string { // every observation in the window, as stored
		rows, err := sql.Query(ctx, `SELECT domain || ' ' || at || ' ' || due || ' ' || md5(data::text) FROM flux_observations WHERE at >= $1 ORDER BY 1`, w.cutoff)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	count := func(q string, args ...any) int {
		var n int
		if err := sql.QueryRow(ctx, q, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	partitions := func() []string {
		rows, err := sql.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = 'flux_observations'::regclass ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}

	before, keptBefore := lifecycleView(t, ctx, db, w), recent()
	old := count(`SELECT count(*) FROM flux_observations WHERE at < $1`, w.cutoff)
	parts := partitions()
	if old < 2*12*24*11 || !slices.Contains(parts, "flux_observations_p20261102") || !slices.Contains(parts, "flux_observations_p20261109") {
		t.Fatalf("setup: %d observations before the cutoff, partitions %v", old, parts)
	}

	dry, err := db.Prune(ctx, w.now, windows, true)
	if err != nil {
		t.Fatal(err)
	}
	if n := count(`SELECT count(*) FROM flux_observations WHERE at < $1`, w.cutoff); n != old || count(`SELECT count(*) FROM flux_hours`) != 0 ||
		count(`SELECT count(*) FROM source_runs`) != len(runs) || !slices.Equal(partitions(), parts) {
		t.Fatalf("the dry run changed something: %d observations before the cutoff, was %d; partitions %v", n, old, partitions())
	}

	res, err := db.Prune(ctx, w.now, windows, false)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Cutoff.Equal(w.cutoff) || res.Observations != int64(old) || res.Hours == 0 || res.SourceRuns != 3 ||
		!slices.Equal(res.PartitionsDropped, []string{"flux_observations_p20261102"}) {
		t.Errorf("prune: %+v; want %d observations before %s summarised, p20261102 dropped, 3 source runs removed", res, old, w.cutoff)
	}
	dry.DryRun, dry.PartitionsMade = false, res.PartitionsMade
	if fmt.Sprint(dry) != fmt.Sprint(res) {
		t.Errorf("the dry run counted %+v, the prune %+v", dry, res)
	}
	if n := count(`SELECT count(*) FROM flux_observations WHERE at < $1`, w.cutoff); n != 0 {
		t.Errorf("%d observations before the cutoff left", n)
	}
	if kept := recent(); !slices.Equal(kept, keptBefore) {
		t.Errorf("the observations in the window changed: %d, were %d", len(kept), len(keptBefore))
	}
	if n := count(`SELECT count(*) FROM flux_observations WHERE domain = 'edge.flux.example'`); n != 2 {
		t.Errorf("edge.flux.example: %d observations, want the one at the cutoff and the late one", n)
	}
	if n := count(`SELECT sum(checks) FROM flux_hours`); n != old {
		t.Errorf("the hourly summaries count %d checks, %d were summarised", n, old)
	}
	if got := partitions(); slices.Contains(got, "flux_observations_p20261102") || !slices.Contains(got, "flux_observations_p20261109") ||
		!slices.Contains(got, "flux_observations_p20261214") {
		t.Errorf("partitions after the prune %v: want p20261102 dropped, p20261109 (a late check) kept, weeks made ahead", got)
	}
	var left []string
	rows, err := sql.Query(ctx, `SELECT source || ' ' || (finished_at < $1) FROM source_runs ORDER BY source, finished_at`, w.now.Add(-180*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		left = append(left, s)
	}
	rows.Close()
	if want := []string{"busy false", "busy false", "old-only true"}; !slices.Equal(left, want) {
		t.Errorf("source runs left %v, want %v (old-only's latest kept however old)", left, want)
	}

	after := lifecycleView(t, ctx, db, w)
	if after != before {
		t.Errorf("what users read changed by the prune:\n%s", firstDiff(before, after))
	}
	if !strings.Contains(after, "hourly summaries before every check") {
		t.Errorf("tip flux show draws no hourly summaries:\n%s", after)
	}

	again, err := db.Prune(ctx, w.now, windows, false)
	if err != nil || again.Observations != 0 || again.Hours != 0 || again.SourceRuns != 0 || len(again.PartitionsDropped) != 0 {
		t.Errorf("second prune: %+v, %v; want nothing to do", again, err)
	}
	// A check recorded late into an hour already summarised is summed into
	// that hour at the next prune.
	hour := w.cutoff.Add(-5 * time.Hour)
	var checks int
	if err := sql.QueryRow(ctx, `SELECT checks FROM flux_hours WHERE domain = 'a.flux.example' AND hour = $1`, hour).Scan(&checks); err != nil {
		t.Fatal(err)
	}
	if err := db.RecordFluxChecks(ctx, []storage.FluxWrite{{Obs: botnetCheck("a.flux.example", hour.Add(59*time.Minute+59*time.Second), 3)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Prune(ctx, w.now, windows, false); err != nil {
		t.Fatal(err)
	}
	if n := count(`SELECT checks FROM flux_hours WHERE domain = 'a.flux.example' AND hour = $1`, hour); n != checks+1 {
		t.Errorf("the hour with a late check: %d checks, want %d", n, checks+1)
	}
}

// firstDiff shows where two texts part.
func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d\nbefore: %.600s\nafter:  %.600s", i+1, al[i], bl[i])
		}
	}
	return fmt.Sprintf("%d lines before, %d after", len(al), len(bl))
}

// TestMigrationPartitionsExistingObservations: 0022 moves the observations
// of an existing database into the weekly partitions (a check without a due
// time keyed by its own time), fills the NS passive DNS from them, and a
// re-run of a recorded check still records nothing; a check due past the
// partitions made gets its week.
func TestMigrationPartitionsExistingObservations(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if err := storage.MigrateTo(ctx, db, 21); err != nil {
		t.Fatal(err)
	}
	sql := testenv.SQL(t, db)
	t0 := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	if _, err := sql.Exec(ctx, `INSERT INTO flux_domains (domain, verdict, triaged_at, seen_at, monitor) VALUES ('old.example', 'flux', $1, $1, 'watching')`, t0); err != nil {
		t.Fatal(err)
	}
	data := func(ns, nsIP, ip string) string {
		return fmt.Sprintf(`{"domain":"old.example","status":"NOERROR","a":[{"addr":%q,"ttl":60,"asn":64500}],"ns":[{"name":%q,"addrs":[{"addr":%q}]}]}`, ip, ns, nsIP)
	}
	for i, o := range []struct {
		at, due  time.Time
		ns, nsIP string
		ip       string
		withDue  bool
	}{
		{at: t0, ns: "ns1.old.example", nsIP: "192.0.2.1", ip: "198.51.100.1"},
		{at: t0.Add(10 * 24 * time.Hour), due: t0.Add(10*24*time.Hour - time.Minute), withDue: true, ns: "ns1.old.example", nsIP: "192.0.2.2", ip: "198.51.100.2"},
		{at: t0.Add(20 * 24 * time.Hour), due: t0.Add(20 * 24 * time.Hour), withDue: true, ns: "ns2.old.example", nsIP: "192.0.2.2", ip: "198.51.100.1"},
	} {
		var due any
		if o.withDue {
			due = o.due
		}
		if _, err := sql.Exec(ctx, `INSERT INTO flux_observations (domain, at, status, addrs, min_ttl, data, late_ms, due) VALUES ('old.example', $1, 'NOERROR', 1, 60, $2, $3, $4)`,
			o.at, data(o.ns, o.nsIP, o.ip), i, due); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var kind string
	var parts, rows, dueless int
	if err := sql.QueryRow(ctx, `SELECT relkind::text, (SELECT count(*) FROM pg_inherits WHERE inhparent = 'flux_observations'::regclass),
		(SELECT count(*) FROM flux_observations), (SELECT count(*) FROM flux_observations WHERE due = at AND late_ms = 0)
		FROM pg_class WHERE oid = 'flux_observations'::regclass`).Scan(&kind, &parts, &rows, &dueless); err != nil {
		t.Fatal(err)
	}
	if kind != "p" || parts < 4 || rows != 3 || dueless != 1 {
		t.Errorf("after 0022: relkind %s, %d partitions, %d observations (%d keyed by their time); want a partitioned table, the 3 observations", kind, parts, rows, dueless)
	}
	got, err := db.PassiveDNS(ctx, "ns1.old.example")
	if err != nil {
		t.Fatal(err)
	}
	want := []storage.PDNSRecord{
		{RRName: "ns1.old.example", RRType: "A", RData: "192.0.2.2", TimeFirst: t0.Add(10 * 24 * time.Hour).Unix(), TimeLast: t0.Add(10 * 24 * time.Hour).Unix(), Count: 1},
		{RRName: "old.example", RRType: "NS", RData: "ns1.old.example", TimeFirst: t0.Unix(), TimeLast: t0.Add(10 * 24 * time.Hour).Unix(), Count: 2},
		{RRName: "ns1.old.example", RRType: "A", RData: "192.0.2.1", TimeFirst: t0.Unix(), TimeLast: t0.Unix(), Count: 1},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("NS passive DNS filled from the observations: %+v, want %+v", got, want)
	}
	// The same checks again (a retried write, a re-run of a due check): nothing recorded.
	o := flux.Observation{Domain: "old.example", Status: flux.NoError, A: []flux.Record{{Addr: netip.MustParseAddr("198.51.100.9"), TTL: 60}}}
	o1, o2 := o, o
	o1.At, o2.At = t0, t0.Add(10*24*time.Hour+time.Minute)
	if err := db.RecordFluxChecks(ctx, []storage.FluxWrite{{Obs: o1}, {Obs: o2, Due: t0.Add(10*24*time.Hour - time.Minute)}}); err != nil {
		t.Fatal(err)
	}
	// A check due a year on: its week is made.
	o3 := o
	o3.At = t0.Add(365 * 24 * time.Hour)
	if err := db.RecordFluxChecks(ctx, []storage.FluxWrite{{Obs: o3, Due: o3.At}}); err != nil {
		t.Fatal(err)
	}
	if err := sql.QueryRow(ctx, `SELECT count(*) FROM flux_observations`).Scan(&rows); err != nil || rows != 4 {
		t.Errorf("%d observations (%v), want the 3 migrated and the one a year on", rows, err)
	}
	if ips, err := db.PassiveDNS(ctx, "198.51.100.9"); err != nil || len(ips) != 1 || ips[0].Count != 1 {
		t.Errorf("the re-run checks counted: %+v, %v", ips, err)
	}
}
