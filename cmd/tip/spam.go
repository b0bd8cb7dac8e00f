package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tip-project/tip/storage"
)

func spamCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "spam",
		Short: "Spamtraps: what was harvested from archives and mailboxes, and the facts of each mail",
	}
	cmd.AddCommand(spamStatsCmd(a), spamShowCmd(a), spamParseCmd(a), spamIngestCmd(a), spamIMAPCmd(a))
	return cmd
}

func spamStatsCmd(a *app) *cobra.Command {
	var top int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Top sender ASNs and countries, top URL domains and campaigns of the spam TIP holds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st storage.SpamStats
			err := a.withDB(cmd, func(ctx context.Context, db *storage.DB) (err error) {
				st, err = db.SpamStats(ctx, top)
				return err
			})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(out).Encode(st)
			}
			span := "-"
			if st.First != nil && st.Last != nil {
				span = st.First.UTC().Format("2006-01-02 15:04") + " … " + st.Last.UTC().Format("2006-01-02 15:04")
			}
			fmt.Fprintf(out, "%d mails from %d sender addresses, received %s; %d with parse defects\n", st.Mails, st.Senders, span, st.Defective)
			for _, sec := range []struct {
				title string
				rows  []storage.CountRow
			}{{"ORIGIN", st.Origins}, {"SENDER ASN", st.ASNs}, {"SENDER COUNTRY", st.Countries}, {"URL DOMAIN", st.Domains}} {
				fmt.Fprintln(out)
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "%s\tMAILS\n", sec.title)
				for _, r := range sec.rows {
					fmt.Fprintf(tw, "%s\t%d\n", r.Key, r.Mails)
				}
				tw.Flush()
			}
			fmt.Fprintln(out)
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CAMPAIGN\tMAILS\tSENDERS\tFIRST\tLAST\tEXAMPLE SUBJECT")
			for _, c := range st.Campaigns {
				subject := c.Subject
				if len([]rune(subject)) > 60 {
					subject = string([]rune(subject)[:57]) + "..."
				}
				key := c.Key
				if len(key) > 16 {
					key = key[:16]
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", key, c.Mails, c.Senders,
					c.First.UTC().Format("01-02 15:04"), c.Last.UTC().Format("01-02 15:04"), subject)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&top, "top", 10, "rows per list")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func spamShowCmd(a *app) *cobra.Command {
	var raw bool
	cmd := &cobra.Command{
		Use:   "show SHA256",
		Short: "Print a mail's extracted facts (JSON) and where it was seen; --raw prints the raw mail from S3",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withDB(cmd, func(ctx context.Context, db *storage.DB) error {
				facts, seen, err := db.SpamFacts(ctx, args[0])
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if raw {
					blobs, err := storage.NewBlobStoreFromConfig(a.cfg.S3)
					if err != nil {
						return err
					}
					body, err := storage.RawMail(ctx, db, blobs, args[0])
					if err != nil {
						return err
					}
					_, err = out.Write(body)
					return err
				}
				var pretty bytes.Buffer
				if err := json.Indent(&pretty, facts, "", "  "); err != nil {
					return err
				}
				doc := map[string]any{"facts": json.RawMessage(pretty.Bytes()), "seen": seen}
				return writeJSON(out, doc)
			})
		},
	}
	cmd.Flags().BoolVar(&raw, "raw", false, "print the raw mail (RFC 822) as stored in S3; verified against its SHA-256")
	return cmd
}
