package activities

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// ErrNoMonitor is Flux.Report's error when the domain's monitor does not run.
var ErrNoMonitor = errors.New("no monitor runs")

// Prober tuning.
const (
	proberCheckers  = 64               // checks in flight per prober (each waits on DNS)
	proberPoll      = 2 * time.Second  // how often the schedule's changes are read
	proberHeartbeat = 10 * time.Second // the activity's heartbeat
	proberReports   = 200              // domains summarised in one batch
	proberSignals   = 8                // reports sent at once
	proberUpgrades  = 50               // upgrade signals a second
	proberRetry     = 5 * time.Second  // a check not recorded is made again after this long
)

// RegisterMonitor writes a monitor's row of the probers' schedule (a local
// activity of the monitor: at its start, pause, resume, set-interval and end).
// A monitor that ends is recorded with its final summary, folded from every
// check its prober made.
func (a *Flux) RegisterMonitor(ctx context.Context, r contract.MonitorRegistration) error {
	now := time.Now().UTC()
	if !r.Active {
		hs, err := a.Store.ProbeHistories(ctx, []string{r.Domain})
		if err != nil {
			return err
		}
		if len(hs) > 0 { // one domain asked: at most its one history
			m := fold(hs[0])
			sum := m.Summary(now)
			r.Summary = &sum
		}
	}
	return a.Store.RegisterFluxMonitor(ctx, r, now)
}

// fold is a domain's metrics now: its checkpoint with the checks since folded in.
func fold(h storage.ProbeHistory) flux.Metrics {
	m := h.Metrics
	m.Domain = h.Domain
	for _, o := range h.Since {
		m.Add(o)
	}
	return m
}

// RunProber checks the domains of one shard of the probers' schedule, each at
// its cadence (flux.CheckInterval), records every check with the domain's
// compact state (RecordProbeChecks, batched with the worker's other checks),
// and wakes a domain's monitor with a report when its state changes and every
// summary interval, the metrics folded from the last checkpoint and saved
// anew. It heartbeats; it returns after in.Run (the workflow starts the next
// run), or when cancelled. A run that starts reads the shard's schedule from
// PostgreSQL: checks overdue when a worker died are made at once.
func (a *Flux) RunProber(ctx context.Context, in contract.ProberInput) error {
	if in.Shards <= 0 || in.Shard < 0 || in.Shard >= in.Shards {
		return fmt.Errorf("prober shard %d of %d", in.Shard, in.Shards)
	}
	p := &prober{a: a, in: in, domains: map[string]*probe{}, log: activity.GetLogger(ctx)}
	if in.Shard == 0 {
		go p.upgrade(ctx)
	}
	return p.run(ctx)
}

// upgrade asks every monitor that still checks its domain itself (running,
// and not on the schedule) to continue as new, registered with the probers:
// prober 0 does it once a run, at most proberUpgrades a second.
func (pr *prober) upgrade(ctx context.Context) {
	domains, err := pr.a.Store.UnscheduledMonitors(ctx)
	if err != nil {
		pr.log.Warn("flux prober: listing the monitors to upgrade failed", "err", err)
		return
	}
	tick := time.NewTicker(time.Second / proberUpgrades)
	defer tick.Stop()
	for _, d := range domains {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := pr.a.Signal(ctx, d, contract.SignalFluxUpgrade, nil); err != nil && !errors.Is(err, ErrNoMonitor) {
			pr.log.Warn("flux prober: upgrade not sent", "domain", d, "err", err)
		}
	}
}

