package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/tip-project/tip/catalog"
	"github.com/tip-project/tip/mail"
	"github.com/tip-project/tip/spamarchive"
	"github.com/tip-project/tip/starter"
	"github.com/tip-project/tip/storage"
	"github.com/tip-project/tip/workflows"
	"github.com/tip-project/tip/workflows/contract"
)

func spamExtraCmds(a *app) []*cobra.Command {
	return []*cobra.Command{spamParseCmd(a), spamIngestCmd(a), spamIMAPCmd(a)}
}

// trapConfig is the extraction setting of a trap of the configured spam catalog.
func trapConfig(a *app, trap string) (mail.Config, error) {
	cfg := mail.Config{Limits: mail.DefaultLimits()}
	if a.cfg.Spam.Catalog == "" {
		return cfg, nil
	}
	c, err := catalog.LoadSpam(a.cfg.Spam.Catalog)
	if err != nil {
		return cfg, err
	}
	if trap == "" {
		trap = catalog.AllTraps
	}
	t, ok := c.Rules(trap)
	if !ok {
		return cfg, fmt.Errorf("no trap %q in %s", trap, c.Path)
	}
	cfg.TrapMX, cfg.TrapMXAddrs, cfg.TrustedRelays = t.MX, t.MXAddrs, t.Trusted
	return cfg, nil
}

func spamParseCmd(a *app) *cobra.Command {
	var trap string
	cmd := &cobra.Command{
		Use:   "parse FILE|MBOX|MAILDIR...",
		Short: "Extract the facts of local mail (RFC 822 files, mbox, Maildir folders) without the stack: one JSON object a mail",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := trapConfig(a, trap)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			n, defective := 0, 0
			for _, p := range args {
				err := mail.Walk(p, func(name string, raw []byte) error {
					f := mail.Extract(raw, cfg)
					n++
					if len(f.Defects) > 0 {
						defective++
					}
					return enc.Encode(struct {
						Name string `json:"name"`
						mail.Facts
					}{name, f})
				})
				if err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d mails, %d with defects (trust rules of trap %q)\n", n, defective, trapName(a, trap))
			return nil
		},
	}
	cmd.Flags().StringVar(&trap, "trap", "", "the trap of the spam catalog whose MX hosts and relays pick the sender (default: all of them)")
	return cmd
}

func trapName(a *app, trap string) string {
	if trap == "" {
		return catalog.AllTraps
	}
	return trap
}

func spamIngestCmd(a *app) *cobra.Command {
	var archiveURL, month, source string
	cmd := &cobra.Command{
		Use:   "ingest --archive URL | --month YYYY-MM",
		Short: "Ingest one spam archive now (by URL, or a month of the catalog's archive) and show its progress",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
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
			var ar spamarchive.Archive
			if archiveURL != "" {
				u, err := url.Parse(archiveURL)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
					return fmt.Errorf("--archive %q: want an http or https URL", archiveURL)
				}
				name := path.Base(u.Path)
				ar = spamarchive.Archive{Name: name, URL: archiveURL, Period: strings.SplitN(name, ".", 2)[0]}
			} else {
				if _, err := time.Parse("2006-01", month); err != nil {
					return fmt.Errorf("--month %q: want YYYY-MM", month)
				}
				u, err := url.Parse(src.Index)
				if err != nil {
					return err
				}
				ar = spamarchive.Archive{Name: month + ".7z", URL: u.JoinPath(month + ".7z").String(), Period: month, Format: spamarchive.SevenZip}
			}
			tc, err := starter.Dial(ctx, a.cfg.Temporal, a.log, client.Options{})
			if err != nil {
				return err
			}
			defer tc.Close()
			id := "spam/archive/" + src.Name + "/" + ar.Period
			run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: a.cfg.Temporal.TaskQueue,
				TypedSearchAttributes: temporal.NewSearchAttributes(workflows.Module.ValueSet(contract.SpamModule), workflows.Source.ValueSet(src.Name))},
				workflows.SpamArchiveIngest, contract.ArchiveIngestInput{Source: src, Archive: ar})
			if err != nil {
				return starter.ExplainTemporal(a.cfg.Temporal.Address, err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "ingesting %s as %s\n", ar.URL, id)
			var res contract.IngestResult
			done := make(chan error, 1)
			go func() { done <- run.Get(ctx, &res) }()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case err := <-done:
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
				case <-tick.C:
					if n, ok := heartbeat(ctx, tc, id); ok {
						fmt.Fprintf(out, "\r%s: %d mails read…", ar.Name, n)
					}
				}
			}
		},
	}
	cmd.Flags().StringVar(&archiveURL, "archive", "", "an archive URL (7z, zip or tar.gz)")
	cmd.Flags().StringVar(&month, "month", "", "a month of the catalog's archive index, YYYY-MM")
	cmd.Flags().StringVar(&source, "source", "", "which archive of the spam catalog (default: its first)")
	return cmd
}

