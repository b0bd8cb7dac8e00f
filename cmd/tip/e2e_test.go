package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/config"
	"github.com/tip-project/tip/internal/browser"
	"github.com/tip-project/tip/internal/testenv"
	"github.com/tip-project/tip/lab"
	"github.com/tip-project/tip/lab/spam"
	"github.com/tip-project/tip/lab/world"
	"github.com/tip-project/tip/report/reporttest"
	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// TestDemoLoopEndToEnd is `make demo` as a test: the lab and its spamtrap agent
// as `tip dev up --lab` starts them, a worker, and the core with every module.
// It waits, as `tip dev demo` does, until the whole loop has shown itself —
// blacklists loaded and weighted, spam from the archive, the IMAP trap and the
// agent, its domains triaged, flux monitors checking, flux agents listed and
// weighted — then holds what TIP recorded against the lab's ground truth.
//
// The intervals are shorter than the demo's so the loop closes in about two
// minutes, and the catalog leaves out the lab's million-line feed (its load is
// the benchmark's business): everything else is the demo's.
func TestDemoLoopEndToEnd(t *testing.T) {
	testenv.Stack(t) // skips in -short mode
	ctx := context.Background()
	tip := testenv.BuildTip(t)
	ls := newLabLayout(t)
	s := ls.stack
	dropLines(t, ls.blacklistCatalog, "name: lab-large")
	labURL := "http://" + ls.port(s.LabHTTPPort)

	cfg := startCollectorOn(t, ls.spamCatalog, func(c *config.Config) {
		c.Blacklists.Catalog = ls.blacklistCatalog
		c.Blacklists.Interval = 30 * time.Second
		c.Spam.Interval = 10 * time.Second
		c.Flux.Resolvers = ls.port(s.LabDNSPort)
		c.Flux.ASNTable = labURL + "/iptoasn/ip2asn-combined.tsv.gz"
		c.Flux.Interval = 10 * time.Second
		c.Flux.NetworksInterval = 30 * time.Second
		c.Flux.MinCheck = 5 * time.Second
	})
	if err := upLab(ctx, s, tip, ls.spamCatalog, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	tc, err := starter.Dial(ctx, cfg.Temporal, slog.New(slog.DiscardHandler), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close) // after the monitors are stopped, below
	if _, _, err := starter.StartCore(ctx, tc, cfg.Temporal.TaskQueue, contract.CoreInput{Modules: starter.DefaultModules(cfg)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = tc.TerminateWorkflow(ctx, contract.CoreWorkflowID, "", "test over")
		stopMonitors(t, tc)
	})
	db, err := storage.OpenDB(ctx, cfg.Postgres.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	counts, missing, err := watchLoop(ctx, db, 4*time.Minute, time.Second, func(s loopStep, after time.Duration, detail string) {
		t.Logf("%6s  %s: %s", after.Round(time.Second), s.Name, detail)
	})
	if err != nil || len(missing) > 0 {
		t.Fatalf("the loop did not close: %v; missing: %s", err, strings.Join(missing, "; "))
	}
	// The modules keep running while the facts are read: stop the core first so
	// its children do not change them underneath (monitors keep checking; what
	// they add is checked against the same truth).
	if err := tc.TerminateWorkflow(ctx, contract.CoreWorkflowID, "", "loop closed"); err != nil {
		t.Fatal(err)
	}
	coreEnded := time.Now()
	// A StartMonitor activity dispatched before the core stopped still runs to
	// its end: let the monitors settle (the same in PostgreSQL and Temporal, two
	// reads apart) before they are checked.
	var settled []string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		running, inDB := runningMonitorDomains(t, ctx, tc, cfg), monitoredDomains(t, ctx, db)
		if slices.Equal(running, inDB) && slices.Equal(running, settled) {
			break
		}
		settled = running
	}

	clock, err := labClock(labURL)
	if err != nil {
		t.Fatal(err)
	}
	w := world.NewWorld(clock.Seed)
	truth := newLoopTruth(w, clock)

	t.Run("sources and weights", func(t *testing.T) { checkSources(t, ctx, db) })
	t.Run("spam facts", func(t *testing.T) { checkSpam(t, ctx, db, truth) })
	t.Run("flux detections", func(t *testing.T) { checkFlux(t, ctx, db, tc, cfg, truth) })
	t.Run("routed between modules", func(t *testing.T) { checkRouting(t, ctx, db, truth, coreEnded) })
	t.Run("report in a browser", func(t *testing.T) { checkReport(t, ctx, db, truth) })
	t.Run("web UI lists the runs", func(t *testing.T) { checkWebUI(t, ctx, db, tc, cfg) })
	t.Run("shared over the API", func(t *testing.T) { checkSharing(t, ctx, db, cfg) })
	t.Run("status", func(t *testing.T) {
		// Monitors may still start after the loop closed (a triage in flight
		// when the core stopped), so status must show at least the monitors the
		// loop counted, and Temporal running as many as PostgreSQL has. A
		// monitor starting between its two reads is retried, not a failure.
		monitors := counts.Flux.Watching + counts.Flux.Stable
		fluxLine := regexp.MustCompile(`flux: (\d+) running .* · Temporal runs (\d+)`)
		var out string
		for attempt := 0; ; attempt++ {
			o, err := runTip(t, "status")
			if err != nil {
				t.Fatalf("%v\n%s", err, o)
			}
			out = o
			m := fluxLine.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("tip status has no flux line:\n%s", out)
			}
			inDB, _ := strconv.Atoi(m[1])
			inTemporal, _ := strconv.Atoi(m[2])
			if inDB == inTemporal && int64(inDB) >= monitors {
				break
			}
			if attempt == 10 {
				t.Fatalf("tip status shows %d monitors in PostgreSQL and %d in Temporal; the loop counted %d:\n%s", inDB, inTemporal, monitors, out)
			}
			time.Sleep(time.Second)
		}
		for _, want := range []string{contract.BlacklistModule, contract.SpamModule, contract.FluxTriageModule, contract.FluxNetworksModule,
			"et-compromised", "agent:" + labAgentName, "imap:lab-imap"} {
			if !strings.Contains(out, want) {
				t.Errorf("tip status lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("summary", func(t *testing.T) {
		var b strings.Builder
		printDemoSummary(&b, counts, s, cfg.Temporal.Namespace, "", "", metricsLinks(cfg))
		out := b.String()
		for _, want := range []string{"blacklists ", "spam ", "flux triage ", "flux monitors ", "flux networks ",
			s.TemporalUI() + "/namespaces/" + cfg.Temporal.Namespace + "/workflows", "bin/tip status",
			"http://" + cfg.API.MetricsAddress + "/metrics"} {
			if !strings.Contains(out, want) {
				t.Errorf("the summary lacks %q:\n%s", want, out)
			}
		}
	})
}

// checkReport: `tip report` of the loop opens offline in Chromium with every
// chart drawn, and what it draws is the lab's: the spam's ASNs and countries are
// the lab's, each flux panel is a monitored lab flux domain, and the overlap heat
// map covers every source.
func checkReport(t *testing.T, ctx context.Context, db *storage.DB, lt loopTruth) {
	dir := filepath.Join(t.TempDir(), "report")
	out, err := runTip(t, "report", "--out", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	b := browser.New(t)
	r, err := reporttest.ReadRendered(ctx, b, filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	b.Screenshot(t, "report")
	for _, sec := range []string{"weights", "health", "overlap", "spam", "flux"} {
		b.ScreenshotElement(t, "report-"+sec, "#"+sec)
	}
	if !r.Ready || len(r.Errors) > 0 || len(r.Empty) > 0 {
		t.Errorf("report: ready %v, errors %q, empty sections %q", r.Ready, r.Errors, r.Empty)
	}
	for _, u := range r.Requests {
		if !strings.HasPrefix(u, "file://") {
			t.Errorf("the report loaded %s: it must need no network", u)
		}
	}
	for _, c := range r.Charts {
		if c.Painted == 0 {
			t.Errorf("chart %s (%s) was not drawn", c.ID, c.Title)
		}
	}
	labASNs, labCountries := map[string]bool{"other": true}, map[string]bool{"other": true}
	for _, a := range lt.w.ASNs {
		labASNs[fmt.Sprintf("AS%d", a.Number)], labCountries[a.Country] = true, true
	}
	for id, known := range map[string]map[string]bool{"spam-asn": labASNs, "spam-country": labCountries} {
		c := r.Chart(id)
		if c == nil || len(c.Labels) == 0 {
			t.Errorf("no chart %s", id)
			continue
		}
		for _, l := range c.Labels {
			if !known[l] {
				t.Errorf("chart %s has a bar %q, none of the lab's", id, l)
			}
		}
	}
	var panels [][2]string
	if err := b.Eval(ctx, `Array.from(document.querySelectorAll("#flux article.panel")).map((p) => [p.id, p.querySelector("h3").textContent])`, &panels); err != nil {
		t.Fatal(err)
	}
	monitored, err := db.FluxDomains(ctx, "watching", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(panels) == 0 || len(panels) != min(len(monitored), 50) {
		t.Errorf("%d flux panels for %d monitored domains", len(panels), len(monitored))
	}
	for _, p := range panels {
		if d := lt.domain(p[1]); d == nil || !d.Class.IsFlux() {
			t.Errorf("flux panel %s charts %s, no lab flux domain", p[0], p[1])
		}
		if r.Chart(p[0]+"-counts") == nil || r.Chart(p[0]+"-ttl") == nil {
			t.Errorf("flux panel %s (%s) lacks its charts", p[0], p[1])
		}
	}
	hs, err := db.SourcesHealth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g := r.Grid("overlap-heatmap"); g == nil || len(g.Rows) != len(hs) || len(g.Columns) != len(hs) || g.Colored != len(hs)*len(hs) {
		t.Errorf("overlap heat map of %d sources: %+v", len(hs), g)
	}
}

// checkWebUI: the Temporal Web UI of the stack lists the loop's runs — the core,
// the blacklist refreshes and each source's child, the spam collections, the
// triage runs and one monitor per monitored domain, the last found by their
// search attributes — and a monitor's page shows its search attributes.
func checkWebUI(t *testing.T, ctx context.Context, db *storage.DB, tc client.Client, cfg config.Config) {
	ui := testenv.Stack(t).TemporalUI()
	if ui == "" {
		t.Fatal("the test stack's Temporal has no Web UI")
	}
	b := browser.New(t)
	list := func(name, query string, want ...string) string {
		t.Helper()
		u := ui + "/namespaces/" + url.PathEscape(cfg.Temporal.Namespace) + "/workflows?query=" +
			url.QueryEscape(query+fmt.Sprintf(` AND TaskQueue = %q`, cfg.Temporal.TaskQueue))
		if err := b.Navigate(ctx, u); err != nil {
			t.Fatal(err)
		}
		var text string
		// The list has loaded once its pager says "1–n of n".
		cond := `/\d+–\d+\s+of\s+\d+/.test(document.body.innerText) && ` + jsIncludesAll(want)
		if err := b.WaitFor(ctx, cond); err != nil {
			_ = b.Eval(ctx, `document.body.innerText`, &text)
			b.Screenshot(t, name)
			t.Fatalf("the Web UI's list for %s lacks %q: %v\n%s", query, want, err, text)
		}
		b.Screenshot(t, name)
		_ = b.Eval(ctx, `document.body.innerText`, &text)
		return text
	}
	list("core", `WorkflowId = "`+contract.CoreWorkflowID+`"`, contract.CoreWorkflowID, "Core")
	list("refreshes", `WorkflowType = "BlacklistRefresh"`, contract.BlacklistModule+"/", "BlacklistRefresh")
	list("source", `Source = "spamhaus-drop"`, "spamhaus-drop")
	list("spam", `WorkflowType = "SpamCollect"`, contract.SpamModule+"/")
	list("triage", `WorkflowType = "FluxTriage"`, contract.FluxTriageModule+"/")

	monitored, err := db.FluxDomains(ctx, "watching", "")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range monitored {
		ids = append(ids, contract.MonitorWorkflowID(d.Domain))
	}
	text := list("monitors", `FluxState = "watching"`, ids...)
	if want := fmt.Sprintf("of %d", len(ids)); !strings.Contains(text, want) {
		t.Errorf("the Web UI lists other than %d watching monitors:\n%s", len(ids), text)
	}

	// One monitor's page, on its search attributes tab.
	d := monitored[0]
	desc, err := tc.DescribeWorkflowExecution(ctx, contract.MonitorWorkflowID(d.Domain), "")
	if err != nil {
		t.Fatal(err)
	}
	u := ui + "/namespaces/" + url.PathEscape(cfg.Temporal.Namespace) + "/workflows/" + url.PathEscape(contract.MonitorWorkflowID(d.Domain)) +
		"/" + desc.WorkflowExecutionInfo.Execution.RunId + "/search-attributes"
	if err := b.Navigate(ctx, u); err != nil {
		t.Fatal(err)
	}
	want := []string{`"Domain": "` + d.Domain + `"`, `"FluxState": "watching"`, `"FluxIPs"`, `"FluxScore"`, `"Module": "flux"`}
	if err := b.WaitFor(ctx, jsIncludesAll(want)); err != nil {
		var text string
		_ = b.Eval(ctx, `document.body.innerText`, &text)
		t.Errorf("the monitor's search attributes lack %q: %v\n%s", want, err, text)
	}
	b.Screenshot(t, "monitor-search-attributes")
}

// jsIncludesAll is a JavaScript condition: the page's text holds every string.
func jsIncludesAll(want []string) string {
	var conds []string
	for _, w := range want {
		q, _ := json.Marshal(w)
		conds = append(conds, "document.body.innerText.includes("+string(q)+")")
	}
	return "(" + strings.Join(append(conds, "true"), " && ") + ")"
}

// loopTruth is what the lab knows, at the end of the test, about what TIP saw.
type loopTruth struct {
	w     *world.World
	at    time.Time // lab time when the truth was taken...
	wall  time.Time // ...at this wall time
	speed float64
	bot   map[netip.Addr]string // every flux bot address and its network
	// mails by Message-ID, from the archive's and IMAP trap's stream and the agent's.
	mails map[string]spam.Truth
}

func newLoopTruth(w *world.World, clock lab.ClockState) loopTruth {
	lt := loopTruth{w: w, at: clock.Now, wall: time.Now(), speed: clock.Speed, bot: map[netip.Addr]string{}, mails: map[string]spam.Truth{}}
	for _, n := range w.Networks {
		for _, a := range n.Pool {
			lt.bot[a] = n.Name
		}
	}
	for _, d := range w.Domains {
		if d.Class.IsFlux() {
			for _, a := range slices.Concat(d.Pool, d.PoolV6, d.NSPool) {
				lt.bot[a] = d.Network
			}
		}
	}
	cfg := lab.DefaultConfig("")
	for _, g := range []*spam.Generator{spam.NewGenerator(w, spam.Options{PerDay: cfg.SpamPerDay}), lab.NewAgentSpam(w, cfg.AgentSpamPerDay)} {
		for _, m := range g.Between(w.Start, clock.Now.Add(time.Hour)) {
			if m.Truth.MessageID != "" {
				lt.mails[m.Truth.MessageID] = m.Truth
			}
		}
	}
	return lt
}

// labTime is the lab time at wall time t.
func (lt loopTruth) labTime(t time.Time) time.Time {
	return lt.at.Add(-time.Duration(float64(lt.wall.Sub(t)) * lt.speed))
}

// domain is the lab zone of a host name (www.example.org's is example.org), or
// nil for a name of no lab zone.
func (lt loopTruth) domain(name string) *world.Domain {
	for _, d := range lt.w.Domains {
		if d.Name == name || strings.HasSuffix(name, "."+d.Name) {
			return d
		}
	}
	return nil
}

// checkSources: every source of the catalog ran, the lab's dead feed is dead and
// weighs nothing, its HTML page is failing and weighs less than any healthy feed,
// and TIP's own two sources list what spam and flux found and are weighted.
func checkSources(t *testing.T, ctx context.Context, db *storage.DB) {
	hs, err := db.SourcesHealth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]storage.SourceHealth{}
	minOK := 1.0
	for _, h := range hs {
		by[h.Name] = h
		if h.Health == "ok" && !strings.HasPrefix(h.Name, "tip-") {
			minOK = min(minOK, h.Weight)
		}
	}
	if len(hs) != 26 { // the lab catalog's 25 feeds but the large one, and TIP's own two
		t.Errorf("%d sources, want 26", len(hs))
	}
	for _, h := range hs {
		switch h.Name {
		case "et-compromised":
			if h.Health != "dead" || h.Weight != 0 || h.LastHTTPStatus != 404 {
				t.Errorf("the lab's 404 feed: %+v", h)
			}
		case "blocklistde-strongips":
			// Failing, then dead after storage.DeadAfter malformed runs in a row.
			if (h.Health != "failing" && h.Health != "dead") || h.LastStatus != "malformed" || h.Weight >= minOK {
				t.Errorf("the lab's HTML page feed: %+v (healthy feeds weigh at least %.2f)", h, minOK)
			}
		default:
			if h.Health != "ok" || h.Weight <= 0 || h.Active == 0 {
				t.Errorf("%s: health %s, weight %.2f, %d active listings", h.Name, h.Health, h.Weight, h.Active)
			}
		}
	}
	for _, own := range ownSources {
		if _, ok := by[own]; !ok {
			t.Errorf("TIP's own source %s is not among the sources", own)
		}
	}
}

// checkSpam: every mail recorded is one the lab sent, with the lab's true sender,
// recorded once, under the origin that can see it (the agent's trap is only the
// agent's), and every sender listed as tip-spamtrap-senders is a true sender.
func checkSpam(t *testing.T, ctx context.Context, db *storage.DB, lt loopTruth) {
	rows, err := testenv.SQL(t, db).Query(ctx, `
		SELECT m.message_id, coalesce(host(m.sender_ip), ''), coalesce(m.sender_asn, 0), m.trap,
		       array_agg(DISTINCT split_part(s.origin, ':', 1) ORDER BY split_part(s.origin, ':', 1))
		  FROM spam_messages m JOIN spam_sightings s USING (sha256)
		 GROUP BY m.sha256`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := map[string]int{}
	var n, matched, unknown, wrongSender int
	senders := map[string]bool{} // as TIP recorded them
	for rows.Next() {
		var id, ip, trap string
		var asn int
		var kinds []string
		if err := rows.Scan(&id, &ip, &asn, &trap, &kinds); err != nil {
			t.Fatal(err)
		}
		if ip != "" {
			senders[ip] = true
		}
		if id == "" { // a malformed mail may have none
			continue
		}
		n++
		seen[id]++
		m, ok := lt.mails[id]
		if !ok {
			if unknown++; unknown <= 3 {
				t.Logf("mail %s is none the lab sent", id)
			}
			continue
		}
		matched++
		if m.SenderIP.IsValid() && ip != m.SenderIP.String() {
			wrongSender++
			if wrongSender <= 3 {
				t.Errorf("mail %s: sender %s, the lab's true sender %s", id, ip, m.SenderIP)
			}
		}
		agentTrap := m.TrapMX == lt.w.AgentTrapMX.Name
		if agentTrap != slices.Equal(kinds, []string{"agent"}) {
			t.Errorf("mail %s of trap MX %s was seen by %v", id, m.TrapMX, kinds)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for id, k := range seen {
		if k > 1 {
			t.Errorf("message %s recorded %d times", id, k)
		}
	}
	if matched < n*95/100 {
		t.Errorf("%d of %d mails with a Message-ID matched the lab's", matched, n)
	}
	t.Logf("%d mails, %d matched to the lab's truth, %d with a wrong sender", n, matched, wrongSender)

	listed := activeListings(t, ctx, db, contract.SpamSendersSource)
	if len(listed) == 0 {
		t.Fatalf("%s lists nothing", contract.SpamSendersSource)
	}
	for _, v := range listed {
		if !senders[v] {
			t.Errorf("%s lists %s, the sender of no mail recorded", contract.SpamSendersSource, v)
		}
	}
}

// runningMonitorDomains lists the domains of the FluxMonitor runs on the test's
// task queue, sorted.
func runningMonitorDomains(t *testing.T, ctx context.Context, tc client.Client, cfg config.Config) []string {
	t.Helper()
	var running []string
	var token []byte
	for {
		resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: cfg.Temporal.Namespace,
			Query:         fmt.Sprintf(`WorkflowType = "FluxMonitor" AND ExecutionStatus = "Running" AND TaskQueue = %q`, cfg.Temporal.TaskQueue),
			NextPageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.Executions {
			running = append(running, strings.TrimPrefix(e.Execution.WorkflowId, contract.MonitorWorkflowID("")))
		}
		if token = resp.NextPageToken; len(token) == 0 {
			break
		}
	}
	slices.Sort(running)
	return running
}

// monitoredDomains lists the domains PostgreSQL has a monitor for (watching or
// stable), sorted.
func monitoredDomains(t *testing.T, ctx context.Context, db *storage.DB) []string {
	t.Helper()
	all, err := db.FluxDomains(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range all {
		if d.Monitor == "watching" || d.Monitor == "stable" {
			out = append(out, d.Domain)
		}
	}
	slices.Sort(out)
	return out
}

// checkFlux: every domain TIP calls flux is one of the lab's flux domains, every
// lab flux domain it triaged while the domain answered is monitored, one monitor
// runs per domain, the networks it found are the lab's botnets, and every address
// listed as tip-flux-agents is a bot of the lab.
func checkFlux(t *testing.T, ctx context.Context, db *storage.DB, tc client.Client, cfg config.Config, lt loopTruth) {
	all, err := db.FluxDomains(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	monitored := map[string]bool{}
	for _, d := range all {
		isFlux := d.Verdict == "flux" || d.Verdict == "double-flux"
		if d.Monitor == "watching" || d.Monitor == "stable" {
			monitored[d.Domain] = true
		}
		wd := lt.domain(d.Domain)
		if wd == nil {
			// Spam names hosts of no lab zone too (a random domain answers
			// SERVFAIL): never flux.
			if isFlux {
				t.Errorf("%s, of no lab zone, was called %s", d.Domain, d.Verdict)
			}
			continue
		}
		switch {
		case isFlux && !wd.Class.IsFlux():
			t.Errorf("%s (%s) was called %s", d.Domain, wd.Class, d.Verdict)
		case !isFlux && wd.Class.IsFlux() && !wasTakenDown(wd, lt.labTime(d.TriagedAt).Add(time.Hour)):
			t.Errorf("flux domain %s (%s) was called %s: %s", d.Domain, wd.Class, d.Verdict, d.Reason)
		}
		if isFlux && d.Monitor == "" {
			t.Errorf("%s is %s but has no monitor", d.Domain, d.Verdict)
		}
	}
	if len(monitored) == 0 {
		t.Fatal("no monitor runs")
	}
	// One monitor per domain: Temporal runs exactly the monitors PostgreSQL
	// knows. A triage in flight when the core stopped may still start one
	// between the two reads, so a difference is read again before it fails.
	for attempt := 0; ; attempt++ {
		running := runningMonitorDomains(t, ctx, tc, cfg)
		inDB := monitoredDomains(t, ctx, db)
		if slices.Equal(running, inDB) {
			break
		}
		if attempt == 10 {
			t.Errorf("Temporal runs monitors for %v; PostgreSQL has %v watching", running, inDB)
			break
		}
		time.Sleep(time.Second)
	}

	nets, err := db.FluxNetworks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nets {
		var labNets []string
		for _, d := range n.Domains {
			if wd := lt.domain(d); wd != nil && !slices.Contains(labNets, wd.Network) {
				labNets = append(labNets, wd.Network)
			}
		}
		if len(labNets) != 1 {
			t.Errorf("network %s (%v) spans the lab's botnets %v", n.Name, n.Domains, labNets)
		}
	}
	listed := activeListings(t, ctx, db, contract.FluxAgentsSource)
	for _, v := range listed {
		a, err := netip.ParseAddr(v)
		if err != nil || lt.bot[a] == "" {
			t.Errorf("%s lists %s, no bot of the lab", contract.FluxAgentsSource, v)
		}
	}
	t.Logf("%d domains triaged, %d monitored, %d networks, %d flux agents listed", len(all), len(monitored), len(nets), len(listed))
}

// checkRouting: the domains of the spam reached triage as events of spam-collect,
// and new domains of the blacklists as events of blacklist-refresh. Every lab
// domain of a mail recorded a minute before the core stopped was triaged (a later
// one may still have been on its way); a domain the blacklists named first keeps
// blacklist-refresh as its origin.
func checkRouting(t *testing.T, ctx context.Context, db *storage.DB, lt loopTruth, coreEnded time.Time) {
	origins := map[string]string{}
	all, err := db.FluxDomains(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range all {
		origins[d.Domain] = d.Origin
	}
	rows, err := testenv.SQL(t, db).Query(ctx, `SELECT u.registrable, min(m.first_seen) FROM spam_urls u JOIN spam_messages m USING (sha256)
		WHERE u.registrable <> '' GROUP BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var inSpam, fromSpam int
	for rows.Next() {
		var d string
		var first time.Time
		if err := rows.Scan(&d, &first); err != nil {
			t.Fatal(err)
		}
		if lt.domain(d) == nil {
			continue
		}
		inSpam++
		switch origins[d] {
		case contract.SpamModule:
			fromSpam++
		case "":
			if first.Before(coreEnded.Add(-time.Minute)) {
				t.Errorf("%s, in spam since %s, never reached triage", d, first.Format(time.TimeOnly))
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if fromSpam == 0 {
		t.Errorf("none of the %d lab domains in the spam reached triage from spam-collect", inSpam)
	}
	var fromLists int
	for _, o := range origins {
		if o == contract.BlacklistModule {
			fromLists++
		}
	}
	if fromLists == 0 {
		t.Errorf("no domain of the blacklists reached triage from blacklist-refresh")
	}
	t.Logf("%d lab domains in the spam, %d triaged from spam-collect; %d from blacklist-refresh", inSpam, fromSpam, fromLists)
}

func wasTakenDown(d *world.Domain, before time.Time) bool {
	return !d.TakedownAt.IsZero() && d.TakedownAt.Before(before)
}

func activeListings(t *testing.T, ctx context.Context, db *storage.DB, source string) []string {
	t.Helper()
	rows, err := testenv.SQL(t, db).Query(ctx, `SELECT i.value FROM listings l JOIN indicators i ON i.id = l.indicator_id WHERE l.source = $1 AND l.active`, source)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// dropLines removes from the file the lines containing s.
func dropLines(t *testing.T, path, s string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, s) {
			keep = append(keep, l)
		}
	}
	if err := os.WriteFile(path, []byte(strings.Join(keep, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
}

// stopMonitors ends the flux monitors the test's core started.
func stopMonitors(t *testing.T, tc client.Client) {
	ctx := context.Background()
	resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
		Query: `WorkflowType = "FluxMonitor" AND ExecutionStatus = "Running"`, PageSize: 1000})
	if err != nil {
		t.Logf("list monitors: %v", err)
		return
	}
	for _, e := range resp.Executions {
		_ = tc.TerminateWorkflow(ctx, e.Execution.WorkflowId, e.Execution.RunId, "test over")
	}
}