// probe is one domain as its prober keeps it: a few words, not its metrics.
type probe struct {
	domain      string
	due         time.Time // the next check is due
	at          time.Time // and made: the later of due and retry
	retry       time.Time // a check due then and not recorded is made again then
	reportAt    time.Time // the next report (the summary interval), or sooner when urgent
	nxSince     time.Time
	minCheck    time.Duration
	maxCheck    time.Duration
	pinned      time.Duration
	nxFor       time.Duration
	seq         int64 // of the schedule's row last applied
	checks      int32
	stable      int32
	ttl         uint32 // the last answer's lowest TTL, or the median of all
	index       int    // in the heap; -1 when not in it
	paused      bool
	stableState bool   // stable (else watching)
	busy        bool   // a check or a report in flight
	reason      string // an urgent report's reason; "" waits for the summary
	gone        bool   // taken off the schedule while busy
}

func (p *probe) interval() time.Duration {
	return flux.CheckInterval(p.ttl, int(p.stable), p.pinned, p.minCheck, p.maxCheck)
}

func (p *probe) state() string {
	if p.stableState {
		return contract.MonitorStable
	}
	return contract.MonitorWatching
}

// probeHeap orders probes by their next check.
type probeHeap []*probe

func (h probeHeap) Len() int           { return len(h) }
func (h probeHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h probeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].index = i; h[j].index = j }
func (h *probeHeap) Push(x any)        { p := x.(*probe); p.index = len(*h); *h = append(*h, p) }
func (h *probeHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	p.index = -1
	return p
}

type prober struct {
	a       *Flux
	in      contract.ProberInput
	log     interface{ Warn(string, ...any) }
	domains map[string]*probe
	due     probeHeap
	horizon int64 // FluxSchedule's, for the next read
	stats   proberStats
}

// proberStats is what the heartbeat says.
type proberStats struct {
	Domains  int   `json:"domains"`
	Checks   int64 `json:"checks"`
	Failed   int64 `json:"failed_writes"`
	Reports  int64 `json:"reports"`
	Lateness int64 `json:"max_late_ms"` // of the checks since the last heartbeat
}

type checkDone struct {
	p     *probe
	fresh int
	err   error
	late  time.Duration
	obs   checkedObs
}

type reportDone struct {
	domain string
	medTTL uint32
	sent   bool
	gone   bool // no monitor: taken off the schedule
}

type reportReq struct {
	domain string
	r      contract.MonitorReport
}

func (pr *prober) run(ctx context.Context) error {
	runCtx := ctx
	if pr.in.Run > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, pr.in.Run)
		defer cancel()
	}
	if err := pr.poll(ctx); err != nil {
		return err
	}
	work := make(chan *probe, proberCheckers)
	checked := make(chan checkDone, proberCheckers)
	var wg sync.WaitGroup
	// Checks and reports finish on their own context: a run that ends lets what
	// it started be recorded (bounded by the write's minute).
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	for range proberCheckers {
		wg.Go(func() {
			for p := range work {
				checked <- pr.check(workCtx, p)
			}
		})
	}
	reports := make(chan []reportReq, 1)
	reported := make(chan []reportDone, 1)
	wg.Go(func() {
		for batch := range reports {
			reported <- pr.report(workCtx, batch)
		}
	})
	inflight, reporting := 0, false
	defer func() {
		close(work)
		close(reports)
		// Drain what is in flight so the goroutines end.
		for inflight > 0 || reporting {
			select {
			case d := <-checked:
				inflight--
				pr.checked(d, time.Now())
			case <-reported:
				reporting = false
			}
		}
		wg.Wait()
	}()

	timer := time.NewTimer(0)
	defer timer.Stop()
	pollTick := time.NewTicker(proberPoll)
	defer pollTick.Stop()
	beat := time.NewTicker(proberHeartbeat)
	defer beat.Stop()
	reportTick := time.NewTicker(time.Second)
	defer reportTick.Stop()
	// A worker stopping (a deployment) hands the shard over at once: the
	// workflow starts the next run on another worker.
	var stopping <-chan struct{}
	if activity.IsActivity(ctx) {
		stopping = activity.GetWorkerStopChannel(ctx)
	}
	for {
		now := time.Now()
		// Dispatch every check due, as far as checkers are free.
		for len(pr.due) > 0 && !pr.due[0].at.After(now) && inflight < proberCheckers {
			p := heap.Pop(&pr.due).(*probe)
			p.busy = true
			inflight++
			work <- p
		}
		wait := time.Hour
		if len(pr.due) > 0 && inflight < proberCheckers {
			wait = max(pr.due[0].at.Sub(now), time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-runCtx.Done():
			return nil
		case <-stopping:
			return nil
		case d := <-checked:
			inflight--
			pr.checked(d, time.Now())
		case <-timer.C:
		case <-pollTick.C:
			if err := pr.poll(runCtx); err != nil && runCtx.Err() == nil {
				pr.log.Warn("flux prober: reading the schedule failed; trying again", "shard", pr.in.Shard, "err", err)
			}
		case <-reportTick.C:
			if !reporting {
				if batch := pr.reportsDue(time.Now()); len(batch) > 0 {
					reporting = true
					reports <- batch
				}
			}
		case done := <-reported:
			reporting = false
			pr.reported(done, time.Now())
		case <-beat.C:
			pr.stats.Domains = len(pr.domains)
			if activity.IsActivity(ctx) {
				activity.RecordHeartbeat(ctx, pr.stats)
			}
			pr.stats.Lateness = 0
		}
	}
}

