package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tip-project/tip/lookup"
	"github.com/tip-project/tip/storage"
)

func lookupCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "lookup IP|CIDR|DOMAIN|URL",
		Short: "Show which blacklist sources list an indicator (or a block or domain covering it), since when",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := lookup.Parse(args[0])
			if err != nil {
				return err
			}
			ind := q.Indicator
			var doc lookup.Document
			err = a.withDB(cmd, func(ctx context.Context, db *storage.DB) (err error) {
				doc, err = lookup.FromDB(ctx, db, q, time.Now())
				return err
			})
			if err != nil {
				return err
			}
			ls, allow, overrides := doc.Listings, doc.Allowlisted, doc.Overrides
			out := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(out).Encode(doc)
			}
			for _, o := range overrides {
				when := o.CreatedAt.UTC().Format("2006-01-02 15:04")
				if o.Kind == storage.OverrideAllow {
					fmt.Fprintf(out, "allowed (%s) by %s on %s%s: %s; never exported\n", o.Target(), o.Author, when, until(o.ExpiresAt), o.Reason)
					continue
				}
				of := "every source"
				if o.Source != "" {
					of = o.Source
				}
				fmt.Fprintf(out, "false positive of %s, marked by %s on %s: %s; that listing is not exported\n", of, o.Author, when, o.Reason)
			}
			for _, h := range allow {
				rank := ""
				if h.Rank > 0 {
					rank = fmt.Sprintf(", rank %d", h.Rank)
				}
				note := ""
				if len(ls) > 0 {
					note = ": a likely false positive, left out of exports"
				}
				fmt.Fprintf(out, "on allowlist %s (%s%s)%s\n", h.List, h.Entry, rank, note)
			}
			if len(ls) == 0 {
				fmt.Fprintf(out, "%s %s: not listed by any source\n", ind.Type, ind.Value)
				return nil
			}
			active := 0
			for _, l := range ls {
				if l.Active {
					active++
				}
			}
			fmt.Fprintf(out, "%s %s: score %.2f, listed by %d source(s) now, %d listing(s) in all\n",
				ind.Type, ind.Value, doc.Score, active, len(ls))
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SOURCE\tWEIGHT\tLISTED\tMATCH\tFIRST SEEN\tLAST SEEN\tSTATE\tCATEGORY\tTLP\tSOURCE SAYS")
			for _, l := range ls {
				state := "active"
				if !l.Active {
					state = "removed " + l.RemovedAt.UTC().Format("2006-01-02 15:04")
				}
				fmt.Fprintf(tw, "%s\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Source, l.Weight, l.Value, l.Match,
					l.FirstSeen.UTC().Format("2006-01-02 15:04"), l.LastSeen.UTC().Format("2006-01-02 15:04"), state,
					orDash(l.Category), strings.ToUpper("tlp:"+l.TLP), sourceSays(l))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// sourceSays is what a source says of a listing beyond its category, on one line.
func sourceSays(l storage.Listing) string {
	var parts []string
	if l.Malware != "" {
		parts = append(parts, l.Malware)
	}
	if l.Port != "" {
		parts = append(parts, "port "+l.Port)
	}
	if l.Ref != "" {
		parts = append(parts, "ref "+l.Ref)
	}
	if l.Listed != nil {
		parts = append(parts, "listed "+l.Listed.UTC().Format("2006-01-02"))
	}
	return orDash(strings.Join(parts, ", "))
}

// orDash is s, or "-" when empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
