package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/spamarchive"
	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows/contract"
)

// The spam collectors of the catalog, run by hand: an archive ingested now
// (tip spam ingest), the IMAP spamtrap mailboxes (tip spam imap).

func spamIngestCmd(a *app) *cobra.Command {
	var archiveURL, month, source string
	cmd := &cobra.Command{
		Use:   "ingest --archive URL | --month YYYY-MM",
		Short: "Ingest one spam archive now (by URL, or a month of the catalog's archive) and show its progress",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (archiveURL == "") == (month == "") {
				return errors.New("give --archive URL or --month YYYY-MM")
			}
			c, err := catalog.LoadSpam(a.cfg.Spam.Catalog)
			if err != nil {
				return err
			}
			var src catalog.SpamArchive
			for _, s := range c.Archives {
				if source == "" || s.Name == source {
					src = s
					break
				}
			}
			if src.Name == "" {
				return fmt.Errorf("no archive %q in %s", source, c.Path)
			}
			ar, err := archiveToIngest(src, archiveURL, month)
			if err != nil {
				return err
			}
			return a.withTemporal(cmd, func(ctx context.Context, tc client.Client) error {
				run, err := starter.StartArchiveIngest(ctx, tc, a.cfg.Temporal, src, ar)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "ingesting %s as %s\n", ar.URL, run.GetID())
				var res contract.IngestResult
				err = starter.Await(ctx, run, &res, time.Second, func() {
					if n, ok := starter.Progress(ctx, tc, run.GetID()); ok {
						fmt.Fprintf(out, "\r%s: %d mails read…", ar.Name, n)
					}
				})
				if err != nil {
					return err
				}
				if res.Status == contract.FetchUnchanged {
					fmt.Fprintf(out, "%s: unchanged since its last complete ingest; nothing to read\n", ar.Name)
					return nil
				}
				fmt.Fprintf(out, "\r%s: %d mails in the archive, %d new to TIP, %d already ingested, %d with defects, %d URL domains\n",
					ar.Name, res.Members, res.New, res.Skipped, res.Defective, len(res.Domains))
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&archiveURL, "archive", "", "an archive URL (7z, zip or tar.gz)")
	cmd.Flags().StringVar(&month, "month", "", "a month of the catalog's archive index, YYYY-MM")
	cmd.Flags().StringVar(&source, "source", "", "which archive of the spam catalog (default: its first)")
	return cmd
}

// archiveToIngest is the archive `tip spam ingest` asks for: one at an http(s)
// URL, or a month of the source's index (a 7z archive).
func archiveToIngest(src catalog.SpamArchive, archiveURL, month string) (spamarchive.Archive, error) {
	if archiveURL != "" {
		u, err := url.Parse(archiveURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return spamarchive.Archive{}, fmt.Errorf("--archive %q: want an http or https URL", archiveURL)
		}
		name := path.Base(u.Path)
		return spamarchive.Archive{Name: name, URL: archiveURL, Period: strings.SplitN(name, ".", 2)[0]}, nil
	}
	if _, err := time.Parse("2006-01", month); err != nil {
		return spamarchive.Archive{}, fmt.Errorf("--month %q: want YYYY-MM", month)
	}
	u, err := url.Parse(src.Index)
	if err != nil {
		return spamarchive.Archive{}, err
	}
	return spamarchive.Archive{Name: month + ".7z", URL: u.JoinPath(month + ".7z").String(), Period: month, Format: spamarchive.SevenZip}, nil
}

func spamIMAPCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "imap", Short: "IMAP spamtrap mailboxes of the spam catalog"}
	type row struct {
		catalog.Mailbox
		UIDValidity uint32 `json:"uid_validity"`
		LastUID     uint32 `json:"last_uid"`
	}
	list := listCollectorsCmd(a, "List the mailboxes with how far each was read", func(c *catalog.Spam) []catalog.Mailbox { return c.Mailboxes },
		func(ctx context.Context, db *storage.DB, m catalog.Mailbox) (row, error) {
			v, u, err := db.IMAPCursor(ctx, m.Name)
			return row{m, v, u}, err
		},
		"MAILBOX\tADDRESS\tTLS\tUSER\tFOLDER\tAFTER\tTRAP\tENABLED\tUIDVALIDITY\tLAST UID", func(r row) string {
			return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%t\t%d\t%d", r.Name, r.Address, r.TLS, r.Username, r.Mailbox.Mailbox, r.After, r.Trap, r.Enabled, r.UIDValidity, r.LastUID)
		})
	poll := &cobra.Command{
		Use:   "poll NAME",
		Short: "Poll one mailbox now and wait for the result",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := catalog.LoadSpam(a.cfg.Spam.Catalog)
			if err != nil {
				return err
			}
			var box *catalog.Mailbox
			for i := range c.Mailboxes {
				if c.Mailboxes[i].Name == args[0] {
					box = &c.Mailboxes[i]
				}
			}
			if box == nil {
				return fmt.Errorf("no mailbox %q in %s", args[0], c.Path)
			}
			var res contract.IngestResult
			err = a.withTemporal(cmd, func(ctx context.Context, c client.Client) (err error) {
				res, err = starter.PollMailbox(ctx, c, a.cfg.Temporal, *box)
				return err
			})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s: %d fetched, %d new to TIP, %d with defects\n", box.Name, res.Members, res.New, res.Defective)
			if res.Refused > 0 {
				fmt.Fprintf(out, "%d refused (left in the mailbox, not asked for again):\n", res.Refused)
				for _, s := range res.RefusedSample {
					fmt.Fprintf(out, "  %s\n", s)
				}
			}
			return nil
		},
	}
	var box catalog.Mailbox
	add := &cobra.Command{
		Use:   "add",
		Short: "Add a mailbox to the spam catalog (the password stays in the environment variable you name)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.addToSpamCatalog(cmd, "mailbox", box.Name, func(path string) error { return catalog.AddMailbox(path, box) },
				"polls it from its next run (set "+box.PasswordEnv+" in the worker's environment)")
		},
	}
	f := add.Flags()
	f.StringVar(&box.Name, "name", "", "a short name (lower-case letters, digits, . _ -)")
	f.StringVar(&box.Address, "address", "", "host:port of the IMAP server")
	f.StringVar(&box.TLS, "tls", "tls", "tls (implicit), starttls, or none (loopback only)")
	f.StringVar(&box.CAFile, "ca-file", "", "a PEM certificate or CA to trust besides the system's")
	f.StringVar(&box.Username, "username", "", "login")
	f.StringVar(&box.PasswordEnv, "password-env", "", "the environment variable holding the password")
	f.StringVar(&box.Mailbox, "mailbox", "INBOX", "the folder to read")
	f.StringVar(&box.After, "after", "keep", "keep, delete, or move the mail once stored")
	f.StringVar(&box.MoveTo, "move-to", "", "the folder to move stored mail to (with --after move)")
	f.StringVar(&box.Trap, "trap", "", "the trap of the catalog whose MX hosts and relays pick the sender")
	f.DurationVar(&box.Interval, "interval", 5*time.Minute, "least time between two polls")
	for _, req := range []string{"name", "address", "username", "password-env", "trap"} {
		_ = add.MarkFlagRequired(req)
	}
	cmd.AddCommand(add, list, poll)
	return cmd
}

