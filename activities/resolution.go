package activities

import (
	"context"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/tip-project/tip/flux"
	"github.com/tip-project/tip/textcap"
)

// FluxResolver resolves a domain's A, AAAA and NS records (and the name servers'
// addresses) at one moment; *resolver.Resolver (flux/resolver) is the real one.
// A domain without a usable answer is an observation of status error.
type FluxResolver interface {
	Observe(ctx context.Context, domain string) (flux.Observation, error)
}

// Resolution is flux's view of DNS: domains resolved and their addresses
// annotated with their origin ASNs. Triage and monitors resolve through the
// worker's; `tip flux probe` through its own.
type Resolution struct {
	Resolver FluxResolver
	ASN      *ASNTables
	ASNTable string // the table's URL (flux.asn_table); "": addresses go without ASNs

	asnUnset sync.Once // an unset table is logged once
}

// Check resolves one domain (a monitor's check): attribution waits for the
// table; the check does not.
func (r *Resolution) Check(ctx context.Context, domain string) flux.Observation {
	asns, noASN := r.asns(ctx)
	return r.resolve(ctx, domain, asns, noASN)
}

// MaxResolveResult bounds the JSON of ResolveDomains' result: AssessDomains takes
// two of them, or three (parts of them) for the domains resolved a third time,
// and stays under Temporal's 2 MB payload limit. A batch of 100 ordinary domains
// takes about 100 KB; hostile answers shed detail to fit (flux.ShedBatch) and
// say so.
const MaxResolveResult = 512 << 10

// Resolve resolves each domain once, a few at a time, and annotates the
// addresses with their origin AS. A domain that does not resolve is an
// observation with status error, not a failure of the activity; without an ASN
// table the observations say why they carry no ASNs (flux.Observation.NoASN).
// The result stays within MaxResolveResult.
func (r *Resolution) Resolve(ctx context.Context, domains []string) ([]flux.Observation, error) {
	asns, noASN := r.asns(ctx)
	out := make([]flux.Observation, len(domains))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, d := range domains {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out[i] = r.resolve(ctx, d, asns, noASN)
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

// asns is the table addresses are annotated with or, when there is none, nil
// and why: resolution goes on without origin ASNs, and what needs them says so.
// A table that does not load is reported by ASNTables, one not configured once
// by each Resolution (a worker, a CLI run).
func (r *Resolution) asns(ctx context.Context) (flux.ASLookup, string) {
	if r.ASNTable == "" || r.ASN == nil {
		r.asnUnset.Do(func() {
			asnLogger(ctx).Warn("ASN table unavailable: flux.asn_table is not set; flux addresses go without origin ASNs")
		})
		return nil, "ASN table unavailable: flux.asn_table is not set"
	}
	t, err := r.ASN.Table(ctx, r.ASNTable)
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
func (r *Resolution) resolve(ctx context.Context, domain string, asns flux.ASLookup, noASN string) flux.Observation {
	o, err := r.Resolver.Observe(ctx, domain)
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
