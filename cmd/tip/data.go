package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/worker"
)

// dataCmd is `tip data`: the data lifecycle by hand (the data-retention
// module runs the same prune every retention.interval).
func dataCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "data", Short: "The data lifecycle: prune what is past its retention window, and what the flux tables take"}
	var dryRun, asJSON bool
	prune := &cobra.Command{
		Use:   "prune",
		Short: "Summarise flux checks older than retention.flux_full_days hourly and remove them, remove old source runs",
		Long: `Runs the data-retention module's prune now: flux observations older than
retention.flux_full_days are summarised per domain and hour (what tip flux show
and the report draw of that time) and removed, whole weekly partitions dropped;
the partitions of the weeks ahead are made; source runs older than
retention.source_runs_days are removed (each source's latest kept). --dry-run
does it all in transactions it rolls back: the counts are exact, nothing changes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withDB(cmd, func(ctx context.Context, db *storage.DB) error {
				start := time.Now()
				before, err := db.FluxBytes(ctx)
				if err != nil {
					return err
				}
				res, err := db.Prune(ctx, start, worker.RetentionWindows(a.cfg), dryRun)
				if err != nil {
					return err
				}
				after, err := db.FluxBytes(ctx)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(cmd.OutOrStdout(), struct {
						storage.PruneResult
						BytesBefore storage.FluxTableBytes `json:"bytes_before"`
						BytesAfter  storage.FluxTableBytes `json:"bytes_after"`
					}{res, before, after})
				}
				w := cmd.OutOrStdout()
				verb := "summarised and removed"
				if dryRun {
					verb = "would be summarised and removed (dry run: nothing changed)"
				}
				if res.Cutoff.IsZero() {
					fmt.Fprintln(w, "flux observations: kept for ever (retention.flux_full_days 0)")
				} else {
					fmt.Fprintf(w, "flux observations before %s: %d %s into %d hourly rows; partitions dropped: %s; made ahead: %d\n",
						res.Cutoff.Format(time.RFC3339), res.Observations, verb, res.Hours, orNone(res.PartitionsDropped), res.PartitionsMade)
				}
				fmt.Fprintf(w, "source runs removed: %d\n", res.SourceRuns)
				fmt.Fprintf(w, "flux tables: %s before, %s after (observations %s, hourly %s, passive DNS %s) in %s\n",
					mib(before.Total()), mib(after.Total()), mib(after.Observations), mib(after.Hours), mib(after.PassiveDNS),
					time.Since(start).Round(time.Millisecond))
				return nil
			})
		},
	}
	prune.Flags().BoolVar(&dryRun, "dry-run", false, "count what would go, change nothing")
	prune.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.AddCommand(prune)
	return cmd
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
