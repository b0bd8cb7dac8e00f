package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/export"
	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

func blacklistsCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "blacklists",
		Short: "Refresh the blacklist sources now, or export what they list (plain, csv, json, rpz, nft)",
	}

	var sources []string
	var wait bool
	refresh := &cobra.Command{
		Use:   "refresh",
		Short: "Run a blacklist refresh now, of every enabled source or of the named ones",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withTemporal(cmd, func(ctx context.Context, c client.Client) error {
				run, err := starter.StartBlacklistRefresh(ctx, c, a.cfg.Temporal, sources)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "started %s (run %s)\n", run.GetID(), run.GetRunID())
				if !wait {
					return nil
				}
				var res contract.ModuleResult
				err = starter.Await(ctx, run, &res, 5*time.Second, func() {
					fmt.Fprintf(out, "  … %s still running (`tip sources` shows finished sources)\n", run.GetID())
				})
				if err != nil {
					return err
				}
				fmt.Fprintln(out, res.Summary)
				return nil
			})
		},
	}
	refresh.Flags().StringSliceVar(&sources, "source", nil, "refresh only this source (repeatable)")
	refresh.Flags().BoolVar(&wait, "wait", false, "wait for the refresh and print its summary")

	var format, outPath string
	var types []string
	var minScore float64
	var withAllowlisted bool
	exp := &cobra.Command{
		Use:   "export",
		Short: "Write the actively listed indicators with their scores: plain, csv, json, rpz, nft, zeek, suricata or a MISP feed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withDB(cmd, func(ctx context.Context, db *storage.DB) error {
				var w export.Writer
				if format == "misp-feed" { // a folder: the events, manifest.json, hashes.csv
					if outPath == "" || outPath == "-" {
						return errors.New("--format misp-feed writes a folder: name it with --out DIR")
					}
					feed, err := export.NewMISPFeed(outPath, time.Now())
					if err != nil {
						return err
					}
					w = feed
				}
				dst := cmd.OutOrStdout()
				if w == nil && outPath != "" && outPath != "-" {
					f, err := os.Create(outPath)
					if err != nil {
						return err
					}
					defer f.Close()
					dst = f
				}
				if w == nil {
					var err error
					if w, err = export.NewWith(format, dst, time.Now(), export.STIXOptions{MinScore: minScore, HalfLife: storage.ScoreHalfLife}); err != nil {
						return err
					}
				}
				n := 0
				if err := db.ExportListed(ctx, types, minScore, withAllowlisted, func(r export.Row) error { n++; return w.Write(r) }); err != nil {
					return err
				}
				if err := w.Close(); err != nil {
					return err
				}
				a.log.Info("exported", "indicators", n, "format", format, "min_score", minScore)
				return nil
			})
		},
	}
	exp.Flags().StringVar(&format, "format", "plain", "one of "+strings.Join(export.Formats, ", ")+", misp-feed (a folder MISP pulls as a feed; --out DIR)")
	exp.Flags().StringVarP(&outPath, "output", "o", "", "write to this file instead of standard output (misp-feed: this folder)")
	exp.Flags().StringVar(&outPath, "out", "", "the same as --output")
	exp.Flags().StringSliceVar(&types, "type", nil, "only these indicator types (ipv4, ipv6, cidr, asn, domain, url, sha1, ...)")
	exp.Flags().Float64Var(&minScore, "min-score", 0, "only indicators whose score reaches this (0..1)")
	exp.Flags().BoolVar(&withAllowlisted, "include-allowlisted", false, "also export indicators on an allowlist (top sites, CDN ranges); left out by default")
	cmd.AddCommand(refresh, exp)
	return cmd
}
