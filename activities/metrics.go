package activities

import (
	"context"
	"fmt"
)

// ComputeMetrics measures every source after a refresh and stores weights and the
// overlap matrix; it returns a one-line summary for the refresh's result.
func (a *Activities) ComputeMetrics(ctx context.Context) (string, error) {
	ms, err := a.DB.ComputeSourceMetrics(ctx)
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
