package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tip-project/tip/storage"
)

func sourcesCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "sources",
		Short: "Show every blacklist source: health, last run, active listings, last error",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := storage.OpenDB(cmd.Context(), a.cfg.Postgres.DSN)
			if err != nil {
				return err
			}
			defer db.Close()
			hs, err := db.SourcesHealth(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				for _, h := range hs {
					if err := enc.Encode(h); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SOURCE\tHEALTH\tLAST RUN\tHTTP\tACTIVE\tENTRIES\t+ADDED\t-REMOVED\tBAD\tPRIOR\tERROR")
			for _, h := range hs {
				last := "-"
				if h.LastStatus != "" {
					last = h.LastStatus + " " + h.LastRun.UTC().Format("01-02 15:04")
				}
				errText := h.LastError
				if len(errText) > 70 {
					errText = errText[:67] + "..."
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.2f\t%s\n", h.Name, h.Health, last, h.LastHTTPStatus,
					h.Active, h.LastEntries, h.LastAdded, h.LastRemoved, h.LastBad, h.Prior, errText)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object a line")
	return cmd
}