// poll applies the schedule's changes since the last poll: new domains,
// pauses, resumes, pinned intervals, ends.
func (pr *prober) poll(ctx context.Context) error {
	rows, horizon, err := pr.a.Store.FluxSchedule(ctx, pr.in.Shard, pr.in.Shards, pr.horizon)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, r := range rows {
		pr.apply(r, now)
	}
	pr.horizon = horizon
	return nil
}

func (pr *prober) apply(r storage.ScheduledDomain, now time.Time) {
	p := pr.domains[r.Domain]
	if p != nil && r.Seq <= p.seq {
		return // read before
	}
	if !r.Active {
		if p != nil {
			pr.drop(p)
		}
		return
	}
	if p == nil {
		p = &probe{domain: r.Domain, index: -1, checks: int32(r.Checks), stable: int32(r.Stable), ttl: r.TTL,
			nxSince: r.NXSince, stableState: r.State == contract.MonitorStable, due: r.Due}
		if r.SummaryAt.IsZero() {
			// Spread the first reports of domains registered together over a
			// summary interval, so reports come at an even rate.
			p.reportAt = now.Add(time.Duration(spread(r.Domain) * float64(pr.in.Summary)))
		} else {
			p.reportAt = r.SummaryAt.Add(pr.in.Summary)
		}
		pr.domains[r.Domain] = p
	}
	p.seq = r.Seq
	p.minCheck, p.maxCheck, p.pinned, p.nxFor = r.MinCheck, r.MaxCheck, r.Pinned, r.NXDomainFor
	wasPaused := p.paused
	p.paused = r.Paused
	switch {
	case r.Due.IsZero() || wasPaused && !p.paused: // new, resumed or re-pinned: due at once
		p.due = now
	case r.Due.Before(p.due) || p.checks == 0:
		p.due = r.Due
	}
	pr.schedule(p)
}

// schedule puts p in the heap at its due time, or its retry after a check not
// recorded (out of it while paused or busy).
func (pr *prober) schedule(p *probe) {
	if p.busy || p.gone {
		return
	}
	p.at = p.due
	if p.retry.After(p.at) {
		p.at = p.retry
	}
	if p.paused {
		if p.index >= 0 {
			heap.Remove(&pr.due, p.index)
		}
		return
	}
	if p.index >= 0 {
		heap.Fix(&pr.due, p.index)
		return
	}
	heap.Push(&pr.due, p)
}

func (pr *prober) drop(p *probe) {
	if p.index >= 0 {
		heap.Remove(&pr.due, p.index)
	}
	p.gone = true
	delete(pr.domains, p.domain)
}

