package activities

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/feeds"
	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/ipasn"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/textcap"
)

// FluxResolver resolves a domain's A, AAAA and NS records (and the name servers'
// addresses) at one moment; *resolver.Resolver (flux/resolver) is the real one.
// A domain without a usable answer is an observation of status error.
type FluxResolver interface {
	Observe(ctx context.Context, domain string) (flux.Observation, error)
}

// FluxConfig is what the flux activities need of TIP's configuration.
type FluxConfig struct {
	ASNTable string // iptoasn.com table URL
	// ASNLimits bound every ASN table the worker loads (flux's and the spam
	// catalog's); zero fields take ipasn's defaults.
	ASNLimits ipasn.Limits
	Allowlist string        // optional CDN allowlist file (flux.ParseAllowlist)
	CoolDown  time.Duration // a benign domain is triaged again only when seen after this long
	// TriageWait bounds the wait between a triage's two resolutions.
	TriageWait time.Duration
	Monitor    MonitorConfig
}

// MonitorConfig bounds a flux monitor: its cadence and when it ends itself.
type MonitorConfig struct {
	MinCheck    time.Duration `json:"min_check"`
	MaxCheck    time.Duration `json:"max_check"`
	Lifetime    time.Duration `json:"lifetime"`
	NXDomainFor time.Duration `json:"nxdomain_for"`
	TaskQueue   string        `json:"task_queue,omitempty"` // where monitors run
}

// MonitorWorkflow is the registered name of the per-domain monitor, and the
// signal triage sends with it (Signal-With-Start).
const (
	MonitorWorkflow = "FluxMonitor"
	SignalWatch     = "watch"
)

// MonitorID is the workflow ID of a domain's monitor: one per domain.
func MonitorID(domain string) string { return "flux/" + domain }

// WatchRequest is the payload of the watch signal (and the reason a monitor
// started): who asked, and triage's assessment when it was triage.
type WatchRequest struct {
	Origin     string           `json:"origin"`
	Assessment *flux.Assessment `json:"assessment,omitempty"`
}

// MonitorStart is a new monitor's input: workflows.MonitorInput's JSON without
// the state continue-as-new carries (the workflows package imports this one).
type MonitorStart struct {
	Domain string        `json:"domain"`
	Config MonitorConfig `json:"config"`
}

// TriagePlan is what a triage run works on: the domains due, and how long the
// second resolution may wait for the first answers' TTLs to pass.
type TriagePlan struct {
	Due     []string      `json:"due"`
	MaxWait time.Duration `json:"max_wait"`
}

// PlanTriage normalises the domains other modules reported (NormalizeDomain;
// what is not a domain to triage is dropped, each name counts once) and keeps
// those due for triage: never triaged, or benign and seen again after the
// cool-down.
func (a *Activities) PlanTriage(ctx context.Context, domains []string) (TriagePlan, error) {
	var names []string
	seen := map[string]bool{}
	for _, d := range domains {
		d, ok := NormalizeDomain(d)
		if !ok || seen[d] {
			continue
		}
		seen[d] = true
		names = append(names, d)
	}
	due, err := a.DB.DueForTriage(ctx, names, time.Now().UTC(), a.Flux.CoolDown)
	return TriagePlan{Due: due, MaxWait: a.Flux.TriageWait}, err
}

// NormalizeDomain is a reported name as TIP keys domains everywhere (feeds.Normalize:
// lower case, IDNA, no trailing dot), and whether it is a domain to triage: not an
// address, a single label, a public suffix or no host name at all.
func NormalizeDomain(raw string) (string, bool) {
	ind, drop, err := feeds.Normalize(feeds.Domain, strings.TrimSpace(raw))
	return ind.Value, err == nil && drop == ""
}

// MaxResolveResult bounds the JSON of ResolveDomains' result: AssessDomains takes
// two of them, or three (parts of them) for the domains resolved a third time,
// and stays under Temporal's 2 MB payload limit. A batch of 100 ordinary domains
// takes about 100 KB; hostile answers shed detail to fit (flux.ShedBatch) and
// say so.
const MaxResolveResult = 512 << 10

