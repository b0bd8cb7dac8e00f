package activities

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// Flux is the flux module's activities: triage (plan, resolve, assess), the
// monitors' checks and states, and the networks.
type Flux struct {
	Store FluxStore
	DNS   *Resolution
	// Watch starts or signals a domain's monitor (Signal-With-Start on
	// flux/<domain>): starter.WatchDomain on the worker's Temporal client.
	Watch  func(ctx context.Context, domain string, req contract.WatchRequest) error
	Config FluxConfig

	// Signal sends a signal to a domain's monitor (flux/<domain>): a prober's
	// report, or the upgrade; ErrNoMonitor when no monitor of it runs.
	Signal func(ctx context.Context, domain, name string, arg any) error

	writerOnce      sync.Once
	writer          *batcher[storage.FluxWrite, struct{}]
	probeWriterOnce sync.Once
	probeWriterB    *batcher[storage.ProbeCheck, int]
}

// FluxConfig is what the flux activities need of TIP's configuration.
type FluxConfig struct {
	Allowlist string        // optional CDN allowlist file (flux.ParseAllowlist)
	CoolDown  time.Duration // a benign domain is triaged again only when seen after this long
	// TriageWait bounds the wait between a triage's two resolutions.
	TriageWait time.Duration
}

// PlanTriage normalises the domains other modules reported (NormalizeDomain;
// what is not a domain to triage is dropped, each name counts once) and keeps
// those due for triage: never triaged, or benign and seen again after the
// cool-down.
func (a *Flux) PlanTriage(ctx context.Context, domains []string) (contract.TriagePlan, error) {
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
	due, err := a.Store.DueForTriage(ctx, names, time.Now().UTC(), a.Config.CoolDown)
	return contract.TriagePlan{Due: due, MaxWait: a.Config.TriageWait}, err
}

// ResolveDomains resolves each domain once, a few at a time, and annotates the
// addresses with their origin AS (Resolution.Resolve).
func (a *Flux) ResolveDomains(ctx context.Context, domains []string) ([]flux.Observation, error) {
	return a.DNS.Resolve(ctx, domains)
}

// AssessDomains judges each domain from its resolutions (flux.TriageAll),
// records the verdicts, and starts a monitor for each fluxy one with
// Signal-With-Start on flux/<domain>: a domain never has two monitors, and one
// already running just gets the signal. With LookAgainWithin, a benign domain
// near flux (flux.LookAgain) is neither counted nor recorded but named in Again.
func (a *Flux) AssessDomains(ctx context.Context, in contract.AssessInput) (contract.TriageOutcome, error) {
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
	if err := a.Store.RecordTriage(ctx, vs); err != nil {
		return out, err
	}
	for _, as := range fluxy {
		if err := a.Watch(ctx, as.Domain, contract.WatchRequest{Origin: in.Origin, Assessment: &as}); err != nil {
			return out, err
		}
		out.Watched = append(out.Watched, as.Domain)
	}
	return out, nil
}

// CheckDomain is a monitor's check, run as a local activity: one resolution,
// annotated, recorded with the checks of other monitors in one write (the
// worker's flux writer batches them) before it returns.
func (a *Flux) CheckDomain(ctx context.Context, in contract.CheckInput) (flux.Observation, error) {
	o := a.DNS.Check(ctx, in.Domain)
	late := time.Duration(0)
	if !in.Due.IsZero() {
		late = max(o.At.Sub(in.Due), 0)
	}
	_, err := a.fluxWriter().do(ctx, storage.FluxWrite{Obs: o, State: in.State, Summary: in.Summary, Late: late, Due: in.Due})
	return o, err
}

// SetMonitorState records a monitor's state: started, paused, resumed, or ended
// with its final summary.
func (a *Flux) SetMonitorState(ctx context.Context, domain, state string, summary *flux.Summary) error {
	return a.Store.SetFluxMonitor(ctx, domain, state, summary, time.Now().UTC())
}

// UpdateFluxNetworks groups the flux domains into networks by the flux agents
// they share and lists every flux agent under FluxAgentsSource
// (storage.RefreshFluxAgents), merged like a feed's load and recorded as a run
// under runKey.
func (a *Flux) UpdateFluxNetworks(ctx context.Context, runKey string) (contract.NetworksResult, error) {
	nets, err := a.Store.UpdateFluxNetworks(ctx)
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
	src := storage.SourceRow{Name: contract.FluxAgentsSource, URL: "tip://flux", Format: "tip-flux", Type: "ip", Prior: 0.7, Enabled: true,
		Category: "fast-flux", Licence: "yours: what TIP's flux monitors observed", TLP: OwnSourcesTLP}
	res.Listed, err = a.Store.RefreshFluxAgents(ctx, src, runKey)
	return res, err
}

// fluxAllowlist is the CDN allowlist triage applies: the configured file, and
// every CIDR allowlist of the blacklist catalog (CDN edge ranges).
func (a *Flux) fluxAllowlist(ctx context.Context) (*flux.Allowlist, error) {
	allow := &flux.Allowlist{}
	if a.Config.Allowlist != "" {
		f, err := os.Open(a.Config.Allowlist)
		if err != nil {
			return nil, fmt.Errorf("flux allowlist: %w", err)
		}
		defer f.Close()
		if allow, err = flux.ParseAllowlist(f); err != nil {
			return nil, fmt.Errorf("flux allowlist %s: %w", a.Config.Allowlist, err)
		}
	}
	nets, err := a.Store.AllowlistNets(ctx)
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
