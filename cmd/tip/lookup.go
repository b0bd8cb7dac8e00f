package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tip-project/tip/feeds"
	"github.com/tip-project/tip/storage"
)

// guessType says what a lookup argument is.
func guessType(arg string) feeds.Type {
	switch {
	case strings.Contains(arg, "://"):
		return feeds.URL
	case strings.Contains(arg, "/"):
		return feeds.CIDR
	}
	if ip, err := netip.ParseAddr(arg); err == nil {
		if ip.Unmap().Is4() {
			return feeds.IPv4
		}
		return feeds.IPv6
	}
	return feeds.Domain
}

func lookupCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "lookup IP|CIDR|DOMAIN|URL",
		Short: "Show which blacklist sources list an indicator (or a block or domain covering it), since when",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			typ := guessType(args[0])
			ind, drop, err := feeds.Normalize(typ, args[0])
			if err != nil {
				return fmt.Errorf("%q is not a valid %s: %v", args[0], typ, err)
			}
			if drop != "" {
				return fmt.Errorf("%s is %s space: TIP drops it from every feed", args[0], drop)
			}
			host := ind.Value
			if ind.Type == feeds.URL {
				if u, err := url.Parse(ind.Value); err == nil {
					host = u.Hostname()
				}
			}
			var ls []storage.Listing
			var allow []storage.AllowHit
			var overrides []storage.Override
			err = a.withDB(cmd, func(ctx context.Context, db *storage.DB) (err error) {
				if ls, err = db.Lookup(ctx, string(ind.Type), ind.Value, host, ind.Registrable); err != nil {
					return err
				}
				if allow, err = db.AllowlistHits(ctx, string(ind.Type), ind.Value, host, ind.Registrable); err != nil {
					return err
				}
				overrides, err = db.OverridesCovering(ctx, string(ind.Type), ind.Value)
				return err
			})
			if err != nil {
				return err
			}
			if overrides == nil {
				overrides = []storage.Override{}
			}
			if ls == nil {
				ls = []storage.Listing{}
			}
			if allow == nil {
				allow = []storage.AllowHit{}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(out).Encode(map[string]any{"query": ind, "score": storage.ScoreListings(ls, time.Now()),
					"listings": ls, "allowlisted": allow, "overrides": overrides})
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
				ind.Type, ind.Value, storage.ScoreListings(ls, time.Now()), active, len(ls))
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SOURCE\tWEIGHT\tLISTED\tMATCH\tFIRST SEEN\tLAST SEEN\tSTATE")
			for _, l := range ls {
				state := "active"
				if !l.Active {
					state = "removed " + l.RemovedAt.UTC().Format("2006-01-02 15:04")
				}
				fmt.Fprintf(tw, "%s\t%.2f\t%s\t%s\t%s\t%s\t%s\n", l.Source, l.Weight, l.Value, l.Match,
					l.FirstSeen.UTC().Format("2006-01-02 15:04"), l.LastSeen.UTC().Format("2006-01-02 15:04"), state)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