// ResolveDomains resolves each domain once, a few at a time, and annotates the
// addresses with their origin AS. A domain that does not resolve is an
// observation with status error, not a failure of the activity; without an ASN
// table the observations say why they carry no ASNs (flux.Observation.NoASN).
// The result stays within MaxResolveResult.
func (a *Activities) ResolveDomains(ctx context.Context, domains []string) ([]flux.Observation, error) {
	if a.Resolver == nil {
		return nil, errors.New("resolve: the worker has no DNS resolver configured")
	}
	asns, noASN := a.fluxASNs(ctx)
	out := make([]flux.Observation, len(domains))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, d := range domains {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out[i] = a.resolve(ctx, d, asns, noASN)
		})
		if i%50 == 0 && activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, i)
		}
	}
	wg.Wait()
	if n := flux.ShedBatch(out, MaxResolveResult); n > 0 {
		asnLogger(ctx).Info("resolutions shed detail to fit the result's size bound", "observations", n, "bound", MaxResolveResult)
	}
	return out, ctx.Err()
}

// fluxASNs is the table flux annotates addresses with or, when there is none,
// nil and why: resolution goes on without origin ASNs, and what needs them says
// so. A table that does not load is reported by ASNTable, one not configured
// once by each Activities (a worker, a CLI run).
func (a *Activities) fluxASNs(ctx context.Context) (flux.ASLookup, string) {
	if a.Flux.ASNTable == "" {
		a.asnUnset.Do(func() {
			asnLogger(ctx).Warn("ASN table unavailable: flux.asn_table is not set; flux addresses go without origin ASNs")
		})
		return nil, "ASN table unavailable: flux.asn_table is not set"
	}
	t, err := a.ASNTable(ctx, a.Flux.ASNTable)
	if err != nil {
		return nil, textcap.Cap("ASN table unavailable: "+err.Error(), 300)
	}
	if t == nil { // a nil *ipasn.Table in the interface would not be nil
		return nil, "ASN table unavailable"
	}
	return t, ""
}

// resolve is one resolution as an observation: annotated when a table is held;
// otherwise, when it holds addresses, marked with noASN, why not.
func (a *Activities) resolve(ctx context.Context, domain string, asns flux.ASLookup, noASN string) flux.Observation {
	o, err := a.Resolver.Observe(ctx, domain)
	if err != nil {
		o = flux.Observation{Domain: domain, At: time.Now().UTC(), Status: flux.Failed, Error: textcap.Cap(err.Error(), flux.MaxDetail)}
	}
	switch {
	case asns != nil:
		o.Annotate(asns)
	case len(o.A)+len(o.AAAA)+len(o.NS) > 0:
		o.NoASN = noASN
	}
	return o
}

// AssessInput is a triage batch's resolutions, pairwise by index: two of every
// domain, and a third of those a first assessment left for one.
type AssessInput struct {
	Origin string             `json:"origin"`
	First  []flux.Observation `json:"first"`
	Second []flux.Observation `json:"second"`
	// Third, when set, is a third resolution of every domain, taken once the
	// second answers' TTLs ran out.
	Third []flux.Observation `json:"third,omitempty"`
	// LookAgainWithin, when above 0, leaves unjudged the domains a third
	// resolution at most this long after the second may judge otherwise
	// (flux.LookAgain): TriageOutcome.Again names them.
	LookAgainWithin time.Duration `json:"look_again_within,omitempty"`
}

// TriageOutcome counts a batch's verdicts and names the domains whose monitors
// were started (or already ran), and those left for a third resolution.
type TriageOutcome struct {
	Verdicts map[flux.Verdict]int `json:"verdicts"`
	Watched  []string             `json:"watched"`
	// Again indexes the input's domains left unjudged for a third resolution
	// (AssessInput.LookAgainWithin), in order.
	Again []int `json:"again,omitempty"`
}

