package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tip-project/tip/storage"
)

func sourcesCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "sources",
		Short: "Show every blacklist source: health, last run, active listings, metrics, weight, last error; then the allowlists",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var hs []storage.SourceHealth
			var lists []storage.AllowlistRow
			err := a.withDB(cmd, func(ctx context.Context, db *storage.DB) (err error) {
				if hs, err = db.SourcesHealth(ctx); err != nil {
					return err
				}
				lists, err = db.Allowlists(ctx)
				return err
			})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON { // one object a line: the sources, then the allowlists
				enc := json.NewEncoder(out)
				for _, h := range hs {
					if err := enc.Encode(struct {
						Kind string `json:"kind"`
						storage.SourceHealth
					}{"source", h}); err != nil {
						return err
					}
				}
				for _, l := range lists {
					if err := enc.Encode(struct {
						Kind string `json:"kind"`
						storage.AllowlistRow
					}{"allowlist", l}); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SOURCE\tHEALTH\tLAST RUN\tHTTP\tACTIVE\t+ADDED\t-REMOVED\tBAD\tEXCL\tLATENCY\tACCURACY\tPRIOR\tWEIGHT\tERROR")
			for _, h := range hs {
				last := "-"
				if h.LastStatus != "" {
					last = h.LastStatus + " " + h.LastRun.UTC().Format("01-02 15:04")
				}
				errText := h.LastError
				if len(errText) > 70 {
					errText = errText[:67] + "..."
				}
				latency := "-"
				if h.MeanLatency != nil {
					latency = (time.Duration(*h.MeanLatency) * time.Second).Round(time.Second).String()
				}
				accuracy := fmt.Sprintf("%.1f%%", 100*h.Accuracy)
				if h.Allowlisted+h.Reserved > 0 {
					accuracy += fmt.Sprintf(" (%d benign)", h.Allowlisted+h.Reserved)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%.0f%%\t%s\t%s\t%.2f\t%.2f\t%s\n", h.Name, h.Health, last, h.LastHTTPStatus,
					h.Active, h.LastAdded, h.LastRemoved, h.LastBad, 100*h.ExclusiveShare, latency, accuracy, h.Prior, h.Weight, errText)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(lists) == 0 {
				return nil
			}
			fmt.Fprintln(out)
			tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ALLOWLIST\tTYPE\tENTRIES\tLOADED\tCHECKED\tERROR")
			when := func(t *time.Time) string {
				if t == nil {
					return "never"
				}
				return t.UTC().Format("01-02 15:04")
			}
			for _, l := range lists {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", l.Name, l.Type, l.Entries, when(l.LoadedAt), when(l.CheckedAt), l.Error)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object a line")
	return cmd
}
