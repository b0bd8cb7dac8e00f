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

func TestFluxTriageCoolDownAndMonitors(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	verdict := func(d string, v flux.Verdict, at time.Time) storage.FluxVerdict {
		return storage.FluxVerdict{Assessment: flux.Assessment{Domain: d, Verdict: v, Score: 1}, Origin: "spam-collect", At: at}
	}
	if err := db.RecordTriage(ctx, []storage.FluxVerdict{verdict("benign.example", flux.VerdictBenign, t0), verdict("flux.example", flux.VerdictFlux, t0)}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetFluxMonitor(ctx, "flux.example", contract.MonitorWatching, nil, t0); err != nil {
		t.Fatal(err)
	}
	// Within the cool-down nothing known is due; after it the benign domain is,
	// the watched one never; a new name always; each name once.
	for _, tc := range []struct {
		at   time.Time
		want []string
	}{
		{t0.Add(time.Hour), []string{"new.example"}},
		{t0.Add(25 * time.Hour), []string{"benign.example", "new.example"}},
	} {
		due, err := db.DueForTriage(ctx, []string{"benign.example", "flux.example", "new.example", "new.example"}, tc.at, 24*time.Hour)
		if err != nil || !slices.Equal(due, tc.want) {
			t.Errorf("due at %s: %v, %v; want %v", tc.at, due, err, tc.want)
		}
	}
	// A later triage counts; an older one (a retry arriving late) changes nothing.
	if err := db.RecordTriage(ctx, []storage.FluxVerdict{verdict("benign.example", flux.VerdictFlux, t0.Add(26*time.Hour)), verdict("benign.example", flux.VerdictBenign, t0.Add(time.Hour))}); err != nil {
		t.Fatal(err)
	}
	r, err := db.FluxDomainRow(ctx, "benign.example")
	if err != nil || r.Verdict != "flux" || r.Triages != 2 || r.Origin != "spam-collect" {
		t.Errorf("after a second triage: %+v, %v", r, err)
	}
	// A stopped monitor's domain can be triaged again after the cool-down.
	sum := flux.Summary{Domain: "flux.example", IPs: 7}
	if err := db.SetFluxMonitor(ctx, "flux.example", contract.MonitorStopped, &sum, t0.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	r, err = db.FluxDomainRow(ctx, "flux.example")
	if err != nil || r.Monitor != contract.MonitorStopped || r.MonitorEnded == nil || r.Summary == nil || r.Summary.IPs != 7 || !r.MonitorSince.Equal(t0) {
		t.Errorf("stopped monitor row: %+v, %v", r, err)
	}
	if due, _ := db.DueForTriage(ctx, []string{"flux.example"}, t0.Add(49*time.Hour), 24*time.Hour); !slices.Equal(due, []string{"flux.example"}) {
		t.Errorf("a stopped monitor's domain after the cool-down: due %v", due)
	}
	if _, err := db.FluxDomainRow(ctx, "never.example"); err == nil {
		t.Error("a domain never seen has a row")
	}
}

func TestRecordFluxChecksIsIdempotentAndGroupsNetworks(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	rec := func(ips ...string) []flux.Record {
		var rs []flux.Record
		for _, ip := range ips {
			rs = append(rs, flux.Record{Addr: netip.MustParseAddr(ip), TTL: 300, ASN: 64500})
		}
		return rs
	}
	obs := func(d string, at time.Time, ips ...string) flux.Observation {
		return flux.Observation{Domain: d, At: at, Status: flux.NoError, A: rec(ips...),
			NS: []flux.NameServer{{Name: "ns1." + d, Addrs: rec("192.0.2.53")}}}
	}
	for _, d := range []string{"a.example", "b.example", "c.example", "lone.example"} {
		if err := db.SetFluxMonitor(ctx, d, contract.MonitorWatching, nil, t0); err != nil {
			t.Fatal(err)
		}
	}
	batch := []storage.FluxWrite{
		{Obs: obs("a.example", t0, "198.51.100.1", "198.51.100.2"), Late: 1500 * time.Millisecond},
		{Obs: obs("a.example", t0.Add(5*time.Minute), "198.51.100.2", "198.51.100.3"), State: contract.MonitorStable, Summary: &flux.Summary{IPs: 3}},
		{Obs: obs("b.example", t0, "198.51.100.3", "203.0.113.9")},
		{Obs: obs("c.example", t0, "203.0.113.9")},
		{Obs: obs("lone.example", t0, "198.18.0.1")},
	}
	for range 2 { // the second write is a retry: nothing recorded twice
		if err := db.RecordFluxChecks(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	var observations, seen, late int
	testenv.SQL(t, db).QueryRow(ctx, `SELECT count(*), max(late_ms) FROM flux_observations`).Scan(&observations, &late)
	testenv.SQL(t, db).QueryRow(ctx, `SELECT seen FROM flux_ips WHERE domain = 'a.example' AND ip = '198.51.100.2' AND role = 'a'`).Scan(&seen)
	if observations != 5 || seen != 2 || late != 1500 {
		t.Errorf("%d observations, 198.51.100.2 seen %d times behind a.example, lateness %d ms; want 5, 2, 1500", observations, seen, late)
	}
	// A check re-run for the same due time (its worker died before Temporal
	// heard of it) resolves again, later: it is not recorded a second time.
	due := t0.Add(10 * time.Minute)
	for i, at := range []time.Time{due.Add(200 * time.Millisecond), due.Add(31 * time.Second)} {
		if err := db.RecordFluxChecks(ctx, []storage.FluxWrite{{Obs: obs("a.example", at, "198.51.100.2"), Due: due}}); err != nil {
			t.Fatal(err)
		}
		testenv.SQL(t, db).QueryRow(ctx, `SELECT count(*) FROM flux_observations WHERE domain = 'a.example'`).Scan(&observations)
		testenv.SQL(t, db).QueryRow(ctx, `SELECT seen FROM flux_ips WHERE domain = 'a.example' AND ip = '198.51.100.2' AND role = 'a'`).Scan(&seen)
		if observations != 3 || seen != 3 {
			t.Errorf("check %d for %s: %d observations of a.example, 198.51.100.2 seen %d times; want 3, 3", i+1, due.Format(time.TimeOnly), observations, seen)
		}
	}
	var first, last time.Time
	testenv.SQL(t, db).QueryRow(ctx, `SELECT first_seen, last_seen FROM flux_ips WHERE domain = 'a.example' AND ip = '198.51.100.2'`).Scan(&first, &last)
	if !first.Equal(t0) || !last.Equal(due.Add(200*time.Millisecond)) {
		t.Errorf("198.51.100.2 behind a.example: first %s, last %s", first, last)
	}
	if r, _ := db.FluxDomainRow(ctx, "a.example"); r.Monitor != contract.MonitorStable || r.Summary == nil || r.Summary.IPs != 3 || r.IPs != 3 || r.ASNs != 1 {
		t.Errorf("a.example's row after a check with its state: %+v", r)
	}
	if got, err := db.FluxObservations(ctx, "a.example", 1); err != nil || len(got) != 1 || !got[0].At.Equal(due.Add(200*time.Millisecond)) {
		t.Errorf("the newest observation of a.example: %+v, %v", got, err)
	}

	// a and b share 198.51.100.3, b and c 203.0.113.9: one network. Every domain
	// also has the name server address 192.0.2.53, which links nothing while
	// their name servers do not rotate (single flux: ordinary hosting).
	nets, err := db.UpdateFluxNetworks(ctx)
	if err != nil || len(nets) != 2 || !slices.Equal(nets[0].Domains, []string{"a.example", "b.example", "c.example"}) || nets[0].IPs != 4 ||
		nets[1].Name != "lone.example" || nets[1].IPs != 1 {
		t.Fatalf("networks: %+v, %v", nets, err)
	}
	// Double flux: the name servers are bots too, and link the networks.
	double := func(d string) storage.FluxVerdict {
		return storage.FluxVerdict{Assessment: flux.Assessment{Domain: d, Verdict: flux.VerdictDoubleFlux}, At: t0.Add(time.Hour)}
	}
	if err := db.RecordTriage(ctx, []storage.FluxVerdict{double("lone.example")}); err != nil {
		t.Fatal(err)
	}
	if nets, err = db.UpdateFluxNetworks(ctx); err != nil || len(nets) != 2 || nets[1].IPs != 2 {
		t.Fatalf("networks with one double-flux domain: %+v, %v", nets, err)
	}
	if err := db.RecordTriage(ctx, []storage.FluxVerdict{double("c.example")}); err != nil {
		t.Fatal(err)
	}
	nets, err = db.UpdateFluxNetworks(ctx)
	if err != nil || len(nets) != 1 || len(nets[0].Domains) != 4 || nets[0].Name != "a.example" || nets[0].IPs != 6 {
		t.Fatalf("networks joined by a rotating name server: %+v, %v", nets, err)
	}
	read, err := db.FluxNetworks(ctx)
	if err != nil || len(read) != 1 || !slices.Equal(read[0].Domains, nets[0].Domains) || read[0].IPs != 6 {
		t.Errorf("networks as recorded: %+v, %v", read, err)
	}
}

func TestNewListedDomainsAreTheDomainsFirstSeenSince(t *testing.T) {
	ctx := context.Background()
	db := openFresh(t)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	if _, err := testenv.SQL(t, db).Exec(ctx, `
		INSERT INTO indicators (type, value, registrable, first_seen) VALUES
		  ('domain', 'old.example', 'old.example', $1::timestamptz - interval '1 hour'),
		  ('domain', 'second.example', 'second.example', $1::timestamptz + interval '2 minutes'),
		  ('domain', 'first.example', 'first.example', $1::timestamptz + interval '1 minute'),
		  ('ipv4', '192.0.2.1', '', $1::timestamptz + interval '1 minute'),
		  ('url', 'http://new.example/x', 'new.example', $1::timestamptz + interval '1 minute')`, t0); err != nil {
		t.Fatal(err)
	}
	got, err := db.NewListedDomains(ctx, t0, 10)
	if err != nil || !slices.Equal(got, []string{"first.example", "second.example"}) {
		t.Errorf("new since t0: %v (%v), want first.example and second.example", got, err)
	}
	if got, err := db.NewListedDomains(ctx, t0, 1); err != nil || !slices.Equal(got, []string{"first.example"}) {
		t.Errorf("the first one: %v (%v)", got, err)
	}
	if got, err := db.NewListedDomains(ctx, t0.Add(time.Hour), 10); err != nil || len(got) != 0 {
		t.Errorf("none since: %v (%v)", got, err)
	}
}