// AssessDomains judges each domain from its resolutions (flux.TriageAll),
// records the verdicts, and starts a monitor for each fluxy one with
// Signal-With-Start on flux/<domain>: a domain never has two monitors, and one
// already running just gets the signal. With LookAgainWithin, a benign domain
// near flux (flux.LookAgain) is neither counted nor recorded but named in Again.
func (a *Activities) AssessDomains(ctx context.Context, in AssessInput) (TriageOutcome, error) {
	out := TriageOutcome{Verdicts: map[flux.Verdict]int{}}
	if len(in.First) != len(in.Second) || in.Third != nil && len(in.Third) != len(in.First) {
		return out, fmt.Errorf("assess: %d first, %d second and %d third resolutions", len(in.First), len(in.Second), len(in.Third))
	}
	allow, err := a.fluxAllowlist(ctx)
	if err != nil {
		return out, err
	}
	var vs []storage.FluxVerdict
	var fluxy []flux.Assessment
	for i := range in.First {
		looks := []flux.Observation{in.First[i], in.Second[i]}
		if in.Third != nil {
			looks = append(looks, in.Third[i])
		}
		// The observations were annotated when resolved; nil keeps those annotations.
		as := flux.TriageAll(looks, nil, allow)
		if in.LookAgainWithin > 0 && in.Third == nil && flux.LookAgain(as, in.First[i], in.Second[i], in.LookAgainWithin) {
			out.Again = append(out.Again, i)
			continue
		}
		out.Verdicts[as.Verdict]++
		vs = append(vs, storage.FluxVerdict{Assessment: as, Origin: in.Origin, At: looks[len(looks)-1].At})
		if as.Verdict.Fluxy() {
			fluxy = append(fluxy, as)
		}
	}
	if err := a.DB.RecordTriage(ctx, vs); err != nil {
		return out, err
	}
	for _, as := range fluxy {
		if err := a.StartMonitor(ctx, as.Domain, WatchRequest{Origin: in.Origin, Assessment: &as}); err != nil {
			return out, err
		}
		out.Watched = append(out.Watched, as.Domain)
	}
	return out, nil
}

// StartMonitor signals the monitor of domain, starting it first if it does not
// run (Signal-With-Start on flux/<domain>).
func (a *Activities) StartMonitor(ctx context.Context, domain string, req WatchRequest) error {
	if a.Temporal == nil {
		return errors.New("start monitor: the worker has no Temporal client")
	}
	_, err := a.Temporal.SignalWithStartWorkflow(ctx, MonitorID(domain), SignalWatch, req,
		client.StartWorkflowOptions{TaskQueue: a.Flux.Monitor.TaskQueue},
		MonitorWorkflow, MonitorStart{Domain: domain, Config: a.Flux.Monitor})
	if err != nil {
		return fmt.Errorf("start monitor %s: %w", domain, err)
	}
	return nil
}

// CheckInput is one monitor check: the domain, when the check was due (for the
// lateness measured), and the monitor's state and summary to record with it.
type CheckInput struct {
	Domain  string        `json:"domain"`
	Due     time.Time     `json:"due"`
	State   string        `json:"state,omitempty"`
	Summary *flux.Summary `json:"summary,omitempty"`
}

// CheckDomain is a monitor's check, run as a local activity: one resolution,
// annotated, recorded with the checks of other monitors in one write (the
// worker's flux writer batches them) before it returns.
func (a *Activities) CheckDomain(ctx context.Context, in CheckInput) (flux.Observation, error) {
	if a.Resolver == nil {
		return flux.Observation{}, errors.New("check: the worker has no DNS resolver configured")
	}
	// Attribution waits for the table; the check does not.
	asns, noASN := a.fluxASNs(ctx)
	o := a.resolve(ctx, in.Domain, asns, noASN)
	late := time.Duration(0)
	if !in.Due.IsZero() {
		late = max(o.At.Sub(in.Due), 0)
	}
	err := a.fluxWriter().write(ctx, storage.FluxWrite{Obs: o, State: in.State, Summary: in.Summary, Late: late, Due: in.Due})
	return o, err
}

