package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tip-project/tip/storage"
)

// author is who makes an override: --author, else the user running tip ($USER,
// else the account the process runs as).
func author(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if u := os.Getenv("USER"); u != "" {
		return u, nil
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username, nil
	}
	return "", errors.New("cannot tell who you are: pass --author")
}

// expiry reads --expires: a duration from now (72h) or a date (2006-01-02, or RFC 3339).
func expiry(s string, now time.Time) (*time.Time, error) {
	if s == "" {
		return nil, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		t := now.Add(d)
		return &t, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			if !t.After(now) {
				return nil, fmt.Errorf("--expires %s is in the past", s)
			}
			return &t, nil
		}
	}
	return nil, fmt.Errorf("--expires %q: want a duration (72h) or a date (2026-01-31 or RFC 3339)", s)
}

func allowCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "allow",
		Short: "Keep values out of every export at once: an indicator, a CIDR or *.domain (a domain and its subdomains)",
	}
	var reason, expires, who string
	add := &cobra.Command{
		Use:   "add VALUE --reason R",
		Short: "Allow an indicator, a CIDR, or *.example.com; it leaves the exports at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := storage.ParseOverrideTarget(args[0])
			if err != nil {
				return err
			}
			if reason == "" {
				return errors.New("--reason is required: say why, for whoever reads this later")
			}
			if o.Author, err = author(who); err != nil {
				return err
			}
			if o.ExpiresAt, err = expiry(expires, time.Now()); err != nil {
				return err
			}
			o.Kind, o.Reason = storage.OverrideAllow, reason
			return a.withDB(cmd, func(ctx context.Context, db *storage.DB) error {
				if o, err = db.AddOverride(ctx, o); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "allowed %s (%s) by %s: left out of every export from now%s\n", o.Target(), o.Type, o.Author, until(o.ExpiresAt))
				return nil
			})
		},
	}
	add.Flags().StringVar(&reason, "reason", "", "why the value is benign (required)")
	add.Flags().StringVar(&expires, "expires", "", "when the allow ends: a duration (720h) or a date (2026-01-31)")
	add.Flags().StringVar(&who, "author", "", "who decides (default: the user running tip)")

	var all, asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the standing allows (--all: every one ever made, removed and expired too)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return listOverrides(cmd, a, storage.OverrideAllow, all, asJSON)
		},
	}
	list.Flags().BoolVar(&all, "all", false, "also the removed and expired ones")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON lines")

	var removeWho string
	remove := &cobra.Command{
		Use:   "remove VALUE",
		Short: "End an allow: the value is exported again at once when a source lists it (the record stays)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := storage.ParseOverrideTarget(args[0])
			if err != nil {
				return err
			}
			by, err := author(removeWho)
			if err != nil {
				return err
			}
			return a.withDB(cmd, func(ctx context.Context, db *storage.DB) error {
				if o, err = db.RemoveOverride(ctx, storage.OverrideAllow, o, "", by); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "removed the allow of %s (made by %s: %s)\n", o.Target(), o.Author, o.Reason)
				return nil
			})
		},
	}
	remove.Flags().StringVar(&removeWho, "author", "", "who decides (default: the user running tip)")
	cmd.AddCommand(add, list, remove)
	return cmd
}

func until(t *time.Time) string {
	if t == nil {
		return ""
	}
	return " until " + t.UTC().Format("2006-01-02 15:04 UTC")
}

func listOverrides(cmd *cobra.Command, a *app, kind string, all, asJSON bool) error {
	return a.withDB(cmd, func(ctx context.Context, db *storage.DB) error {
		rows, err := db.Overrides(ctx, kind, all, 0)
		if err != nil {
			return err
		}
		if asJSON {
			enc := json.NewEncoder(cmd.OutOrStdout())
			for _, o := range rows {
				if err := enc.Encode(o); err != nil {
					return err
				}
			}
			return nil
		}
		return printOverrides(cmd.OutOrStdout(), rows, time.Now())
	})
}

// printOverrides draws overrides as a table, the newest first.
func printOverrides(w io.Writer, rows []storage.Override, now time.Time) error {
	if len(rows) == 0 {
		fmt.Fprintln(w, "no overrides")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tVALUE\tSOURCE\tBY\tWHEN\tSTATE\tREASON")
	for _, o := range rows {
		src := o.Source
		if src == "" {
			src = "-"
			if o.Kind == storage.OverrideFP {
				src = "every source"
			}
		}
		state := "standing" + until(o.ExpiresAt)
		switch {
		case o.RemovedAt != nil:
			state = "removed by " + o.RemovedBy + " " + o.RemovedAt.UTC().Format("2006-01-02 15:04")
		case !o.Standing(now):
			state = "expired " + o.ExpiresAt.UTC().Format("2006-01-02 15:04")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", o.Kind, o.Target(), src, o.Author,
			o.CreatedAt.UTC().Format("2006-01-02 15:04"), state, o.Reason)
	}
	return tw.Flush()
}
