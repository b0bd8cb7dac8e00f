package activities

import (
	"context"
	"fmt"
	"time"
)

// ComputeMetrics measures every source after a refresh and stores weights and the
// overlap matrix; it returns a one-line summary for the refresh's result.
func (a *Blacklist) ComputeMetrics(ctx context.Context) (string, error) {
	ms, err := a.Store.ComputeSourceMetrics(ctx)
	if err != nil {
		return "", err
	}
	best, bestW := "", -1.0
	for _, m := range ms {
		if m.Weight > bestW {
			best, bestW = m.Source, m.Weight
		}
	}
	return fmt.Sprintf("weights of %d sources computed (highest: %s %.2f)", len(ms), best, bestW), nil
}

// MaxListedDomainsToTriage bounds how many domains one blacklist refresh hands to
// flux triage: a large domain feed's first load lists hundreds of thousands, and
// triage resolves each twice, a TTL apart, 100 at a time. The rest are not lost
// to TIP (they stay listed); they are triaged when spam or the CLI mentions them.
const MaxListedDomainsToTriage = 500

// NewListedDomains returns the domains the blacklists listed for the first time
// since the refresh began, the first MaxListedDomainsToTriage of them, for flux
// triage.
func (a *Blacklist) NewListedDomains(ctx context.Context, since time.Time) ([]string, error) {
	return a.Store.NewListedDomains(ctx, since, MaxListedDomainsToTriage)
}
