package worker_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/lab/world"
	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/worker"
	"github.com/tip-project/tip/workflows"
	"github.com/tip-project/tip/workflows/contract"
)

// The flux module on the real stack against the lab's DNS: triage of the lab's
// domains gives monitors to the flux ones only, monitors check on their own,
// survive a worker restart, answer their state query, a taken-down domain's
// monitor ends itself, the stop signal ends another, and the networks' addresses
// become the tip-flux-agents source.
func TestFluxTriageAndMonitorsOnTheLab(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs the local stack")
	}
	ctx := context.Background()
	w := world.NewWorld(1)

	// The lab clock starts 40 lab minutes before the first takedown of a flux
	// domain and runs 120 times faster than real time: the takedown comes in
	// about 20 s, after triage, and a 300 s TTL passes in 2.5 s.
	var doomed *world.Domain
	for _, d := range w.DomainsOf(world.SingleFlux, world.DoubleFlux) {
		if !d.TakedownAt.IsZero() && (doomed == nil || d.TakedownAt.Before(doomed.TakedownAt)) {
			doomed = d
		}
	}
	if doomed == nil {
		t.Fatal("the lab world has no flux domain taken down")
	}
	clock := world.NewClock(doomed.TakedownAt.Add(-40*time.Minute), 120)
	var fluxy, benign []string
	for _, d := range w.DomainsOf(world.SingleFlux, world.DoubleFlux) {
		if d.TakedownAt.IsZero() || d.TakedownAt.After(clock.Now().Add(time.Hour)) || d == doomed {
			fluxy = append(fluxy, d.Name)
		}
	}
	for _, c := range []world.Class{world.CDNDomain, world.Static, world.RoundRobin, world.Malicious} {
		for i, d := range w.DomainsOf(c) {
			if i < 3 && d.TakedownAt.IsZero() {
				benign = append(benign, d.Name)
			}
		}
	}

	cfg := testenv.Config(t)
	cfg.Postgres.DSN = testenv.NewDatabase(t)
	cfg = testenv.NewBucket(t, cfg)
	cfg.Flux.Resolvers = testenv.LabDNS(t, w, clock)
	cfg.Flux.ASNTable = testenv.LabASNTable(t, w)
	cfg.Flux.MinCheck, cfg.Flux.MaxCheck = time.Second, 3*time.Second
	cfg.Flux.NXDomainFor = 3 * time.Second
	cfg.Flux.TriageWait = 5 * time.Second // 600 lab seconds, past every lab TTL
	cfg.Flux.Lifetime = time.Hour
	cfg.Flux.SummaryInterval = 10 * time.Second // the state query's checks: as of the last report
	stopWorker := runWorker(t, cfg)

	c, err := starter.Dial(ctx, cfg.Temporal, nil, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	db, err := storage.OpenDB(ctx, cfg.Postgres.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	// Triage, as the core runs it with the spam module's domains.
	items := append(append([]string{}, fluxy...), benign...)
	items = append(items, "NOT A DOMAIN", "203.0.113.7")
	var res contract.ModuleResult
	execute(t, c, cfg.Temporal.TaskQueue, "flux-triage/"+t.Name(), workflows.FluxTriage,
		contract.ModuleInput{Module: contract.FluxTriageModule, Events: []contract.Event{{Kind: contract.EventDomainsDiscovered, Items: items, From: "spam-collect"}}}, &res)
	t.Logf("triage: %s", res.Summary)
	rows, err := db.FluxDomains(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	verdict := map[string]storage.FluxDomain{}
	for _, r := range rows {
		verdict[r.Domain] = r
	}
	for _, d := range fluxy {
		if r, ok := verdict[d]; !ok || (r.Verdict != "flux" && r.Verdict != "double-flux") {
			t.Errorf("flux domain %s: verdict %q (%s)", d, r.Verdict, r.Reason)
		}
		if _, err := c.DescribeWorkflowExecution(ctx, contract.MonitorWorkflowID(d), ""); err != nil {
			t.Errorf("flux domain %s has no monitor: %v", d, err)
		}
	}
	for _, d := range benign {
		if r := verdict[d]; r.Verdict == "flux" || r.Verdict == "double-flux" {
			t.Errorf("%s flagged %s (%s)", d, r.Verdict, r.Reason)
		}
		var nf *serviceerror.NotFound
		if _, err := c.DescribeWorkflowExecution(ctx, contract.MonitorWorkflowID(d), ""); !errors.As(err, &nf) {
			t.Errorf("benign domain %s has a monitor (%v)", d, err)
		}
	}
	if len(rows) != len(fluxy)+len(benign) {
		t.Errorf("%d domains triaged, want %d (what is not a domain is dropped)", len(rows), len(fluxy)+len(benign))
	}
	if t.Failed() {
		t.FailNow()
	}

	// Monitors check on their own, and go on after a worker restart.
	watched := fluxy[0]
	if watched == doomed.Name {
		watched = fluxy[1]
	}
	first := waitChecks(t, c, watched, 2)
	stopWorker()
	stopWorker = runWorker(t, cfg)
	defer stopWorker()
	after := waitChecks(t, c, watched, first.Checks+2)
	if after.Summary.IPs <= 1 || after.State == "" {
		t.Errorf("state after the restart: %+v", after)
	}
	desc, err := c.DescribeWorkflowExecution(ctx, contract.MonitorWorkflowID(watched), "")
	if err != nil {
		t.Fatal(err)
	}
	attrs := desc.WorkflowExecutionInfo.GetSearchAttributes().GetIndexedFields()
	for _, k := range []string{"Domain", "FluxState", "FluxScore", "FluxIPs"} {
		if attrs[k] == nil {
			t.Errorf("monitor %s lacks search attribute %s (has %v)", watched, k, attrs)
		}
	}

	// The taken-down domain's monitor ends itself.
	var end contract.MonitorResult
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := c.GetWorkflow(wctx, contract.MonitorWorkflowID(doomed.Name), "").Get(wctx, &end); err != nil {
		t.Fatalf("monitor of the taken-down %s: %v", doomed.Name, err)
	}
	if !strings.Contains(end.Reason, "taken down") || end.Summary.NXDomainSince.IsZero() {
		t.Errorf("monitor of %s ended: %+v", doomed.Name, end)
	}
	if r, err := db.FluxDomainRow(ctx, doomed.Name); err != nil || r.Monitor != contract.MonitorStopped || r.Summary == nil || r.MonitorEnded == nil {
		t.Errorf("row of %s after its monitor ended: %+v, %v", doomed.Name, r, err)
	}

	// The stop signal ends a monitor with its final summary.
	if err := c.SignalWorkflow(ctx, contract.MonitorWorkflowID(watched), "", contract.SignalFluxStop, "test"); err != nil {
		t.Fatal(err)
	}
	if err := c.GetWorkflow(wctx, contract.MonitorWorkflowID(watched), "").Get(wctx, &end); err != nil || end.Reason != "stopped by hand: test" || end.Summary.IPs == 0 {
		t.Errorf("stopped monitor: %+v, %v", end, err)
	}
	recordHistory(t, c, contract.MonitorWorkflowID(watched), "flux-monitor-probed")
	recordHistory(t, c, contract.ProberWorkflowID(cfg.Temporal.TaskQueue, 0), "flux-prober")
	recordHistory(t, c, "flux-triage/"+t.Name(), "flux-triage")
	obs, err := db.FluxObservations(ctx, watched, 0)
	if err != nil || len(obs) < after.Checks {
		t.Errorf("%d observations of %s recorded, the monitor made %d checks (%v)", len(obs), watched, after.Checks, err)
	}

	// Networks: the flux domains' addresses become tip-flux-agents (the monitors
	// still running keep finding new ones meanwhile).
	before := time.Now()
	execute(t, c, cfg.Temporal.TaskQueue, "flux-networks/"+t.Name(), workflows.FluxNetworks,
		contract.ModuleInput{Module: contract.FluxNetworksModule}, &res)
	t.Logf("networks: %s", res.Summary)
	nets, err := db.FluxNetworks(ctx)
	if err != nil || len(nets) == 0 {
		t.Fatalf("networks %v, %v", nets, err)
	}
	// The networks are the lab's botnets: domains of one botnet in one network,
	// of two botnets in two.
	botnetOf := map[string]string{} // TIP's network -> the lab botnet of its domains
	for _, n := range nets {
		for _, d := range n.Domains {
			ld, _ := w.Domain(d)
			if b, ok := botnetOf[n.Name]; ok && b != ld.Network {
				t.Errorf("network %s holds domains of %s and %s", n.Name, b, ld.Network)
			}
			botnetOf[n.Name] = ld.Network
		}
	}
	if len(nets) != len(w.Networks) {
		t.Errorf("%d networks, the lab has %d botnets: %+v", len(nets), len(w.Networks), nets)
	}
	var listed, stray, seenBefore int
	testenv.SQL(t, db).QueryRow(ctx, `SELECT count(*) FROM listings WHERE source = $1 AND active`, contract.FluxAgentsSource).Scan(&listed)
	testenv.SQL(t, db).QueryRow(ctx, `SELECT count(*) FROM listings l JOIN indicators i ON i.id = l.indicator_id
		WHERE l.source = $1 AND NOT EXISTS (SELECT 1 FROM flux_ips f WHERE host(f.ip) = i.value)`, contract.FluxAgentsSource).Scan(&stray)
	// An observation is stamped when its look began and written up to a batch
	// later: what was seen 10 s before the run was recorded before it.
	testenv.SQL(t, db).QueryRow(ctx, `SELECT count(DISTINCT ip) FROM flux_ips i JOIN flux_domains d USING (domain)
		WHERE i.first_seen < $1 AND (i.role = 'a' OR d.verdict = 'double-flux')`, before.Add(-10*time.Second)).Scan(&seenBefore)
	if listed < seenBefore || stray != 0 {
		t.Errorf("%s lists %d addresses (%d never seen behind a flux domain); the monitors had seen %d before the run",
			contract.FluxAgentsSource, listed, stray, seenBefore)
	}
	// Every address listed is a bot of the lab: no CDN edge, no name server host.
	bots := map[string]bool{}
	for _, n := range w.Networks {
		for _, ip := range n.Pool {
			bots[ip.String()] = true
		}
	}
	rowsIP, err := testenv.SQL(t, db).Query(ctx, `SELECT i.value FROM listings l JOIN indicators i ON i.id = l.indicator_id WHERE l.source = $1`, contract.FluxAgentsSource)
	if err != nil {
		t.Fatal(err)
	}
	for rowsIP.Next() {
		var ip string
		rowsIP.Scan(&ip)
		if !bots[ip] && !strings.Contains(ip, ":") {
			t.Errorf("address %s listed as a flux agent is no bot of the lab", ip)
		}
	}
	rowsIP.Close()
}

// recordHistory writes a workflow's history, as `temporal workflow show -o json`
// does, into $TIP_RECORD_HISTORIES/<name>.history.json when that is set: the
// replay test's recordings (workflows/testdata) come from here.
func recordHistory(t *testing.T, c client.Client, id, name string) {
	dir := os.Getenv("TIP_RECORD_HISTORIES")
	if dir == "" {
		return
	}
	var h historypb.History
	iter := c.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	data, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".history.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// runWorker runs a TIP worker in this process until the returned function stops it.
func runWorker(t *testing.T, cfg config.Config) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := worker.Run(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))); err != nil {
			t.Errorf("worker: %v", err)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// execute runs a workflow to its end and decodes its result.
func execute(t *testing.T, c client.Client, queue, id string, wf, in, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, wf, in)
	if err != nil {
		t.Fatal(err)
	}
	if err := run.Get(ctx, out); err != nil {
		t.Fatalf("%s: %v", id, err)
	}
}

// waitChecks queries a monitor until it has made at least n checks.
func waitChecks(t *testing.T, c client.Client, domain string, n int) contract.MonitorStatus {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var st contract.MonitorStatus
	for {
		v, err := c.QueryWorkflow(context.Background(), contract.MonitorWorkflowID(domain), "", contract.QueryFluxState)
		if err == nil {
			err = v.Get(&st)
		}
		if err == nil && st.Checks >= n {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("monitor of %s: %d checks after 2 minutes, want %d (%v)", domain, st.Checks, n, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
