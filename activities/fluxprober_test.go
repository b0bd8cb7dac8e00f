package activities

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/workflows/contract"
)

// answers is a fake resolver: each domain answers as its function says at its
// n-th resolution (from 1).
type answers struct {
	mu sync.Mutex
	n  map[string]int
	by map[string]func(n int) flux.Observation
}

func (r *answers) Observe(_ context.Context, domain string) (flux.Observation, error) {
	r.mu.Lock()
	r.n[domain]++
	n := r.n[domain]
	r.mu.Unlock()
	o := r.by[domain](n)
	o.Domain, o.At = domain, time.Now().UTC()
	return o, nil
}

// TestRunProber runs a prober over real PostgreSQL with a fake resolver: each
// domain is checked at its cadence and every check recorded once, with its
// lateness; a domain whose answers bring nothing new turns stable and its
// monitor hears so at once; an NXDOMAIN is reported when it starts and the
// takedown when it lasted NXDomainFor; every monitor hears its summary each
// interval, with the metrics folded from all its checks; a paused domain is
// not checked.
func TestRunProber(t *testing.T) {
	ctx := context.Background()
	db := testenv.MigratedDB(t)
	dns := &answers{n: map[string]int{}, by: map[string]func(int) flux.Observation{
		"rotating.example": func(n int) flux.Observation {
			return answer("", fmt.Sprintf("198.51.100.%d", n), fmt.Sprintf("203.0.113.%d", n))
		},
		"steady.example": func(int) flux.Observation { return answer("", "192.0.2.1", "192.0.2.2") },
		"gone.example": func(n int) flux.Observation {
			if n <= 2 {
				return answer("", "192.0.2.9")
			}
			return flux.Observation{Status: flux.NXDomain}
		},
		"paused.example": func(int) flux.Observation { return answer("", "192.0.2.7") },
	}}
	type signal struct {
		domain string
		r      contract.MonitorReport
	}
	var mu sync.Mutex
	var got []signal
	f := &Flux{Store: db, DNS: &Resolution{Resolver: dns}, Signal: func(_ context.Context, domain, name string, arg any) error {
		if name != contract.SignalFluxReport {
			t.Errorf("signal %s to %s", name, domain)
		}
		mu.Lock()
		got = append(got, signal{domain, arg.(contract.MonitorReport)})
		mu.Unlock()
		return nil
	}}
	cfg := contract.MonitorConfig{MinCheck: time.Second, MaxCheck: time.Second, NXDomainFor: 3 * time.Second}
	for d := range dns.by {
		if err := db.RegisterFluxMonitor(ctx, contract.MonitorRegistration{Domain: d, Config: cfg, Active: true, State: contract.MonitorWatching,
			Paused: d == "paused.example"}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	const run = 18 * time.Second
	start := time.Now()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(f)
	if _, err := env.ExecuteActivity(f.RunProber, contract.ProberInput{Shard: 0, Shards: 1, Summary: 4 * time.Second, Run: run}); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)

	rows, err := testenv.SQL(t, db).Query(ctx, `SELECT domain, count(*), count(DISTINCT due), max(late_ms) FROM flux_observations GROUP BY domain`)
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]int{}
	for rows.Next() {
		var d string
		var n, dues, late int
		if err := rows.Scan(&d, &n, &dues, &late); err != nil {
			t.Fatal(err)
		}
		checks[d] = n
		if dues != n {
			t.Errorf("%s: %d checks for %d due times", d, n, dues)
		}
		if late > 1000 {
			t.Errorf("%s: a check %d ms late", d, late)
		}
	}
	if checks["paused.example"] != 0 {
		t.Errorf("a paused domain was checked %d times", checks["paused.example"])
	}
	for _, d := range []string{"rotating.example", "steady.example"} {
		// A check a second (its TTL, within the bounds) for the run.
		if want := int(elapsed / time.Second); checks[d] < want-2 || checks[d] > want+1 {
			t.Errorf("%s checked %d times in %s, want about %d", d, checks[d], elapsed.Round(time.Second), want)
		}
	}

	reasons := map[string][]string{}
	last := map[string]contract.MonitorReport{}
	for _, s := range got {
		reasons[s.domain] = append(reasons[s.domain], s.r.Reason)
		last[s.domain] = s.r
	}
	has := func(d, reason string) bool {
		for _, r := range reasons[d] {
			if r == reason {
				return true
			}
		}
		return false
	}
	if !has("steady.example", contract.ReportState) || last["steady.example"].State != contract.MonitorStable {
		t.Errorf("steady.example's reports %v, last %+v: want it stable", reasons["steady.example"], last["steady.example"])
	}
	if has("rotating.example", contract.ReportState) || !has("rotating.example", contract.ReportSummary) {
		t.Errorf("rotating.example's reports %v: want summaries only", reasons["rotating.example"])
	}
	if r := last["rotating.example"]; r.Summary.IPs < 2*(r.Checks-1) || r.Checks < 8 || r.Summary.Observations != r.Checks {
		t.Errorf("rotating.example's last summary: %d checks, %d observations, %d IPs", r.Checks, r.Summary.Observations, r.Summary.IPs)
	}
	if !has("gone.example", contract.ReportNXDomain) || !has("gone.example", contract.ReportTakedown) {
		t.Errorf("gone.example's reports %v: want its NXDOMAIN and its takedown", reasons["gone.example"])
	}
	if len(reasons["paused.example"]) != 0 {
		t.Errorf("paused.example's reports %v", reasons["paused.example"])
	}
	// The checkpoint is the metrics of the checks before the last report.
	hs, err := db.ProbeHistories(ctx, []string{"rotating.example"})
	if err != nil || len(hs) != 1 || hs[0].Metrics.Observations != last["rotating.example"].Summary.Observations ||
		hs[0].Metrics.Observations+len(hs[0].Since) != checks["rotating.example"] {
		t.Errorf("rotating.example's checkpoint: %+v (%v)", hs, err)
	}
}