// listCollectorsCmd is the list command of a kind of collector of the spam
// catalog, those pick chooses: each with what read finds of it in the database
// (how far it was read), one JSON object a line (--json) or a table under
// header, a line of each.
func listCollectorsCmd[C, R any](a *app, short string, pick func(*catalog.Spam) []C,
	read func(context.Context, *storage.DB, C) (R, error), header string, line func(R) string) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rows []R
			err := a.withSpamCatalog(cmd, func(ctx context.Context, c *catalog.Spam, db *storage.DB) error {
				for _, it := range pick(c) {
					r, err := read(ctx, db, it)
					if err != nil {
						return err
					}
					rows = append(rows, r)
				}
				return nil
			})
			if err != nil {
				return err
			}
			return listRows(cmd.OutOrStdout(), asJSON, rows, header, line)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object a line")
	return cmd
}

// addToSpamCatalog adds a collector (kind name) to the configured spam catalog
// with add, and says so and when the spam module takes it up.
func (a *app) addToSpamCatalog(cmd *cobra.Command, kind, name string, add func(path string) error, takenUp string) error {
	if err := add(a.cfg.Spam.Catalog); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "added %s %s to %s; the spam module %s\n", kind, name, a.cfg.Spam.Catalog, takenUp)
	return nil
}

// withSpamCatalog runs fn with the configured spam catalog and PostgreSQL: the
// catalog's collectors with how far each was read.
func (a *app) withSpamCatalog(cmd *cobra.Command, fn func(ctx context.Context, c *catalog.Spam, db *storage.DB) error) error {
	c, err := catalog.LoadSpam(a.cfg.Spam.Catalog)
	if err != nil {
		return err
	}
	return a.withDB(cmd, func(ctx context.Context, db *storage.DB) error { return fn(ctx, c, db) })
}