// check resolves p's domain and records the check with its compact state (a
// checker goroutine: it reads p's fields the loop does not change while busy).
func (pr *prober) check(ctx context.Context, p *probe) checkDone {
	o := pr.a.DNS.Check(ctx, p.domain)
	// PostgreSQL keeps microseconds: the checkpoint's time must equal the row's.
	o.At = o.At.Truncate(time.Microsecond)
	late := max(o.At.Sub(p.due), 0)
	nx := p.nxSince
	switch {
	case o.Status == flux.NXDomain && nx.IsZero():
		nx = o.At
	case o.Answered():
		nx = time.Time{}
	}
	ttl := p.ttl
	if t, ok := o.MinTTL(); ok {
		ttl = t
	}
	c := storage.ProbeCheck{
		Write:  storage.FluxWrite{Obs: o, Late: late, Due: p.due},
		Checks: int(p.checks) + 1, Stable: int(p.stable), TTL: ttl, NXSince: nx, State: p.state(),
		Next: o.At.Add(flux.CheckInterval(ttl, int(p.stable), p.pinned, p.minCheck, p.maxCheck)),
	}
	fresh, err := pr.a.probeWriter().do(ctx, c)
	return checkDone{p: p, fresh: fresh, err: err, late: late}.with(o, ttl, nx)
}

// checkDone carries what the loop applies to the probe.
func (d checkDone) with(o flux.Observation, ttl uint32, nx time.Time) checkDone {
	d.obs = checkedObs{at: o.At, answered: o.Answered(), nx: o.Status == flux.NXDomain, ttl: ttl, nxSince: nx}
	return d
}

// checked applies a check's outcome: the stable streak (from the addresses
// PostgreSQL saw for the first time), the NXDOMAIN run, the state, the next
// check, and an urgent report when the state changed.
func (pr *prober) checked(d checkDone, now time.Time) {
	p := d.p
	p.busy = false
	if p.gone {
		return
	}
	pr.stats.Checks++
	pr.stats.Lateness = max(pr.stats.Lateness, d.late.Milliseconds())
	if d.err != nil {
		// A check that could not be recorded (the database away) is made again
		// shortly, for the same due time: recorded once, late by the outage.
		pr.stats.Failed++
		pr.log.Warn("flux check not recorded; again shortly", "domain", p.domain, "err", d.err, "retry", proberRetry)
		p.retry = now.Add(proberRetry)
		pr.schedule(p)
		return
	}
	o := d.obs
	p.retry = time.Time{}
	p.checks++
	p.ttl = o.ttl
	if o.answered && d.fresh == 0 {
		p.stable++
	} else if o.answered {
		p.stable = 0
	}
	if stable := p.stable >= flux.StableAfter; stable != p.stableState {
		p.stableState = stable
		p.urgent(contract.ReportState)
	}
	switch {
	case p.nxSince.IsZero() && !o.nxSince.IsZero():
		p.urgent(contract.ReportNXDomain)
	case !p.nxSince.IsZero() && o.nxSince.IsZero():
		p.urgent(contract.ReportAnswering)
	}
	p.nxSince = o.nxSince
	if p.nxFor > 0 && !p.nxSince.IsZero() && o.at.Sub(p.nxSince) >= p.nxFor {
		p.reason = contract.ReportTakedown
		p.reportAt = time.Time{}
	}
	p.due = o.at.Add(p.interval())
	pr.schedule(p)
}

// checkedObs is what the loop needs of a check's observation.
type checkedObs struct {
	at       time.Time
	answered bool
	nx       bool
	ttl      uint32
	nxSince  time.Time
}

// urgent makes p's next report due at once, for reason (a takedown outranks).
func (p *probe) urgent(reason string) {
	if p.reason != contract.ReportTakedown {
		p.reason = reason
	}
	p.reportAt = time.Time{}
}

