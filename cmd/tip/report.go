package main

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/tip-project/tip/report"
	"github.com/tip-project/tip/storage"
)

func reportCmd(a *app) *cobra.Command {
	var (
		out    string
		since  time.Duration
		points int
		o      report.Options
	)
	cmd := &cobra.Command{
		Use:   "report --out DIR",
		Short: "Write an HTML report that opens offline: source weights and health over time, overlap, spam, flux timelines",
		Long: `Reads PostgreSQL (and nothing else) and writes DIR/index.html: one page with
Chart.js and the data inlined, so it opens in any browser without a network.
Charts: the sources' weights and health over time, the source-overlap heat map,
spam by sender ASN and country, the top campaigns, and for the monitored flux
domains with the most addresses a timeline of addresses, ASNs, TTL and score.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var d *report.Data
			var start time.Time
			err := a.withDB(cmd, func(ctx context.Context, db *storage.DB) (err error) {
				o.Version, o.Points = version, points
				if o.FluxFull = a.cfg.Retention.FluxFull(); o.FluxFull == 0 {
					o.FluxFull = -1 // kept for ever: every check at full resolution
				}
				if since > 0 {
					o.Since = time.Now().Add(-since)
				}
				start = time.Now()
				d, err = report.Collect(ctx, db, o)
				return err
			})
			if err != nil {
				return err
			}
			path, err := report.WriteFile(out, d)
			if err != nil {
				return err
			}
			abs, err := filepath.Abs(path)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s\n  %s in %s\n", abs, d.Describe(), time.Since(start).Round(time.Millisecond))
			fmt.Fprintf(w, "open %s\n", (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String())
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "folder to write index.html into (made if missing)")
	cmd.Flags().DurationVar(&since, "since", 0, "chart only the last DURATION of weights, runs and flux checks (e.g. 72h; default: all)")
	cmd.Flags().IntVar(&o.Domains, "domains", 50, "monitored flux domains to chart, most addresses first")
	cmd.Flags().IntVar(&points, "points", 200, "points of a timeline at most (refreshes, checks of a domain)")
	cmd.Flags().IntVar(&o.Top, "top", 10, "sender ASNs, countries and campaigns to chart")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}