// heartbeat reads the progress the running activity of a workflow last reported.
func heartbeat(ctx context.Context, c client.Client, id string) (int, bool) {
	d, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return 0, false
	}
	for _, pa := range d.GetPendingActivities() {
		if hb := pa.GetHeartbeatDetails(); hb != nil {
			var n int
			if err := converter.GetDefaultDataConverter().FromPayloads(hb, &n); err == nil {
				return n, true
			}
		}
	}
	return 0, false
}

// spamCatalogDB loads the spam catalog and opens the database, for the commands
// that show the catalog's collectors with how far each was read.
func spamCatalogDB(cmd *cobra.Command, a *app) (*catalog.Spam, *storage.DB, error) {
	c, err := catalog.LoadSpam(a.cfg.Spam.Catalog)
	if err != nil {
		return nil, nil, err
	}
	db, err := storage.OpenDB(cmd.Context(), a.cfg.Postgres.DSN)
	if err != nil {
		return nil, nil, err
	}
	return c, db, nil
}

func spamIMAPCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "imap", Short: "IMAP spamtrap mailboxes of the spam catalog"}
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the mailboxes with how far each was read",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, db, err := spamCatalogDB(cmd, a)
			if err != nil {
				return err
			}
			defer db.Close()
			type row struct {
				catalog.Mailbox
				UIDValidity uint32 `json:"uid_validity"`
				LastUID     uint32 `json:"last_uid"`
			}
			var rows []row
			for _, m := range c.Mailboxes {
				v, u, err := db.IMAPCursor(cmd.Context(), m.Name)
				if err != nil {
					return err
				}
				rows = append(rows, row{m, v, u})
			}
			if asJSON {
				return jsonLines(cmd.OutOrStdout(), rows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MAILBOX\tADDRESS\tTLS\tUSER\tFOLDER\tAFTER\tTRAP\tENABLED\tUIDVALIDITY\tLAST UID")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%t\t%d\t%d\n", r.Name, r.Address, r.TLS, r.Username, r.Mailbox.Mailbox, r.After, r.Trap, r.Enabled, r.UIDValidity, r.LastUID)
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "one JSON object a line")
	poll := &cobra.Command{
		Use:   "poll NAME",
		Short: "Poll one mailbox now and wait for the result",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
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
			tc, err := starter.Dial(ctx, a.cfg.Temporal, a.log, client.Options{})
			if err != nil {
				return err
			}
			defer tc.Close()
			run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "spam/imap/" + box.Name, TaskQueue: a.cfg.Temporal.TaskQueue,
				TypedSearchAttributes: temporal.NewSearchAttributes(workflows.Module.ValueSet(contract.SpamModule), workflows.Mailbox.ValueSet(box.Name))},
				workflows.SpamMailboxPoll, *box)
			if err != nil {
				return starter.ExplainTemporal(a.cfg.Temporal.Address, err)
			}
			var res contract.IngestResult
			if err := run.Get(ctx, &res); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %d fetched, %d new to TIP, %d with defects\n", box.Name, res.Members, res.New, res.Defective)
			if res.Refused > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%d refused (left in the mailbox, not asked for again):\n", res.Refused)
				for _, s := range res.RefusedSample {
					fmt.Fprintf(cmd.OutOrStdout(), "  %s\n", s)
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
			if err := catalog.AddMailbox(a.cfg.Spam.Catalog, box); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added mailbox %s to %s; the spam module polls it from its next run (set %s in the worker's environment)\n",
				box.Name, a.cfg.Spam.Catalog, box.PasswordEnv)
			return nil
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
