package storage_test

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/internal/seed"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// TestOpsSourcesAgreeWithTipSources: each seeded source's health, failures,
// weight and active listings are those `tip sources` and `tip status` show
// (SourcesHealth); its listings by type and runs by status are what the seed
// wrote.
func TestOpsSourcesAgreeWithTipSources(t *testing.T) {
	ctx := context.Background()
	db, w := seed.New(t)
	ops, err := db.OpsSources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	health, err := db.SourcesHealth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != len(health) {
		t.Fatalf("%d sources, tip sources shows %d", len(ops), len(health))
	}
	bytes := map[string]int64{}
	rows, err := testenv.SQL(t, db).Query(ctx, `SELECT source, sum(bytes)::bigint FROM source_runs GROUP BY source`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			t.Fatal(err)
		}
		bytes[s] = n
	}
	for i, h := range health {
		o := ops[i]
		if o.Name != h.Name || o.Health != h.Health || o.ConsecutiveFailures != h.ConsecutiveFailures || o.Weight == nil || *o.Weight != h.Weight {
			t.Errorf("%s: %s, %d failures, weight %v; tip sources: %s %s, %d failures, weight %v",
				o.Name, o.Health, o.ConsecutiveFailures, o.Weight, h.Name, h.Health, h.ConsecutiveFailures, h.Weight)
		}
		var listed int64
		for _, n := range o.Listings {
			listed += n
		}
		if listed != h.Active || listed != int64(len(w.Lists[o.Name])) {
			t.Errorf("%s: %d listings by type %v, tip sources shows %d active, the seed listed %d", o.Name, listed, o.Listings, h.Active, len(w.Lists[o.Name]))
		}
		runs := map[string]int64{}
		for status, n := range w.Runs[o.Name] {
			runs[status] = int64(n)
		}
		if !maps.Equal(o.Runs, runs) {
			t.Errorf("%s: runs %v, the seed ran %v", o.Name, o.Runs, runs)
		}
		if o.FetchedBytes != bytes[o.Name] {
			t.Errorf("%s: fetched %d bytes, its runs recorded %d", o.Name, o.FetchedBytes, bytes[o.Name])
		}
		if o.LastRunDuration == nil || *o.LastRunDuration < 0 || *o.LastRunDuration > time.Minute {
			t.Errorf("%s: last run took %v", o.Name, o.LastRunDuration)
		}
	}
	byName := map[string]storage.OpsSource{}
	for _, o := range ops {
		byName[o.Name] = o
	}
	// gamma: loaded twice, then failed; gone: dead at every refresh.
	if g := byName["gamma"]; g.Health != "failing" || g.Listings["domain"] != 3 || g.LastSuccess == nil {
		t.Errorf("gamma: %+v", g)
	}
	if g := byName["gone"]; g.Health != "dead" || g.ConsecutiveFailures != seed.Refreshes || g.LastSuccess != nil || len(g.Listings) != 0 || g.FetchedBytes != 0 {
		t.Errorf("gone: %+v", g)
	}
	if a := byName["alpha"]; a.Health != "ok" || a.Listings["ipv4"] != 14 || a.FetchedBytes == 0 {
		t.Errorf("alpha: %+v", a)
	}
}

// TestOpsFluxCountsMonitorsAndAgents: the monitors by state as `tip status`
// counts them, and TIP's own flux agents listed.
func TestOpsFluxCountsMonitorsAndAgents(t *testing.T) {
	ctx := context.Background()
	db, _ := seed.New(t)
	if err := db.SetFluxMonitor(ctx, seed.FluxQuiet, contract.MonitorStopped, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateFluxNetworks(ctx); err != nil {
		t.Fatal(err)
	}
	src := storage.SourceRow{Name: contract.FluxAgentsSource, URL: "tip://flux", Format: "tip-flux", Type: "ip", Prior: 0.7, Enabled: true}
	res, err := db.RefreshFluxAgents(ctx, src, "test")
	if err != nil || res.Entries == 0 {
		t.Fatalf("flux agents: %+v, %v", res, err)
	}
	f, err := db.OpsFlux(ctx, contract.FluxAgentsSource)
	if err != nil {
		t.Fatal(err)
	}
	counts, err := db.FluxCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if f.FluxCounts != counts || f.Watching != 2 || f.Stopped != 1 || f.Networks == 0 || f.AgentsListed != int64(res.Entries) {
		t.Errorf("ops flux %+v; tip status counts %+v, %d agents listed", f, counts, res.Entries)
	}
}

// TestFluxCheckWindow: a window takes the checks of running monitors made
// after its start and settled (a monitor's stopped since too), counts them by
// lateness, and moves on; every check is counted.
func TestFluxCheckWindow(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	from := now.Add(-time.Hour)
	for _, d := range []string{"a.example", "b.example", "stopped.example"} {
		if err := db.SetFluxMonitor(ctx, d, contract.MonitorWatching, nil, now.Add(-2*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	check := func(domain string, at time.Time, late time.Duration) storage.FluxWrite {
		return storage.FluxWrite{Obs: flux.Observation{Domain: domain, At: at, Status: flux.NoError,
			A: []flux.Record{{Addr: netip.MustParseAddr("198.51.100.1"), TTL: 60}}}, Late: late, Due: at.Add(-late)}
	}
	ws := []storage.FluxWrite{
		check("a.example", from.Add(-time.Minute), 0),                     // before the window
		check("a.example", from.Add(10*time.Minute), 80*time.Millisecond), // in it
		check("a.example", now.Add(-5*time.Minute), 3*time.Second),
		check("b.example", now.Add(-10*time.Minute), 45*time.Second),
		check("b.example", now.Add(-2*time.Minute), 700*time.Second),
		check("b.example", now.Add(-5*time.Second), time.Second), // not settled yet
		check("stopped.example", from.Add(5*time.Minute), 0),     // stopped since: its checks before count
	}
	if err := db.RecordFluxChecks(ctx, ws); err != nil {
		t.Fatal(err)
	}
	if err := db.SetFluxMonitor(ctx, "stopped.example", contract.MonitorStopped, nil, from.Add(6*time.Minute)); err != nil {
		t.Fatal(err)
	}
	bounds := []float64{0.1, 1, 5, 60, 600}
	w, err := db.FluxCheckWindow(ctx, from, 30*time.Second, bounds)
	if err != nil {
		t.Fatal(err)
	}
	if w.Checks != 5 || !slices.Equal(w.LateLE, []int64{2, 2, 3, 4, 4}) || w.LateSum < 748.079 || w.LateSum > 748.081 {
		t.Errorf("window %+v, want 5 checks, late ≤ %v: [2 2 3 4 4], 748.08 s in all", w, bounds)
	}
	if d := time.Since(w.Through); d < 30*time.Second || d > time.Minute {
		t.Errorf("window through %v: want 30 s before now", w.Through)
	}
	// The next window starts where this one ended: the check not settled then
	// is in it, and nothing twice.
	time.Sleep(10 * time.Millisecond)
	next, err := db.FluxCheckWindow(ctx, w.Through, 0, bounds)
	if err != nil {
		t.Fatal(err)
	}
	if next.Checks != 1 || next.LateSum != 1 {
		t.Errorf("next window %+v, want the one check made since", next)
	}
	n, err := db.CountFluxChecks(ctx, now)
	if err != nil || n != int64(len(ws)) {
		t.Errorf("counted %d checks, %v; want %d", n, err, len(ws))
	}
}