// reportsDue takes the domains whose report is due, at most proberReports.
func (pr *prober) reportsDue(now time.Time) []reportReq {
	var out []reportReq
	for _, p := range pr.domains {
		if len(out) == proberReports {
			break
		}
		if p.busy || p.paused || p.reportAt.After(now) || p.checks == 0 {
			continue
		}
		reason := p.reason
		if reason == "" {
			reason = contract.ReportSummary
		}
		p.busy = true
		if p.index >= 0 {
			heap.Remove(&pr.due, p.index)
		}
		out = append(out, reportReq{domain: p.domain, r: contract.MonitorReport{At: now, Reason: reason, State: p.state(),
			Checks: int(p.checks), Next: p.due, Interval: p.interval()}})
	}
	return out
}

// report folds each domain's observations since its checkpoint into its
// metrics, saves the new checkpoints with the summaries, and wakes the monitors.
func (pr *prober) report(ctx context.Context, batch []reportReq) []reportDone {
	out := make([]reportDone, len(batch))
	domains := make([]string, len(batch))
	for i, b := range batch {
		domains[i] = b.domain
		out[i].domain = b.domain
	}
	hs, err := pr.a.Store.ProbeHistories(ctx, domains)
	if err != nil {
		pr.log.Warn("flux prober: reading metrics failed; reporting later", "err", err)
		return out
	}
	byDomain := make(map[string]*storage.ProbeHistory, len(hs))
	for i := range hs {
		byDomain[hs[i].Domain] = &hs[i]
	}
	cps := make([]storage.ProbeCheckpoint, 0, len(batch))
	for i := range batch {
		b := &batch[i]
		h := byDomain[b.domain]
		if h == nil {
			continue
		}
		m := fold(*h)
		b.r.Summary = m.Summary(b.r.At)
		out[i].medTTL = m.MedianTTL()
		cps = append(cps, storage.ProbeCheckpoint{Domain: b.domain, Metrics: &m, Summary: b.r.Summary, State: b.r.State, At: b.r.At})
	}
	if err := pr.a.Store.SaveProbeCheckpoints(ctx, cps); err != nil {
		pr.log.Warn("flux prober: saving metrics failed; reporting later", "err", err)
		return out
	}
	sem := make(chan struct{}, proberSignals)
	var wg sync.WaitGroup
	for i := range batch {
		if byDomain[batch[i].domain] == nil {
			out[i].gone = true
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := pr.a.Signal(ctx, batch[i].domain, contract.SignalFluxReport, batch[i].r)
			switch {
			case errors.Is(err, ErrNoMonitor):
				out[i].gone = true
				if err := pr.a.Store.EndProbe(ctx, batch[i].domain); err != nil {
					pr.log.Warn("flux prober: ending a domain without monitor failed", "domain", batch[i].domain, "err", err)
				}
			case err != nil:
				pr.log.Warn("flux prober: report not sent; again later", "domain", batch[i].domain, "err", err)
			default:
				out[i].sent = true
			}
		})
	}
	wg.Wait()
	return out
}

// reported applies a batch of reports: sent ones wait a summary interval for
// the next; unsent ones are tried again in a while.
func (pr *prober) reported(done []reportDone, now time.Time) {
	for _, d := range done {
		p := pr.domains[d.domain]
		if p == nil {
			continue
		}
		p.busy = false
		switch {
		case d.gone:
			pr.drop(p)
			continue
		case d.sent:
			pr.stats.Reports++
			if d.medTTL > 0 && p.ttl == 0 {
				p.ttl = d.medTTL
			}
			p.reason = ""
			p.reportAt = now.Add(pr.in.Summary)
		default:
			p.reportAt = now.Add(10 * time.Second)
		}
		pr.schedule(p)
	}
}

// spread is a domain's fixed place in [0, 1): its first report's offset in a
// summary interval.
func spread(domain string) float64 {
	h := fnv.New32a()
	h.Write([]byte(domain))
	return float64(h.Sum32()%1000) / 1000
}
