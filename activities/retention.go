package activities

import (
	"context"
	"time"

	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// Retention is the data-retention module's activity: the windows and the
// store that prunes.
type Retention struct {
	Store interface {
		Prune(ctx context.Context, now time.Time, r storage.Retention, dryRun bool) (storage.PruneResult, error)
	}
	Windows storage.Retention
}

// Prune summarises and expires what is past its window (storage.DB.Prune).
// It is idempotent: a retry finds done what a previous attempt committed
// (each partition is pruned in one transaction) and does the rest.
func (a *Retention) Prune(ctx context.Context, req contract.PruneRequest) (contract.PruneResult, error) {
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	r, err := a.Store.Prune(ctx, now, a.Windows, req.DryRun)
	return contract.PruneResult{Cutoff: r.Cutoff, Observations: r.Observations, Hours: r.Hours,
		PartitionsDropped: r.PartitionsDropped, PartitionsMade: r.PartitionsMade, SourceRuns: r.SourceRuns}, err
}
