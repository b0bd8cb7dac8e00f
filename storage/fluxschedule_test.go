package storage_test

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// The probers' schedule: a registration is read by the prober of its shard,
// a change (pause, pinned interval, end) is read again with a later seq, even
// when its transaction commits after a later change's; checks are recorded
// with the compact state and report the addresses new to the domain; the
// metrics checkpoint and the observations after it fold into the metrics of
// every observation.
func TestFluxSchedule(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	cfg := contract.MonitorConfig{MinCheck: time.Minute, MaxCheck: time.Hour, NXDomainFor: 72 * time.Hour}
	const shards = 4
	domains := []string{"a.flux.example", "b.flux.example", "c.flux.example", "d.flux.example", "e.flux.example"}
	for _, d := range domains {
		if err := db.RegisterFluxMonitor(ctx, contract.MonitorRegistration{Domain: d, Config: cfg, Active: true, State: contract.MonitorWatching}, t0); err != nil {
			t.Fatal(err)
		}
	}
	all := map[string]storage.ScheduledDomain{}
	var horizons [shards]int64
	for shard := range shards {
		rows, horizon, err := db.FluxSchedule(ctx, shard, shards, 0)
		if err != nil {
			t.Fatal(err)
		}
		horizons[shard] = horizon
		for _, r := range rows {
			if contract.MonitorBucket(r.Domain)%shards != shard {
				t.Errorf("%s read by shard %d", r.Domain, shard)
			}
			if _, dup := all[r.Domain]; dup {
				t.Errorf("%s read twice", r.Domain)
			}
			if !r.Active || r.MinCheck != time.Minute || r.MaxCheck != time.Hour || r.NXDomainFor != 72*time.Hour || !r.Due.IsZero() {
				t.Errorf("row %+v", r)
			}
			all[r.Domain] = r
		}
	}
	if len(all) != len(domains) {
		t.Fatalf("%d domains on the schedule, want %d", len(all), len(domains))
	}
	if row, err := db.FluxDomainRow(ctx, domains[0]); err != nil || row.Monitor != contract.MonitorWatching {
		t.Fatalf("the monitor's state: %+v %v", row, err)
	}

	// Checks: the first shows its addresses as new, the same again none, one
	// more address one.
	d := domains[0]
	obs := func(at time.Time, addrs ...string) flux.Observation {
		o := flux.Observation{Domain: d, At: at, Status: flux.NoError}
		for _, a := range addrs {
			o.A = append(o.A, flux.Record{Addr: netip.MustParseAddr(a), TTL: 300})
		}
		return o
	}
	var seen []flux.Observation
	for i, tc := range []struct {
		addrs []string
		fresh int
	}{
		{[]string{"198.51.100.1", "198.51.100.2"}, 2},
		{[]string{"198.51.100.2", "198.51.100.1"}, 0},
		{[]string{"198.51.100.1", "198.51.100.3"}, 1},
	} {
		at := t0.Add(time.Duration(i+1) * 5 * time.Minute)
		o := obs(at, tc.addrs...)
		seen = append(seen, o)
		fresh, err := db.RecordProbeChecks(ctx, []storage.ProbeCheck{{Write: storage.FluxWrite{Obs: o, Due: at}, Next: at.Add(5 * time.Minute),
			Checks: i + 1, Stable: i, TTL: 300, State: contract.MonitorWatching}})
		if err != nil || fresh[d] != tc.fresh {
			t.Errorf("check %d: %d new addresses (%v), want %d", i+1, fresh[d], err, tc.fresh)
		}
		// The same due check again (a re-run) records nothing and shows nothing new.
		if fresh, err := db.RecordProbeChecks(ctx, []storage.ProbeCheck{{Write: storage.FluxWrite{Obs: obs(at.Add(time.Second), "203.0.113.9"), Due: at},
			Next: at.Add(5 * time.Minute), Checks: i + 1}}); err != nil || fresh[d] != 0 {
			t.Errorf("check %d re-run: %d new addresses (%v)", i+1, fresh[d], err)
		}
	}
	// Checks are not changes: the rows are not read again.
	rows, _, err := db.FluxSchedule(ctx, contract.MonitorBucket(d)%shards, shards, horizons[contract.MonitorBucket(d)%shards])
	if err != nil || len(rows) != 0 {
		t.Errorf("rows changed by checks: %+v %v", rows, err)
	}

	// The history folds into the metrics of all three observations; a
	// checkpoint then leaves nothing to fold but what comes after it.
	want := fold(seen...)
	hs, err := db.ProbeHistories(ctx, []string{d, domains[1]})
	if err != nil || len(hs) != 2 || hs[0].Domain != d || len(hs[0].Since) != 3 || len(hs[1].Since) != 0 {
		t.Fatalf("histories %+v %v", hs, err)
	}
	m := hs[0].Metrics
	for _, o := range hs[0].Since {
		m.Add(o)
	}
	if got, w := m.Summary(t0.Add(time.Hour)), want.Summary(t0.Add(time.Hour)); got != w {
		t.Fatalf("folded summary %+v, want %+v", got, w)
	}
	if err := db.SaveProbeCheckpoints(ctx, []storage.ProbeCheckpoint{{Domain: d, Metrics: &m, Summary: m.Summary(t0.Add(time.Hour)),
		State: contract.MonitorStable, At: t0.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	later := obs(t0.Add(time.Hour), "198.51.100.4")
	if _, err := db.RecordProbeChecks(ctx, []storage.ProbeCheck{{Write: storage.FluxWrite{Obs: later, Due: later.At}, Next: later.At.Add(time.Minute), Checks: 4}}); err != nil {
		t.Fatal(err)
	}
	hs, err = db.ProbeHistories(ctx, []string{d})
	if err != nil || len(hs) != 1 || len(hs[0].Since) != 1 || !hs[0].Since[0].At.Equal(later.At) || hs[0].Metrics.Observations != 3 {
		t.Fatalf("after the checkpoint: %+v %v", hs, err)
	}
	row, err := db.FluxDomainRow(ctx, d)
	if err != nil || row.Monitor != contract.MonitorStable || row.Summary == nil || row.Summary.IPs != 3 {
		t.Errorf("the monitor's row after the checkpoint: %+v %v", row, err)
	}

	// A pause and a pinned interval move the seq on; the row is read again.
	shard := contract.MonitorBucket(d) % shards
	if err := db.RegisterFluxMonitor(ctx, contract.MonitorRegistration{Domain: d, Config: cfg, Active: true, Paused: true, State: contract.MonitorPaused}, t0); err != nil {
		t.Fatal(err)
	}
	rows, horizon, err := db.FluxSchedule(ctx, shard, shards, horizons[shard])
	if err != nil || len(rows) != 1 || !rows[0].Paused || rows[0].Checks != 4 || rows[0].Due.IsZero() || rows[0].Seq <= all[d].Seq {
		t.Fatalf("after a pause: %+v %v", rows, err)
	}
	if err := db.RegisterFluxMonitor(ctx, contract.MonitorRegistration{Domain: d, Config: cfg, Active: true, Interval: 10 * time.Minute}, t0); err != nil {
		t.Fatal(err)
	}
	rows, _, err = db.FluxSchedule(ctx, shard, shards, horizon)
	if err != nil || len(rows) != 1 || rows[0].Paused || rows[0].Pinned != 10*time.Minute || !rows[0].Due.IsZero() {
		t.Fatalf("after resume and set-interval: %+v %v", rows, err)
	}

	// Monitors not on the schedule are the ones to upgrade; an ended one is off it.
	if err := db.SetFluxMonitor(ctx, "old.flux.example", contract.MonitorWatching, nil, t0); err != nil {
		t.Fatal(err)
	}
	if err := db.EndProbe(ctx, domains[1]); err != nil {
		t.Fatal(err)
	}
	old, err := db.UnscheduledMonitors(ctx)
	if err != nil || !slices.Equal(old, []string{domains[1], "old.flux.example"}) {
		t.Errorf("unscheduled monitors %v %v", old, err)
	}
	// Registered anew after its end, a domain starts new metrics.
	if err := db.RegisterFluxMonitor(ctx, contract.MonitorRegistration{Domain: d, Config: cfg, Active: false, State: contract.MonitorStopped}, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := db.RegisterFluxMonitor(ctx, contract.MonitorRegistration{Domain: d, Config: cfg, Active: true, State: contract.MonitorWatching}, t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	hs, err = db.ProbeHistories(ctx, []string{d})
	if err != nil || len(hs) != 1 || len(hs[0].Since) != 0 || hs[0].Metrics.Observations != 0 {
		t.Fatalf("a domain watched again: %+v %v", hs, err)
	}
}

func fold(obs ...flux.Observation) *flux.Metrics {
	var m flux.Metrics
	for _, o := range obs {
		m.Add(o)
	}
	return &m
}

// A registration whose transaction began first but commits after a read that
// saw a later registration is read next time: the horizon, not the seq, says
// what to read.
func TestFluxScheduleMissesNoLateCommit(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := contract.MonitorConfig{MinCheck: time.Minute, MaxCheck: time.Hour}
	// A transaction that takes a seq and an xid, and commits late.
	tx, err := testenv.SQL(t, db).Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, `INSERT INTO flux_schedule (domain, bucket, min_check_ms, max_check_ms) VALUES ('late.example', 0, 60000, 3600000)`); err != nil {
		t.Fatal(err)
	}
	if err := db.RegisterFluxMonitor(ctx, contract.MonitorRegistration{Domain: "early.example", Config: cfg, Active: true}, time.Now()); err != nil {
		t.Fatal(err)
	}
	rows, horizon, err := db.FluxSchedule(ctx, 0, 1, 0)
	if err != nil || len(rows) != 1 || rows[0].Domain != "early.example" {
		t.Fatalf("first read: %+v %v", rows, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	rows, _, err = db.FluxSchedule(ctx, 0, 1, horizon)
	var got []string
	for _, r := range rows {
		got = append(got, r.Domain)
	}
	if err != nil || !slices.Contains(got, "late.example") {
		t.Fatalf("the late commit was not read: %v %v", got, err)
	}
}
