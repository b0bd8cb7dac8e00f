package activities

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/ipasn"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/textcap"
	"github.com/tip-project/tip/workflows/contract"
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
	Monitor    contract.MonitorConfig
}

// PlanTriage normalises the domains other modules reported (NormalizeDomain;
// what is not a domain to triage is dropped, each name counts once) and keeps
// those due for triage: never triaged, or benign and seen again after the
// cool-down.
func (a *Activities) PlanTriage(ctx context.Context, domains []string) (contract.TriagePlan, error) {
	var names []string
	seen := map[string]bool{}
	for _, d := range domains {
		d, ok := flux.NormalizeDomain(d)
		if !ok || seen[d] {
			continue
		}
		seen[d] = true
		names = append(names, d)
	}
	due, err := a.DB.DueForTriage(ctx, names, time.Now().UTC(), a.Flux.CoolDown)
	return contract.TriagePlan{Due: due, MaxWait: a.Flux.TriageWait}, err
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

// AssessDomains judges each domain from its resolutions (flux.TriageAll),
// records the verdicts, and starts a monitor for each fluxy one with
// Signal-With-Start on flux/<domain>: a domain never has two monitors, and one
// already running just gets the signal. With LookAgainWithin, a benign domain
// near flux (flux.LookAgain) is neither counted nor recorded but named in Again.
func (a *Activities) AssessDomains(ctx context.Context, in contract.AssessInput) (contract.TriageOutcome, error) {
	out := contract.TriageOutcome{Verdicts: map[flux.Verdict]int{}}
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
		if err := a.StartMonitor(ctx, as.Domain, contract.WatchRequest{Origin: in.Origin, Assessment: &as}); err != nil {
			return out, err
		}
		out.Watched = append(out.Watched, as.Domain)
	}
	return out, nil
}

// StartMonitor signals the monitor of domain, starting it first if it does not
// run (Signal-With-Start on flux/<domain>).
func (a *Activities) StartMonitor(ctx context.Context, domain string, req contract.WatchRequest) error {
	if a.Temporal == nil {
		return errors.New("start monitor: the worker has no Temporal client")
	}
	_, err := a.Temporal.SignalWithStartWorkflow(ctx, contract.MonitorWorkflowID(domain), contract.SignalFluxWatch, req,
		client.StartWorkflowOptions{TaskQueue: a.Flux.Monitor.TaskQueue},
		contract.FluxMonitorWorkflow, contract.MonitorInput{Domain: domain, Config: a.Flux.Monitor})
	if err != nil {
		return fmt.Errorf("start monitor %s: %w", domain, err)
	}
	return nil
}

// CheckDomain is a monitor's check, run as a local activity: one resolution,
// annotated, recorded with the checks of other monitors in one write (the
// worker's flux writer batches them) before it returns.
func (a *Activities) CheckDomain(ctx context.Context, in contract.CheckInput) (flux.Observation, error) {
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

// UpdateFluxNetworks groups the flux domains into networks by the flux agents
// they share and lists every flux agent (storage.FluxAgentsSQL) under
// FluxAgentsSource, merged like a feed's load and recorded as a run under runKey.
func (a *Activities) UpdateFluxNetworks(ctx context.Context, runKey string) (contract.NetworksResult, error) {
	nets, err := a.DB.UpdateFluxNetworks(ctx)
	if err != nil {
		return contract.NetworksResult{}, err
	}
	res := contract.NetworksResult{Networks: len(nets)}
	for i, n := range nets {
		if i == 3 {
			break
		}
		res.Largest = append(res.Largest, fmt.Sprintf("%s (%d domains, %d IPs)", n.Name, len(n.Domains), n.IPs))
	}
	src := catalog.Source{Name: contract.FluxAgentsSource, URL: "tip://flux", Format: "tip-flux", Type: "ip", Prior: 0.7, Enabled: true}
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
