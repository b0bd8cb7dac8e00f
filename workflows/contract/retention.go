package contract

import "time"

// The data-retention module: summarises and expires what is kept only for a
// while (flux observations past their full-resolution window, old source
// runs); `tip data prune` runs the same activity by hand.
const (
	RetentionModule   = "data-retention"
	RetentionWorkflow = "DataRetention"
	PruneActivity     = "Prune"
)

// PruneRequest asks for one retention run. Now zero is the activity's clock.
type PruneRequest struct {
	Now    time.Time
	DryRun bool
}

// PruneResult is what a retention run did (storage.PruneResult, as numbers).
type PruneResult struct {
	Cutoff            time.Time
	Observations      int64 // flux observations summarised and removed
	Hours             int64 // hourly summaries written
	PartitionsDropped []string
	PartitionsMade    int
	SourceRuns        int64 // source runs removed
}