// SetMonitorState records a monitor's state: started, paused, resumed, or ended
// with its final summary.
func (a *Activities) SetMonitorState(ctx context.Context, domain, state string, summary *flux.Summary) error {
	return a.DB.SetFluxMonitor(ctx, domain, state, summary, time.Now().UTC())
}

// MaxListedDomainsToTriage bounds how many domains one blacklist refresh hands to
// flux triage: a large domain feed's first load lists hundreds of thousands, and
// triage resolves each twice, a TTL apart, 100 at a time. The rest are not lost
// to TIP (they stay listed); they are triaged when spam or the CLI mentions them.
const MaxListedDomainsToTriage = 500

// NewListedDomains returns the domains the blacklists listed for the first time
// since the refresh began, the first MaxListedDomainsToTriage of them, for flux
// triage.
func (a *Activities) NewListedDomains(ctx context.Context, since time.Time) ([]string, error) {
	return a.DB.NewListedDomains(ctx, since, MaxListedDomainsToTriage)
}

// FluxAgentsSource is TIP's own blacklist source of the addresses seen in flux
// networks: the bots (flux agents) behind the monitored domains.
const FluxAgentsSource = "tip-flux-agents"

// NetworksResult is what a networks run found and listed.
type NetworksResult struct {
	Networks int        `json:"networks"`
	Largest  []string   `json:"largest,omitempty"` // "name (n domains, m IPs)", the largest few
	Listed   LoadResult `json:"listed"`
}

// UpdateFluxNetworks groups the flux domains into networks by the flux agents
// they share and lists every flux agent (storage.FluxAgentsSQL) under
// FluxAgentsSource, merged like a feed's load and recorded as a run under runKey.
func (a *Activities) UpdateFluxNetworks(ctx context.Context, runKey string) (NetworksResult, error) {
	nets, err := a.DB.UpdateFluxNetworks(ctx)
	if err != nil {
		return NetworksResult{}, err
	}
	res := NetworksResult{Networks: len(nets)}
	for i, n := range nets {
		if i == 3 {
			break
		}
		res.Largest = append(res.Largest, fmt.Sprintf("%s (%d domains, %d IPs)", n.Name, len(n.Domains), n.IPs))
	}
	src := catalog.Source{Name: FluxAgentsSource, URL: "tip://flux", Format: "tip-flux", Type: "ip", Prior: 0.7, Enabled: true}
	res.Listed, err = a.refreshOwnSource(ctx, src, runKey, `INSERT INTO staging
		SELECT CASE WHEN family(ip::inet) = 4 THEN 'ipv4' ELSE 'ipv6' END, ip, '' FROM (`+storage.FluxAgentsSQL+`) a(ip)`)
	return res, err
}

// fluxAllowlist is the CDN allowlist triage applies: the configured file, and
// every CIDR allowlist of the blacklist catalog (CDN edge ranges).
func (a *Activities) fluxAllowlist(ctx context.Context) (*flux.Allowlist, error) {
	allow := &flux.Allowlist{}
	if a.Flux.Allowlist != "" {
		f, err := os.Open(a.Flux.Allowlist)
		if err != nil {
			return nil, fmt.Errorf("flux allowlist: %w", err)
		}
		defer f.Close()
		if allow, err = flux.ParseAllowlist(f); err != nil {
			return nil, fmt.Errorf("flux allowlist %s: %w", a.Flux.Allowlist, err)
		}
	}
	nets, err := a.DB.AllowlistNets(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range nets {
		if err := allow.Add(n.String()); err != nil {
			return nil, fmt.Errorf("flux allowlist: %w", err)
		}
	}
	return allow, nil
}
